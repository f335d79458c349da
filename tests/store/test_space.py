"""gc(vacuum=True) gives the space of pruned history back, on both backends."""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import string
from contextlib import closing
from pathlib import Path

import pytest
import sqlalchemy as sa
from store_testkit import expected_snapshot

from msgflux.store import InvalidInputError, StateStore, engine


def _big_history(store: StateStore, versions: int = 120) -> dict[int, dict[str, str]]:
    """Versions each carrying a fresh 20 KB value: pruning most of them frees most pages."""
    rng = random.Random(3)
    saved: dict[int, dict[str, str]] = {}
    for step in range(versions):
        state = {
            "prompt": "".join(rng.choices(string.ascii_letters, k=20_000)),
            "shared": "Be brief.",
            "step": str(step),
        }
        saved[store.save("p", state).number] = state
    return saved


def _file_size(path: Path) -> int:
    return sum(
        Path(f"{path}{suffix}").stat().st_size
        for suffix in ("", "-wal")
        if Path(f"{path}{suffix}").exists()
    )


def test_gc_with_vacuum_shrinks_the_sqlite_file_and_keeps_every_version(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    with StateStore(path) as store:
        saved = _big_history(store)
        store.tag("p", 3, "production")
        store.prune("p", keep_last=5)
        grown = _file_size(path)
        plain = store.gc()
        # gc alone deletes rows but keeps their pages: the file does not shrink.
        assert plain.blobs > 0 and plain.bytes_before is None and plain.bytes_after is None
        assert _file_size(path) >= grown * 0.9
        vacuumed = store.gc(vacuum=True)
        assert (vacuumed.snapshots, vacuumed.blobs) == (0, 0)
        assert vacuumed.bytes_before is not None and vacuumed.bytes_after is not None
        assert vacuumed.bytes_after == _file_size(path)
        assert vacuumed.bytes_after < vacuumed.bytes_before / 5
        assert _file_size(path) < grown / 5
        kept = [version.number for version in store.log("p")]
        assert kept == [120, 119, 118, 117, 116, 3]
        for number in kept:
            assert store.load("p", number) == saved[number]
            assert store.get("p", number).snapshot == expected_snapshot(saved[number])
        assert store.verify().ok
        assert store.save("p", {"after": "vacuum"}).number == 121
        assert store.get("p").parent == 120


def test_gc_with_vacuum_on_both_backends_returns_sizes_and_keeps_content(store: StateStore) -> None:
    saved = _big_history(store, versions=40)
    store.prune("p", keep_last=3)
    result = store.gc(vacuum=True)
    assert result.snapshots > 0 and result.blobs > 0
    assert result.bytes_before is not None and result.bytes_after is not None
    assert result.bytes_after > 0
    if store.dialect == "sqlite":
        assert result.bytes_after < result.bytes_before / 3
    for number in (38, 39, 40):
        assert store.load("p", number) == saved[number]
    assert store.verify().ok
    assert store.gc(vacuum=True).blobs == 0  # a second run finds nothing and still works


def test_after_prune_and_gc_new_saves_reuse_the_freed_space(tmp_path: Path) -> None:
    # SQLite reuses freed pages after a plain gc(), without giving them back. (PostgreSQL
    # does too once (auto)vacuum has run, but only for rows no open transaction anywhere in
    # the database can still see, so on a shared server that is not a stable check: its
    # test below checks that the VACUUM ran on every table.)
    path = tmp_path / "reuse.db"
    with StateStore(path) as store:
        empty = _file_size(path)
        _big_history(store, versions=60)
        first_fill = _file_size(path) - empty
        store.prune("p", keep_last=1)
        store.gc()
        freed = _file_size(path)
        _big_history(store, versions=50)
        assert _file_size(path) - freed < first_fill / 2
        assert store.verify().ok


def test_gc_vacuum_must_be_a_bool(store: StateStore) -> None:
    store.save("p", {"a": "x"})
    with pytest.raises(InvalidInputError, match="vacuum must be True or False"):
        store.gc(vacuum="yes")  # type: ignore[arg-type]
    assert store.load("p") == {"a": "x"}


def test_postgres_vacuum_ran_on_the_stores_tables(postgres_url: str) -> None:
    with StateStore(postgres_url) as store:
        _big_history(store, versions=10)
        store.prune("p", keep_last=1)
        store.gc(vacuum=True)
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            vacuumed = set(
                connection.exec_driver_sql(
                    "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() "
                    "AND last_vacuum IS NOT NULL"
                ).scalars()
            )
            tables = set(
                connection.exec_driver_sql(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                    "AND tablename <> 'alembic_version'"
                ).scalars()
            )
    finally:
        engine.dispose()
    assert tables and tables <= vacuumed


def _save_many(path: str, count: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    with StateStore(path, lock_timeout=60) as store:
        numbers = [
            store.save("q", {"i": index, "text": f"writer {index}"}).number
            for index in range(count)
        ]
    queue.put(numbers)


def test_writers_wait_for_a_vacuum_and_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    with StateStore(path, lock_timeout=60) as store:
        _big_history(store, versions=150)
        store.prune("p", keep_last=2)
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        writer = context.Process(target=_save_many, args=(str(path), 200, queue))
        writer.start()
        for _ in range(3):
            store.gc(vacuum=True)
        numbers = queue.get(timeout=120)
        writer.join(timeout=60)
        assert writer.exitcode == 0
        assert numbers == list(range(1, 201))
        for version in store.log("q"):
            assert version.parent == (version.number - 1 if version.number > 1 else None)
            assert store.load("q", version.number) == {
                "i": version.number - 1,
                "text": f"writer {version.number - 1}",
            }
        assert store.verify().ok


def _page_size(path: Path) -> int:
    with closing(sqlite3.connect(path)) as raw:
        return int(raw.execute("PRAGMA page_size").fetchone()[0])


def test_a_new_sqlite_store_uses_large_pages_and_an_old_one_keeps_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # New files get SQLITE_PAGE_SIZE (values of a few KB leave less unused space
    # at the end of each page); a store made with 4 KiB pages keeps them, and
    # works as before: nothing rewrites a user's file to change its page size.
    new = tmp_path / "new.db"
    with StateStore(new) as store:
        store.save("pipeline", {"a": "x" * 3000})
    assert _page_size(new) == engine.SQLITE_PAGE_SIZE == 8192

    old = tmp_path / "old.db"
    monkeypatch.setattr(engine, "SQLITE_PAGE_SIZE", 4096)
    with StateStore(old) as store:
        store.save("pipeline", {"a": "one"})
    monkeypatch.undo()
    with StateStore(old) as store:
        store.save("pipeline", {"a": "two"})
        assert store.load("pipeline", 1) == {"a": "one"}
        assert store.load("pipeline") == {"a": "two"}
        assert store.verify().ok
    assert _page_size(old) == 4096
