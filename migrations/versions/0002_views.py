"""The public SQL views: state_history, state_values, state_changes, state_tags, state_tag_history.

Their columns are a documented contract (README, "SQL cookbook"); change them
only in a new migration. The bodies use portable SQL only, so one text serves
SQLite and PostgreSQL.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

VIEWS = {
    "state_history": """
        SELECT n.name AS name, v.number AS version, s.hash AS snapshot,
               v.parent AS parent_version, v.created_at AS created_at, v.message AS message,
               v.author AS author, v.metadata AS metadata, s.key_count AS key_count
        FROM versions v
        JOIN names n ON n.id = v.name_id
        JOIN snapshots s ON s.id = v.snapshot_id
    """,
    "state_values": """
        SELECT n.name AS name, v.number AS version, e.key AS key, b.text AS value,
               b.value_type AS value_type, b.hash AS value_hash
        FROM versions v
        JOIN names n ON n.id = v.name_id
        JOIN entries e ON e.snapshot_id = v.snapshot_id
        JOIN blobs b ON b.id = e.blob_id
    """,
    # Against the parent version; a version whose parent was pruned shows all
    # its keys as added.
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
    "state_tags": """
        SELECT n.name AS name, t.tag AS tag, t.version AS version
        FROM tags t
        JOIN names n ON n.id = t.name_id
    """,
    "state_tag_history": """
        SELECT n.name AS name, te.tag AS tag, te.version AS version,
               te.previous_version AS previous_version, te.moved_at AS moved_at,
               te.author AS author
        FROM tag_events te
        JOIN names n ON n.id = te.name_id
    """,
}


def upgrade() -> None:
    for view, body in VIEWS.items():
        op.execute(f"CREATE VIEW {view} AS {body}")


def downgrade() -> None:
    for view in reversed(VIEWS):
        op.execute(f"DROP VIEW {view}")
