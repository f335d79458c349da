"""Edge cases found in review: each test is a user's action and what must hold."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from store_testkit import bundle_document, dump_store

from msgflux.store import (
    ConflictError,
    InvalidInputError,
    SchemaError,
    StateStore,
)
from msgflux.store.report import render_report


def test_diff_across_names_without_b_compares_with_that_names_parent(store: StateStore) -> None:
    store.save("a", {"k": "a1"})
    store.save("b", {"k": "b1"})
    store.save("b", {"k": "b2"})
    diff = store.diff("a", ("b", 2))
    assert (diff.old, diff.new) == ("b@1", "b@2")
    assert diff.changed == {"k": ("b1", "b2")}


def test_copy_to_leaves_a_tag_alone_when_its_version_was_pruned_here(tmp_path: Path) -> None:
    source, target = StateStore(tmp_path / "s.db"), StateStore(tmp_path / "t.db")
    for number in range(1, 4):
        source.save("p", {"k": number})
    source.copy_to(target)
    target.prune("p", keep_last=1)  # versions 1 and 2 gone here
    source.tag("p", 2, "prod")
    source.save("p", {"k": 4})
    assert source.copy_to(target) == {"p": [4]}  # the new version still arrives
    assert target.load("p") == {"k": 4}
    assert "prod" not in target.tags("p")  # nothing here to point it at


def test_copy_to_removes_tags_removed_at_the_source_and_records_it(tmp_path: Path) -> None:
    source, target = StateStore(tmp_path / "s.db"), StateStore(tmp_path / "t.db")
    source.save("p", {"k": 1})
    source.tag("p", 1, "prod")
    source.copy_to(target)
    source.untag("p", "prod")
    source.copy_to(target)
    assert target.tags("p") == {}
    assert [
        (event.tag, event.version, event.previous_version) for event in target.tag_history("p")
    ][-1] == ("prod", None, 1)


def test_expected_head_save_repeated_after_success_returns_that_version(store: StateStore) -> None:
    # What a retry after a lost commit acknowledgement does: the content is already
    # there on top of the expected head, so the save succeeded.
    store.save("p", {"k": 1})
    first = store.save("p", {"k": 2}, expected_head=1)
    again = store.save("p", {"k": 2}, expected_head=1)
    assert again.number == first.number == 2
    with pytest.raises(ConflictError):
        store.save("p", {"k": 3}, expected_head=1)


def test_report_skips_metadata_numbers_beyond_float_range(store: StateStore) -> None:
    store.save("p", {"k": 1}, metadata={"score": 10**400, "loss": 0.5})
    store.save("p", {"k": 2}, metadata={"score": 1, "loss": 0.25})
    page = render_report(store, "p")
    assert "loss" in page and "<svg" in page


def test_a_database_with_foreign_tables_of_the_same_names_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE versions (id INTEGER PRIMARY KEY, label TEXT)")
    with pytest.raises(SchemaError, match="not a msgflux store"):
        StateStore(path)
    with sqlite3.connect(path) as connection:  # nothing created next to the app's table
        assert connection.execute("SELECT name FROM sqlite_master").fetchall() == [("versions",)]


def test_other_postgresql_drivers_are_refused_with_the_one_to_use() -> None:
    with pytest.raises(InvalidInputError, match="postgresql\\+psycopg"):
        StateStore("postgresql+pg8000://user@localhost/db")


def test_refused_import_of_a_bundle_with_an_unstorable_key_writes_nothing(
    store: StateStore, tmp_path: Path
) -> None:
    import json

    store.save("p", {"k": 1})
    path = tmp_path / "bundle.json"
    store.export_bundle(path)
    bundle = bundle_document(path)
    (snapshot,) = bundle["snapshots"]
    bundle["snapshots"][snapshot][0][0] = "k\x00"
    path.write_text(json.dumps(bundle))
    other = StateStore(tmp_path / "other.db")
    before = dump_store(other)
    with pytest.raises(InvalidInputError, match="NUL"):
        other.import_bundle(path)
    assert dump_store(other) == before
