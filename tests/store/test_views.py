"""The documented SQL views and the README cookbook queries, on each backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from store_testkit import execute, expected_value_hash, sql

from msgflux.store import StateStore
from msgflux.store.hashing import encode_value

COLUMNS = {
    "state_history": [
        "name",
        "version",
        "snapshot",
        "parent_version",
        "created_at",
        "message",
        "author",
        "metadata",
        "key_count",
    ],
    "state_values": ["name", "version", "key", "value", "value_type", "value_hash"],
    "state_changes": [
        "name",
        "version",
        "key",
        "change",
        "old_value",
        "new_value",
        "against_version",
    ],
    "state_tags": ["name", "tag", "version", "weight"],
    "state_tag_history": [
        "name",
        "tag",
        "version",
        "previous_version",
        "moved_at",
        "author",
        "weights",
    ],
    "state_tag_policies": [
        "name",
        "tag",
        "require_expected",
        "condition",
        "protected_at",
        "author",
    ],
    "state_tag_audit": ["name", "tag", "action", "version", "weights", "reason", "at", "author"],
}


@pytest.mark.parametrize("view", list(COLUMNS))
def test_views_have_exactly_the_documented_columns(store: StateStore, view: str) -> None:
    assert store.query(f"SELECT * FROM {view}").columns == COLUMNS[view]
    store.save("p", {"x": 1})
    store.save("p", {"x": 2})
    store.tag("p", 1, "t")
    assert store.query(f"SELECT * FROM {view}").columns == COLUMNS[view]


def test_state_history(store: StateStore) -> None:
    one = store.save("p", {"a": 1, "b": 2}, message="first", author="ana", metadata={"score": 0.5})
    two = store.save("p", {"a": 1}, message="second")
    rows = store.query(
        "SELECT name, version, snapshot, parent_version, message, author, "
        "metadata, key_count FROM state_history ORDER BY version"
    )
    assert rows == [
        ("p", 1, one.snapshot, None, "first", "ana", '{"score":0.5}', 2),
        ("p", 2, two.snapshot, 1, "second", None, "{}", 1),
    ]


def test_state_values_hold_raw_strings_and_canonical_json(store: StateStore) -> None:
    state = {
        "s": 'hi "there"',
        "i": 1,
        "f": 1.5,
        "b": True,
        "n": None,
        "l": [1, "a", 2.0],
        "d": {"b": 1, "a": "é"},
    }
    store.save("p", state)
    rows = store.query(
        "SELECT key, value, value_type, value_hash FROM state_values "
        "WHERE name = 'p' AND version = 1 ORDER BY key"
    )
    assert rows == sorted(
        [
            ("s", 'hi "there"', "str", expected_value_hash(state["s"])),
            ("i", "1", "int", expected_value_hash(1)),
            ("f", "1.5", "float", expected_value_hash(1.5)),
            ("b", "true", "bool", expected_value_hash(True)),
            ("n", "null", "null", expected_value_hash(None)),
            ("l", '[1,"a",2.0]', "list", expected_value_hash([1, "a", 2.0])),
            ("d", '{"a":"é","b":1}', "dict", expected_value_hash({"a": "é", "b": 1})),
        ]
    )


def test_state_changes_against_the_parent(store: StateStore) -> None:
    store.save("p", {"keep": 1, "change": "old", "drop": [1]})
    store.save("p", {"keep": 1, "change": "new", "add": True})
    rows = store.query(
        "SELECT name, version, key, change, old_value, new_value, "
        "against_version FROM state_changes ORDER BY version, key"
    )
    assert rows == [
        ("p", 1, "change", "added", None, "old", None),
        ("p", 1, "drop", "added", None, "[1]", None),
        ("p", 1, "keep", "added", None, "1", None),
        ("p", 2, "add", "added", None, "true", 1),
        ("p", 2, "change", "changed", "old", "new", 1),
        ("p", 2, "drop", "removed", "[1]", None, 1),
    ]


def test_state_changes_after_a_prune_compare_with_the_nearest_surviving_ancestor(
    store: StateStore,
) -> None:
    for state in (
        {"a": 1, "b": "x"},
        {"a": 2, "b": "x"},
        {"a": 3, "b": "y"},
        {"a": 3, "b": "y", "c": None},
        {"a": 4, "c": None},
    ):
        store.save("p", state)
    store.tag("p", 1, "first")
    store.prune("p", keep_last=2)  # keeps 1 (tagged), 4 and 5
    store.gc()
    rows = store.query(
        "SELECT version, key, change, old_value, new_value, against_version "
        "FROM state_changes ORDER BY version, key"
    )
    assert rows == [
        (1, "a", "added", None, "1", None),
        (1, "b", "added", None, "x", None),
        # 4's parent 3 is gone: against 1, labelled so, never "everything added"
        (4, "a", "changed", "1", "3", 1),
        (4, "b", "changed", "x", "y", 1),
        (4, "c", "added", None, "null", 1),
        (5, "a", "changed", "3", "4", 4),
        (5, "b", "removed", "y", None, 4),
    ]
    diff = store.diff("p", 4)
    assert diff.old == "p@1" and "pruned" in diff.note
    assert {(key, "changed") for key in diff.changed} | {(key, "added") for key in diff.added} == {
        (key, change) for version, key, change, *_ in rows if version == 4
    }


def test_state_tags_and_state_tag_history(store: StateStore) -> None:
    store.save("p", {"x": 1})
    store.save("p", {"x": 2})
    store.tag("p", 1, "production", author="ana")
    store.tag("p", 2, "production", author="bo")
    store.tag("p", 1, "staging")
    store.untag("p", "staging", author="cy")
    assert store.query("SELECT name, tag, version FROM state_tags") == [("p", "production", 2)]
    rows = store.query(
        "SELECT name, tag, version, previous_version, author "
        "FROM state_tag_history ORDER BY moved_at"
    )
    assert rows == [
        ("p", "production", 1, None, "ana"),
        ("p", "production", 2, 1, "bo"),
        ("p", "staging", 1, None, None),
        ("p", "staging", None, 1, "cy"),
    ]


# -- the README cookbook -----------------------------------------------------------------------


def test_cookbook_best_scoring_version(store: StateStore) -> None:
    store.save("pipeline", {"p": "a"}, metadata={"score": 0.71})
    store.save("pipeline", {"p": "b"}, metadata={"score": 0.93})
    store.save("pipeline", {"p": "c"})  # no score
    store.save("pipeline", {"p": "d"}, metadata={"score": 0.78})
    store.save("other", {"p": "e"}, metadata={"score": 0.99})
    if store.dialect == "sqlite":
        query = (
            "SELECT version, json_extract(metadata, '$.score') AS score FROM state_history "
            "WHERE name = ? ORDER BY score DESC LIMIT 1"
        )
    else:
        query = (
            "SELECT version, (metadata::jsonb->>'score')::float AS score "
            "FROM state_history WHERE name = %s ORDER BY score DESC NULLS LAST LIMIT 1"
        )
    assert store.query(query, ("pipeline",)) == [(2, 0.93)]


def test_cookbook_evolution_of_one_key(store: StateStore) -> None:
    store.save("pipeline", {"analyzer.instructions": "Be helpful.", "k": 1})
    store.save("pipeline", {"analyzer.instructions": "Be brief.", "k": 1})
    store.save("pipeline", {"analyzer.instructions": "Be brief.", "k": 2})
    rows = store.query(
        sql(
            store,
            "SELECT version, value FROM state_values WHERE name = ? AND key = ? ORDER BY version",
        ),
        ("pipeline", "analyzer.instructions"),
    )
    assert rows == [(1, "Be helpful."), (2, "Be brief."), (3, "Be brief.")]


def test_cookbook_who_changed_what_in_the_last_7_days(store: StateStore, db: sa.Engine) -> None:
    store.save("pipeline", {"a": 1, "b": 1}, author="old-timer")
    store.save("pipeline", {"a": 2, "b": 1}, author="ana")
    store.save("pipeline", {"a": 2, "b": 3}, author="bo")
    execute(
        db,
        "UPDATE versions SET created_at = :when WHERE number = 1",
        {"when": datetime.now(UTC) - timedelta(days=30)},
    )
    if store.dialect == "sqlite":
        recent = "h.created_at >= datetime('now', '-7 days')"
    else:
        recent = "h.created_at >= now() - interval '7 days'"
    rows = store.query(
        "SELECT h.author, c.name, c.version, c.key, c.change FROM state_changes c "
        "JOIN state_history h ON h.name = c.name AND h.version = c.version "
        f"WHERE {recent} ORDER BY c.version, c.key"
    )
    assert rows == [("ana", "pipeline", 2, "a", "changed"), ("bo", "pipeline", 3, "b", "changed")]


def test_cookbook_keys_changed_most_often(store: StateStore) -> None:
    for step in range(4):
        store.save("pipeline", {"prompt": f"v{step}", "top_k": step // 2, "fixed": 0})
    rows = store.query(
        sql(
            store,
            "SELECT key, count(*) AS changes FROM state_changes "
            "WHERE name = ? AND change = 'changed' "
            "GROUP BY key ORDER BY changes DESC, key",
        ),
        ("pipeline",),
    )
    assert rows == [("prompt", 3), ("top_k", 1)]


# -- the state_changes view and StateStore.diff: one rule for "changed" ----------------------


def _history_with_pruned_parents(store: StateStore) -> dict[int, bool]:
    """Save a history that exercises every kind of change, prune inside it; return
    ``{surviving version: whether its parent was pruned}``."""
    states = [
        {"a": 1, "b": "x", "c": [1, 2]},
        {"a": 1.0, "b": "x", "c": [1, 2]},  # 1 -> 1.0: a different value
        {"a": True, "b": "x", "c": [1, 2], "d": None},  # 1.0 -> true; d added
        {"b": "y", "c": {"k": 1}},  # a and d removed; list -> dict
        {"b": "y", "c": {"k": 1}, "e": ""},
        {"b": "y", "c": {"k": 2}, "e": "", "a": 1},  # a comes back
        {"a": 1, "b": "z"},
        {"a": 1, "b": "z", "c": {"k": 2}},  # c back with the value of version 6
    ]
    for number, state in enumerate(states, 1):
        store.save("p", state, message=f"v{number}")
    store.rollback("p", 2)  # version 9: the content of version 2
    for number in (1, 3, 6):
        store.tag("p", number, f"kept-{number}")
    assert store.prune("p", keep_last=3) == [2, 4, 5]
    return {
        version.number: version.parent not in {None, *(other.number for other in store.log("p"))}
        for version in store.log("p")
    }


def _view_changes(store: StateStore, number: int) -> dict[str, tuple[str, Any, Any]]:
    rows = store.query(
        sql(
            store,
            "SELECT key, change, old_value, new_value FROM state_changes "
            "WHERE name = ? AND version = ?",
        ),
        ("p", number),
    )
    return {key: (change, old, new) for key, change, old, new in rows}


def _diff_changes(store: StateStore, number: int) -> dict[str, tuple[str, Any, Any]]:
    diff = store.diff("p", number)

    def text(value: Any) -> str:
        return encode_value(value)[1]  # how the views show a value

    return {
        **{key: ("added", None, text(value)) for key, value in diff.added.items()},
        **{key: ("removed", text(value), None) for key, value in diff.removed.items()},
        **{key: ("changed", text(old), text(new)) for key, (old, new) in diff.changed.items()},
    }


def test_state_changes_agrees_with_diff_for_every_version(store: StateStore) -> None:
    pruned_parent = _history_with_pruned_parents(store)
    assert pruned_parent == {1: False, 3: True, 6: True, 7: False, 8: False, 9: False}
    compared = [number for number, pruned in pruned_parent.items() if not pruned]
    for number in compared:
        assert _view_changes(store, number) == _diff_changes(store, number), number


def test_state_changes_agrees_with_diff_when_the_parent_was_pruned(store: StateStore) -> None:
    pruned_parent = _history_with_pruned_parents(store)
    compared = [number for number, pruned in pruned_parent.items() if pruned]  # 3 and 6
    for number in compared:
        assert _view_changes(store, number) == _diff_changes(store, number), number
