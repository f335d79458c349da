"""Shared fixtures (a store URL per backend) and the end-of-run figures.

``store_url`` runs a test on SQLite and, when ``MSGFLUX_TEST_POSTGRES_URL`` is
set (``.ci/run`` sets it), on PostgreSQL too, each test in a schema of its own
that is dropped afterwards. Without the variable the PostgreSQL case is
skipped with that reason; in CI it must run.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

POSTGRES_ENV = "MSGFLUX_TEST_POSTGRES_URL"


def postgres_base_url() -> str | None:
    """The server URL from the environment, or ``None``."""
    return os.environ.get(POSTGRES_ENV) or None


def _postgres_schema_url(base: str, schema: str) -> str:
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


#: The ordinary (non-superuser) role the stores under test connect as, as a
#: team's store should: StateStore.query refuses to run in a superuser session.
STORE_ROLE = "msgflux_test_store"


def postgres_admin_schema(base: str, schema: str) -> None:
    """Create ``schema`` owned by :data:`STORE_ROLE` (creating the role once)."""
    import sqlalchemy as sa

    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(
                "DO $$ BEGIN CREATE ROLE " + STORE_ROLE + " LOGIN; "
                "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            )
            connection.exec_driver_sql(f"CREATE SCHEMA {schema} AUTHORIZATION {STORE_ROLE}")
    finally:
        admin.dispose()


def postgres_store_url(base: str, schema: str) -> str:
    """The URL a store under test uses: :data:`STORE_ROLE`, ``search_path`` = ``schema``."""
    from sqlalchemy.engine import make_url

    url = make_url(base).set(username=STORE_ROLE, password=None)
    return _postgres_schema_url(url.render_as_string(hide_password=False), schema)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL for an ordinary role whose search_path is a fresh, private schema."""
    base = postgres_base_url()
    if base is None:
        pytest.skip(f"{POSTGRES_ENV} is not set: no PostgreSQL server for this run")
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:16]}"
    postgres_admin_schema(base, schema)
    try:
        yield postgres_store_url(base, schema)
    finally:
        admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store location on each backend: a SQLite file path or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url: str) -> Iterator[object]:
    """An open, empty StateStore on each backend."""
    from msgflux.store import StateStore

    opened = StateStore(store_url, lock_timeout=10)
    try:
        yield opened
    finally:
        opened.close()


# -- figures: what the reliability tests did, printed at the end of the run -----------------
# Tests put them on their reports (user_properties): under pytest-xdist the
# reports reach the controlling process, which runs these hooks and prints.

_FIGURES: dict[str, str] = {}
_COUNTS: dict[str, Counter[str]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "teardown":  # its user_properties hold every phase's
        return
    for key, value in report.user_properties:
        if key == "figure":
            _FIGURES[report.nodeid.split("::", 1)[-1]] = value
        elif key.startswith("count:"):
            _COUNTS.setdefault(key.removeprefix("count:"), Counter()).update(value)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES and not _COUNTS:
        return
    terminalreporter.section("reliability figures")
    for test, text in sorted(_FIGURES.items()):
        terminalreporter.write_line(f"{test}: {text}")
    for label, counts in sorted(_COUNTS.items()):
        parts = ", ".join(f"{part} {count}" for part, count in sorted(counts.items()))
        terminalreporter.write_line(f"{label}: {sum(counts.values())} ({parts})")
