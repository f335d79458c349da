"""PostgreSQL behind a network that stalls: save() and load() fail with DatabaseError, never hang.

A small TCP proxy on 127.0.0.1 forwards to the test server, then black-holes:
it keeps every socket open and reads what the client sends, but forwards
nothing either way. The proxy's kernel still acknowledges packets, so TCP
keepalives see a healthy peer and the server never hears of the statement:
only the store's own bound on waiting for an answer can end the call.
Each call runs in a thread given 60 s; the bound under test is a few seconds.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from msgflux.store import DatabaseError, LockTimeout, StateStore

from ._support import raw_engine
from .conftest import record

pytestmark = pytest.mark.postgres


class _StallingProxy:
    """Forward 127.0.0.1:<port> to ``target`` until :meth:`stall`; then forward nothing."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.stalled = threading.Event()
        self.closing = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self) -> None:
        self.stalled.set()

    def close(self) -> None:
        self.closing.set()
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            upstream = None
            if not self.stalled.is_set():
                upstream = socket.create_connection(self.target)
                self.sockets.append(upstream)
                threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket | None) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            if sink is not None and not self.stalled.is_set():
                try:
                    sink.sendall(data)
                except OSError:
                    return


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[tuple[_StallingProxy, str]]:
    url = make_url(postgres_url)
    stalling = _StallingProxy((url.host or "127.0.0.1", url.port or 5432))
    proxied = url.set(host="127.0.0.1", port=stalling.port).update_query_dict(
        {"connect_timeout": "2"}
    )
    try:
        yield stalling, proxied.render_as_string(hide_password=False)
    finally:
        stalling.close()


def _call(function: Any) -> tuple[BaseException | None, float]:
    """Run ``function`` in a thread; return what it raised and how long it took (60 s at most)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            function()
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - reported to the test
            outcome.append(error)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the call still hangs after 60 s"
    return outcome[0], time.monotonic() - started


def test_a_stalled_server_gives_database_error_not_a_hang(proxy, postgres_url, request):
    stalling, url = proxy
    store = StateStore(url, lock_timeout=1, statement_timeout=1)
    store.save("pipeline", {"prompt": "Be brief."})
    assert store.load("pipeline") == {"prompt": "Be brief."}
    stalling.stall()

    timings = {}
    for label, call in [
        ("save", lambda: store.save("pipeline", {"prompt": "Be briefer."})),
        ("load", lambda: store.load("pipeline")),
        ("log", lambda: store.log("pipeline")),
    ]:
        error, timings[label] = _call(call)
        assert isinstance(error, DatabaseError), f"{label}: {error!r}"
    store.close()

    # The stalled save was never committed.
    with StateStore(postgres_url) as direct:
        assert [version.number for version in direct.log("pipeline")] == [1]
        assert direct.verify().ok
    record(
        request,
        "stalled network (proxy black-holes), lock_timeout=1, statement_timeout=1: "
        + ", ".join(
            f"{label} DatabaseError after {seconds:.1f} s" for label, seconds in timings.items()
        ),
    )


def test_reads_behind_an_access_exclusive_lock_time_out(postgres_url, request):
    with StateStore(postgres_url, lock_timeout=1) as store:
        store.save("pipeline", {"prompt": "Be brief."})
        store.tag("pipeline", 1, "production")
        store.gc(vacuum=True)  # its RESET lock_timeout must not undo the store's session default
        holder = raw_engine(postgres_url)
        with holder.connect() as connection, connection.begin():
            # versions and spans: every read below needs one of them (the latest
            # version's content is read from spans alone)
            connection.exec_driver_sql("LOCK TABLE versions, spans IN ACCESS EXCLUSIVE MODE")
            for label, call in [
                ("load", lambda: store.load("pipeline")),
                ("load by tag", lambda: store.load("pipeline", "production")),
                ("log", lambda: store.log("pipeline")),
                ("query", lambda: store.query("SELECT count(*) FROM state_history")),
            ]:
                error, seconds = _call(call)
                assert isinstance(error, LockTimeout), f"{label}: {error!r}"
        holder.dispose()
        assert store.load("pipeline", "production") == {"prompt": "Be brief."}
    record(
        request, f"load behind ACCESS EXCLUSIVE, lock_timeout=1: LockTimeout after {seconds:.1f} s"
    )
