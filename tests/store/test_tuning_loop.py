"""The prompt-tuning loop from Python: what a save changed, scores after the fact, log
filters, prune dry runs and pruned parents, deleting and renaming histories.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from store_testkit import dump_store

from msgflux.store import (
    ChangeSummary,
    ConflictError,
    InvalidInputError,
    NameNotFound,
    StateStore,
    VersionNotFound,
)

BASE = {
    "generator.system_prompt": "You are a helper.\nAnswer briefly.\n",
    "retriever.k": 4,
    "retriever.index": "docs-v1",
}


def _history(store: StateStore) -> None:
    store.save("pipeline", BASE, message="baseline", author="ana", metadata={"score": 0.71})
    store.save(
        "pipeline",
        {**BASE, "retriever.k": 8},
        message="more context",
        author="bo",
        metadata={"score": 0.78, "dataset": "dev-v2"},
    )
    store.save(
        "pipeline",
        {**BASE, "retriever.k": 8, "reranker.top": 3},
        message="Rerank",
        author="ana",
        metadata={"score": 0.83, "dataset": "dev-v2"},
    )


# -- saving ------------------------------------------------------------------------------


def test_save_reports_what_changed_against_the_head(store: StateStore) -> None:
    first = store.save("pipeline", BASE)
    assert first.created and first.changes == ChangeSummary(
        added=("generator.system_prompt", "retriever.index", "retriever.k")
    )
    second = store.save(
        "pipeline", {"generator.system_prompt": "Be brief.", "retriever.k": 4, "reranker.top": 3}
    )
    assert second.changes == ChangeSummary(
        changed=("generator.system_prompt",), added=("reranker.top",), removed=("retriever.index",)
    )
    assert str(second.changes) == "1 key changed, 1 added, 1 removed"
    # A fresh store (no cache) computes the same summary from the database.
    other = StateStore(store.url)
    try:
        third = other.save(
            "pipeline",
            {"generator.system_prompt": "Be brief.", "retriever.k": 5, "reranker.top": 3},
        )
        assert third.changes == ChangeSummary(changed=("retriever.k",))
    finally:
        other.close()
    # Read back, a version carries no call summary, and equality ignores it.
    assert store.get("pipeline", 3) == third and store.get("pipeline", 3).changes is None


def test_identical_save_with_metadata_annotates_the_head(store: StateStore) -> None:
    saved = store.save("pipeline", BASE, message="baseline", metadata={"score": 0.71})
    again = store.save(
        "pipeline", BASE, message="eval", author="eval-bot", metadata={"score": 0.9, "cost": 0.02}
    )
    assert not again.created and not again.changes and again.number == saved.number
    assert again.metadata == {"score": 0.9, "cost": 0.02}
    assert again.message == "baseline" and again.author is None  # the version is unchanged
    assert store.log("pipeline") == [again]
    rows = store.query("SELECT version, key, value, author FROM state_annotations ORDER BY key")
    assert [tuple(row) for row in rows] == [
        (1, "cost", "0.02", "eval-bot"),
        (1, "score", "0.9", "eval-bot"),
    ]
    # No metadata: nothing written at all, and the caller is told.
    before = dump_store(store)
    plain = store.save("pipeline", BASE)
    assert not plain.created and dump_store(store) == before


def test_same_keys_refuses_a_different_key_set_naming_the_keys(store: StateStore) -> None:
    store.save("pipeline", BASE)
    before = dump_store(store)
    with pytest.raises(InvalidInputError) as error:
        store.save(
            "pipeline",
            {"generator.system_prompt": "x", "retriever.k": 4, "retriever.top": 2},
            same_keys=True,
        )
    assert "added retriever.top" in str(error.value)
    assert "removed retriever.index" in str(error.value)
    assert dump_store(store) == before
    assert store.save("pipeline", {**BASE, "retriever.k": 5}, same_keys=True).number == 2
    assert store.save("new", {"a": 1}, same_keys=True).number == 1  # nothing to compare with


# -- annotations -------------------------------------------------------------------------


def test_annotate_merges_metadata_and_keeps_every_annotation(store: StateStore) -> None:
    _history(store)
    snapshot = store.get("pipeline", 2).snapshot
    version = store.annotate(
        "pipeline", 2, metadata={"score": 0.8, "cost": 0.02}, author="eval-bot"
    )
    assert version.number == 2 and version.snapshot == snapshot
    assert version.metadata == {"score": 0.8, "dataset": "dev-v2", "cost": 0.02}
    store.annotate("pipeline", "latest", metadata={"score": 0.85})
    store.annotate("pipeline", 2, metadata={"score": 0.82}, author="ana")
    assert store.get("pipeline", 2).metadata["score"] == 0.82
    assert store.load("pipeline", 2) == {**BASE, "retriever.k": 8}
    rows = store.query(
        "SELECT name, version, key, value, author FROM state_annotations ORDER BY annotated_at, key"
    )
    assert [tuple(row) for row in rows] == [
        ("pipeline", 2, "cost", "0.02", "eval-bot"),
        ("pipeline", 2, "score", "0.8", "eval-bot"),
        ("pipeline", 3, "score", "0.85", None),
        ("pipeline", 2, "score", "0.82", "ana"),
    ]
    assert all(
        isinstance(row["annotated_at"], datetime | str)
        for row in store.query("SELECT annotated_at FROM state_annotations")
    )
    history = {
        row[0]: json.loads(row[1])
        for row in store.query(
            "SELECT version, metadata FROM state_history WHERE name = 'pipeline'"
        )
    }
    assert history[2] == {"score": 0.82, "dataset": "dev-v2", "cost": 0.02}
    # The same value again records nothing.
    count = len(store.query("SELECT * FROM state_annotations"))
    store.annotate("pipeline", 2, metadata={"score": 0.82})
    assert len(store.query("SELECT * FROM state_annotations")) == count


@pytest.mark.parametrize("bad", [{}, {"score": float("nan")}, {"s": {1, 2}}, "score=1", None])
def test_bad_annotations_are_refused_and_write_nothing(store: StateStore, bad: object) -> None:
    _history(store)
    before = dump_store(store)
    with pytest.raises(InvalidInputError):
        store.annotate("pipeline", 1, metadata=bad)  # type: ignore[arg-type]
    with pytest.raises(VersionNotFound):
        store.annotate("pipeline", 9, metadata={"score": 1})
    with pytest.raises(NameNotFound):
        store.annotate("nope", 1, metadata={"score": 1})
    assert dump_store(store) == before


# -- log ---------------------------------------------------------------------------------


def test_log_filters(store: StateStore) -> None:
    _history(store)
    store.tag("pipeline", 1, "production")
    store.tag("pipeline", 3, "production")
    numbers = lambda **options: [v.number for v in store.log("pipeline", **options)]  # noqa: E731
    assert numbers(author="ana") == [3, 1]
    assert numbers(grep="RERANK") == [3] and numbers(grep="context") == [2]
    assert numbers(where="score>0.75") == [3, 2]
    assert numbers(where="dataset==dev-v2", limit=1) == [3]
    assert numbers(where="score>=0.71 and author_missing==1") == []
    assert numbers(tag="production") == [3, 1]  # every version the tag pointed at
    assert numbers(key="reranker.top") == [3]
    now = datetime.now(UTC)
    assert numbers(since=now - timedelta(hours=1)) == [3, 2, 1]
    assert numbers(since=(now + timedelta(days=1)).date().isoformat()) == []
    assert numbers(until=now.date().isoformat()) == [3, 2, 1]  # a bare date includes the day
    assert numbers(until=(now - timedelta(days=1)).isoformat()) == []
    with pytest.raises(InvalidInputError, match="since"):
        store.log("pipeline", since="last tuesday")
    with pytest.raises(InvalidInputError, match="KEY OPERATOR VALUE"):
        store.log("pipeline", where="score")
    with pytest.raises(VersionNotFound, match="did you mean 'production'"):
        store.log("pipeline", tag="prodution")


def test_misspelled_names_and_tags_get_a_suggestion(store: StateStore) -> None:
    _history(store)
    store.tag("pipeline", 2, "production")
    with pytest.raises(NameNotFound, match="did you mean 'pipeline'"):
        store.get("pipline")
    with pytest.raises(VersionNotFound, match="did you mean 'production'"):
        store.get("pipeline", "prodution")


def test_long_lists_in_errors_are_cut(store: StateStore) -> None:
    store.save("pipeline", {"a": 1})
    for index in range(200):
        store.tag("pipeline", 1, f"tag-{index:03}")
    with pytest.raises(VersionNotFound) as error:
        store.get("pipeline", "9")
    message = str(error.value)
    assert "\u2026and 190 more" in message and len(message) < 400


# -- prune, delete, rename ---------------------------------------------------------------


def test_prune_dry_run_lists_without_deleting(store: StateStore) -> None:
    for k in range(6):
        store.save("pipeline", {**BASE, "retriever.k": k})
    store.tag("pipeline", 2, "production")
    before = dump_store(store)
    assert store.prune("pipeline", keep_last=2, dry_run=True) == [1, 3, 4]
    assert dump_store(store) == before
    assert store.prune("pipeline", keep_last=2) == [1, 3, 4]


def test_a_pruned_parent_diffs_against_the_nearest_surviving_ancestor(store: StateStore) -> None:
    for k in range(4):
        store.save("pipeline", {**BASE, "retriever.k": k})
    store.tag("pipeline", 2, "production")
    store.prune("pipeline", keep_last=1)  # deletes 1 and 3; keeps 2 (tagged) and 4
    diff = store.diff("pipeline", 4)
    assert diff.old == "pipeline@2" and diff.changed == {"retriever.k": (1, 3)}
    assert not diff.added and "nearest surviving ancestor pipeline@2" in diff.note
    assert "pipeline@3 was pruned" in str(diff)
    assert "pipeline@1 was pruned; no earlier version survives" in store.diff("pipeline", 2).note
    store.untag("pipeline", "production")
    store.prune("pipeline", keep_last=1)
    lonely = store.diff("pipeline", 4)
    assert lonely.old == "pipeline@empty" and "no earlier version survives" in lonely.note


def test_delete_name_refuses_tags_unless_forced_and_is_recorded(store: StateStore) -> None:
    _history(store)
    store.annotate("pipeline", 1, metadata={"score": 1})
    store.tag("pipeline", 2, "production")
    store.save("other", {"a": 1})
    before = dump_store(store)
    with pytest.raises(ConflictError, match="production"):
        store.delete_name("pipeline")
    assert dump_store(store) == before
    assert store.delete_name("pipeline", force=True, author="ana") == 3
    assert store.names() == ["other"]
    with pytest.raises(NameNotFound):
        store.log("pipeline")
    rows = store.query("SELECT name, action, new_name, versions, author FROM state_name_events")
    assert [tuple(row) for row in rows] == [("pipeline", "deleted", None, 3, "ana")]
    assert store.load("other") == {"a": 1}
    store.gc()
    assert store.verify().ok
    # The name can start again from version 1.
    assert store.save("pipeline", BASE).number == 1


def test_rename_moves_everything_and_is_recorded(store: StateStore) -> None:
    _history(store)
    store.tag("pipeline", 2, "production")
    store.annotate("pipeline", 2, metadata={"score": 0.9})
    store.save("taken", {"a": 1})
    before = dump_store(store)
    with pytest.raises(ConflictError, match="already exists"):
        store.rename("pipeline", "taken")
    with pytest.raises(InvalidInputError):
        store.rename("pipeline", "bad:name")
    assert dump_store(store) == before
    assert store.rename("pipeline", "rag", author="bo") == 3
    assert store.tags("rag") == {"production": 2}
    assert store.get("rag", 2).metadata["score"] == 0.9
    assert [v.number for v in store.log("rag")] == [3, 2, 1]
    assert store.query("SELECT name FROM state_annotations")[0]["name"] == "rag"
    rows = store.query("SELECT name, action, new_name, versions, author FROM state_name_events")
    assert [tuple(row) for row in rows] == [("pipeline", "renamed", "rag", 3, "bo")]


# -- query rows --------------------------------------------------------------------------


def test_query_rows_unpack_and_answer_by_column(store: StateStore) -> None:
    _history(store)
    rows = store.query("SELECT version, message FROM state_history ORDER BY version")
    version, message = rows[0]
    assert (version, message) == (1, "baseline") == (rows[0]["version"], rows[0]["message"])
    assert dict(rows[2]) == {"version": 3, "message": "Rerank"}
    assert rows == [(1, "baseline"), (2, "more context"), (3, "Rerank")]
    with pytest.raises(KeyError, match="the columns are version, message"):
        rows[0]["score"]
