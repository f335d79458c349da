"""Moving histories: export/import bundles (.json, .toml) and copy_to between backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from store_testkit import bundle_document, dump_store

from msgflux.store import ConflictError, IntegrityError, InvalidInputError, StateStore


def _history(store: StateStore) -> None:
    store.save(
        "pipeline",
        {"prompt": "one", "k": 1},
        message="baseline",
        author="ana",
        metadata={"score": 0.71},
    )
    store.save(
        "pipeline",
        {"prompt": "two\nlines", "k": 1.5, "cfg": {"a": [True, None]}},
        message="second",
        metadata={"score": 0.78, "run": "r2"},
    )
    store.save("pipeline", {"prompt": "three", "k": 1}, message="third", author="bo")
    store.tag("pipeline", 1, "production", author="ana")
    store.tag("pipeline", 2, "production", author="bo")
    store.tag("pipeline", 3, "staging")
    store.untag("pipeline", "staging", author="cy")
    store.tag("pipeline", 3, "canary")
    store.save("agent", {"x": 1})
    store.save("agent", {"x": 2})
    store.prune("agent", keep_last=1)  # a history that starts at 2


def _everything(store: StateStore) -> dict[str, object]:
    return {
        name: {
            "log": store.log(name),
            "tags": store.tags(name),
            "tag_history": store.tag_history(name),
            "content": {v.number: store.load(name, v.number) for v in store.log(name)},
        }
        for name in store.names()
    }


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_export_then_import_into_a_fresh_store_keeps_everything(
    store: StateStore, tmp_path: Path, suffix: str
) -> None:
    _history(store)
    path = tmp_path / f"bundle{suffix}"
    assert store.export_bundle(path) == {"agent": 1, "pipeline": 3}
    with StateStore(tmp_path / "fresh.db") as fresh:
        assert fresh.import_bundle(path) == {"agent": [2], "pipeline": [1, 2, 3]}
        assert _everything(fresh) == _everything(store)
        assert fresh.get("pipeline", 2).metadata == {"score": 0.78, "run": "r2"}
        assert fresh.get("pipeline", 1).author == "ana"
        assert [
            (e.tag, e.previous_version, e.version, e.author) for e in fresh.tag_history("pipeline")
        ] == [
            ("production", None, 1, "ana"),
            ("production", 1, 2, "bo"),
            ("staging", None, 3, None),
            ("staging", 3, None, "cy"),
            ("canary", None, 3, None),
        ]
        assert fresh.verify().ok
        # the same bundle again: a no-op
        before = dump_store(fresh)
        assert fresh.import_bundle(path) == {"agent": [], "pipeline": []}
        assert dump_store(fresh) == before
        # and the next version number continues the history
        assert fresh.save("pipeline", {"prompt": "four"}).number == 4


def test_export_of_some_names(store: StateStore, tmp_path: Path) -> None:
    _history(store)
    path = tmp_path / "agent.json"
    assert store.export_bundle(path, names=["agent"]) == {"agent": 1}
    assert list(bundle_document(path)["names"]) == ["agent"]


def test_import_fast_forwards_an_older_copy(store: StateStore, tmp_path: Path) -> None:
    store.save("p", {"x": 1})
    with StateStore(tmp_path / "clone.db") as clone:
        store.copy_to(clone)
        store.save("p", {"x": 2})
        store.tag("p", 2, "production")
        path = tmp_path / "b.json"
        store.export_bundle(path)
        assert clone.import_bundle(path) == {"p": [2]}
        assert clone.load("p") == {"x": 2} and clone.tags("p") == {"production": 2}


def test_a_conflicting_bundle_is_refused_and_nothing_is_written(
    store: StateStore, tmp_path: Path
) -> None:
    with StateStore(tmp_path / "source.db") as source:
        source.save("a", {"x": 1})
        source.save("b", {"y": 1})
        source.save("b", {"y": 2})
        path = tmp_path / "source.json"
        source.export_bundle(path)
    store.save("b", {"y": "different"})  # b@1 differs: the histories diverged
    before = dump_store(store)
    with pytest.raises(ConflictError, match="'b' diverged: version 1"):
        store.import_bundle(path)
    assert dump_store(store) == before  # "a" was not imported either
    assert store.names() == ["b"]


@pytest.mark.parametrize("tamper", ["value", "snapshot"])
def test_a_bundle_with_a_wrong_hash_is_refused_and_nothing_is_written(
    store: StateStore, tmp_path: Path, tamper: str
) -> None:
    store.save("p", {"prompt": "Be brief.", "k": 1})
    path = tmp_path / "b.json"
    store.export_bundle(path)
    data = bundle_document(path)  # tampered as a version-1 document, which still imports
    if tamper == "value":
        record = next(r for r in data["values"].values() if r["text"] == "Be brief.")
        record["text"] = "Be brieg."
    else:
        entries = next(iter(data["snapshots"].values()))
        entries.reverse()
        entries[0][0] = "renamed"
    path.write_text(json.dumps(data))
    with StateStore(tmp_path / "target.db") as target:
        target.save("other", {"x": 1})
        before = dump_store(target)
        with pytest.raises(IntegrityError):
            target.import_bundle(path)
        assert dump_store(target) == before


def test_an_unreadable_bundle_is_invalid_input(store: StateStore, tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(InvalidInputError):
        store.import_bundle(path)
    with pytest.raises(InvalidInputError):
        store.import_bundle(tmp_path / "missing.json")


def test_copy_to_between_sqlite_and_postgresql_both_ways(tmp_path: Path, postgres_url: str) -> None:
    with StateStore(tmp_path / "local.db") as local, StateStore(postgres_url) as shared:
        _history(local)
        assert local.copy_to(shared) == {"agent": [2], "pipeline": [1, 2, 3]}
        assert _everything(shared) == _everything(local)
        assert shared.verify().ok
        # work continues on the server and comes back (pull)
        shared.save("pipeline", {"prompt": "four"}, message="from the server")
        shared.tag("pipeline", 4, "production")
        assert shared.copy_to(local, names=["pipeline"]) == {"pipeline": [4]}
        assert _everything(local)["pipeline"]["log"] == _everything(shared)["pipeline"]["log"]
        assert local.tags("pipeline") == {"canary": 3, "production": 4}
        assert local.copy_to(shared) == {"agent": [], "pipeline": []}  # up to date
        # both move on independently: diverged, nothing is written either way
        local.save("pipeline", {"prompt": "five, locally"})
        shared.save("pipeline", {"prompt": "five, on the server"})
        before_local, before_shared = dump_store(local), dump_store(shared)
        with pytest.raises(ConflictError, match="diverged"):
            local.copy_to(shared)
        with pytest.raises(ConflictError, match="diverged"):
            shared.copy_to(local)
        assert dump_store(local) == before_local
        assert dump_store(shared) == before_shared


def _restarted_history(store: StateStore) -> None:
    # "prompt" is removed at 2 and comes back with its old value at 3 (a rollback);
    # "kept" never changes. Pruning 2 leaves 1 and 3 with equal values for both.
    store.save("pipeline", {"prompt": "p", "kept": "k"})
    store.save("pipeline", {"kept": "k"})
    store.tag("pipeline", 1, "production")
    store.rollback("pipeline", 1)
    assert store.prune("pipeline", keep_last=1) == [2]


def _blame(store: StateStore) -> list[tuple[object, ...]]:
    return sorted(store.query("SELECT name, version, key, since_version FROM state_blame"))


@pytest.mark.parametrize("way", ["bundle", "toml bundle", "copy_to"])
def test_blame_across_pruned_versions_survives_export_and_import(
    store: StateStore, tmp_path: Path, way: str
) -> None:
    _restarted_history(store)
    expected = [
        ("pipeline", 1, "kept", 1),
        ("pipeline", 1, "prompt", 1),
        ("pipeline", 3, "kept", 1),
        ("pipeline", 3, "prompt", 3),  # set again at 3, not held since 1
    ]
    assert _blame(store) == expected
    with StateStore(tmp_path / "copy.db") as copy:
        if way == "copy_to":
            store.copy_to(copy)
        else:
            path = tmp_path / ("b.toml" if way == "toml bundle" else "b.jsonl")
            store.export_bundle(path)
            copy.import_bundle(path)
        assert _blame(copy) == expected
        assert [(line.key, line.version) for line in copy.blame("pipeline")] == [
            ("prompt", 3),
            ("kept", 1),
        ]
        assert copy.verify().ok


def test_a_restart_naming_a_key_the_version_lacks_is_refused(
    store: StateStore, tmp_path: Path
) -> None:
    _restarted_history(store)
    path = tmp_path / "b.jsonl"
    store.export_bundle(path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        if line.get("restart"):
            line["restart"] = ["nope"]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with StateStore(tmp_path / "copy.db") as copy:
        with pytest.raises(InvalidInputError, match="'pipeline' version 3: restart must list"):
            copy.import_bundle(path)
        assert copy.names() == []
