"""Serving: traffic splits, guarded tags and their audit record.

Adds ``tag_splits``, ``tag_policies``, ``tag_audit`` and ``tag_events.weights``;
``state_tags`` gains a ``weight`` column (1 for a single-version tag, one row
per version of a split), ``state_tag_history`` a ``weights`` column (JSON of
a split, NULL otherwise); new views ``state_tag_policies`` and
``state_tag_audit``.

Revision ID: 0004
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)

VIEWS = {
    "state_tags": """
        SELECT n.name AS name, t.tag AS tag, COALESCE(s.version, t.version) AS version,
               COALESCE(s.weight, 1.0) AS weight
        FROM tags t
        JOIN names n ON n.id = t.name_id
        LEFT JOIN tag_splits s ON s.name_id = t.name_id AND s.tag = t.tag
            AND EXISTS (SELECT 1 FROM tag_splits own WHERE own.name_id = t.name_id
                        AND own.tag = t.tag AND own.version = t.version)
    """,
    "state_tag_history": """
        SELECT n.name AS name, te.tag AS tag, te.version AS version,
               te.previous_version AS previous_version, te.moved_at AS moved_at,
               te.author AS author, te.weights AS weights
        FROM tag_events te
        JOIN names n ON n.id = te.name_id
    """,
    "state_tag_policies": """
        SELECT n.name AS name, p.tag AS tag, p.require_expected AS require_expected,
               p.condition AS condition, p.protected_at AS protected_at, p.author AS author
        FROM tag_policies p
        JOIN names n ON n.id = p.name_id
    """,
    "state_tag_audit": """
        SELECT n.name AS name, a.tag AS tag, a.action AS action, a.version AS version,
               a.weights AS weights, a.reason AS reason, a.at AS at, a.author AS author
        FROM tag_audit a
        JOIN names n ON n.id = a.name_id
    """,
}

# The bodies these views had before this revision (restored by downgrade).
PREVIOUS_VIEWS = {
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
    for view in PREVIOUS_VIEWS:
        op.execute(f"DROP VIEW {view}")
    with op.batch_alter_table("tag_events") as batch:
        batch.add_column(sa.Column("weights", sa.Text, nullable=True))
    op.create_table(
        "tag_splits",
        sa.Column("name_id", ID, nullable=False),
        sa.Column("tag", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("weight", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("name_id", "tag", "version", name="pk_tag_splits"),
        sa.ForeignKeyConstraint(
            ["name_id", "version"],
            ["versions.name_id", "versions.number"],
            name="fk_tag_splits_name_id_version_versions",
        ),
    )
    op.create_table(
        "tag_policies",
        sa.Column("name_id", ID, nullable=False),
        sa.Column("tag", sa.Text, nullable=False),
        sa.Column("require_expected", sa.Boolean, nullable=False),
        sa.Column("condition", sa.Text, nullable=True),
        sa.Column("protected_at", WHEN, nullable=False),
        sa.Column("author", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("name_id", "tag", name="pk_tag_policies"),
        sa.ForeignKeyConstraint(["name_id"], ["names.id"], name="fk_tag_policies_name_id_names"),
    )
    op.create_table(
        "tag_audit",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name_id", ID, nullable=False),
        sa.Column("tag", sa.Text, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("weights", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("author", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tag_audit"),
        sa.ForeignKeyConstraint(["name_id"], ["names.id"], name="fk_tag_audit_name_id_names"),
    )
    op.create_index("ix_tag_audit_name_id_tag", "tag_audit", ["name_id", "tag"])
    for view, body in VIEWS.items():
        op.execute(f"CREATE VIEW {view} AS {body}")


def downgrade() -> None:
    for view in reversed(VIEWS):
        op.execute(f"DROP VIEW {view}")
    for table in ("tag_audit", "tag_policies", "tag_splits"):
        op.drop_table(table)
    with op.batch_alter_table("tag_events") as batch:
        batch.drop_column("weights")
    for view, body in PREVIOUS_VIEWS.items():
        op.execute(f"CREATE VIEW {view} AS {body}")
