"""Setting up: ``init`` (create an empty store) and ``completion`` (a shell script)."""

from __future__ import annotations

import os

from msgflux.store.cli._command import Context, arg, command, missing_sqlite
from msgflux.store.cli._output import NO_JSON, Result

__all__: list[str] = []


@command(
    "init",
    "create an empty store (if missing) and say where it is",
    calls="StateStore(PATH_OR_URL), which creates it",
    creates=True,
    example="  msgflux-store init\n  msgflux-store --db runs/states.db init",
    json='{"store", "created", "schema"}',
)
def _init(ctx: Context) -> Result:
    from msgflux.store.engine import describe, resolve_url
    from msgflux.store.migrate import head_revision

    url = resolve_url(ctx.target)
    existed = missing_sqlite(ctx.target) is None
    ctx.store  # noqa: B018 -- opening creates and migrates it
    sqlite = url.get_backend_name() == "sqlite"
    where = os.path.abspath(str(url.database)) if sqlite else describe(url)
    said = "a store already exists at" if existed and sqlite else "initialised a store at"
    return Result(
        data={"store": where, "created": not existed, "schema": head_revision()},
        lines=[f"{said} {where} (schema {head_revision()})"],
    )


@command(
    "completion",
    "print a shell completion script (bash or zsh)",
    calls="none: shtab over this parser",
    example="  msgflux-store completion bash > ~/.local/share/bash-completion/completions/"
    "msgflux-store\n"
    '  msgflux-store completion zsh > "${fpath[1]}/_msgflux-store"',
    arguments=[arg("shell", choices=("bash", "zsh"), help="the shell")],
)
def _completion(ctx: Context) -> Result:
    import shtab

    from msgflux.store.cli import build_parser

    return Result(data=NO_JSON, text=shtab.complete(build_parser(), shell=ctx.args.shell))
