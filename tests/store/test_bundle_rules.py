"""What a bundle (or a copy between stores) may bring in: the rules a save applies, whole or nothing.

Issue 8, items 5 and 7: one validator for every way content enters the store
(a bad bundle is refused whole, naming the version and key, and nothing is
written); tags only move forward in time. Issue 14, item 1: the streaming
format refuses a truncated or reordered file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from store_testkit import (
    bundle_records,
    dump_store,
    expected_snapshot,
    expected_value_hash,
    raw_engine,
    write_records,
)

from msgflux.store import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    StateStore,
    StoreError,
)

ENCODED = Callable[[Any], tuple[str, str]]


def _encoded(value: Any) -> tuple[str, str]:
    kinds = {
        str: "str",
        int: "int",
        float: "float",
        bool: "bool",
        type(None): "null",
        list: "list",
        dict: "dict",
    }
    kind = kinds[type(value)]
    return kind, value if kind == "str" else json.dumps(
        value, separators=(",", ":"), sort_keys=True, ensure_ascii=False
    )


def _bundle(
    name: str,
    versions: list[dict[str, Any]],
    tags: dict[str, int] | None = None,
    raw_values: dict[str, tuple[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """A hand-made version-2 bundle with correct hashes; ``versions`` hold ``state`` and fields."""
    records: list[dict[str, Any]] = [
        {"format": "msgflux-store-bundle", "format_version": 2, "names": {name: len(versions)}}
    ]
    for index, spec in enumerate(versions, start=1):
        state = spec["state"]
        hashes = {key: expected_value_hash(value) for key, value in state.items()}
        for key, value in state.items():
            kind, text = (raw_values or {}).get(key) or _encoded(value)
            records.append({"kind": "value", "hash": hashes[key], "type": kind, "text": text})
        snapshot = expected_snapshot(state)
        records.append(
            {
                "kind": "snapshot",
                "hash": snapshot,
                "entries": [[key, digest] for key, digest in hashes.items()],
            }
        )
        version = {
            "kind": "version",
            "name": name,
            "number": spec.get("number", index),
            "snapshot": snapshot,
            "created_at": "2026-11-27T10:00:00+00:00",
            "message": spec.get("message", ""),
            "metadata": spec.get("metadata", "{}"),
        }
        parent = spec.get("parent", index - 1 if index > 1 else None)
        if parent is not None:
            version["parent"] = parent
        records.append(version)
    records.append({"kind": "tags", "name": name, "tags": tags or {}})
    records.append({"kind": "end", "records": len(records) - 1})
    return records


def _good() -> list[dict[str, Any]]:
    return _bundle("aaa-good", [{"state": {"prompt": "fine", "k": 1}}])


def _combined(*bundles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    header = {"format": "msgflux-store-bundle", "format_version": 2, "names": {}}
    body = [record for bundle in bundles for record in bundle[1:-1]]
    return [header, *body, {"kind": "end", "records": len(body)}]


NESTED_900 = json.loads("[" * 900 + "]" * 900)

BAD: dict[str, tuple[list[dict[str, Any]], str]] = {
    "NaN in metadata": (
        _bundle("bad", [{"state": {"k": 1}, "metadata": '{"score": NaN}'}]),
        r"'bad' version 1.*NaN",
    ),
    "Infinity in metadata": (
        _bundle("bad", [{"state": {"k": 1}, "metadata": '{"score": [1, -Infinity]}'}]),
        r"'bad' version 1.*Infinity",
    ),
    "metadata nested 100,000 deep": (
        _bundle("bad", [{"state": {"k": 1}, "metadata": '{"a":' * 100_000 + "1" + "}" * 100_000}]),
        r"'bad' version 1.*nested deeper than 100",
    ),
    "metadata nested 102 deep": (
        _bundle("bad", [{"state": {"k": 1}, "metadata": '{"a":' * 102 + "1" + "}" * 102}]),
        r"'bad' version 1.*deeper than 100",
    ),
    "value nested 900 deep": (
        _bundle("bad", [{"state": {"deep": NESTED_900}}]),
        r"'bad' version 1, key 'deep'.*nested deeper than 100",
    ),
    "NaN in a value": (
        _bundle("bad", [{"state": {"score": 0.5}}], raw_values={"score": ("float", "NaN")}),
        r"'bad' version 1, key 'score'",
    ),
    "NUL in a top-level string": (
        _bundle("bad", [{"state": {"prompt": "a\x00b"}}]),
        r"'bad' version 1, key 'prompt'.*NUL",
    ),
    "version 2147483647": (
        _bundle("bad", [{"state": {"k": 1}, "number": 2_147_483_647, "parent": None}]),
        r"version number 2147483647 is out of range",
    ),
    "version 0": (
        _bundle("bad", [{"state": {"k": 1}, "number": 0, "parent": None}]),
        r"version number 0 is out of range",
    ),
    "parent is itself": (
        _bundle("bad", [{"state": {"k": 1}}, {"state": {"k": 2}, "parent": 2}]),
        r"'bad' version 2.*parent 2 of version 2 is not an earlier version",
    ),
    "parent is later": (
        _bundle("bad", [{"state": {"k": 1}, "parent": 5}]),
        r"'bad' version 1.*parent 5",
    ),
    "numbers go back": (
        _bundle(
            "bad",
            [
                {"state": {"k": 1}, "number": 3, "parent": None},
                {"state": {"k": 2}, "number": 2, "parent": 1},
            ],
        ),
        r"'bad' version 2: version numbers must increase",
    ),
    "tag like a hash": (
        _bundle("bad", [{"state": {"k": 1}}], tags={"2463cae0": 1}),
        r"tag '2463cae0' is not allowed",
    ),
    "NUL in a message": (
        _bundle("bad", [{"state": {"k": 1}, "message": "a\x00b"}]),
        r"'bad' version 1: message contains a NUL",
    ),
}


def _as_document(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The same bundle in the version-1 layout (one JSON document)."""
    names: dict[str, Any] = {}
    snapshots: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for record in records[1:-1]:
        fields = {k: v for k, v in record.items() if k not in ("kind", "name", "hash")}
        if record["kind"] == "value":
            values[record["hash"]] = fields
        elif record["kind"] == "snapshot":
            snapshots[record["hash"]] = record["entries"]
        else:
            history = names.setdefault(
                record["name"], {"versions": [], "tags": {}, "tag_history": []}
            )
            if record["kind"] == "version":
                history["versions"].append(fields)
            else:
                history["tags"] = record["tags"]
    return {
        "format": "msgflux-store-bundle",
        "format_version": 1,
        "names": names,
        "snapshots": snapshots,
        "values": values,
    }


@pytest.mark.parametrize("layout", ["stream", "document"])
@pytest.mark.parametrize("case", list(BAD))
def test_a_bundle_breaking_a_save_rule_is_refused_whole(
    store: StateStore, tmp_path: Path, case: str, layout: str
) -> None:
    records, message = BAD[case]
    path = tmp_path / "bad.json"
    # a good name first: it must not be written either
    if layout == "stream":
        write_records(path, _combined(_good(), records))
    else:
        path.write_text(json.dumps(_as_document(_combined(_good(), records))), encoding="utf-8")
    store.save("existing", {"prompt": "keep me"})
    before = dump_store(store)
    with pytest.raises(InvalidInputError, match=message):
        store.import_bundle(path)
    assert dump_store(store) == before
    assert store.names() == ["existing"]
    store.save("existing", {"prompt": "still works"})  # and the store is usable


def test_a_bad_history_is_refused_by_copy_and_pull_too(store: StateStore, tmp_path: Path) -> None:
    with StateStore(tmp_path / "source.db") as source:
        source.save("aaa", {"k": 1})
        source.save("p", {"k": 1}, metadata={"score": 1.0})
        engine = raw_engine(source)  # damage the source behind its back, as a bad bundle would
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE versions SET metadata = '{\"score\": NaN}'"))
        engine.dispose()
        store.save("existing", {"k": 0})
        before = dump_store(store)
        with pytest.raises(InvalidInputError, match=r"'aaa' version 1.*NaN"):
            source.copy_to(store)
        assert dump_store(store) == before


def test_a_save_past_the_largest_version_number_is_refused(
    store: StateStore, tmp_path: Path
) -> None:
    path = tmp_path / "high.json"
    write_records(
        path,
        _bundle(
            "p",
            [
                {"state": {"k": 0}, "number": 1_999_999_999, "parent": None},
                {"state": {"k": 1}, "number": 2_000_000_000, "parent": 1_999_999_999},
            ],
        ),
    )
    assert store.import_bundle(path) == {"p": [1_999_999_999, 2_000_000_000]}
    with pytest.raises(InvalidInputError, match="out of range"):
        store.save("p", {"k": 2})
    with pytest.raises(InvalidInputError, match="out of range"):
        store.rollback("p", 1_999_999_999)
    assert [v.number for v in store.log("p")] == [2_000_000_000, 1_999_999_999]
    assert store.load("p") == {"k": 1} and store.load("p", "latest") == {"k": 1}


@pytest.mark.parametrize(
    "damage",
    [
        "no end record",
        "cut mid-line",
        "wrong count",
        "snapshot of another version",
        "missing value",
        "records after the end",
        "a name in two blocks",
    ],
)
def test_a_damaged_stream_is_refused_and_nothing_is_written(
    store: StateStore, tmp_path: Path, damage: str
) -> None:
    with StateStore(tmp_path / "source.db") as source:
        for index in range(5):
            source.save("p", {"prompt": f"v{index}", "fixed": "same"})
        source.save("q", {"x": 1})
        source.export_bundle(tmp_path / "good.json")
    path = tmp_path / "b.json"
    lines = (tmp_path / "good.json").read_text(encoding="utf-8").splitlines(keepends=True)
    records = bundle_records(tmp_path / "good.json")
    if damage == "no end record":
        path.write_text("".join(lines[:-1]), encoding="utf-8")
    elif damage == "cut mid-line":
        text = "".join(lines)
        path.write_text(text[: len(text) * 2 // 3], encoding="utf-8")
    elif damage == "wrong count":
        records[-1]["records"] += 1
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    elif damage == "snapshot of another version":
        last = max(i for i, r in enumerate(records) if r.get("kind") == "snapshot")
        del records[last]
        write_records(path, records)
    elif damage == "missing value":
        first = next(i for i, r in enumerate(records) if r.get("kind") == "value")
        del records[first]
        write_records(path, records)
    elif damage == "records after the end":
        path.write_text("".join(lines) + json.dumps(records[1]) + "\n", encoding="utf-8")
    else:
        q_version = next(i for i, r in enumerate(records) if r.get("name") == "q")
        records.insert(
            q_version + 1,
            {**records[q_version - 1], "number": 99, "parent": 5}
            if records[q_version - 1].get("kind") == "version"
            else records[2],
        )
        moved = [r for r in records if r.get("name") != "p" or r.get("kind") != "tags"]
        moved.insert(
            -1, next(r for r in records if r.get("name") == "p" and r.get("kind") == "tags")
        )
        write_records(path, moved)
    store.save("existing", {"k": 0})
    before = dump_store(store)
    with pytest.raises((InvalidInputError, IntegrityError)):
        store.import_bundle(path)
    assert dump_store(store) == before


# -- tags only move forward in time (issue 8, item 5) ---------------------------------------


def _tick() -> None:
    time.sleep(0.002)  # distinct move times, whatever the clock's resolution


def test_an_older_bundle_never_reverts_tags(store: StateStore, tmp_path: Path) -> None:
    with StateStore(tmp_path / "source.db") as source:
        for index in range(1, 11):
            source.save("p", {"prompt": f"v{index}"})
        source.tag("p", 8, "prod")
        _tick()
        source.tag("p", 3, "old")
        _tick()
        source.export_bundle(tmp_path / "older.json")
        source.tag("p", 10, "prod")
        _tick()
        source.untag("p", "old")
        _tick()
        source.tag("p", 9, "canary")
        _tick()
        source.export_bundle(tmp_path / "newer.json")
        newer_tags = source.tags("p")

    assert store.import_bundle(tmp_path / "newer.json") == {"p": list(range(1, 11))}
    assert store.tags("p") == newer_tags == {"prod": 10, "canary": 9}
    history = store.tag_history("p")
    before = dump_store(store)
    # the older bundle: nothing to copy, and no tag moves back, none is deleted or revived
    assert store.import_bundle(tmp_path / "older.json") == {"p": []}
    assert store.tags("p") == {"prod": 10, "canary": 9}
    assert store.tag_history("p") == history
    assert dump_store(store) == before


def test_a_newer_bundle_moves_tags_forward_with_their_times(
    store: StateStore, tmp_path: Path
) -> None:
    with StateStore(tmp_path / "source.db") as source:
        for index in range(1, 4):
            source.save("p", {"prompt": f"v{index}"})
        source.tag("p", 1, "prod")
        _tick()
        source.tag("p", 1, "old")
        source.export_bundle(tmp_path / "older.json")
        _tick()
        source.tag("p", 2, "prod", author="ana")
        _tick()
        source.untag("p", "old")
        source.export_bundle(tmp_path / "newer.json")
        source_history = source.tag_history("p")
    store.import_bundle(tmp_path / "older.json")
    assert store.tags("p") == {"old": 1, "prod": 1}
    store.import_bundle(tmp_path / "newer.json")
    assert store.tags("p") == {"prod": 2}
    # the moves are copied as they happened: times and authors of the source
    assert [
        (e.tag, e.version, e.previous_version, e.moved_at, e.author) for e in store.tag_history("p")
    ] == [(e.tag, e.version, e.previous_version, e.moved_at, e.author) for e in source_history]


def test_a_local_move_after_the_bundle_is_kept(store: StateStore, tmp_path: Path) -> None:
    with StateStore(tmp_path / "source.db") as source:
        for index in range(1, 4):
            source.save("p", {"prompt": f"v{index}"})
        source.tag("p", 2, "prod")
        source.export_bundle(tmp_path / "bundle.json")
        _tick()
        store.import_bundle(tmp_path / "bundle.json")
        store.tag("p", 3, "prod")  # moved here, later than the bundle's move
        store.untag("p", "prod")
        store.tag("p", 1, "prod")
        assert store.import_bundle(tmp_path / "bundle.json") == {"p": []}
        assert store.tags("p") == {"prod": 1}
        # pull (copy_to) follows the same rule
        assert source.copy_to(store) == {"p": []}
        assert store.tags("p") == {"prod": 1}
        # until the source moves it again, later still
        _tick()
        source.tag("p", 3, "prod")
        source.copy_to(store)
        assert store.tags("p") == {"prod": 3}


def test_refused_imports_are_store_errors_with_one_line(store: StateStore, tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    for content in (
        '{"format": "msgflux-store-bundle", "format_version": 2}\n' + "[" * 50_000,
        '{"format": "msgflux-store-bundle", "format_version": 2}\n{"kind": 1}\n',
        '{"format": "msgflux-store-bundle", "format_version": 3}\n',
        '{"format": "msgflux-store-bundle", "format_version": 2}\n'
        '{"kind": "end", "records": 0, "kind": "end"}\n',
    ):
        path.write_text(content, encoding="utf-8")
        with pytest.raises(StoreError) as caught:
            store.import_bundle(path)
        assert "\n" not in str(caught.value)
    assert store.names() == []


def test_a_conflict_found_late_in_the_stream_writes_nothing(
    store: StateStore, tmp_path: Path
) -> None:
    with StateStore(tmp_path / "source.db") as source:
        source.save("a", {"x": 1})
        source.save("z", {"y": 1})
        source.export_bundle(tmp_path / "b.json")
    store.save("z", {"y": "different"})
    before = dump_store(store)
    with pytest.raises(ConflictError):
        store.import_bundle(tmp_path / "b.json")
    assert dump_store(store) == before


def test_save_refuses_metadata_nested_100000_deep_or_not_finite(store: StateStore) -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = {"a": deep}
    with pytest.raises(InvalidInputError, match="deeper than 100"):
        store.save("p", {"k": 1}, metadata=deep)
    for bad in (float("nan"), float("inf"), [1.0, float("-inf")]):
        with pytest.raises(InvalidInputError, match="NaN and infinity are not allowed"):
            store.save("p", {"k": 1}, metadata={"score": bad})
    assert store.names() == []
