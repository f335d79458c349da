"""PostgreSQL connections that cannot hang: timeouts, keepalives and a bounded wait for answers.

A store on a shared server must fail, not freeze, when the network or the
server stalls. Four layers, each for a different stall:

* ``connect_timeout`` (libpq, seconds): a server that does not complete the
  connection handshake.
* TCP keepalives (``keepalives_idle`` / ``_interval`` / ``_count``) and
  ``tcp_user_timeout``: a peer that vanished (host down, cable cut, a firewall
  dropping packets) is detected by the kernel while we wait for an answer.
* ``statement_timeout`` and ``lock_timeout``, session defaults: the server
  cancels a store statement that runs or waits for a lock too long (a read
  behind another session's ``ACCESS EXCLUSIVE`` lock gets ``LockTimeout``).
* The answer timeout: no single round trip to the server waits longer than
  ``max(statement_timeout, lock_timeout) + 5`` seconds. This is what bounds a
  *stalled* server whose kernel still acknowledges packets (a frozen process,
  a proxy or pooler whose upstream hangs), where keepalives see a healthy
  socket and the server never runs its own timeout. The connection is then
  closed and the store raises :class:`~msgflux.store.errors.DatabaseError`.

Settings given in the URL's query string (``?connect_timeout=3``) win over
these defaults.
"""

from __future__ import annotations

import inspect
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL

#: libpq connection parameters the store sets unless the URL sets them.
CONNECT_DEFAULTS: dict[str, int] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # milliseconds
}

#: Seconds a store waits for any answer beyond the server's own timeouts.
ANSWER_MARGIN = 5.0

#: Past ~30 years a timeout is the same as none, and clock arithmetic overflows
#: on larger numbers (a caller may pass 1e300).
LONGEST_WAIT = 1e9


def milliseconds(seconds: float) -> int:
    """Seconds as a PostgreSQL timeout setting: milliseconds in 1..2**31-1 (its integer range)."""
    return max(1, min(2**31 - 1, int(min(seconds, LONGEST_WAIT) * 1000)))


def connect_args(url: URL) -> dict[str, Any]:
    """The libpq defaults of :data:`CONNECT_DEFAULTS` that ``url`` does not set itself."""
    return {key: value for key, value in CONNECT_DEFAULTS.items() if key not in url.query}


def guard(engine: Engine, *, statement_timeout: float, lock_timeout: float) -> None:
    """Make every connection of ``engine`` set the session timeouts and bound its waits."""
    import psycopg

    answer_timeout = min(max(statement_timeout, lock_timeout), LONGEST_WAIT) + ANSWER_MARGIN
    # Startup options, not SET: they are the session's defaults, so a RESET
    # (after gc's VACUUM, say) returns to them and no extra round trip is made.
    # The URL's own options come first; a setting it already makes is kept.
    connection_class = _guarded_class(psycopg)

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        given = str(cparams.get("options") or "")
        ours = [
            f"-c {name}={milliseconds(seconds)}"
            for name, seconds in (
                ("statement_timeout", statement_timeout),
                ("lock_timeout", lock_timeout),
            )
            if name not in given
        ]
        cparams["options"] = " ".join([given, *ours]).strip()
        connection = connection_class.connect(*cargs, **cparams)
        connection.answer_timeout = answer_timeout
        return connection


_CLASS: dict[str, Any] = {}


def _guarded_class(psycopg: Any) -> Any:
    """A ``psycopg.Connection`` whose every wait for the server is bounded (built once)."""
    if "class" in _CLASS:
        return _CLASS["class"]
    wait_timeout = getattr(psycopg.errors, "_WaitTimeout", None)
    bounded = "timeout" in inspect.signature(psycopg.Connection.wait).parameters

    class _GuardedConnection(psycopg.Connection):  # type: ignore[misc]
        """Closes itself and raises ``OperationalError`` when an answer takes too long."""

        answer_timeout: float | None = None

        def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
            if not bounded or self.answer_timeout is None or kwargs.get("timeout") or len(args) > 1:
                return super().wait(gen, *args, **kwargs)
            try:
                return super().wait(gen, *args, timeout=self.answer_timeout, **kwargs)
            except psycopg.OperationalError as error:
                if wait_timeout is None or not isinstance(error, wait_timeout):
                    raise
                # The server's state is unknown: this connection is unusable.
                self.pgconn.finish()
                raise psycopg.OperationalError(
                    f"the server sent no answer for {self.answer_timeout:g} s "
                    "(network stall or a hung server); the connection was closed"
                ) from None

    _CLASS["class"] = _GuardedConnection
    return _GuardedConnection
