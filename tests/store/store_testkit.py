"""Shared helpers of the store tests: independent hashing, raw database access, table dumps.

The hashing helpers here deliberately do not import ``msgflux.store.hashing``:
they restate the documented rules with ``hashlib`` and ``json`` so a test fails
if the implementation drifts from the documentation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from msgflux import nn
from msgflux.store import StateStore

TABLES = (
    "names",
    "versions",
    "snapshots",
    "keys",
    "spans",
    "blobs",
    "tags",
    "tag_events",
    "tag_splits",
    "tag_policies",
    "tag_audit",
    "annotations",
    "name_events",
)
VIEWS = (
    "state_history",
    "state_values",
    "state_changes",
    "state_tags",
    "state_tag_history",
    "state_tag_policies",
    "state_tag_audit",
    "state_annotations",
    "state_name_events",
    "state_blame",
)


# -- the documented hashing rules, restated ------------------------------------------------


def canon(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def expected_value_hash(value: Any) -> str:
    return hashlib.sha256(canon(value)).hexdigest()


def expected_snapshot(state: Mapping[str, Any]) -> str:
    return hashlib.sha256(
        canon({key: expected_value_hash(value) for key, value in state.items()})
    ).hexdigest()


# -- SQL helpers -----------------------------------------------------------------------------


def sql(store: StateStore, text: str) -> str:
    """Write queries with ``?`` placeholders; PostgreSQL (psycopg) wants ``%s``."""
    return text.replace("?", "%s") if store.dialect == "postgresql" else text


def raw_engine(store: StateStore) -> sa.Engine:
    """A plain SQLAlchemy engine on the store's database, bypassing the store."""
    return sa.create_engine(store.url, poolclass=NullPool)


def execute(engine: sa.Engine, statement: str, params: Mapping[str, Any] | None = None) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text(statement), dict(params or {}))


def scalar(engine: sa.Engine, statement: str, params: Mapping[str, Any] | None = None) -> Any:
    with engine.connect() as connection:
        return connection.execute(sa.text(statement), dict(params or {})).scalar()


def count(engine: sa.Engine, table: str) -> int:
    return int(scalar(engine, f"SELECT count(*) FROM {table}"))


def dump(engine: sa.Engine) -> dict[str, list[str]]:
    """Every row of every table and view, as sorted text: compare before/after a refused write."""
    result: dict[str, list[str]] = {}
    with engine.connect() as connection:
        for relation in (*TABLES, *VIEWS, "alembic_version"):
            rows = connection.execute(sa.text(f"SELECT * FROM {relation}")).all()
            result[relation] = sorted(repr(tuple(row)) for row in rows)
    return result


def dump_store(store: StateStore) -> dict[str, list[str]]:
    engine = raw_engine(store)
    try:
        return dump(engine)
    finally:
        engine.dispose()


# -- modules of the README -------------------------------------------------------------------


class Analyzer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.instructions = nn.Parameter("Be helpful and concise", "system_prompt")
        self.register_buffer("expected_output", "JSON format")


class Retriever(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query_template = nn.Parameter("Find: {q}", "template")
        self.register_buffer("top_k", 5)


class Pipeline(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("flux", "preprocess -> analyze")
        self.analyzer = Analyzer()
        self.retriever = Retriever()

    def forward(self, x: Any, **kwargs: Any) -> Any:
        return x + " | " + self.analyzer.instructions


# -- bundles -----------------------------------------------------------------------------------


def bundle_document(path: Any) -> dict[str, Any]:
    """A bundle file (any format) as one version-1 document, to inspect or tamper with."""
    from msgflux.store import _bundle

    return _bundle.document(_bundle.read(path)())


def bundle_records(path: Any) -> list[dict[str, Any]]:
    """The records of a JSON Lines (version 2) bundle, header and end included."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_records(path: Any, records: list[dict[str, Any]]) -> None:
    """Write records as a JSON Lines bundle, fixing the end record's count."""
    body = [record for record in records[1:] if record.get("kind") != "end"]
    lines = [records[0], *body, {"kind": "end", "records": len(body)}]
    with open(path, "w", encoding="utf-8") as handle:
        for record in lines:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
