"""The key-span storage model (store/schema.py, store/_spans.py, migration 0006).

Cost follows change (a one-key save writes a bounded number of rows however
many keys there are), blame and as-of fall out of spans, and the migration
from the per-key ``entries`` model and back keeps every load, hash, view row
and ``verify()`` identical. On both backends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_testkit import count, expected_snapshot

from msgflux.store import InvalidInputError, NameNotFound, StateStore, VersionNotFound, _sql
from msgflux.store.engine import resolve_url
from msgflux.store.hashing import value_hash
from msgflux.store.migrate import alembic_config


def _rows(db: sa.Engine, table: str) -> int:
    return count(db, table)


def test_a_one_key_change_writes_two_span_rows_however_many_keys(
    store: StateStore, db: sa.Engine
) -> None:
    for keys in (10, 2_000):
        name = f"k{keys}"
        state = {f"layer{index}.prompt": f"text {index}" for index in range(keys)}
        store.save(name, state)
        spans_before, blobs_before = _rows(db, "spans"), _rows(db, "blobs")
        state["layer3.prompt"] = f"changed in {name}"
        version = store.save(name, state)
        assert version.changes is not None and version.changes.changed == ("layer3.prompt",)
        # one span opened; the old one closed in place; one new value
        assert _rows(db, "spans") - spans_before == 1
        assert _rows(db, "blobs") - blobs_before == 1
        with db.connect() as connection:
            closed = connection.execute(
                sa.text(
                    "SELECT s.since, s.until FROM spans s JOIN keys k ON k.id = s.key_id "
                    "JOIN names n ON n.id = s.name_id "
                    "WHERE n.name = :n AND k.key = 'layer3.prompt' ORDER BY s.since"
                ),
                {"n": name},
            ).all()
        assert [tuple(row) for row in closed] == [(1, 2), (2, None)]
        assert store.load(name) == state


def test_key_order_survives_adds_removals_and_reorders(store: StateStore) -> None:
    states = [
        {"a": 1, "b": 2, "c": 3},
        {"a": 1, "c": 3},  # removal keeps the others' positions
        {"a": 1, "c": 3, "d": 4},  # an append
        {"d": 5, "a": 1, "c": 3},  # a reorder (and a change) renumbers
        {"e": 5, "d": 5, "a": 1, "c": 3},
    ]  # a new key in front
    for state in states:
        store.save("p", state)
    for number, state in enumerate(states, start=1):
        assert list(store.load("p", number).items()) == list(state.items())
    # a reorder alone is the same snapshot: nothing new is written
    assert not store.save("p", {"a": 1, "c": 3, "d": 5, "e": 5}).created
    assert store.diff("p", 3, 4).changed == {"d": (4, 5)}


def test_blame_names_the_version_that_set_each_value(store: StateStore) -> None:
    store.save("p", {"prompt": "v1", "k": 1, "fixed": "x"}, author="ana", message="first")
    store.save("p", {"prompt": "v2", "k": 1, "fixed": "x"}, author="bo", message="prompt")
    # a reorder (with a new key) splits every span; blame still names the setters
    store.save("p", {"k": 1, "prompt": "v2", "fixed": "x", "new": 0}, author="cy")
    store.save("p", {"k": 2, "prompt": "v2", "fixed": "x", "new": 0}, author="di", message="k")
    blame = {line.key: line for line in store.blame("p")}
    assert {key: line.version for key, line in blame.items()} == {
        "k": 4,
        "prompt": 2,
        "fixed": 1,
        "new": 3,
    }
    assert (blame["prompt"].author, blame["prompt"].message) == ("bo", "prompt")
    assert blame["k"].value == 2 and blame["fixed"].value == "x"
    assert [line.key for line in store.blame("p")] == ["k", "prompt", "fixed", "new"]
    assert [line.version for line in store.blame("p", 2, key="k")] == [1]
    assert [line.key for line in store.blame("p", prefix="pro")] == ["prompt"]
    # the view agrees, row for row
    rows = store.query(
        "SELECT key, since_version FROM state_blame WHERE name = 'p' AND version = 4 ORDER BY key"
    )
    assert [tuple(row) for row in rows] == [("fixed", 1), ("k", 4), ("new", 3), ("prompt", 2)]
    with pytest.raises(InvalidInputError, match=r"p@4 has no key 'promt' \(did you mean"):
        store.blame("p", key="promt")
    with pytest.raises(VersionNotFound):
        store.blame("p", 9)


def test_blame_after_a_prune_names_the_first_kept_version(store: StateStore) -> None:
    for number in range(1, 6):
        store.save("p", {"fixed": "same", "n": number})
    store.prune("p", keep_last=2)
    store.gc()
    assert {line.key: line.version for line in store.blame("p")} == {"fixed": 4, "n": 5}
    assert store.query(
        "SELECT since_version FROM state_blame WHERE key = 'fixed' AND version = 5"
    ) == [(4,)]


def test_blame_by_number_latest_and_tag_agree_and_refuse_alike(store: StateStore) -> None:
    # A number or "latest" takes one statement; a tag or hash the resolver:
    # the two paths must give the same lines and the same errors.
    store.save("p", {"a": 1, "b": "x"}, author="ana")
    store.save("p", {"a": 2, "b": "x"}, message="two")
    store.save("p", {})
    store.save("p", {"a": 2, "b": "y"})
    for number, tag in ((2, "two"), (3, "empty"), (4, "four")):
        store.tag("p", number, tag)
    assert store.prune("p", keep_last=1) == [1]
    assert store.blame("p", 2) == store.blame("p", "two") == store.blame("p", "2")
    assert store.blame("p") == store.blame("p", 4) == store.blame("p", "four")
    assert [(line.key, line.version) for line in store.blame("p", 2)] == [("a", 2), ("b", 2)]
    assert store.blame("p", 3) == store.blame("p", "empty") == []
    assert store.blame("p", 2, prefix="z") == []
    assert store.blame("p", 2, key="b") == store.blame("p", "two", key="b")
    for ref in (1, 5, "1"):  # pruned, never saved
        with pytest.raises(VersionNotFound):
            store.blame("p", ref)
    with pytest.raises(InvalidInputError, match=r"p@3 has no key 'a'"):
        store.blame("p", 3, key="a")
    with pytest.raises(InvalidInputError, match=r"p@4 has no key 'c'"):
        store.blame("p", key="c")
    with pytest.raises(NameNotFound):
        store.blame("q")


def test_a_rollback_is_blamed_for_the_values_it_brings_back(store: StateStore) -> None:
    store.save("p", {"a": 1, "b": 1})
    store.save("p", {"a": 2, "b": 1})
    store.rollback("p", 1)
    assert {line.key: line.version for line in store.blame("p")} == {"a": 3, "b": 1}


def _save_at_times(store: StateStore, count_: int) -> list[datetime]:
    times = []
    for number in range(1, count_ + 1):
        version = store.save("p", {"n": number, "fixed": "x"})
        times.append(version.created_at)
    return times


def test_load_at_a_moment_gives_the_version_latest_then(store: StateStore) -> None:
    times = _save_at_times(store, 9)
    for number, moment in enumerate(times, start=1):
        assert store.load("p", at=moment) == {"n": number, "fixed": "x"}
        between = moment + (times[number] - moment) / 2 if number < len(times) else moment
        assert store.load("p", at=between)["n"] == number
        assert store.load("p", at=moment.astimezone(timezone_plus(5)))["n"] == number
    assert store.load("p", at=times[-1] + timedelta(days=1))["n"] == 9
    with pytest.raises(VersionNotFound, match="had no versions at"):
        store.load("p", at=times[0] - timedelta(seconds=1))
    with pytest.raises(InvalidInputError, match="naive datetime"):
        store.load("p", at=datetime.now())  # noqa: DTZ005
    with pytest.raises(InvalidInputError, match="not both"):
        store.load("p", 3, at=times[2])
    with pytest.raises(InvalidInputError, match="must be a datetime"):
        store.load("p", at="2026-11-24")  # type: ignore[arg-type]
    store.save("m", {"prompt": "first", "k": 1})
    module_times = store.get("m").created_at
    store.save("m", {"prompt": "second", "k": 1})
    module = _Holder()
    version = store.load_into(module, "m", at=module_times)
    assert version.number == 1 and module.state == {"prompt": "first", "k": 1}


def test_load_at_refuses_a_moment_whose_version_was_pruned(store: StateStore) -> None:
    times = _save_at_times(store, 6)
    store.tag("p", 2, "keep")
    store.prune("p", keep_last=2)  # keeps 2 (tagged), 5, 6
    # at times[1] version 2 was the latest, unless 3 followed within the same instant:
    # with 3 gone, that cannot be known, so the store says so instead of guessing
    for moment in times[1:4]:
        with pytest.raises(
            VersionNotFound, match=r"may have been pruned \(versions 3..4 are gone\)"
        ):
            store.load("p", at=moment)
    assert store.load("p", at=times[4])["n"] == 5
    assert store.load("p", at=times[5])["n"] == 6


def test_tag_at_reads_the_tag_history(store: StateStore) -> None:
    _save_at_times(store, 3)
    before = datetime.now(UTC)
    first = store.tag("p", 1, "production")
    moved = datetime.now(UTC)
    store.tag("p", 3, "production")
    store.untag("p", "production")
    assert store.tag_at("p", "production", before - timedelta(days=1)) is None
    assert first.number == store.tag_at("p", "production", moved) == 1
    assert store.tag_at("p", "production", datetime.now(UTC)) is None  # untagged by now
    history = store.tag_history("p", "production")
    assert store.tag_at("p", "production", history[1].moved_at) == 3
    with pytest.raises(VersionNotFound, match="tag 'prod' of 'p' not found"):
        store.tag_at("p", "prod", moved)
    with pytest.raises(InvalidInputError, match="naive"):
        store.tag_at("p", "production", datetime(2026, 1, 1))  # noqa: DTZ001


def test_log_of_a_key_reads_only_its_spans(store: StateStore) -> None:
    for number in range(1, 41):
        store.save("p", {"slow": number // 10, "fast": number, "fixed": "x"})
    assert [v.number for v in store.log("p", key="slow")] == [40, 30, 20, 10, 1]
    assert [v.number for v in store.log("p", key="slow", limit=2)] == [40, 30]
    assert [v.number for v in store.log("p", key="fixed")] == [1]
    assert [v.number for v in store.log("p", key="fast", limit=3)] == [40, 39, 38]
    assert store.log("p", key="absent") == []
    store.save("p", {"fast": 41, "fixed": "x"})  # "slow" removed
    store.save("p", {"fast": 42, "fixed": "x", "slow": 4})  # and back with its old value
    assert [v.number for v in store.log("p", key="slow", limit=3)] == [42, 41, 40]


_MISSING = object()


def _changed_by_loading(store: StateStore, name: str, key: str) -> list[int]:
    """log(key=...) by its definition: every surviving version whose value of ``key``
    (or its absence) differs from the previous surviving version's, newest first."""
    found, previous = [], _MISSING
    for number in sorted(version.number for version in store.log(name)):
        state = store.load(name, number)
        current = value_hash(state[key]) if key in state else _MISSING
        if current != previous:
            found.append(number)
        previous = current
    return found[::-1]


_STEPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("save"),
            st.dictionaries(st.sampled_from("abc"), st.sampled_from([0, 1, "x"]), max_size=3),
        ),
        st.tuples(st.just("prune"), st.integers(1, 4)),
        st.tuples(st.just("rollback"), st.integers(1, 30)),
    ),
    max_size=25,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=_STEPS)
def test_log_of_a_key_is_every_surviving_version_that_changed_it(
    store: StateStore, steps: list[tuple[str, Any]]
) -> None:
    # Saves that add, remove, change and reorder keys; prunes; rollbacks that
    # bring old values back: the spans' answer must be the definition's.
    name = f"p{len(store.names())}"
    for step, argument in steps:
        if step == "save":
            store.save(name, argument)
        elif name not in store.names():
            continue
        elif step == "prune":
            store.prune(name, keep_last=argument)
        elif argument in {v.number for v in store.log(name)}:
            store.rollback(name, argument)
    if name not in store.names():
        return
    for key in "abc":
        expected = _changed_by_loading(store, name, key)
        assert [v.number for v in store.log(name, key=key)] == expected
        for limit in (1, 2):
            assert [v.number for v in store.log(name, key=key, limit=limit)] == expected[:limit]


def test_log_of_a_key_over_many_chunks_of_change_points(store: StateStore) -> None:
    # More change points than one round trip takes (500), and, with a limit,
    # pruned stretches that use up a whole chunk of points without a result.
    for number in range(1, 1_201):
        store.save("p", {"k": number % 7, "other": "x"})
    assert [v.number for v in store.log("p", key="k")] == list(range(1_200, 0, -1))
    for number in (1, 2):
        store.tag("p", number, f"t{number}")  # two kept far back
    assert len(store.prune("p", keep_last=3)) == 1_195
    assert [v.number for v in store.log("p", key="k", limit=3)] == [1_200, 1_199, 1_198]
    assert [v.number for v in store.log("p", key="k", limit=5)] == [1_200, 1_199, 1_198, 2, 1]
    assert [v.number for v in store.log("p", key="other")] == [1]


class _Holder:
    """The smallest module-like object ``load_into`` accepts."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {"prompt": None, "k": None}

    def state_dict(self) -> dict[str, Any]:
        return dict(self.state)

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        self.state.update(state)


def timezone_plus(hours: int) -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=hours))


# -- the migration ------------------------------------------------------------------------


def _alembic(url: Any, action: str, revision: str) -> None:
    engine = sa.create_engine(resolve_url(url))
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            getattr(command, action)(config, revision)
    finally:
        engine.dispose()


def _history(store: StateStore) -> dict[tuple[str, int], dict[str, Any]]:
    """Several names, tags, a shared snapshot, a rollback, removed keys and a pruned range."""
    for number in range(1, 9):
        store.save(
            "pipeline",
            {
                "prompt": f"p{number % 3}",
                "k": number // 3,
                "tools": ["search", number % 2],
                "fixed": "x",
            },
            author="ana",
            message=f"step {number}",
            metadata={"score": number / 10},
        )
    store.save("pipeline", {"prompt": "short", "fixed": "x"})  # two keys removed
    store.rollback("pipeline", 2)
    store.tag("pipeline", 3, "production")
    store.save("agent", {"instructions": "Be kind.", "k": 1})
    store.save("agent", {"k": 1, "instructions": "Be kind.", "extra": None})
    store.save("copy", store.load("pipeline", 5))  # the same snapshot under another name
    store.prune("pipeline", keep_last=4)  # keeps 3 (tagged) and 7..10
    return {
        (name, version.number): store.load(name, version.number)
        for name in store.names()
        for version in store.log(name)
    }


# The rows of versions whose parent survives: there state_changes means what it did
# before 0006 (a pruned parent's versions are compared with the nearest surviving
# ancestor since 0006, not shown as all added; test_views checks those).
_KEPT_PARENT = (
    "JOIN state_history h ON h.name = c.name AND h.version = c.version "
    "WHERE h.parent_version IS NULL OR EXISTS (SELECT 1 FROM state_history p "
    "WHERE p.name = h.name AND p.version = h.parent_version)"
)
_VIEWS = {
    "state_values": "SELECT name, version, key, value, value_type, value_hash FROM state_values",
    "state_changes": "SELECT c.name, c.version, c.key, c.change, c.old_value, c.new_value "
    f"FROM state_changes c {_KEPT_PARENT}",
    "state_history": "SELECT name, version, snapshot, parent_version, message, author, "
    "metadata, key_count FROM state_history",
    "state_tags": "SELECT name, tag, version FROM state_tags",
}


def _observe(store: StateStore) -> dict[str, Any]:
    seen: dict[str, Any] = {
        name: sorted(tuple(row) for row in store.query(sql)) for name, sql in _VIEWS.items()
    }
    seen["loads"] = {
        (name, version.number): list(store.load(name, version.number).items())
        for name in store.names()
        for version in store.log(name)
    }
    seen["hashes"] = {
        (name, version.number): version.snapshot
        for name in store.names()
        for version in store.log(name)
    }
    return seen


def test_migration_0006_round_trips_a_real_history(store_url: str) -> None:
    with StateStore(store_url) as store:
        expected = _history(store)
        store.gc()
        at_head = _observe(store)
        assert store.verify().ok
    for key, state in expected.items():
        assert at_head["hashes"][key] == expected_snapshot(state)
    # Down to the per-key entries model (0005) and to 0002: the old views, computed
    # from entries by the old SQL, show exactly the same rows.
    for revision in ("0005", "0002"):
        _alembic(store_url, "downgrade", revision)
        engine = sa.create_engine(resolve_url(store_url))
        with engine.connect() as connection:
            for view in ("state_values", "state_changes"):
                rows = sorted(tuple(row) for row in connection.execute(sa.text(_VIEWS[view])))
                assert rows == at_head[view], view
            assert connection.execute(sa.text("SELECT COUNT(*) FROM entries")).scalar() == sum(
                len(state)
                for state in {
                    at_head["hashes"][key]: state for key, state in expected.items()
                }.values()
            )
        engine.dispose()
    # ...and up again, in place: every load, hash, view row and verify() identical.
    with StateStore(store_url) as store:
        assert _observe(store) == at_head
        assert store.verify().ok
        version = store.save("pipeline", {"prompt": "after", "fixed": "x"})
        assert version.parent == 10 and version.changes is not None
        assert version.changes.changed == ("prompt",)


def test_migration_0006_of_a_store_written_at_0005_by_plain_sql(store_url: str) -> None:
    """A 0005 store written without this release's code, with a gap left by a prune."""
    _alembic(store_url, "upgrade", "0005")
    states = [
        {"prompt": "a", "k": 1},
        {"prompt": "b", "k": 1},
        {"k": 1, "prompt": "a"},
        {"prompt": "c"},
    ]
    engine = sa.create_engine(resolve_url(store_url))
    now = datetime(2025, 1, 1, tzinfo=UTC)
    from store_testkit import expected_value_hash

    from msgflux.store.hashing import encode_value

    with engine.begin() as connection:

        def one(sql: str, **params: Any) -> Any:
            query = sa.text(sql)
            if "w" in params:
                query = query.bindparams(sa.bindparam("w", type_=sa.DateTime(timezone=True)))
            return connection.execute(query, params).scalar()

        name_id = one(
            "INSERT INTO names (name, head, created_at) VALUES ('old', 4, :w) RETURNING id", w=now
        )
        for number, state in enumerate(states, start=1):
            if number == 2:
                continue  # pruned
            snapshot = expected_snapshot(state)
            snapshot_id = one("SELECT id FROM snapshots WHERE hash = :h", h=snapshot)
            if snapshot_id is None:
                snapshot_id = one(
                    "INSERT INTO snapshots (hash, key_count, created_at) "
                    "VALUES (:h, :c, :w) RETURNING id",
                    h=snapshot,
                    c=len(state),
                    w=now,
                )
                for position, (key, value) in enumerate(state.items()):
                    kind, text = encode_value(value)
                    blob_id = one(
                        "SELECT id FROM blobs WHERE hash = :h", h=expected_value_hash(value)
                    )
                    if blob_id is None:
                        blob_id = one(
                            "INSERT INTO blobs (hash, value_type, text) "
                            "VALUES (:h, :t, :x) RETURNING id",
                            h=expected_value_hash(value),
                            t=kind,
                            x=text,
                        )
                    one(
                        "INSERT INTO entries (snapshot_id, key, position, blob_id) "
                        "VALUES (:s, :k, :p, :b) RETURNING snapshot_id",
                        s=snapshot_id,
                        k=key,
                        p=position,
                        b=blob_id,
                    )
            one(
                "INSERT INTO versions (name_id, number, snapshot_id, parent, created_at, "
                "message, author, metadata) VALUES (:n, :v, :s, :p, :w, '', NULL, '{}') "
                "RETURNING id",
                n=name_id,
                v=number,
                s=snapshot_id,
                p=number - 1 or None,
                w=now + timedelta(minutes=number),
            )
    engine.dispose()
    with StateStore(store_url) as store:
        assert store.verify().ok
        for number, state in enumerate(states, start=1):
            if number != 2:
                assert store.load("old", number) == state
                assert store.get("old", number).snapshot == expected_snapshot(state)
        # version 3's parent (2) is gone: compared with 1, whose content it has
        assert sorted(
            store.query("SELECT version, key, change, against_version FROM state_changes")
        ) == [
            (1, "k", "added", None),
            (1, "prompt", "added", None),
            (4, "k", "removed", 3),
            (4, "prompt", "changed", 3),
        ]
        assert store.load("old", at=now + timedelta(minutes=3, seconds=30)) == states[2]
        with pytest.raises(VersionNotFound, match="pruned"):  # was it 1, or the lost 2?
            store.load("old", at=now + timedelta(minutes=1, seconds=30))


def test_two_names_sharing_a_snapshot_keep_their_own_key_order(store: StateStore) -> None:
    first = store.save("a", {"x": 1, "y": 2, "z": 3})
    second = store.save("b", {"z": 3, "y": 2, "x": 1})
    assert first.snapshot == second.snapshot  # one snapshot: the hash ignores order
    assert list(store.load("a")) == ["x", "y", "z"]
    assert list(store.load("b")) == ["z", "y", "x"]
    store.save("b", {"z": 3, "y": 2, "x": 1, "w": 0})
    store.rollback("b", 1)
    assert list(store.load("b")) == ["z", "y", "x"]


def test_stored_times_read_back_as_aware_utc() -> None:
    # SQLite's naive UTC text (the fast path), text with an offset and a driver's
    # datetime all come back as the same aware UTC moment.
    moment = datetime(2026, 11, 28, 16, 29, 5, 123456, tzinfo=UTC)
    assert _sql.time_value("2026-11-28 16:29:05.123456") == moment
    assert _sql.time_value("2026-11-28 18:29:05.123456+02:00") == moment
    assert _sql.time_value(moment.replace(tzinfo=None)) == moment
    assert _sql.time_value(moment.astimezone(timezone(timedelta(hours=-5)))) == moment
    for value in ("2026-11-28 16:29:05.123456", "2026-11-28T16:29:05.123456Z"):
        assert _sql.time_value(value).tzinfo == UTC
    with pytest.raises(ValueError):
        _sql.time_value("not a time")
