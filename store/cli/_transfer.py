"""Transfer commands: ``export`` and ``import`` (bundle files), ``push`` and ``pull``
(store to store)."""

from __future__ import annotations

from msgflux.store.cli._command import Context, arg, command
from msgflux.store.cli._output import Result, busy, progress_bar
from msgflux.store.types import format_ranges

__all__: list[str] = []

_NAMES = arg("names", metavar="NAME", nargs="*", help="default: every name")
_COPIED = '{"names": {name: [copied version number, ...]}}'


def _copied(copied: dict[str, list[int]], verb: str) -> Result:
    lines = [] if any(copied.values()) else [f"nothing to {verb}: already up to date"]
    lines += [
        f"{name}: {verb}ed versions {format_ranges(numbers)}"
        for name, numbers in copied.items()
        if numbers
    ]
    return Result(data={"names": copied}, lines=lines)


@command(
    "export",
    "write whole histories to a bundle file, JSON Lines",
    calls="StateStore.export_bundle",
    example="  msgflux-store export backup.json\n  msgflux-store export one.json pipeline",
    json='{"file", "names": {name: number of versions}}',
    arguments=[arg("file", metavar="FILE", help="the bundle to write (.json or .toml)"), _NAMES],
)
def _export(ctx: Context) -> Result:
    args = ctx.args
    store = ctx.store
    with progress_bar("exporting") as progress:
        counts = store.export_bundle(args.file, args.names or None, progress=progress)
    return Result(
        data={"file": str(args.file), "names": counts},
        lines=[f"exported {sum(counts.values())} versions of {len(counts)} names to {args.file}"],
    )


@command(
    "import",
    "import a bundle written by export, fast-forward only",
    calls="StateStore.import_bundle",
    creates=True,
    example="  msgflux-store --db other.db import backup.json",
    json='{"names": {name: [imported version number, ...]}}',
    arguments=[arg("file", metavar="FILE", help="a bundle written by export")],
)
def _import(ctx: Context) -> Result:
    store = ctx.store
    with progress_bar("importing") as progress:
        copied = store.import_bundle(ctx.args.file, progress=progress)
    return _copied(copied, "import")


@command(
    "push",
    "copy the versions another store lacks to it, fast-forward only",
    calls="StateStore.copy_to(StateStore(TO))",
    example="  msgflux-store push --to postgresql://ci@db/states pipeline",
    json=_COPIED,
    arguments=[
        arg(
            "--to",
            metavar="PATH_OR_URL",
            required=True,
            help="the other store (created if a missing SQLite file)",
        ),
        _NAMES,
    ],
)
def _push(ctx: Context) -> Result:
    store = ctx.store
    other = ctx.open(ctx.args.to, create=True)
    with busy(f"pushing to {ctx.args.to}..."):
        copied = store.copy_to(other, ctx.args.names or None)
    return _copied(copied, "push")


@command(
    "pull",
    "copy the versions this store lacks from another one",
    calls="StateStore(FROM).copy_to(this store)",
    creates=True,
    example="  msgflux-store pull --from postgresql://ci@db/states pipeline",
    json=_COPIED,
    arguments=[
        arg(
            "--from",
            dest="source",
            metavar="PATH_OR_URL",
            required=True,
            help="the store to copy from",
        ),
        _NAMES,
    ],
)
def _pull(ctx: Context) -> Result:
    other = ctx.open(ctx.args.source)  # before this store: a missing source creates nothing
    store = ctx.store
    with busy(f"pulling from {ctx.args.source}..."):
        copied = other.copy_to(store, ctx.args.names or None)
    return _copied(copied, "pull")
