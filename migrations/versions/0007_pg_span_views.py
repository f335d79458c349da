"""PostgreSQL: the span views seek one span per key instead of reading every span.

Revision 0006's views find a key's span at a version with
``s.since = (SELECT MAX(x.since) ...)``. SQLite turns that into one index seek
per key; PostgreSQL's planner read every span of each key and filtered them,
so ``state_values`` / ``state_changes`` / ``state_blame`` for one version cost
time in proportion to the length of the history. On PostgreSQL the same views
are recreated with ``JOIN LATERAL (... ORDER BY since DESC LIMIT 1)``: one
backward index seek per key. Columns, rows and meaning are unchanged (the
store's own reads made the same change in ``store/_sql.py``). SQLite: nothing
changes, both ways.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _latest(alias: str, at: str, strict: bool = False) -> str:
    """The span of key k with the greatest SINCE at or before (before if strict) ``at``."""
    return f"""(SELECT x.key_id, x.since, x.until, x.blob_id, x.origin FROM spans x
                WHERE x.name_id = v.name_id AND x.key_id = k.id
                  AND x.since {"<" if strict else "<="} {at}
                ORDER BY x.since DESC LIMIT 1) {alias}"""


_AT = f"""
    JOIN keys k ON k.name_id = v.name_id
    JOIN LATERAL {_latest("s", "v.number")} ON s.until IS NULL OR s.until > v.number
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
        LEFT JOIN LATERAL {_latest("o", "v.number", strict=True)} ON o.until = v.number
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
        LEFT JOIN LATERAL {_latest("s", "v.number")}
            ON s.until IS NULL OR s.until > v.number
        LEFT JOIN LATERAL {_latest("o", "a.number")}
            ON o.until IS NULL OR o.until > a.number
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

# Revision 0006's bodies on PostgreSQL, restored by downgrade.
_OLD_AT = """
    JOIN keys k ON k.name_id = v.name_id
    JOIN spans s ON s.name_id = v.name_id AND s.key_id = k.id
        AND s.since = (SELECT MAX(x.since) FROM spans x
                       WHERE x.name_id = v.name_id AND x.key_id = k.id AND x.since <= v.number)
        AND (s.until IS NULL OR s.until > v.number)
"""

OLD_VIEWS = {
    "state_values": f"""
        SELECT n.name AS name, v.number AS version, k.key AS key, b.text AS value,
               b.value_type AS value_type, b.hash AS value_hash
        FROM versions v
        JOIN names n ON n.id = v.name_id
        {_OLD_AT}
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
        {_OLD_AT}
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
        {_OLD_AT}
    """,
}


def _replace(views: dict[str, str]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for view in views:
        op.execute(f"DROP VIEW {view}")
    for view, body in views.items():
        op.execute(f"CREATE VIEW {view} AS {body}")


def upgrade() -> None:
    _replace(VIEWS)


def downgrade() -> None:
    _replace(OLD_VIEWS)
