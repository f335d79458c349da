"""Initial schema: content-addressed blobs, snapshots, entries; names, versions, tags.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

HASH = sa.String(64)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("hash", HASH, nullable=False),
        sa.Column("value_type", sa.String(8), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_blobs"),
        sa.UniqueConstraint("hash", name="uq_blobs_hash"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "snapshots",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("hash", HASH, nullable=False),
        sa.Column("key_count", sa.Integer, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_snapshots"),
        sa.UniqueConstraint("hash", name="uq_snapshots_hash"),
        sqlite_autoincrement=True,
    )
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
    op.create_table(
        "names",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("head", sa.Integer, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_names"),
        sa.UniqueConstraint("name", name="uq_names_name"),
    )
    op.create_table(
        "versions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name_id", ID, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("snapshot_id", ID, nullable=False),
        sa.Column("parent", sa.Integer, nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("author", sa.Text, nullable=True),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_versions"),
        sa.ForeignKeyConstraint(["name_id"], ["names.id"], name="fk_versions_name_id_names"),
        sa.ForeignKeyConstraint(
            ["snapshot_id"], ["snapshots.id"], name="fk_versions_snapshot_id_snapshots"
        ),
        sa.UniqueConstraint("name_id", "number", name="uq_versions_name_id_number"),
    )
    op.create_index("ix_versions_snapshot_id", "versions", ["snapshot_id"])
    op.create_table(
        "tags",
        sa.Column("name_id", ID, nullable=False),
        sa.Column("tag", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("name_id", "tag", name="pk_tags"),
        sa.ForeignKeyConstraint(
            ["name_id", "version"],
            ["versions.name_id", "versions.number"],
            name="fk_tags_name_id_version_versions",
        ),
    )
    op.create_table(
        "tag_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name_id", ID, nullable=False),
        sa.Column("tag", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("previous_version", sa.Integer, nullable=True),
        sa.Column("moved_at", WHEN, nullable=False),
        sa.Column("author", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tag_events"),
        sa.ForeignKeyConstraint(["name_id"], ["names.id"], name="fk_tag_events_name_id_names"),
    )
    op.create_index("ix_tag_events_name_id_tag", "tag_events", ["name_id", "tag"])


def downgrade() -> None:
    for table in ("tag_events", "tags", "versions", "names", "entries", "snapshots", "blobs"):
        op.drop_table(table)
