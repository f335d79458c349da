"""The hashing rules: the one place that defines content identity.

* A **value hash** is the SHA-256 hex digest of the value's canonical JSON:
  ``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
  allow_nan=False).encode("utf-8")``.
* A **snapshot hash** is the SHA-256 hex digest of the canonical JSON of the
  object mapping every key of the state dict to its value hash.

Verify a stored snapshot with nothing but the standard library::

    import hashlib, json
    canon = lambda v: json.dumps(v, sort_keys=True, separators=(",", ":"),
                                 ensure_ascii=False, allow_nan=False).encode()
    value_hashes = {k: hashlib.sha256(canon(v)).hexdigest() for k, v in state.items()}
    snapshot = hashlib.sha256(canon(value_hashes)).hexdigest()

Stored text: strings are stored as their raw text, every other value as its
canonical JSON; :func:`encode_value` / :func:`decode_value` convert.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from itertools import compress
from json.encoder import encode_basestring as _escape  # what json.dumps uses for keys
from operator import is_not
from typing import Any

__all__ = [
    "VALUE_TYPES",
    "canonical_json",
    "value_hash",
    "same_value",
    "snapshot_hash",
    "value_type",
    "encode_value",
    "decode_value",
    "SnapshotHasher",
]

#: The ``value_type`` names used in the database and the SQL views.
VALUE_TYPES = ("str", "int", "float", "bool", "null", "list", "dict")

_TYPE_NAMES = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    type(None): "null",
    list: "list",
    dict: "dict",
}


def canonical_json(value: Any) -> str:
    """Return the canonical JSON text of a JSON-compatible value."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def value_hash(value: Any) -> str:
    """Return the SHA-256 hex digest of ``value``'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def same_value(old: Any, new: Any) -> bool:
    """Whether two values are the same stored value: the one rule for "changed".

    ``1``, ``1.0`` and ``True`` are equal in Python but different values here.
    For JSON-compatible values this is exactly "their :func:`value_hash` is
    equal": the canonical JSON text determines the type (``1``, ``1.0``,
    ``true``), so code that holds hashes (key spans, the report, the
    ``state_changes`` view) compares those instead, by this same rule.
    """
    return type(old) is type(new) and canonical_json(old) == canonical_json(new)


def snapshot_hash(value_hashes: Mapping[str, str]) -> str:
    """Return the snapshot hash of a state dict given as ``{key: value_hash}``."""
    return hashlib.sha256(canonical_json(dict(value_hashes)).encode("utf-8")).hexdigest()


def value_type(value: Any) -> str:
    """Return the ``value_type`` name of a JSON-compatible value (``str``, ``int``...)."""
    return _TYPE_NAMES[type(value)]


def encode_value(value: Any) -> tuple[str, str]:
    """Return ``(value_type, stored_text)``: raw text for ``str``, canonical JSON otherwise."""
    kind = _TYPE_NAMES[type(value)]
    return kind, value if kind == "str" else canonical_json(value)


def decode_value(kind: str, text: str) -> Any:
    """Rebuild a value from its stored ``(value_type, text)``; raises ``ValueError`` if they disagree."""
    if kind == "str":
        return text
    value = json.loads(text, parse_constant=_refuse_constant)
    if _TYPE_NAMES.get(type(value)) != kind:
        raise ValueError(f"stored text {text[:40]!r} is not a {kind}")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


class SnapshotHasher:
    """:func:`snapshot_hash` for a sequence of states that change a few keys at a time.

    Keeps the canonical JSON of the last state it hashed as one part per key
    (``"key":"value hash"``, keys escaped exactly as ``json.dumps`` escapes them,
    in sorted order), encoded in blocks of :attr:`BLOCK` parts, with the
    SHA-256 state before each block. When the next state has the same keys in
    the same order, only the blocks holding a changed key are re-encoded, and
    hashing resumes from the state before the first of them: a one-key change
    of 5,000 keys hashes on average half the text and joins no string of the
    other keys. The result is byte for byte :func:`snapshot_hash`'s (a property
    test checks, across block boundaries).
    """

    __slots__ = ("_keys", "_hashes", "_slot", "_parts", "_blocks", "_states", "_digest")

    BLOCK = 128

    def __init__(self) -> None:
        self._keys: list[str] | None = None
        self._hashes: list[str] = []
        self._slot: dict[str, int] = {}  # key -> index of its part
        self._parts: list[str] = []
        self._blocks: list[bytes] = []  # "{" or "," + the block's parts joined
        self._states: list[Any] = []  # the SHA-256 object before each block
        self._digest = ""

    def hash(
        self,
        keys: list[str],
        hashes: list[str],
        changed: list[int] | None = None,
        base: list[str] | None = None,
    ) -> str:
        """The snapshot hash of ``dict(zip(keys, hashes))`` (``keys`` distinct; ``hashes``
        hex digests; neither list may change afterwards).

        ``changed`` may list the indices where ``hashes`` differs from ``base``;
        it is used when ``base`` is the ``hashes`` of the last call. Otherwise
        hashes are compared with the last call's, by identity first.
        """
        if keys == self._keys:
            if changed is None or base is not self._hashes:
                # Identity first (an unchanged value's hash is the cached object): a part
                # is rewritten for every hash that is not the same object, equal or not.
                changed = list(compress(range(len(keys)), map(is_not, hashes, self._hashes)))
            parts, slot = self._parts, self._slot
            dirty: set[int] = set()
            for index in changed:
                key = keys[index]
                parts[slot[key]] = f'{_escape(key)}:"{hashes[index]}"'
                dirty.add(slot[key] // self.BLOCK)
            if dirty:
                for block in dirty:
                    self._blocks[block] = self._encode(block)
                self._rehash(min(dirty))
        else:
            ordered = sorted(keys)
            mapping = dict(zip(keys, hashes, strict=True))
            self._parts = [f'{_escape(key)}:"{mapping[key]}"' for key in ordered]
            self._slot = {key: index for index, key in enumerate(ordered)}
            self._keys = list(keys)
            count = -(-len(ordered) // self.BLOCK)
            self._blocks = [self._encode(block) for block in range(count)]
            self._states = [hashlib.sha256()] * count
            self._rehash(0)
        self._hashes = hashes
        return self._digest

    def _encode(self, block: int) -> bytes:
        parts = self._parts[block * self.BLOCK : (block + 1) * self.BLOCK]
        return (("{" if block == 0 else ",") + ",".join(parts)).encode("utf-8")

    def _rehash(self, first: int) -> None:
        """Hash from the state before block ``first`` to the end, keeping each state."""
        if not self._blocks:
            self._digest = hashlib.sha256(b"{}").hexdigest()
            return
        states, blocks = self._states, self._blocks
        running = states[first].copy()
        for block in range(first, len(blocks)):
            if block > first:
                states[block] = running.copy()
            running.update(blocks[block])
        running.update(b"}")
        self._digest = running.hexdigest()
