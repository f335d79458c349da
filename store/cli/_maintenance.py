"""Maintenance commands: ``verify``, ``prune``, ``gc`` and the schema's ``db upgrade`` and
``db current``."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from msgflux.store.cli._command import (
    EXIT_DIFFERENT,
    EXIT_OK,
    NAME,
    PROG,
    CliError,
    Context,
    arg,
    command,
    missing_sqlite,
    parent,
    positive,
)
from msgflux.store.cli._output import Result, busy, progress_bar
from msgflux.store.types import format_ranges

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__: list[str] = []


@command(
    "verify",
    "recompute every hash and check the database; exit 1 on problems",
    calls="StateStore.verify",
    example="  msgflux-store verify || echo damaged",
    json='{"ok": bool, "versions_checked", "snapshots_checked", "values_checked",\n'
    '   "problems": [{"kind", "message", "name", "version", "key"}, ...]}',
)
def _verify(ctx: Context) -> Result:
    store = ctx.store
    with progress_bar("verifying") as progress:
        report = store.verify(progress=progress)
    return Result(
        data={
            "ok": report.ok,
            "versions_checked": report.versions_checked,
            "snapshots_checked": report.snapshots_checked,
            "values_checked": report.blobs_checked,
            "problems": [
                {
                    "kind": problem.kind,
                    "message": problem.message,
                    "name": problem.name,
                    "version": problem.version,
                    "key": problem.key,
                }
                for problem in report.problems
            ],
        },
        lines=[str(report)],
        code=EXIT_OK if report.ok else EXIT_DIFFERENT,
    )


@command(
    "prune",
    "delete old untagged versions of NAME; their content stays until you run gc",
    calls="StateStore.prune",
    example="  msgflux-store prune pipeline --keep-last 20 --dry-run\n"
    "  msgflux-store prune pipeline --keep-last 20 && msgflux-store gc",
    json='{"name", "deleted": [version number, ...], "dry_run": bool}',
    arguments=[
        NAME,
        arg(
            "--keep-last",
            type=positive,
            metavar="N",
            required=True,
            help="keep the newest N versions (tagged versions are always kept)",
        ),
        arg("--dry-run", action="store_true", help="list what would be deleted; delete nothing"),
    ],
)
def _prune(ctx: Context) -> Result:
    args = ctx.args
    deleted = ctx.store.prune(args.name, keep_last=args.keep_last, dry_run=args.dry_run)
    noun = "version" if len(deleted) == 1 else "versions"
    if not deleted:
        line = f"nothing to prune: {args.name} has at most {args.keep_last} untagged old versions"
    elif args.dry_run:
        line = (
            f"would delete {noun} {format_ranges(deleted)} of {args.name} "
            f"({len(deleted)} {noun}; dry run, nothing deleted)"
        )
    else:
        line = (
            f"deleted {noun} {format_ranges(deleted)} of {args.name}; their content stays "
            f"until `{PROG} gc`"
        )
    return Result(
        data={"name": args.name, "deleted": deleted, "dry_run": args.dry_run}, lines=[line]
    )


@command(
    "gc",
    "delete content no version uses",
    calls="StateStore.gc",
    example="  msgflux-store gc\n  msgflux-store gc --vacuum   # and give the space back",
    json='{"snapshots": count, "values": count, "bytes_before": int|null, "bytes_after": int|null}',
    arguments=[
        arg(
            "--vacuum",
            action="store_true",
            help="then VACUUM: the SQLite file shrinks (writers wait meanwhile); plain "
            "VACUUM on PostgreSQL (StateStore.gc(vacuum=True))",
        )
    ],
)
def _gc(ctx: Context) -> Result:
    store = ctx.store
    with busy("collecting unused content..."):
        result = store.gc(vacuum=ctx.args.vacuum)
    lines = [f"removed {result.snapshots} unused snapshots and {result.blobs} unused values"]
    if result.bytes_before is not None and result.bytes_after is not None:
        lines.append(
            f"vacuumed: {result.bytes_before / 1e6:,.2f} MB -> {result.bytes_after / 1e6:,.2f} MB"
        )
    return Result(
        data={
            "snapshots": result.snapshots,
            "values": result.blobs,
            "bytes_before": result.bytes_before,
            "bytes_after": result.bytes_after,
        },
        lines=lines,
    )


# -- the schema -------------------------------------------------------------------------------

parent(
    "db",
    "schema migrations: db upgrade, db current",
    description="The store's schema revision (alembic), as in `optuna storage upgrade`.",
    example="  msgflux-store --db old.db db current\n  msgflux-store --db old.db db upgrade",
)

# Not through StateStore: opening one upgrades (or, with migrate=False, refuses) an old
# schema, and StateStore has no call that reports the revisions. The bare engine gets
# StateStore's own defaults (lock timeout, statement timeout, durability), read from it.


def _store_defaults() -> dict[str, Any]:
    from msgflux.store.api import StateStore

    return {
        name: parameter.default
        for name, parameter in inspect.signature(StateStore).parameters.items()
    }


def _engine(target: str) -> Engine:
    from msgflux.store.engine import create_store_engine, resolve_url

    defaults = _store_defaults()
    return create_store_engine(
        resolve_url(target),
        lock_timeout=defaults["lock_timeout"],
        durability=defaults["durability"],
        statement_timeout=defaults["statement_timeout"],
    )


@command(
    "db upgrade",
    "upgrade the schema to this release's head",
    calls="migrate.upgrade with StateStore's timeouts, as StateStore(PATH_OR_URL) does",
    example="  msgflux-store --db old.db db upgrade",
    json='{"store", "before": revision or null, "after": revision}',
)
def _db_upgrade(ctx: Context) -> Result:
    from msgflux.store.migrate import upgrade

    target = ctx.target
    engine = _engine(target)
    try:
        before, after = upgrade(engine, lock_timeout=_store_defaults()["lock_timeout"])
    finally:
        engine.dispose()
    line = (
        f"{target} is already at schema revision {after}"
        if before == after
        else f"upgraded {target} from schema revision {before or 'none (empty)'} to {after}"
    )
    return Result(data={"store": target, "before": before, "after": after}, lines=[line])


@command(
    "db current",
    "print the schema revision of the store and of this package (never upgrades)",
    calls="migrate.current_revision",
    example="  msgflux-store db current --json",
    json='{"store": revision or null, "package": revision, "up_to_date": bool}',
)
def _db_current(ctx: Context) -> Result:
    from msgflux.store.engine import read_transaction
    from msgflux.store.migrate import current_revision, head_revision

    target = ctx.target
    missing = missing_sqlite(target)
    if missing is not None:
        raise CliError(f"no store at {missing}")
    engine = _engine(target)
    try:
        revision = read_transaction(engine, "reading the schema revision", current_revision)
    finally:
        engine.dispose()
    head = head_revision()
    state = "up to date" if revision == head else f"run `{PROG} db upgrade`"
    return Result(
        data={"store": revision, "package": head, "up_to_date": revision == head},
        lines=[f"store:   {revision or 'none (empty database)'}", f"package: {head} ({state})"],
    )
