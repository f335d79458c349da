"""Hostile input through the public API: it round-trips exactly or is refused with a StoreError.

Hypothesis feeds keys, values, names, messages, metadata, version references,
tags, malformed TOML/JSON files and tampered bundles to ``StateStore`` and to
``msgflux.save`` / ``msgflux.load``. Every call either works (and then what was
saved loads back exactly, types included) or raises the documented error -
a :class:`~msgflux.store.StoreError` subclass for the store,
:class:`~msgflux.errors.MsgfluxError` for ``save``/``load`` - with a message,
and then a dump of every table equals the dump taken before the call.
The number of cases tried is printed at the end of the run
(``bad-input cases tried: N``).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import msgflux
from msgflux.errors import MsgfluxError, SerializationError, StateValueError
from msgflux.store import StateStore, StoreError
from msgflux.store.hashing import canonical_json

from ._support import bundle_document, dump, expected_snapshot, paths_in, raw_engine
from .conftest import BAD_INPUT_CASES

EXAMPLES = {"sqlite": 200, "postgresql": 25}

# -- hostile material -------------------------------------------------------------------

HOSTILE_TEXT = [
    "",
    " ",
    ".",
    "..",
    "a.b",
    ".start",
    "end.",
    "'",
    '"',
    "`",
    "\n",
    "a\nb",
    "\t",
    "'; DROP TABLE names; --",
    '" OR 1=1 --',
    "%",
    "_",
    "%_%",
    "\\",
    "latest",
    "head",
    "0",
    "-1",
    "007",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "é",
    "日本語",
    "🙂",
    "\u202e",
    "\x7f",
    " lead",
    "trail ",
    "a:b",
    "x" * 201,
    "k" * 2000,
    "NaN",
    "null",
    "abcd",
    "0" * 64,
    "ffff",
    "9" * 5000,
]
MEGABYTE = "m" * 1_000_000


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"d": value}
    return value


HOSTILE_VALUES = [
    math.nan,
    math.inf,
    -math.inf,
    {1, 2},
    b"bytes",
    bytearray(b"x"),
    object(),
    (1, 2),
    "\ud800",
    "a\x00b",
    ["\x00"],
    {"k": "\ud800"},
    {1: "int key"},
    2**70,
    -(2**63) - 1,
    2**63,
    -0.0,
    1e308,
    5e-324,
    MEGABYTE,
    _nested(99),
    _nested(100),
    _nested(101),
    _nested(150),
    [],
    {},
    "",
    None,
    True,
    1.0,
    1,
    complex(1, 2),
    Path("x"),
    range(3),
    frozenset(),
]

texts = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=40))
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=30),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
values = st.one_of(st.sampled_from(HOSTILE_VALUES), json_values, st.floats(), st.text(max_size=50))
keys = st.one_of(texts, st.text(min_size=1, max_size=2000), st.sampled_from([1, None, b"k"]))
states = st.dictionaries(keys, values, max_size=4)
refs = st.one_of(
    st.integers(min_value=-5, max_value=8),
    st.sampled_from([0, -1, 2**31, 2**70, -(2**70), True, False, None, 1.0, 1.5, [1], (1,), b"1"]),
    texts,
)


# -- the harness ----------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """Equal with types: 1, 1.0 and True differ, -0.0 and 0.0 differ; dict key order too at the top."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    return canonical_json(a) == canonical_json(b)


class Harness:
    """One store per backend and test; ``attempt`` runs a call and checks the contract."""

    def __init__(self, url: str, backend: str) -> None:
        self.backend = backend
        self.store = StateStore(url, lock_timeout=10)
        self.engine = raw_engine(url)
        self.store.save("base", {"prompt": "Be brief.", "temperature": 0.2})
        self.store.save("base", {"prompt": "Be brief!", "temperature": 0.2})
        self.store.tag("base", 1, "production")

    def attempt(self, call, allowed: tuple[type[BaseException], ...] = (StoreError,)) -> Any:
        BAD_INPUT_CASES[self.backend] += 1
        before = dump(self.engine)
        try:
            return call()
        except allowed as error:
            message = str(error)
            assert message.strip() and len(message) > 10, f"unclear message: {error!r}"
            assert dump(self.engine) == before, f"refused call changed the store: {error}"
            return error
        # anything else propagates and fails the test with its traceback

    def close(self) -> None:
        self.store.close()
        self.engine.dispose()


@pytest.fixture
def harness(store_url: str, request: pytest.FixtureRequest):
    backend = "postgresql" if "://" in store_url else "sqlite"
    opened = Harness(store_url, backend)
    yield opened
    report = opened.store.verify()
    opened.close()
    assert report.ok, str(report)


def explore(harness: Harness, **strategies: Any):
    """Run the decorated body as a Hypothesis test with this backend's example count."""

    def decorate(body):
        run = settings(
            deadline=None,
            database=None,
            max_examples=EXAMPLES[harness.backend],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )(given(**strategies)(body))
        run()
        return body

    return decorate


# -- the tests ---------------------------------------------------------------------------


def test_save_round_trips_or_refuses(harness):
    store = harness.store

    @explore(
        harness,
        name=texts,
        state=states,
        message=st.one_of(texts, st.none(), st.integers()),
        author=st.one_of(st.none(), texts),
        metadata=st.one_of(
            st.none(),
            st.dictionaries(st.text(max_size=5), values, max_size=2),
            st.sampled_from([[1], "meta", {"x": math.nan}, {1: 2}]),
        ),
    )
    def case(name, state, message, author, metadata):
        result = harness.attempt(
            lambda: store.save(name, state, message=message, author=author, metadata=metadata)
        )
        if isinstance(result, StoreError):
            return
        assert result.name == name and result.snapshot == expected_snapshot(state)
        loaded = store.load(name, result.number)
        assert list(loaded) == list(state) and same(loaded, state)
        assert store.get(name, result.number).snapshot == result.snapshot


def test_version_references_resolve_or_refuse(harness, tmp_path):
    store = harness.store
    numbers = st.one_of(st.integers(), st.sampled_from([None, True, 1.5, "3", 2**70]))

    @explore(
        harness,
        name=st.one_of(st.just("base"), texts),
        ref=refs,
        other=refs,
        tag=texts,
        operation=st.sampled_from(
            [
                "get",
                "load",
                "diff",
                "rollback",
                "tag",
                "untag",
                "log",
                "tag_history",
                "prune",
                "export",
            ]
        ),
        number=numbers,
    )
    def case(name, ref, other, tag, operation, number):
        calls = {
            "get": lambda: store.get(name, ref),
            "load": lambda: store.load(name, ref, prefix=tag or None),
            "diff": lambda: store.diff(name, ref, other),
            "rollback": lambda: store.rollback(name, ref, expected_head=number),
            "tag": lambda: store.tag(name, ref, tag, expected=number),
            "untag": lambda: store.untag(name, tag),
            "log": lambda: store.log(name, key=tag or None, limit=number),
            "tag_history": lambda: store.tag_history(name, tag),
            # keep the base history: only refusals or a keep_last that deletes nothing
            "prune": lambda: store.prune(
                name,
                keep_last=number
                if not isinstance(number, int) or isinstance(number, bool) or number < 1
                else 10**6,
            ),
            "export": lambda: store.export_bundle(tmp_path / "export.json", names=[name, tag]),
        }
        result = harness.attempt(calls[operation])
        if operation in ("get", "load") and not isinstance(result, StoreError):
            number_of = store.get(name, ref).number
            assert same(store.load(name, number_of), store.load(name, ref))


def test_tampered_streams_are_refused_or_import_consistently(harness, tmp_path):
    """The streaming layout: change, drop, repeat or reorder 1-3 records of a real export."""
    harness.store.export_bundle(tmp_path / "original.json")
    original = [
        json.loads(line)
        for line in (tmp_path / "original.json").read_text(encoding="utf-8").splitlines()
    ]
    targets = paths_in(original)[1:]

    @explore(harness, data=st.data())
    def case(data):
        tampered = copy.deepcopy(original)
        for _ in range(data.draw(st.integers(1, 3), label="mutations")):
            how = data.draw(st.sampled_from(["change", "drop", "repeat", "swap"]), label="how")
            if how != "change":
                index = data.draw(st.integers(0, len(tampered) - 1), label="record")
                other = data.draw(st.integers(0, len(tampered) - 1), label="other")
                if how == "drop":
                    del tampered[index]
                elif how == "repeat":
                    tampered.insert(other, copy.deepcopy(tampered[index]))
                else:
                    tampered[index], tampered[other] = tampered[other], tampered[index]
                continue
            path = data.draw(st.sampled_from(targets), label="path")
            parent = tampered
            try:
                for part in path[:-1]:
                    parent = parent[part]
                parent[path[-1]] = data.draw(BUNDLE_VALUES, label="new value")
            except (KeyError, IndexError, TypeError):
                continue
        file = tmp_path / "stream.json"
        file.write_text(
            "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in tampered),
            encoding="utf-8",
            errors="surrogatepass",
        )
        result = harness.attempt(lambda: harness.store.import_bundle(file))
        if not isinstance(result, StoreError):
            report = harness.store.verify()
            assert report.ok, str(report)


MALFORMED = [
    '{"a": NaN}',
    '{"a": Infinity}',
    '{"a": 1, "a": 2}',
    "[1, 2]",
    '"text"',
    '{"a": 1e999}',
    "{",
    '{"a": "\\ud800"}',
    '{"": 1}',
    "\ufeff{}",
    "[" * 5000,
    "a = ",
    "a = 1\na = 2",
    "a = 1979-05-27T07:32:00Z",
    '"\\ud800" = 1',
    "x = [1, 'a'",
    "a = nan",
    '"" = 1',
    "[[a]]\nb = 1",
    "a.b = 1\na = 2",
    "{}",
    "a = 1",
]


def test_malformed_files_are_refused_clearly(harness, tmp_path):
    @explore(
        harness,
        text=st.one_of(st.sampled_from(MALFORMED), st.text(max_size=200)),
        raw=st.one_of(st.none(), st.binary(max_size=50)),
        suffix=st.sampled_from([".json", ".toml", ".JSON", ".txt", ""]),
    )
    def case(text, raw, suffix):
        path = tmp_path / f"state{suffix}"
        path.write_bytes(raw if raw is not None else text.encode("utf-8", "surrogatepass"))
        loaded = harness.attempt(lambda: msgflux.load(path), allowed=(SerializationError,))
        assert isinstance(loaded, dict | SerializationError)
        harness.attempt(lambda: harness.store.import_bundle(path))


def test_msgflux_save_and_load_round_trip_or_refuse(harness, tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()

    @explore(harness, state=states, suffix=st.sampled_from([".json", ".toml"]))
    def case(state, suffix):
        for leftover in folder.iterdir():
            leftover.unlink()
        path = folder / f"state{suffix}"
        result = harness.attempt(
            lambda: msgflux.save(state, path), allowed=(SerializationError, StateValueError)
        )
        if isinstance(result, MsgfluxError):
            assert not path.exists(), "a refused save left a file"
            assert list(folder.iterdir()) == [], "a refused save left a temporary file"
            return
        loaded = msgflux.load(path)
        if suffix == ".json":
            assert list(loaded) == list(state)
        # TOML writes tables after plain keys: same keys and values, maybe another order
        assert same(loaded, state)


BUNDLE_VALUES = st.one_of(
    st.sampled_from(
        [
            None,
            0,
            -1,
            2**31,
            2**70,
            "",
            "0" * 64,
            "f" * 64,
            "not a hash",
            [],
            {},
            [["k", "0" * 64]],
            {"type": "int", "text": "1"},
            {"type": "float", "text": "1e999"},
            True,
            1.5,
            "\ud800",
            "a\x00b",
            "'; DROP TABLE names; --",
            "9999-12-31T23:59:59-14:00",
            "2024-13-01",
            "{}",
        ]
    ),
    json_values,
)


def test_tampered_bundles_are_refused_or_import_consistently(harness, tmp_path):
    """Change 1-3 places of a real export (a hash, a value, a number, a key...) and import it."""
    harness.store.export_bundle(tmp_path / "original.json")
    original = bundle_document(tmp_path / "original.json")  # fixed before Hypothesis draws
    targets = paths_in(original)[1:]

    @explore(harness, data=st.data(), suffix=st.sampled_from([".json", ".toml"]))
    def case(data, suffix):
        tampered = copy.deepcopy(original)
        for _ in range(data.draw(st.integers(1, 3), label="mutations")):
            path = data.draw(st.sampled_from(targets), label="path")
            parent = tampered
            try:
                for part in path[:-1]:
                    parent = parent[part]
                parent[path[-1]]
            except (KeyError, IndexError, TypeError):
                continue  # an earlier mutation removed this place
            if not isinstance(parent, dict | list):
                continue  # an earlier mutation replaced the container by a scalar
            if isinstance(parent, dict) and data.draw(st.booleans(), label="rename key"):
                parent[data.draw(texts, label="new key")] = parent.pop(path[-1])
            else:
                parent[path[-1]] = data.draw(BUNDLE_VALUES, label="new value")
        file = tmp_path / f"bundle{suffix}"
        try:
            msgflux.save(tampered, file)
        except MsgfluxError:  # e.g. TOML cannot hold None: write what a hand-edit could
            file.write_text(json.dumps(tampered) if suffix == ".json" else "names = 1\n")
        result = harness.attempt(lambda: harness.store.import_bundle(file))
        if not isinstance(result, StoreError):
            report = harness.store.verify()
            assert report.ok, str(report)
