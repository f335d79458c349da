"""A state dict turned into what a save writes: validated, hashed, with its snapshot hash.

Done before any transaction (no lock is held while hashing). The costs are
per key, so they are kept in C where the state is what an optimiser saves
again and again, the same keys with one or two new strings:

* when a name's keys are those it was last prepared with, in the same order,
  and its values are strings, only the values that are not the very same
  objects as last time are looked at (one identity pass in C): an unchanged
  string is the same object in a module's next ``state_dict()``, and a
  string cannot change in place;
* a string's value hash is cached by the string itself (it was validated when
  it was first hashed);
* keys are checked once per store;
* the snapshot hash is updated in place for the keys whose hash changed
  (:class:`~msgflux.store.hashing.SnapshotHasher`, one per name);
* values are encoded for storage only when the save needs them (new values).

Anything else (a non-string value, a key never seen) takes the general path,
which checks and hashes every value.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from itertools import compress
from operator import is_not
from typing import Any

from msgflux._values import check_state_dict
from msgflux.errors import StateValueError
from msgflux.store.errors import InvalidInputError
from msgflux.store.hashing import SnapshotHasher, encode_value, snapshot_hash, value_hash
from msgflux.store.validation import check_key

__all__ = ["Prepared", "Preparer"]

# At most 16,384 strings of at most 16,384 characters (<= 1 GiB worst case,
# a few MB for real prompts); longer values are hashed every time.
_CACHE_SIZE = 16_384
_CACHE_MAX_STRING = 16_384
_HASHERS = 64  # names whose last snapshot is kept for incremental hashing


@dataclass(frozen=True)
class Prepared:
    """A state dict ready to store: keys and value hashes in saved order, its snapshot.

    ``encoded`` maps value hashes to ``(value_type, stored_text)``; on the save
    path it may be partial, and :meth:`encode` fills in the rest from
    ``values``. ``stored_ids`` maps value hashes to ids known to exist (a
    rollback's). ``base`` is the ``hashes`` list of the state this name was
    last prepared with when the keys are the same, in the same order, and
    ``changed`` the indices whose hash differs from it (``None``: unknown).
    Lists are never changed once prepared: a later save compares ``base``
    with what it remembers by identity.
    """

    keys: list[str]
    hashes: list[str]
    encoded: dict[str, tuple[str, str]]
    snapshot: str
    stored_ids: Mapping[str, int] = field(default_factory=dict)
    values: list[Any] | None = None
    base: list[str] | None = None
    changed: list[int] | None = None

    def encode(self, digests: Collection[str]) -> dict[str, tuple[str, str]]:
        """``(value_type, stored_text)`` of each of ``digests`` (hashes of this state)."""
        out: dict[str, tuple[str, str]] = {}
        for digest in digests:
            found = self.encoded.get(digest)
            if found is None:
                assert self.values is not None, "a value of this state was not encoded"
                index = next((i for i in self.changed or () if self.hashes[i] == digest), None)
                if index is None:
                    index = self.hashes.index(digest)
                found = encode_value(self.values[index])
            out[digest] = found
        return out


class Preparer:
    """Validates and hashes state dicts for one store, with its per-process caches."""

    def __init__(self) -> None:
        self._hashes: dict[str, str] = {}  # string value -> its value hash
        self._keys: set[str] = set()  # keys check_key accepted
        self._hashers: dict[str, SnapshotHasher] = {}
        # name -> (keys, values, hashes) it was last prepared with, all values str
        self._last: dict[str, tuple[list[str], list[Any], list[str]]] = {}

    def prepare(self, name: str, state: Mapping[str, Any]) -> Prepared:
        """Validate and hash ``state`` (the next state of ``name``).

        Raises:
            InvalidInputError: a bad key or value, naming the key.
        """
        if not isinstance(state, Mapping):
            raise InvalidInputError(
                f"a state dict must be a mapping of str keys to values, not {type(state).__name__}"
            )
        keys = list(state)
        values = list(state.values())
        last = self._last.get(name)
        if last is not None and keys == last[0]:
            prepared = self._same_keys(name, keys, values, last[1], last[2])
            if prepared is not None:
                return prepared
        hashes: list[Any]
        all_strings = set(map(type, values)) <= {str}
        if all_strings and self._keys.issuperset(keys):
            # Known keys, string values: every step below runs in C but for the new strings.
            try:  # the common case: every string seen before, no scan for the new ones
                hashes = list(map(self._hashes.__getitem__, values))
            except KeyError:
                hashes = list(map(self._hashes.get, values))
                start = 0
                while True:
                    try:
                        start = hashes.index(None, start)
                    except ValueError:
                        break
                    hashes[start] = self._hash_string(keys[start], values[start])
            encoded: dict[str, tuple[str, str]] = {}
        else:
            hashes, encoded = self._general(state, keys, values)
        if all_strings:
            if len(self._last) >= _HASHERS:
                self._last.clear()
            self._last[name] = (keys, values, hashes)
        else:
            self._last.pop(name, None)
        return Prepared(keys, hashes, encoded, self._hasher(name).hash(keys, hashes), values=values)

    def _same_keys(
        self, name: str, keys: list[str], values: list[Any], last: list[Any], base: list[str]
    ) -> Prepared | None:
        """The keys of the last save, in order: only values that are not the same objects
        as last time are looked at (the others are the same strings, so the same hashes).
        ``None`` if one of those is not a string."""
        fresh = list(compress(range(len(values)), map(is_not, values, last)))
        if not all(type(values[index]) is str for index in fresh):
            return None
        hashes = base.copy()
        for index in fresh:
            value = values[index]
            hashes[index] = self._hashes.get(value) or self._hash_string(keys[index], value)
        changed = [index for index in fresh if hashes[index] != base[index]]
        self._last[name] = (keys, values, hashes)
        snapshot = self._hasher(name).hash(keys, hashes, changed, base)
        return Prepared(keys, hashes, {}, snapshot, values=values, base=base, changed=changed)

    def _hasher(self, name: str) -> SnapshotHasher:
        hasher = self._hashers.get(name)
        if hasher is None:
            if len(self._hashers) >= _HASHERS:
                self._hashers.clear()
            hasher = self._hashers[name] = SnapshotHasher()
        return hasher

    def _hash_string(self, key: str, value: str) -> str:
        try:
            if "\x00" in value:
                raise ValueError("NUL character in the string value")
            digest = value_hash(value)
        except (ValueError, UnicodeEncodeError) as error:
            raise InvalidInputError(f"state dict key {key!r} cannot be stored: {error}") from None
        if len(value) <= _CACHE_MAX_STRING:
            if len(self._hashes) >= _CACHE_SIZE:
                self._hashes.clear()
            self._hashes[value] = digest
        return digest

    def _general(
        self, state: Mapping[str, Any], keys: list[str], values: list[Any]
    ) -> tuple[list[str], dict[str, tuple[str, str]]]:
        try:
            check_state_dict(state)
        except StateValueError as error:
            raise InvalidInputError(str(error)) from None
        hashes: list[str] = []
        encoded: dict[str, tuple[str, str]] = {}
        for key, value in zip(keys, values, strict=True):
            if key not in self._keys:
                check_key(key)
                if len(self._keys) >= _CACHE_SIZE:
                    self._keys.clear()
                self._keys.add(key)
            if type(value) is str:
                digest = self._hashes.get(value) or self._hash_string(key, value)
            else:
                try:
                    digest = value_hash(value)
                except (ValueError, UnicodeEncodeError) as error:
                    raise InvalidInputError(
                        f"state dict key {key!r} cannot be stored: {error}"
                    ) from None
                encoded.setdefault(digest, encode_value(value))
            hashes.append(digest)
        return hashes, encoded


def stored(
    keys: list[str],
    hashes: list[str],
    encoded: dict[str, tuple[str, str]],
    snapshot: str | None = None,
    stored_ids: Mapping[str, int] | None = None,
) -> Prepared:
    """Content already stored or checked elsewhere (a bundle's, a rollback's target)."""
    return Prepared(
        keys,
        hashes,
        encoded,
        snapshot if snapshot is not None else snapshot_hash(dict(zip(keys, hashes, strict=True))),
        dict(stored_ids or {}),
    )
