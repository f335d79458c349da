"""Writing commands: ``save``, ``checkout``, ``tag``, ``untag``, ``rollback``, ``annotate``,
``delete``, ``rename``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from msgflux.store._as_json import VERSION_SHAPE, version_json
from msgflux.store.cli._command import (
    EXPECT_TAG,
    META,
    NAME,
    PROG,
    VERSION,
    VERSION_OPTIONS,
    Context,
    arg,
    command,
    expected_head,
    metadata,
)
from msgflux.store.cli._output import Result
from msgflux.store.cli._read import state_text
from msgflux.store.errors import NameNotFound

if TYPE_CHECKING:
    from msgflux.store.api import StateStore

__all__: list[str] = []


# -- save and checkout ------------------------------------------------------------------------


@command(
    "save",
    "save a .toml/.json state dict file as the next version of NAME",
    calls="StateStore.save",
    creates=True,
    example='  msgflux-store save pipeline state.toml -m "shorter prompt" \\\n'
    "      --author ana --meta score=0.78 dataset=dev-v2 --expect-head 3\n"
    "  msgflux-store checkout pipeline latest - | sed s/4/8/ | "
    "msgflux-store save pipeline -",
    json=f'the saved version (the latest one if nothing changed) plus "created": bool and\n'
    f'  "changes": {{"changed", "added", "removed"}}; {VERSION_SHAPE}',
    arguments=[
        arg("name", metavar="NAME", help="the history (created if new)"),
        arg(
            "file",
            metavar="FILE",
            help="a .toml or .json state dict (msgflux.save), or - for stdin",
        ),
        *VERSION_OPTIONS,
        arg("-m", "--message", metavar="MSG", default="", help="what changed and why"),
        arg(
            "--format",
            choices=("toml", "json"),
            default=None,
            help="the format of stdin (FILE -): toml (default) or json",
        ),
        arg(
            "--same-keys",
            action="store_true",
            help="refuse the save if its keys differ from the latest version's",
        ),
    ],
)
def _save(ctx: Context) -> Result:
    args = ctx.args
    state = _read_state(ctx)  # before opening: a bad file creates no store
    _warn_tables(args, state, ctx.store)
    version = ctx.store.save(
        args.name,
        state,
        message=args.message or "",
        author=args.author,
        metadata=metadata(args),
        same_keys=args.same_keys,
        **ctx.given("expect_head", "expected_head"),
    )
    changes = version.changes
    data = {
        **version_json(version),
        "created": version.created,
        "changes": None
        if changes is None
        else {
            "changed": list(changes.changed),
            "added": list(changes.added),
            "removed": list(changes.removed),
        },
    }
    if not version.created:
        source = "stdin" if args.file == "-" else args.file
        annotated = (
            f"; its metadata was recorded as an annotation of {version.name}@{version.number}"
            if metadata(args)
            else ""
        )
        return Result(
            data=data,
            lines=[
                f"unchanged: {source} equals {version.name}@"
                f"{version.number}; no version was written{annotated}"
            ],
        )
    lines = [f"saved {version}"]
    if changes is not None:
        lines.append(f" {changes}")
    return Result(data=data, lines=lines)


def _read_state(ctx: Context) -> dict[str, Any]:
    """The state dict in FILE, or on stdin for ``-`` (``--format``, TOML by default)."""
    import msgflux
    from msgflux.serialization import loads

    if ctx.args.file == "-":
        return loads(sys.stdin.read(), ctx.args.format or "toml", "<stdin>")
    if ctx.args.format is not None:
        raise ctx.usage("--format is for '-' (stdin); a file's suffix names its format")
    return msgflux.load(ctx.args.file)


def _warn_tables(args: argparse.Namespace, state: dict[str, Any], store: StateStore) -> None:
    """A hand-written ``[generator]`` table is one dict-valued key, not ``generator.*`` keys."""
    if args.file != "-" and not str(args.file).lower().endswith(".toml"):
        return
    if args.file == "-" and (args.format or "toml") != "toml":
        return
    tables = [key for key, value in state.items() if isinstance(value, dict)]
    if not tables:
        return
    try:
        head = store.load(args.name)
    except NameNotFound:
        head = {}
    for key in tables:
        if isinstance(head.get(key), dict):
            continue
        dotted = sorted(other for other in head if other.startswith(key + "."))
        if not dotted:  # nothing to confuse it with: a dict-valued key is a fine state value
            continue
        hint = f"; {args.name} stores {len(dotted)} keys {key}.* instead"
        sys.stderr.write(
            f"{PROG}: note: [{key}] is a TOML table, saved as ONE dict-valued key {key!r}"
            f'{hint}. To keep separate keys write "{key}.field" = ... at the top level '
            "(as checkout does); --same-keys refuses a changed key set\n"
        )


@command(
    "checkout",
    "write a version as a .toml/.json state dict file",
    calls="StateStore.get + load, then msgflux.save",
    example="  msgflux-store checkout pipeline production state.toml\n"
    "  msgflux-store checkout pipeline 3 - --format json   # to stdout",
    json=f'{{"file": path, "version": version}}; {VERSION_SHAPE}',
    arguments=[
        NAME,
        VERSION,
        arg(
            "file",
            metavar="FILE",
            help="the .toml or .json file to write (replaced atomically), or - for stdout",
        ),
        arg(
            "--format",
            choices=("toml", "json"),
            default=None,
            help="the format on stdout (FILE -): toml (default) or json",
        ),
    ],
)
def _checkout(ctx: Context) -> Result:
    import msgflux

    args = ctx.args
    version = ctx.store.get(args.name, args.version)
    state = ctx.store.load(args.name, version.number)
    if args.file == "-":  # the file itself, also with --json
        return Result(
            text=state_text(state, args.format or "toml", f"{args.name}@{version.number}")
        )
    if args.format is not None:
        raise ctx.usage("--format is for '-' (stdout); a file's suffix names its format")
    msgflux.save(state, args.file)
    return Result(
        data={"file": str(args.file), "version": version_json(version)},
        lines=[f"wrote {version.name}@{version.number} ({len(state)} keys) to {args.file}"],
    )


# -- tags -------------------------------------------------------------------------------------


@command(
    "tag",
    "point TAG at a version of NAME",
    calls="StateStore.tag, then protect for --protect/--where",
    example="  msgflux-store tag pipeline 2 production",
    json=f"the tagged version; {VERSION_SHAPE}",
    arguments=[
        NAME,
        VERSION,
        arg("tag", metavar="TAG", help="the tag to create or move"),
        arg("--author", metavar="A", help="who moved it (kept in the tag history)"),
        EXPECT_TAG,
        arg(
            "--protect",
            action="store_true",
            help="then protect TAG: later moves need --expect (StateStore.protect)",
        ),
        arg(
            "--where",
            metavar="COND",
            help="then protect TAG with a condition on the target's metadata, e.g. "
            "'score>=0.8' (implies --protect)",
        ),
    ],
)
def _tag(ctx: Context) -> Result:
    args = ctx.args
    protect = args.protect or args.where is not None
    version = ctx.store.tag(
        args.name, args.version, args.tag, author=args.author, **ctx.given("expect", "expected")
    )
    if protect:
        ctx.store.protect(args.name, args.tag, where=args.where, author=args.author)
    guard = (
        f" (protected{f', where {args.where}' if args.where is not None else ''})"
        if protect
        else ""
    )
    return Result(
        data=version_json(version),
        lines=[f"tagged {version.name}@{version.number} as {args.tag}{guard}"],
    )


@command(
    "untag",
    "remove TAG from NAME",
    calls="StateStore.untag",
    example="  msgflux-store untag pipeline staging",
    json='{"name", "tag", "version": the version it pointed at}',
    arguments=[
        NAME,
        arg("tag", metavar="TAG", help="the tag to remove"),
        arg("--author", metavar="A", help="who removed it (kept in the tag history)"),
        arg(
            "--expect",
            type=expected_head,
            metavar="N",
            default=argparse.SUPPRESS,
            help="remove only if TAG points at version N",
        ),
        arg("--force", action="store_true", help="remove a protected tag (audited)"),
    ],
)
def _untag(ctx: Context) -> Result:
    args = ctx.args
    number = ctx.store.untag(
        args.name, args.tag, author=args.author, force=args.force, **ctx.given("expect", "expected")
    )
    return Result(
        data={"name": args.name, "tag": args.tag, "version": number},
        lines=[f"removed tag {args.tag} from {args.name} (it pointed at version {number})"],
    )


# -- more versions ----------------------------------------------------------------------------


@command(
    "rollback",
    "append a version equal to VERSION; history is kept",
    calls="StateStore.rollback",
    example='  msgflux-store rollback pipeline 1 -m "revert: scores dropped"',
    json=f"the new version (the head if it already had that content); {VERSION_SHAPE}",
    arguments=[
        NAME,
        arg(
            "version",
            metavar="VERSION",
            help="the version whose content comes back (number, tag, hash prefix)",
        ),
        *VERSION_OPTIONS,
        arg(
            "-m", "--message", metavar="MSG", default=None, help="default: 'rollback to version N'"
        ),
    ],
)
def _rollback(ctx: Context) -> Result:
    args = ctx.args
    before = ctx.store.log(args.name, limit=1)[0].number
    version = ctx.store.rollback(
        args.name,
        args.version,
        message=args.message,
        author=args.author,
        metadata=metadata(args),
        **ctx.given("expect_head", "expected_head"),
    )
    if version.number == before:
        line = f"unchanged: {args.name}@{before} already has the content of version {args.version}"
    else:
        line = f"rolled back: {version}"
    return Result(data=version_json(version), lines=[line])


@command(
    "annotate",
    "merge metadata (a score that came later) into a version; content and number stay",
    calls="StateStore.annotate",
    example="  msgflux-store annotate pipeline 7 --meta score=0.91 --author eval-bot\n"
    '  msgflux-store sql "SELECT * FROM state_annotations"',
    json=f"the annotated version; {VERSION_SHAPE}",
    arguments=[
        NAME,
        VERSION,
        arg(
            *META.flags,
            **{
                **META.options,
                "required": True,
                "help": "metadata to merge, e.g. score=0.91 (JSON if it parses, else a string)",
            },
        ),
        arg("--author", metavar="A", help="who annotated (kept in state_annotations)"),
    ],
)
def _annotate(ctx: Context) -> Result:
    args = ctx.args
    version = ctx.store.annotate(
        args.name, args.version, metadata=dict(args.meta), author=args.author
    )
    fields = " ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}"
        for key, value in args.meta
    )
    return Result(
        data=version_json(version), lines=[f"annotated {version.name}@{version.number}: {fields}"]
    )


# -- whole histories --------------------------------------------------------------------------


@command(
    "delete",
    "delete the whole history of NAME; refused while it has tags unless --force",
    calls="StateStore.delete_name",
    example="  msgflux-store delete scratch --yes\n"
    "  msgflux-store delete old-pipeline --force --yes && msgflux-store gc",
    json='{"name", "deleted_versions"}',
    arguments=[
        arg("name", metavar="NAME", help="the history to delete"),
        arg("--force", action="store_true", help="delete even if NAME has tags"),
        arg("--yes", action="store_true", help="do not ask (required when not on a terminal)"),
        arg("--author", metavar="A", help="who deleted (kept in state_name_events)"),
    ],
)
def _delete(ctx: Context) -> Result:
    args = ctx.args
    count = len(ctx.store.log(args.name))
    if not args.yes:
        if not sys.stdin.isatty():
            raise ctx.usage(f"deleting {args.name!r} needs --yes when not run on a terminal")
        sys.stderr.write(f"delete {args.name} and all its {count} versions? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return Result(lines=["not deleted"])
    count = ctx.store.delete_name(args.name, force=args.force, author=args.author)
    return Result(
        data={"name": args.name, "deleted_versions": count},
        lines=[f"deleted {args.name} ({count} versions); run `{PROG} gc` to reclaim their content"],
    )


@command(
    "rename",
    "rename a history; versions, tags and records follow",
    calls="StateStore.rename",
    example="  msgflux-store rename pipeline rag-pipeline",
    json='{"name", "new_name", "versions"}',
    arguments=[
        arg("name", metavar="NAME", help="the history to rename"),
        arg("new", metavar="NEW", help="its new name (must not exist)"),
        arg("--author", metavar="A", help="who renamed (kept in state_name_events)"),
    ],
)
def _rename(ctx: Context) -> Result:
    args = ctx.args
    count = ctx.store.rename(args.name, args.new, author=args.author)
    return Result(
        data={"name": args.name, "new_name": args.new, "versions": count},
        lines=[f"renamed {args.name} to {args.new} ({count} versions)"],
    )
