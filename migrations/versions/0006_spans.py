"""Key spans: storage that grows with what changed, not with the number of keys.

Replaces ``entries`` (one row per key of every snapshot) with ``keys`` (each
key's text once per name) and ``spans`` ("key K had value B at position P from
version SINCE until version UNTIL"), as described in ``store/schema.py``.
``state_values`` keeps its columns and rows and is computed from spans.
``state_changes`` is computed from spans too and gains ``against_version``: the
parent, or, when the parent was pruned, the nearest surviving ancestor, which
the rows then compare with (as ``StateStore.diff`` does; before this revision
such a version showed every key as added). ``state_blame`` is new.

The issue that asked for this change called it revision 0003; 0004 and 0005
had landed first, so it follows them (a store at 0005 must get it too).

Upgrade: for every name, walk its surviving versions in number order and open
or close a span wherever a key's value or position differs from the previous
surviving version. Downgrade rebuilds ``entries`` from the spans, one row per
key of every snapshot still used by a version. Both run in the migration's one
transaction (``store/migrate.py``); a crash leaves the store as it was.

Revision ID: 0006
Revises: 0005
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_BATCH = 5_000

# The value of each key of version v: the span of that key with the greatest
# SINCE <= v, if it has not ended by v. One index seek per key of the name.
# "{span_join}" is CROSS JOIN on SQLite, which keeps keys outside spans in the
# loop nest (else the planner may scan every span of the name).
_AT = """
    JOIN keys k ON k.name_id = v.name_id
    {span_join} spans s ON s.name_id = v.name_id AND s.key_id = k.id
        AND s.since = (SELECT MAX(x.since) FROM spans x
                       WHERE x.name_id = v.name_id AND x.key_id = k.id AND x.since <= v.number)
        AND (s.until IS NULL OR s.until > v.number)
"""

VIEWS = {
    "state_values": f"""
        SELECT n.name AS name, v.number AS version, k.key AS key, b.text AS value,
               b.value_type AS value_type, b.hash AS value_hash
        FROM versions v
        JOIN names n ON n.id = v.name_id
        {_AT}
        JOIN blobs b ON b.id = s.blob_id
    """,
    # Against the parent version, named in against_version. A parent is always
    # the version saved just before (the head at the time), so a version's own
    # changes are exactly the spans that open or close at its number. If the
    # parent was pruned, against the nearest surviving ancestor instead (as
    # StateStore.diff does), both sides read from spans; a version with no
    # earlier surviving version shows every key as added (against_version NULL).
    "state_changes": f"""
        SELECT n.name AS name, v.number AS version, k.key AS key,
               CASE WHEN o.key_id IS NULL THEN 'added'
                    WHEN s.key_id IS NULL THEN 'removed' ELSE 'changed' END AS change,
               ob.text AS old_value, nb.text AS new_value, v.parent AS against_version
        FROM versions v
        JOIN names n ON n.id = v.name_id
        JOIN versions pv ON pv.name_id = v.name_id AND pv.number = v.parent
        JOIN keys k ON k.name_id = v.name_id
        LEFT JOIN spans s ON s.name_id = v.name_id AND s.key_id = k.id AND s.since = v.number
        LEFT JOIN spans o ON o.name_id = v.name_id AND o.key_id = k.id AND o.until = v.number
            AND o.since = (SELECT MAX(x.since) FROM spans x
                           WHERE x.name_id = v.name_id AND x.key_id = k.id
                             AND x.since < v.number)
        LEFT JOIN blobs nb ON nb.id = s.blob_id
        LEFT JOIN blobs ob ON ob.id = o.blob_id
        WHERE (s.key_id IS NOT NULL OR o.key_id IS NOT NULL)
          AND (s.key_id IS NULL OR o.key_id IS NULL OR s.blob_id <> o.blob_id)
        UNION ALL
        SELECT n.name AS name, v.number AS version, k.key AS key,
               CASE WHEN o.key_id IS NULL THEN 'added'
                    WHEN s.key_id IS NULL THEN 'removed' ELSE 'changed' END AS change,
               ob.text AS old_value, nb.text AS new_value, a.number AS against_version
        FROM versions v
        JOIN names n ON n.id = v.name_id
        JOIN versions a ON a.name_id = v.name_id
            AND a.number = (SELECT MAX(x.number) FROM versions x
                            WHERE x.name_id = v.name_id AND x.number < v.number)
        JOIN keys k ON k.name_id = v.name_id
        LEFT JOIN spans s ON s.name_id = v.name_id AND s.key_id = k.id
            AND s.since = (SELECT MAX(y.since) FROM spans y
                           WHERE y.name_id = v.name_id AND y.key_id = k.id
                             AND y.since <= v.number)
            AND (s.until IS NULL OR s.until > v.number)
        LEFT JOIN spans o ON o.name_id = v.name_id AND o.key_id = k.id
            AND o.since = (SELECT MAX(z.since) FROM spans z
                           WHERE z.name_id = v.name_id AND z.key_id = k.id
                             AND z.since <= a.number)
            AND (o.until IS NULL OR o.until > a.number)
        LEFT JOIN blobs nb ON nb.id = s.blob_id
        LEFT JOIN blobs ob ON ob.id = o.blob_id
        WHERE NOT EXISTS (SELECT 1 FROM versions pv
                          WHERE pv.name_id = v.name_id AND pv.number = v.parent)
          AND (s.key_id IS NOT NULL OR o.key_id IS NOT NULL)
          AND (s.key_id IS NULL OR o.key_id IS NULL OR s.blob_id <> o.blob_id)
        UNION ALL
        SELECT n.name AS name, v.number AS version, k.key AS key, 'added' AS change,
               NULL AS old_value, b.text AS new_value, NULL AS against_version
        FROM versions v
        JOIN names n ON n.id = v.name_id
        {_AT}
        JOIN blobs b ON b.id = s.blob_id
        WHERE NOT EXISTS (SELECT 1 FROM versions x
                          WHERE x.name_id = v.name_id AND x.number < v.number)
    """,
    # For each key of each version, the earliest surviving version since which
    # the key has held its current value.
    "state_blame": f"""
        SELECT n.name AS name, v.number AS version, k.key AS key,
               (SELECT MIN(f.number) FROM versions f
                WHERE f.name_id = v.name_id AND f.number >= s.origin
                  AND f.number <= v.number) AS since_version
        FROM versions v
        JOIN names n ON n.id = v.name_id
        {_AT}
    """,
}

# The bodies from revision 0002 (restored by downgrade).
OLD_VIEWS = {
    "state_values": """
        SELECT n.name AS name, v.number AS version, e.key AS key, b.text AS value,
               b.value_type AS value_type, b.hash AS value_hash
        FROM versions v
        JOIN names n ON n.id = v.name_id
        JOIN entries e ON e.snapshot_id = v.snapshot_id
        JOIN blobs b ON b.id = e.blob_id
    """,
    "state_changes": """
        SELECT n.name AS name, v.number AS version, e.key AS key,
               CASE WHEN pe.key IS NULL THEN 'added' ELSE 'changed' END AS change,
               pb.text AS old_value, b.text AS new_value
        FROM versions v
        JOIN names n ON n.id = v.name_id
        JOIN entries e ON e.snapshot_id = v.snapshot_id
        JOIN blobs b ON b.id = e.blob_id
        LEFT JOIN versions pv ON pv.name_id = v.name_id AND pv.number = v.parent
        LEFT JOIN entries pe ON pe.snapshot_id = pv.snapshot_id AND pe.key = e.key
        LEFT JOIN blobs pb ON pb.id = pe.blob_id
        WHERE pe.key IS NULL OR pe.blob_id <> e.blob_id
        UNION ALL
        SELECT n.name AS name, v.number AS version, pe.key AS key, 'removed' AS change,
               pb.text AS old_value, NULL AS new_value
        FROM versions v
        JOIN names n ON n.id = v.name_id
        JOIN versions pv ON pv.name_id = v.name_id AND pv.number = v.parent
        JOIN entries pe ON pe.snapshot_id = pv.snapshot_id
        JOIN blobs pb ON pb.id = pe.blob_id
        WHERE NOT EXISTS (
            SELECT 1 FROM entries ce WHERE ce.snapshot_id = v.snapshot_id AND ce.key = pe.key
        )
    """,
}


def _create_spans() -> None:
    op.create_table(
        "keys",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name_id", ID, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_keys"),
        sa.ForeignKeyConstraint(["name_id"], ["names.id"], name="fk_keys_name_id_names"),
        sa.UniqueConstraint("name_id", "key", name="uq_keys_name_id_key"),
    )
    op.create_table(
        "spans",
        sa.Column("name_id", ID, nullable=False),
        sa.Column("key_id", ID, nullable=False),
        sa.Column("since", sa.Integer, nullable=False),
        sa.Column("until", sa.Integer, nullable=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("blob_id", ID, nullable=False),
        sa.Column("origin", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("name_id", "key_id", "since", name="pk_spans"),
        sa.ForeignKeyConstraint(["key_id"], ["keys.id"], name="fk_spans_key_id_keys"),
        sa.ForeignKeyConstraint(["blob_id"], ["blobs.id"], name="fk_spans_blob_id_blobs"),
        sqlite_with_rowid=False,
    )


class _Walk:
    """The spans of one name, built by stepping through its versions in number order."""

    def __init__(self, bind: Any, name_id: int) -> None:
        self.bind = bind
        self.name_id = name_id
        self.key_ids: dict[str, int] = {}
        self.open: dict[str, list[int]] = {}  # key -> [since, position, blob_id, origin]
        self.rows: list[dict[str, Any]] = []

    def _end(self, key: str, until: int | None) -> None:
        since, position, blob_id, origin = self.open.pop(key)
        self.rows.append(
            {
                "name_id": self.name_id,
                "key_id": self.key_ids[key],
                "since": since,
                "until": until,
                "position": position,
                "blob_id": blob_id,
                "origin": origin,
            }
        )

    def step(self, number: int, content: dict[str, tuple[int, int]]) -> None:
        for key in [key for key in self.open if key not in content]:
            self._end(key, number)
        for key, (position, blob_id) in content.items():
            span = self.open.get(key)
            if span is not None and span[1] == position and span[2] == blob_id:
                continue
            origin = number
            if span is not None:
                origin = span[3] if span[2] == blob_id else number
                self._end(key, number)
            if key not in self.key_ids:
                self.key_ids[key] = self.bind.execute(
                    sa.insert(_KEYS).values(name_id=self.name_id, key=key).returning(_KEYS.c.id)
                ).scalar_one()
            self.open[key] = [number, position, blob_id, origin]
        if len(self.rows) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.bind.execute(sa.insert(_SPANS), self.rows)
            self.rows = []

    def finish(self) -> None:
        for key in list(self.open):
            self._end(key, None)
        self.flush()


_KEYS = sa.table("keys", sa.column("id"), sa.column("name_id"), sa.column("key"))
_SPANS = sa.table(
    "spans",
    *(
        sa.column(c)
        for c in ("name_id", "key_id", "since", "until", "position", "blob_id", "origin")
    ),
)


def _fill_spans(bind: Any) -> None:
    """Spans from entries: one walk over each name's surviving versions, in number order."""
    for (name_id,) in list(bind.execute(sa.text("SELECT id FROM names ORDER BY id"))):
        walk = _Walk(bind, name_id)
        current: int | None = None
        content: dict[str, tuple[int, int]] = {}
        versions = list(
            bind.execute(
                sa.text(
                    "SELECT number, snapshot_id FROM versions WHERE name_id = :n ORDER BY number"
                ),
                {"n": name_id},
            )
        )
        for number, snapshot_id in versions:
            if snapshot_id != current:
                content = {
                    key: (position, blob_id)
                    for key, position, blob_id in bind.execute(
                        sa.text(
                            "SELECT key, position, blob_id FROM entries WHERE snapshot_id = :s"
                        ),
                        {"s": snapshot_id},
                    )
                }
                current = snapshot_id
            walk.step(number, content)
        walk.finish()


def upgrade() -> None:
    bind = op.get_bind()
    for view in ("state_changes", "state_values"):
        op.execute(f"DROP VIEW {view}")
    _create_spans()
    _fill_spans(bind)
    op.drop_index("ix_entries_blob_id", table_name="entries")
    op.drop_table("entries")
    for view, body in VIEWS.items():
        op.execute(f"CREATE VIEW {view} AS {_for_dialect(body)}")


def _for_dialect(sql: str) -> str:
    sqlite = op.get_bind().dialect.name == "sqlite"
    return sql.replace("{span_join}", "CROSS JOIN" if sqlite else "JOIN")


def downgrade() -> None:
    bind = op.get_bind()
    for view in reversed(VIEWS):
        op.execute(f"DROP VIEW {view}")
    op.create_table(
        "entries",
        sa.Column("snapshot_id", ID, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("blob_id", ID, nullable=False),
        sa.PrimaryKeyConstraint("snapshot_id", "key", name="pk_entries"),
        sa.ForeignKeyConstraint(
            ["snapshot_id"], ["snapshots.id"], name="fk_entries_snapshot_id_snapshots"
        ),
        sa.ForeignKeyConstraint(["blob_id"], ["blobs.id"], name="fk_entries_blob_id_blobs"),
    )
    op.create_index("ix_entries_blob_id", "entries", ["blob_id"])
    # One row per key of every snapshot a version uses, read at one version of it.
    bind.execute(
        sa.text(
            _for_dialect(f"""
        INSERT INTO entries (snapshot_id, key, position, blob_id)
        SELECT v.snapshot_id, k.key, s.position, s.blob_id
        FROM versions v {_AT}
        WHERE v.id IN (SELECT MIN(u.id) FROM versions u GROUP BY u.snapshot_id)
    """)
        )
    )
    op.drop_table("spans")
    op.drop_table("keys")
    for view, body in OLD_VIEWS.items():
        op.execute(f"CREATE VIEW {view} AS {body}")
