"""Annotations (metadata added after a save) and the record of deleted and renamed names.

Adds the append-only tables ``annotations`` and ``name_events`` and their views
``state_annotations`` (name, version, key, value, annotated_at, author) and
``state_name_events`` (name, action, new_name, versions, happened_at, author).
``state_history.metadata`` needs no change: ``annotate`` merges into
``versions.metadata`` and records each key here.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)

VIEWS = {
    "state_annotations": """
        SELECT n.name AS name, a.version AS version, a.key AS key, a.value AS value,
               a.annotated_at AS annotated_at, a.author AS author
        FROM annotations a
        JOIN names n ON n.id = a.name_id
    """,
    "state_name_events": """
        SELECT e.name AS name, e.action AS action, e.new_name AS new_name,
               e.versions AS versions, e.happened_at AS happened_at, e.author AS author
        FROM name_events e
    """,
}


def upgrade() -> None:
    op.create_table(
        "annotations",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name_id", ID, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("annotated_at", WHEN, nullable=False),
        sa.Column("author", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_annotations"),
        sa.ForeignKeyConstraint(["name_id"], ["names.id"], name="fk_annotations_name_id_names"),
    )
    op.create_index("ix_annotations_name_id_version", "annotations", ["name_id", "version"])
    op.create_table(
        "name_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("new_name", sa.Text, nullable=True),
        sa.Column("versions", sa.Integer, nullable=False),
        sa.Column("happened_at", WHEN, nullable=False),
        sa.Column("author", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_name_events"),
    )
    for view, body in VIEWS.items():
        op.execute(f"CREATE VIEW {view} AS {body}")


def downgrade() -> None:
    for view in reversed(VIEWS):
        op.execute(f"DROP VIEW {view}")
    op.drop_table("name_events")
    op.drop_index("ix_annotations_name_id_version", table_name="annotations")
    op.drop_table("annotations")
