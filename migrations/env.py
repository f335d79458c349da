"""Alembic environment: runs on the connection that ``msgflux.store.migrate`` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from msgflux.store.schema import metadata

config = context.config
connection = config.attributes.get("connection")


def _run(connection_) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection_,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:  # plain `alembic -x url=...` use, for people writing migrations
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("run alembic with -x url=DATABASE_URL")
    engine = create_engine(url)
    with engine.begin() as own_connection:
        _run(own_connection)
