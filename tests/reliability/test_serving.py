"""Serving under stress: processes moving tags while followers refresh, a database that goes
away and comes back, and races on guarded and split tags. Both backends."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from msgflux.store import Follower, StateStore
from msgflux.store._split import primary

from . import _serving_workers as workers
from .conftest import SPAWN, read_report, record, run_processes

VERSIONS = 6


def _served_history(url: str, name: str = "svc") -> None:
    with StateStore(url) as store:
        for number in range(1, VERSIONS + 1):
            store.save(name, workers.state_of(number), metadata={"score": number / 10})
        store.tag(name, 1, "production")


# -- followers never hold a mix ----------------------------------------------------------------


@pytest.mark.slow
def test_followers_never_hold_a_mix_while_processes_move_tags(
    store_url: str, reports: Any, request: Any
) -> None:
    _served_history(store_url)
    movers, moves = 3, 40
    follower_specs = [
        ("production", None, False),
        ("production", "user-1", False),
        ("production", "user-2", True),
        ("latest", None, False),
    ]
    stop = SPAWN.Event()
    barrier = SPAWN.Barrier(movers + 1 + len(follower_specs))
    followers = [
        SPAWN.Process(
            target=workers.follower,
            args=(store_url, "svc", ref, key, threaded, stop, barrier, str(reports(f"f{index}"))),
        )
        for index, (ref, key, threaded) in enumerate(follower_specs)
    ]
    for process in followers:
        process.start()
    try:
        run_processes(
            [
                (
                    workers.mover,
                    (store_url, "svc", VERSIONS, moves, seed, barrier, str(reports(f"m{seed}"))),
                )
                for seed in range(movers)
            ]
            + [
                (
                    workers.saver,
                    (store_url, "svc", VERSIONS + 1, 20, barrier, str(reports("saver"))),
                )
            ],
            timeout=240,
        )
    finally:
        stop.set()
        for process in followers:
            process.join(120)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in followers] == [0] * len(followers)
    moved = [read_report(reports(f"m{seed}")) for seed in range(movers)]
    assert [error for report in moved for error in report["errors"]] == []
    assert read_report(reports("saver"))["errors"] == []
    results = [read_report(reports(f"f{index}")) for index in range(len(follower_specs))]
    for spec, result in zip(follower_specs, results, strict=True):
        assert result["errors"] == [], result["errors"]
        assert result["problems"] == [], (spec, result["problems"][:5])
        assert result["final"] == result["wanted"], (spec, result)
    with StateStore(store_url) as store:
        events = store.tag_history("svc", "production")
        for event in events:  # every recorded split is whole, its version the heaviest
            if event.weights is not None:
                assert abs(sum(event.weights.values()) - 1) < 1e-9
                assert event.version == primary(event.weights)
        final = store.tag_weights("svc", "production")
        last = events[-1]
        assert final == (last.weights or {last.version: 1.0})
    record(
        request,
        f"{movers} movers x {moves} moves ({sum(r['moves'] for r in moved)} done, "
        f"{sum(r['conflicts'] for r in moved)} CAS conflicts) and a saver of 20 "
        f"versions; {len(results)} followers made "
        f"{sum(r['checks'] for r in results)} checks and "
        f"{sum(r['swaps'] for r in results)} swaps, never a mix; all ended on the "
        "final target",
    )


# -- a database that goes away -----------------------------------------------------------------


class _Proxy:
    """A TCP proxy on 127.0.0.1 that can be stopped (every connection cut) and restarted."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        self.port = server.getsockname()[1]
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            if server.fileno() == -1:  # stopped while accepting
                client.close()
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        assert self._server is not None
        try:  # wakes the thread blocked in accept() (close alone does not, on Linux)
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._sockets.clear()


class _Requests:
    """A thread serving 'requests' all the time: each pins the version and checks the module."""

    def __init__(self, follower: Follower) -> None:
        self.follower = follower
        self.served: list[int] = []
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.follower.pinned() as version:
                problem = workers.mix_problem(self.follower.module, version.number)
            if problem:
                self.problems.append(problem)
            self.served.append(version.number)
            time.sleep(0.001)

    def stop(self) -> list[int]:
        deadline = time.monotonic() + 30  # let at least one request see the last version
        while self.follower.version.number not in self.served[-1:] and (
            time.monotonic() < deadline
        ):
            time.sleep(0.005)
        self._stop.set()
        self._thread.join()
        return sorted(set(self.served))


def _refresh_until(follower: Follower, number: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while follower.version.number != number:
        follower.refresh()
        assert time.monotonic() < deadline, f"follower stuck at {follower.version.number}"
        time.sleep(0.01)


def _serve_away(follower: Follower, seconds: float = 1.0) -> None:
    """Refresh repeatedly while the database is away: never raises, never changes version."""
    at = follower.version.number
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert follower.refresh() is False
        time.sleep(0.01)
    assert follower.version.number == at and follower.serving_from_cache


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[tuple[_Proxy, str]]:
    url = make_url(postgres_url)
    proxy = _Proxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    try:
        yield proxy, url.set(port=proxy.port).render_as_string(hide_password=False)
    finally:
        try:
            proxy.stop()
        except AssertionError:
            pass


def test_postgres_away_and_back_follower_serves_throughout(
    postgres_url: str,
    proxy: tuple[_Proxy, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    request: Any,
) -> None:
    tcp, via_proxy = proxy
    _served_history(postgres_url)
    direct = StateStore(postgres_url)
    cache = tmp_path / "prod.json"
    caplog.set_level(logging.INFO, logger="msgflux.store.follow")
    module = workers.make_module()
    follower = Follower(via_proxy, module, "svc", "production", cache=cache, retry_interval=0.05)
    requests = _Requests(follower)
    direct.tag("svc", 2, "production")
    _refresh_until(follower, 2)
    tcp.stop()  # every connection cut, new ones refused
    direct.tag("svc", 3, "production")
    _serve_away(follower)
    tcp.start()
    _refresh_until(follower, 3)
    assert not follower.serving_from_cache
    served = requests.stop()
    assert requests.problems == [] and served == [1, 2, 3]
    follower.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "away" in warnings[0]
    assert json.loads(cache.read_text())["version"]["number"] == 3

    # Started while away: the cache, then the database when it returns.
    tcp.stop()
    module = workers.make_module()
    follower = Follower(via_proxy, module, "svc", "production", cache=cache, retry_interval=0.05)
    assert follower.version.number == 3 and follower.serving_from_cache
    requests = _Requests(follower)
    direct.tag("svc", 4, "production")
    _serve_away(follower, 0.5)
    tcp.start()
    _refresh_until(follower, 4)
    served = requests.stop()
    assert requests.problems == [] and served == [3, 4]
    follower.close()
    direct.close()
    record(
        request,
        "PostgreSQL behind a proxy cut twice: served 1 -> 2, kept 2 while away "
        "(one warning), 3 on return; started from the cache at 3 while away, 4 on "
        "return; request threads never saw a mix",
    )


def test_sqlite_away_and_back_follower_serves_throughout(
    tmp_path: Path, request: Any, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    path = folder / "s.db"
    cache = tmp_path / "prod.json"
    _served_history(str(path))
    caplog.set_level(logging.WARNING, logger="msgflux.store.follow")
    with Follower(path, workers.make_module(), "svc", "production", cache=cache) as follower:
        assert follower.version.number == 1
    folder.rename(tmp_path / "elsewhere")  # the database is away: its folder is gone
    module = workers.make_module()
    follower = Follower(path, module, "svc", "production", cache=cache, retry_interval=0.05)
    assert follower.version.number == 1 and follower.serving_from_cache
    requests = _Requests(follower)
    with StateStore(tmp_path / "elsewhere" / "s.db") as away:
        away.tag("svc", 5, "production")  # moved while the follower can't see it
    _serve_away(follower, 0.5)
    (tmp_path / "elsewhere").rename(folder)
    _refresh_until(follower, 5)
    served = requests.stop()
    assert requests.problems == [] and served == [1, 5] and not follower.serving_from_cache
    follower.close()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    record(
        request,
        "SQLite folder gone at start: served version 1 from the cache (one "
        "warning), swapped to 5 when it returned; request thread never saw a mix",
    )


# -- races on guarded and split tags -----------------------------------------------------------


@pytest.mark.slow
def test_guarded_split_races_have_one_winner_per_round(
    store_url: str, reports: Any, request: Any
) -> None:
    racers, rounds, versions = 4, 12, 8
    with StateStore(store_url) as store:
        for number in range(1, versions + 1):
            store.save("svc", workers.state_of(number, 3), metadata={"score": number / 10})
        store.tag("svc", 5, "production")
        store.protect("svc", "production", where="score>=0.3", author="ops")
    barriers = (SPAWN.Barrier(racers), SPAWN.Barrier(racers))
    run_processes(
        [
            (
                workers.guarded_racer,
                (store_url, "svc", racer, rounds, versions, barriers, str(reports(f"r{racer}"))),
            )
            for racer in range(racers)
        ],
        timeout=240,
    )
    outcomes = [
        outcome
        for racer in range(racers)
        for outcome in read_report(reports(f"r{racer}"))["outcomes"]
    ]
    assert [o for o in outcomes if o["outcome"].startswith("error")] == []
    winners = []
    for round_ in range(rounds):
        this = [o for o in outcomes if o["round"] == round_]
        valid = [o for o in this if all(int(n) >= 3 for n in o["target"])]
        won = [o for o in this if o["outcome"] == "won"]
        assert len(won) == (1 if valid else 0), this
        assert all(o in valid for o in won)
        winners += won
    with StateStore(store_url) as store:
        events = store.tag_history("svc", "production")[1:]  # after the initial tag
        assert len(events) == len(winners)
        for event, winner in zip(events, winners, strict=True):
            targets = event.weights or {event.version: 1.0}
            assert {str(n): w for n, w in targets.items()} == winner["target"]
            assert all(number >= 3 for number in targets)  # the condition always held
        refused = store.query("SELECT COUNT(*) FROM state_tag_audit WHERE action = 'refused'")
        assert refused == [(len(outcomes) - len(winners),)]
        last = winners[-1]["target"]
        assert store.tag_weights("svc", "production") == {int(n): w for n, w in last.items()}
    conditions = sum(o["outcome"] == "condition" for o in outcomes)
    record(
        request,
        f"{racers} racers x {rounds} rounds on a protected tag with a condition: "
        f"{len(winners)} winners (one per round with a valid target), "
        f"{conditions} condition refusals, "
        f"{len(outcomes) - len(winners) - conditions} CAS conflicts; every refusal "
        "audited, every recorded move satisfies the condition",
    )
