"""Content is stored once; ``expected_head`` is a compare-and-swap that writes nothing on conflict."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from store_testkit import count, dump, expected_value_hash

from msgflux.store import ConflictError, InvalidInputError, StateStore


def test_identical_state_dicts_share_one_snapshot(store: StateStore, db: sa.Engine) -> None:
    state = {"prompt": "Be brief.", "top_k": 5}
    a = store.save("a", state)
    store.save("a", {"prompt": "Be verbose.", "top_k": 5})
    b = store.save("b", dict(state))
    c = store.save("a", dict(state))  # back to the first content: a new version, same snapshot
    assert a.snapshot == b.snapshot == c.snapshot
    assert c.number == 3
    assert count(db, "snapshots") == 2
    assert count(db, "versions") == 4


def test_each_distinct_value_is_stored_once(store: StateStore, db: sa.Engine) -> None:
    store.save("a", {"x": "same", "y": "same", "z": 1})
    store.save("b", {"other": "same", "n": 1, "f": 1.0, "t": True})
    # distinct values: "same", 1, 1.0, True (1, 1.0 and True are different values)
    assert count(db, "blobs") == 4
    with db.connect() as connection:
        hashes = set(connection.execute(sa.text("SELECT hash FROM blobs")).scalars())
    assert hashes == {expected_value_hash(value) for value in ("same", 1, 1.0, True)}
    assert count(db, "spans") == 7  # one per key of each name: nothing has changed yet


def test_saving_the_latest_content_again_writes_nothing(store: StateStore, db: sa.Engine) -> None:
    store.save("p", {"x": 1})
    latest = store.save("p", {"x": 2, "y": [1]}, message="second", metadata={"score": 1})
    before = dump(db)
    again = store.save("p", {"y": [1], "x": 2}, message="ignored")
    assert again == latest and not again.created
    assert again.message == "second" and again.metadata == {"score": 1}
    assert dump(db) == before
    # New metadata with identical content is not dropped: it annotates the head.
    scored = store.save("p", {"y": [1], "x": 2}, message="ignored", metadata={"score": 9})
    assert not scored.created and scored.number == latest.number
    assert scored.message == "second" and scored.metadata == {"score": 9}


def test_expected_head_none_means_the_name_must_be_new(store: StateStore, db: sa.Engine) -> None:
    first = store.save("p", {"x": 1}, expected_head=None)
    assert first.number == 1
    before = dump(db)
    with pytest.raises(ConflictError, match="'p' is at version 1, not None"):
        store.save("p", {"x": 2}, expected_head=None)
    assert dump(db) == before


def test_expected_head_must_match_the_latest_version(store: StateStore, db: sa.Engine) -> None:
    store.save("p", {"x": 1})
    store.save("p", {"x": 2})
    before = dump(db)
    with pytest.raises(ConflictError, match="'p' is at version 2, not 1"):
        store.save("p", {"x": 3}, expected_head=1)
    with pytest.raises(ConflictError):
        store.rollback("p", 1, expected_head=1)
    with pytest.raises(ConflictError):  # a new name is at no version
        store.save("new", {"x": 3}, expected_head=2)
    assert dump(db) == before
    assert store.save("p", {"x": 3}, expected_head=2).number == 3
    assert store.rollback("p", 1, expected_head=3).number == 4


def test_expected_head_must_be_a_number_or_none(store: StateStore) -> None:
    store.save("p", {"x": 1})
    for wrong in ("1", True, 1.0):
        with pytest.raises(InvalidInputError):
            store.save("p", {"x": 2}, expected_head=wrong)  # type: ignore[arg-type]
    assert store.get("p").number == 1
