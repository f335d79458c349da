"""Serving: followers that hot-swap, guarded tags, traffic splits, on each backend."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from store_testkit import dump_store

from msgflux import nn
from msgflux.errors import StateDictError
from msgflux.store import (
    ConflictError,
    DatabaseError,
    Follower,
    IntegrityError,
    InvalidInputError,
    ProtectedTagError,
    StateStore,
    Version,
    VersionNotFound,
)
from msgflux.store._split import Router, route_point
from msgflux.store._where import parse_condition

KEYS = 6


class Wide(nn.Module):
    """A module of KEYS buffers; version n of the tests holds "v{n}:{i}" in buffer k{i}."""

    def __init__(self, keys: int = KEYS) -> None:
        super().__init__()
        for index in range(keys):
            self.register_buffer(f"k{index}", "")


def state_of(number: int, keys: int = KEYS) -> dict[str, str]:
    return {f"k{index}": f"v{number}:{index}" for index in range(keys)}


def holds(module: nn.Module) -> int:
    """The one version a module holds; fails if it holds a mix."""
    numbers = {value.split(":")[0] for value in module.state_dict().values()}
    assert len(numbers) == 1, f"the module holds a mix: {module.state_dict()}"
    return int(numbers.pop()[1:])


def history(store: StateStore, versions: int = 4) -> None:
    for number in range(1, versions + 1):
        store.save("p", state_of(number), metadata={"score": number / 10})


def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.005)


def refresh_until_swapped(follower: Follower) -> None:
    until(follower.refresh)


# -- following ---------------------------------------------------------------------------------


def test_follow_loads_the_tag_at_once_and_swaps_when_it_moves(store: StateStore) -> None:
    history(store)
    store.tag("p", 2, "production")
    module = Wide()
    changes: list[tuple[int | None, int]] = []
    with store.follow(
        module,
        "p",
        "production",
        on_change=lambda old, new: changes.append((old.number if old else None, new.number)),
    ) as follower:
        assert follower.version.number == 2 and holds(module) == 2
        assert isinstance(follower.version, Version) and "production" in follower.version.tags
        assert follower.refresh() is False
        other = StateStore(store.url)  # another connection, as another process would be
        other.tag("p", 3, "production")
        refresh_until_swapped(follower)
        assert follower.version.number == 3 and holds(module) == 3
        assert changes == [(2, 3)]
        assert follower.refresh() is False
        other.close()


def test_a_swapped_in_version_is_exactly_what_the_store_reads(store: StateStore) -> None:
    # The follower reads a version with statements of its own (for speed); its Version and
    # the values it loads must be the store's, type for type (1, 1.0 and True differ).
    values = {"n": 1, "x": 1.0, "flag": True, "none": None, "deep": {"a": [1, 2.5, "s"]}}
    store.save("typed", {key: "" if key != "n" else 0 for key in values})
    store.save(
        "typed", values, message="second", author="ana", metadata={"score": 0.9, "notes": ["a", 1]}
    )
    store.tag("typed", 1, "production")
    module = nn.Module()
    for key in values:
        module.register_buffer(key, None)
    with store.follow(module, "typed", "production") as follower:
        for tag in ("production", "canary", "a-first"):
            store.tag("typed", 2, tag)
        refresh_until_swapped(follower)
        assert follower.version == store.get("typed", 2)
        assert follower.version.tags == ("a-first", "canary", "production")
        loaded = module.state_dict()
        assert json.dumps(loaded) == json.dumps(store.load("typed", 2)) == json.dumps(values)


def test_refresh_when_nothing_changed_reads_no_table(store: StateStore) -> None:
    history(store)
    store.tag("p", 1, "production")
    statements: list[str] = []
    sa.event.listen(
        store._engine, "before_cursor_execute", lambda *args: statements.append(args[2])
    )
    with store.follow(Wide(), "p", "production") as follower:
        statements.clear()
        traced: list[str] = []
        watch = follower._watch
        if store.dialect == "sqlite":
            watch._connection.set_trace_callback(traced.append)  # type: ignore[union-attr]
        for _ in range(1000):
            assert follower.refresh() is False
        assert statements == []  # not one statement through the store's connections
        if store.dialect == "sqlite":
            assert set(traced) == {"PRAGMA data_version"}
        # A change to another name is noticed and read, but nothing is swapped.
        store.save("other", {"x": 1})
        until(lambda: bool(statements) or follower.refresh())
        assert follower.version.number == 1


def test_follow_latest_follows_saves_and_a_pinned_version_never_moves(store: StateStore) -> None:
    history(store, 2)
    latest, pinned, by_hash = Wide(), Wide(), Wide()
    snapshot = store.get("p", 1).snapshot
    with (
        store.follow(latest, "p") as following,
        store.follow(pinned, "p", 1) as fixed,
        store.follow(by_hash, "p", snapshot[:10]) as hashed,
    ):
        assert (holds(latest), holds(pinned), holds(by_hash)) == (2, 1, 1)
        store.save("p", state_of(3))
        refresh_until_swapped(following)
        assert holds(latest) == 3
        assert fixed.refresh() is False and hashed.refresh() is False
        assert (holds(pinned), holds(by_hash)) == (1, 1)


def test_a_version_that_does_not_fit_is_refused_and_nothing_changes(store: StateStore) -> None:
    history(store, 2)
    store.tag("p", 1, "production")
    store.save("p", {"k0": "v9:0"})  # version 3: one key only
    with pytest.raises(StateDictError, match="missing keys"):
        store.follow(Wide(), "p", 3)
    module = Wide()
    with store.follow(module, "p", "production") as follower:
        store.tag("p", 3, "production")
        with pytest.raises(StateDictError):
            until(follower.refresh)
        assert holds(module) == 1 and follower.version.number == 1


def test_untag_keeps_the_follower_on_its_version_until_the_tag_returns(store: StateStore) -> None:
    history(store)
    store.tag("p", 1, "production")
    module = Wide()
    with store.follow(module, "p", "production") as follower:
        store.untag("p", "production")
        for _ in range(50):
            assert follower.refresh() is False
        assert holds(module) == 1
        store.tag("p", 4, "production")
        refresh_until_swapped(follower)
        assert holds(module) == 4


def test_start_swaps_in_a_thread_and_pinned_holds_a_version(store: StateStore) -> None:
    history(store)
    store.tag("p", 1, "production")
    module = Wide()
    with store.follow(module, "p", "production").start(interval=0.005) as follower:
        with follower.pinned() as version:
            assert version.number == 1
            store.tag("p", 2, "production")
            # The thread notices the move but must wait for the pin to end.
            time.sleep(0.3)
            assert holds(module) == 1 and follower.version.number == 1
            with follower.pinned() as inner:  # re-entrant in the same thread
                assert inner.number == 1
            assert follower.refresh() is False  # inside a pin: no swap
        until(lambda: follower.version.number == 2)
        assert holds(module) == 2
        with pytest.raises(InvalidInputError, match="already running"):
            follower.start(0.1)


def test_concurrent_requests_in_pins_never_see_a_mix(store: StateStore) -> None:
    history(store)
    store.tag("p", 1, "production")
    module = Wide(40)
    for number in range(1, 5):
        store.save("wide", state_of(number, 40))
    store.tag("wide", 1, "production")
    seen: list[int] = []
    problems: list[str] = []
    stop = threading.Event()

    def request() -> None:
        while not stop.is_set():
            with follower.pinned() as version:
                values = module.state_dict().values()
                numbers = {value.split(":")[0] for value in values}
                if numbers != {f"v{version.number}"}:
                    problems.append(f"{version.number}: {sorted(numbers)}")
                seen.append(version.number)

    with store.follow(module, "wide", "production").start(interval=0.001) as follower:
        threads = [threading.Thread(target=request) for _ in range(3)]
        for thread in threads:
            thread.start()
        for move in range(8):
            store.tag("wide", move % 4 + 1, "production")
            until(lambda move=move: follower.version.number == move % 4 + 1)
        stop.set()
        for thread in threads:
            thread.join()
    assert problems == []
    assert set(seen) == {1, 2, 3, 4}


# -- the cache -------------------------------------------------------------------------------


def test_the_cache_holds_the_loaded_version_and_its_hash(store: StateStore, tmp_path: Path) -> None:
    history(store)
    store.tag("p", 2, "production")
    cache = tmp_path / "prod.json"
    with store.follow(Wide(), "p", "production", cache=cache) as follower:
        data = json.loads(cache.read_text())
        assert data["state"] == state_of(2) and data["snapshot"] == follower.version.snapshot
        assert data["version"]["number"] == 2 and data["ref"] == "production"
        store.tag("p", 3, "production")
        refresh_until_swapped(follower)
        assert json.loads(cache.read_text())["state"] == state_of(3)
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def _write_cache(store: StateStore, cache: Path) -> None:
    history(store)
    store.tag("p", 2, "production")
    store.follow(Wide(), "p", "production", cache=cache).close()


def test_a_follower_started_while_the_database_is_away_serves_its_cache(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    cache = tmp_path / "prod.json"
    with StateStore(folder / "s.db") as store:
        _write_cache(store, cache)
        store.tag("p", 4, "production")
    folder.rename(tmp_path / "away")
    module = Wide()
    with (
        caplog.at_level(logging.WARNING, logger="msgflux.store.follow"),
        Follower(
            folder / "s.db", module, "p", "production", cache=cache, retry_interval=0.01
        ) as follower,
    ):
        assert holds(module) == 2 and follower.version.number == 2
        assert follower.serving_from_cache
        for _ in range(20):
            assert follower.refresh() is False
            time.sleep(0.002)
        warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
        assert len(warnings) == 1 and "away" in warnings[0].getMessage()
        (tmp_path / "away").rename(folder)
        refresh_until_swapped(follower)
        assert holds(module) == 4 and not follower.serving_from_cache


def test_without_a_cache_a_follower_cannot_start_while_away(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError):
        Follower(tmp_path / "missing" / "s.db", Wide(), "p", "production")


@pytest.mark.parametrize("tamper", ["value", "snapshot", "ref", "garbage"])
def test_a_cache_that_does_not_match_is_refused(tmp_path: Path, tamper: str) -> None:
    with StateStore(tmp_path / "s.db") as store:
        cache = tmp_path / "prod.json"
        _write_cache(store, cache)
    data = json.loads(cache.read_text())
    if tamper == "value":
        data["state"]["k1"] = "v9:1"
    elif tamper == "snapshot":
        data["snapshot"] = data["version"]["snapshot"] = "0" * 64
        data["state"]["k1"] = "v9:1"
    elif tamper == "ref":
        data["ref"] = "staging"
    cache.write_text("{not json" if tamper == "garbage" else json.dumps(data))
    (tmp_path / "s.db").rename(tmp_path / "gone.db")
    (tmp_path / "away").mkdir()
    module = Wide()
    error = IntegrityError if tamper in ("value", "snapshot") else InvalidInputError
    with pytest.raises(error, match="cache"):
        Follower(tmp_path / "away" / "missing" / "s.db", module, "p", "production", cache=cache)
    assert module.state_dict() == Wide().state_dict()


def test_follow_refuses_bad_arguments(store: StateStore, tmp_path: Path) -> None:
    history(store, 1)
    for kwargs, message in (
        ({"cache": tmp_path / "c.toml"}, ".json"),
        ({"route_key": 1.5}, "route_key"),
        ({"retry_interval": 0}, "retry_interval"),
    ):
        with pytest.raises(InvalidInputError, match=message):
            Follower(store, Wide(), "p", **kwargs)
    with pytest.raises(VersionNotFound, match="has versions 1"):
        store.follow(Wide(), "p", "nope")


# -- guarded tags ------------------------------------------------------------------------------


def _audit(store: StateStore) -> list[tuple[Any, ...]]:
    return [
        tuple(row)
        for row in store.query(
            "SELECT tag, action, version, author, reason FROM state_tag_audit ORDER BY at"
        )
    ]


def test_a_protected_tag_needs_expected_and_every_refusal_is_audited(store: StateStore) -> None:
    history(store)
    store.tag("p", 1, "production")
    store.protect("p", "production", author="ops")
    assert store.query(
        "SELECT name, tag, require_expected, condition, author FROM state_tag_policies"
    ) == [("p", "production", True, None, "ops")]
    before = dump_store(store)
    with pytest.raises(ProtectedTagError, match="needs expected="):
        store.tag("p", 2, "production", author="mallory")
    with pytest.raises(ConflictError, match="points at version 1, not 3"):
        store.tag("p", 2, "production", expected=3, author="bob")
    after = dump_store(store)
    assert {table for table in before if before[table] != after[table]} == {
        "tag_audit",
        "state_tag_audit",
    }
    assert store.tag("p", 2, "production", expected=1, author="ana").number == 2
    with pytest.raises(ProtectedTagError, match="force=True"):
        store.untag("p", "production")
    assert store.tags("p") == {"production": 2}
    assert store.untag("p", "production", force=True, author="ops") == 2
    store.unprotect("p", "production", author="ops")
    with pytest.raises(VersionNotFound, match="not protected"):
        store.unprotect("p", "production")
    store.tag("p", 3, "production")  # unprotected again: no expected needed
    audit = _audit(store)
    assert [row[:4] for row in audit] == [
        ("production", "protect", None, "ops"),
        ("production", "refused", 2, "mallory"),
        ("production", "refused", 2, "bob"),
        ("production", "refused", None, None),
        ("production", "forced-untag", 2, "ops"),
        ("production", "unprotect", None, "ops"),
    ]
    assert "needs expected=" in audit[1][4] and "not 3" in audit[2][4]
    assert store.query("SELECT * FROM state_tag_policies") == []


def test_a_condition_is_checked_on_the_target_version(store: StateStore) -> None:
    history(store)  # scores 0.1 .. 0.4
    store.tag("p", 4, "production")
    store.protect("p", "production", require_expected=False, where="score >= 0.3")
    with pytest.raises(ProtectedTagError, match=r"'score >= 0.3'.*version 2"):
        store.tag("p", 2, "production")
    assert store.tag("p", 3, "production").number == 3
    with pytest.raises(ProtectedTagError, match="version 1"):
        store.split("p", "production", {3: 0.5, 1: 0.5})
    assert store.tags("p") == {"production": 3}
    # A protected tag that doesn't exist yet: its first move is checked too.
    store.protect("p", "staging", where="score>0.35")
    with pytest.raises(ProtectedTagError):
        store.tag("p", 3, "staging", expected=None)
    assert store.tag("p", 4, "staging", expected=None).number == 4
    refused = [row for row in _audit(store) if row[1] == "refused"]
    # a refused split is recorded with its heaviest version (ties: the lowest) and its weights
    assert [(row[0], row[2]) for row in refused] == [
        ("production", 2),
        ("production", 1),
        ("staging", 3),
    ]
    assert store.query("SELECT weights FROM state_tag_audit WHERE weights IS NOT NULL") == [
        ('{"1":0.5,"3":0.5}',)
    ]


def test_protect_refuses_bad_input_and_writes_nothing(store: StateStore) -> None:
    history(store, 1)
    before = dump_store(store)
    for where in ("score", "score >=", ">= 1", "a..b > 1", "", "x\n> 1"):
        with pytest.raises(InvalidInputError, match="condition"):
            store.protect("p", "production", where=where)
    with pytest.raises(InvalidInputError, match="tag"):
        store.protect("p", "12", where="score>1")
    with pytest.raises(VersionNotFound):
        store.protect("missing", "production")
    assert dump_store(store) == before


# -- traffic splits ----------------------------------------------------------------------------


def test_a_split_routes_each_key_to_one_version_deterministically(store: StateStore) -> None:
    history(store)
    assert store.split("p", "production", {2: 0.9, "3": 0.1}, author="ana") == {2: 0.9, 3: 0.1}
    assert store.tag_weights("p", "production") == {2: 0.9, 3: 0.1}
    assert store.tags("p") == {"production": 2} and store.get("p", "production").number == 2
    picks = {
        user: store.load("p", "production", route_key=f"user-{user}")["k0"] for user in range(200)
    }
    assert picks == {
        user: store.load("p", "production", route_key=f"user-{user}")["k0"] for user in range(200)
    }
    shares = {value: list(picks.values()).count(value) for value in set(picks.values())}
    assert set(shares) == {"v2:0", "v3:0"} and 150 < shares["v2:0"] < 196
    assert store.load("p", "production")["k0"] == "v2:0"  # no key: the heaviest version
    assert sorted(store.query("SELECT name, tag, version, weight FROM state_tags")) == [
        ("p", "production", 2, 0.9),
        ("p", "production", 3, 0.1),
    ]
    store.tag("p", 4, "production")  # one version: the split ends
    assert store.tag_weights("p", "production") == {4: 1.0}
    assert store.query("SELECT version, weight FROM state_tags") == [(4, 1.0)]
    events = store.tag_history("p", "production")
    assert [(event.version, event.weights) for event in events] == [
        (2, {2: 0.9, 3: 0.1}),
        (4, None),
    ]
    assert store.query("SELECT weights FROM state_tag_history ORDER BY moved_at") == [
        ('{"2":0.9,"3":0.1}',),
        (None,),
    ]


def test_split_compare_and_swap_and_prune_keep_the_split(store: StateStore) -> None:
    history(store)
    store.tag("p", 1, "production")
    with pytest.raises(ConflictError, match="points at version 1"):
        store.split("p", "production", {2: 0.5, 3: 0.5}, expected=2)
    store.split("p", "production", {2: 0.5, 3: 0.5}, expected=1)
    with pytest.raises(ConflictError, match=r"split \{2: 0.5, 3: 0.5\}"):
        store.tag("p", 4, "production", expected=2)
    store.split("p", "production", {2: 0.25, 3: 0.75}, expected={2: 0.5, 3: 0.5})
    assert store.prune("p", keep_last=1) == [1]  # 2 and 3 are in the split
    assert store.tag_weights("p", "production") == {2: 0.25, 3: 0.75}
    store.untag("p", "production")
    assert store.query("SELECT * FROM state_tags") == []
    with pytest.raises(VersionNotFound):
        store.tag_weights("p", "production")


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({2: 1.0}, "at least two"),
        ({2: 0.5, 3: 0.4}, "sum to 1"),
        ({2: -0.5, 3: 1.5}, "positive"),
        ({2: float("nan"), 3: 0.5}, "positive"),
        ({2: True, 3: 0.5}, "positive"),
        ({2: 0.5, "2": 0.5}, "already lists"),
        ([2, 3], "dict"),
        ({2: 0.5, 9: 0.5}, "not found"),
    ],
)
def test_bad_splits_are_refused_and_nothing_is_written(
    store: StateStore, weights: Any, message: str
) -> None:
    history(store)
    before = dump_store(store)
    with pytest.raises((InvalidInputError, VersionNotFound), match=message):
        store.split("p", "production", weights)
    assert dump_store(store) == before


def test_a_follower_with_a_route_key_serves_its_version_of_the_split(store: StateStore) -> None:
    history(store)
    store.tag("p", 1, "production")
    keys = {store.load("p", "production", route_key=key)["k0"] for key in ("a", "b")}
    assert keys == {"v1:0"}
    followers = {
        key: store.follow(Wide(), "p", "production", route_key=key) for key in map(str, range(30))
    }
    store.split("p", "production", {3: 0.5, 4: 0.5})
    for key, follower in followers.items():
        until(lambda follower=follower: follower.version.number != 1 or follower.refresh())
        assert holds(follower.module) == int(store.load("p", "production", route_key=key)["k0"][1])
        follower.close()
    assert {follower.version.number for follower in followers.values()} == {3, 4}


def test_route_points_are_fixed_by_the_documented_hash() -> None:
    import hashlib

    digest = hashlib.blake2b(b"p\x00production\x00user-7", digest_size=8).digest()
    assert route_point("p", "production", "user-7") == int.from_bytes(digest, "big") / 2**64
    router = Router("p", "production", {12: 0.9, 13: 0.1})
    point = route_point("p", "production", "user-7")
    assert router.pick("user-7") == (12 if point < 0.9 else 13)
    assert Router("p", "t", {1: 0.5, 2: 0.5}).pick(7) == Router("p", "t", {1: 0.5, 2: 0.5}).pick(
        "7"
    )


# -- the condition parser ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "metadata", "expected"),
    [
        ("score>=0.8", {"score": 0.8}, True),
        ("score>=0.8", {"score": 0.79}, False),
        ("score > 0.8", {"score": 1}, True),
        ("score<1", {"score": True}, False),  # a bool is not a number
        ("score>=0.8", {}, False),
        ("score>=0.8", {"score": "0.9"}, False),
        ("dataset == dev-v2", {"dataset": "dev-v2"}, True),
        ('dataset = "dev-v2"', {"dataset": "dev-v2"}, True),
        ("dataset != dev-v2", {"dataset": "dev-v3"}, True),
        ("dataset != dev-v2", {}, False),  # a missing key makes every comparison false
        ("eval.score >= 0.5 and eval.n > 100", {"eval": {"score": 0.6, "n": 200}}, True),
        ("eval.score >= 0.5 AND eval.n > 100", {"eval": {"score": 0.6, "n": 50}}, False),
        ("reviewed == true", {"reviewed": True}, True),
        ("reviewed == true", {"reviewed": 1}, False),
        ("n == 1", {"n": 1.0}, True),
    ],
)
def test_conditions(text: str, metadata: dict[str, Any], expected: bool) -> None:
    assert parse_condition(text).matches(metadata) is expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "score",
        "score >",
        "> 1",
        "a..b > 1",
        "x=>1",
        "score >= 1 and",
        None,
        3,
        "a" * 2000,
    ],
)
def test_bad_conditions_are_refused(text: Any) -> None:
    with pytest.raises(InvalidInputError, match="condition"):
        parse_condition(text)


def test_a_split_tag_moved_by_an_import_is_no_longer_a_split(
    store: StateStore, tmp_path: Path
) -> None:
    history(store)
    with StateStore(tmp_path / "other.db") as other:
        store.copy_to(other)
        store.split("p", "production", {2: 0.5, 3: 0.5})
        other.tag("p", 4, "production")  # later than the split: the import moves the tag
        module = Wide()
        with store.follow(module, "p", "production", route_key="u") as follower:
            other.copy_to(store)  # moves production to 4 (bundles know nothing of splits)
            assert store.tag_weights("p", "production") == {4: 1.0}
            assert store.query("SELECT version, weight FROM state_tags") == [(4, 1.0)]
            assert store.load("p", "production", route_key="u") == state_of(4)
            until(follower.refresh)
            assert holds(module) == 4
