"""The store's tables: the one definition of the schema, in SQLAlchemy Core metadata.

Alembic migrations in ``migrations/versions`` create exactly these tables (a
test compares them) plus the public SQL views ``state_history``,
``state_values``, ``state_changes``, ``state_blame``, ``state_tags`` and
``state_tag_history`` (and the serving and audit views), whose bodies live in
the migration that creates them.

Layout, content-addressed:

* ``blobs``: each distinct value once, keyed by its value hash.
* ``snapshots``: each distinct state dict once, keyed by its snapshot hash
  (the content itself is in the spans of the versions that use it).
* ``keys``: each key's text once per name.
* ``spans``: "key K of this name held value B at position P from version
  SINCE until version UNTIL" (UNTIL exclusive, NULL while it holds at the head).
* ``names`` / ``versions``: the linear history of each name; ``names.head``
  is the last version number handed out, so numbers are never reused.
* ``tags`` and the append-only ``tag_events``.
* Serving (``store/_guard.py``, ``store/_split.py``): ``tag_splits`` holds the
  weighted versions of a tag that splits traffic (no rows for a single-version
  tag, whose ``tags.version`` is all there is); ``tag_policies`` the guarded
  tags; ``tag_audit`` every policy change and refused move.

Why key spans (migration 0006; before it, ``entries`` held one row per key of
every snapshot). Optimisers save thousands of versions that each change one or
two keys of tens to thousands. With a row per key per version, disk and save
time grew with versions x keys: 762 MB for 50 keys x 100,000 versions, 73% of
it ``entries`` and its indexes. Three designs were weighed:

* key frames plus deltas (a full row set every N versions, changed keys in
  between): loads must read a frame and replay up to N deltas, and prune/gc
  must rewrite frames;
* per-version deltas only: a load of an old version replays history;
* key spans (as SQL:2011 system-versioned tables keep row history): a save
  closes the changed keys' spans and opens new ones, two rows per changed key
  however many keys there are; the value of every key at any version is one
  primary-key seek per key (the span with the greatest SINCE at or before it);
  blame is the span's ORIGIN, and what changed at a version is the spans that
  open or close there. Chosen.

Measured with ``python benchmarks/history.py`` (README, "Figures"): 500 keys x
1,000 one-key versions take 0.20x the bytes of ``git gc`` of the same history
as one TOML file; a one-key save writes one span row and updates one, at any
key count. ``spans`` is ``WITHOUT ROWID`` on SQLite: its primary key is the
row, stored once (a rowid table would store the key columns twice). Keys are
interned per name (small integers in every span; the text once). There is no
index on ``spans.blob_id``: gc finds unused values with one scan of spans.

Blob and snapshot ids are never reused (AUTOINCREMENT on SQLite, sequences on
PostgreSQL), so an id remembered by a writer can never name other content.

Only portable types are used (no SQLite- or PostgreSQL-only columns).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "metadata",
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
    "version_annotations",
    "name_events",
]

# Named constraints let alembic's batch mode (table copy on SQLite) find and alter them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

HASH = String(64)
# BigInteger ids on PostgreSQL, INTEGER (the rowid alias) on SQLite.
ID = BigInteger().with_variant(Integer(), "sqlite")

blobs = Table(
    "blobs",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("hash", HASH, nullable=False),
    Column("value_type", String(8), nullable=False),
    Column("text", Text, nullable=False),
    UniqueConstraint("hash"),
    sqlite_autoincrement=True,
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("hash", HASH, nullable=False),
    Column("key_count", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("hash"),
    sqlite_autoincrement=True,
)

# Keys interned per name: a key's text is stored once per history, and spans
# name it by a small integer.
keys = Table(
    "keys",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("name_id", ID, ForeignKey("names.id"), nullable=False),
    Column("key", Text, nullable=False),
    UniqueConstraint("name_id", "key"),
)

# "Key K of this name had value B at position P from version SINCE until
# version UNTIL (exclusive; NULL: still at the head)". ORIGIN is the version
# that gave the key this value (a span split only by a change of key order
# keeps it), which is what blame reports. WITHOUT ROWID on SQLite: the primary
# key is the row, stored once.
spans = Table(
    "spans",
    metadata,
    Column("name_id", ID, primary_key=True),
    Column("key_id", ID, ForeignKey("keys.id"), primary_key=True),
    Column("since", Integer, primary_key=True),
    Column("until", Integer, nullable=True),
    Column("position", Integer, nullable=False),
    Column("blob_id", ID, ForeignKey("blobs.id"), nullable=False),
    Column("origin", Integer, nullable=False),
    sqlite_with_rowid=False,
)

names = Table(
    "names",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("head", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("name"),
)

versions = Table(
    "versions",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("name_id", ID, ForeignKey("names.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("snapshot_id", ID, ForeignKey("snapshots.id"), nullable=False),
    Column("parent", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("message", Text, nullable=False),
    Column("author", Text, nullable=True),
    Column("metadata", Text, nullable=False),
    UniqueConstraint("name_id", "number"),
    Index(None, "snapshot_id"),
)

tags = Table(
    "tags",
    metadata,
    Column("name_id", ID, primary_key=True),
    Column("tag", Text, primary_key=True),
    Column("version", Integer, nullable=False),
    ForeignKeyConstraint(["name_id", "version"], ["versions.name_id", "versions.number"]),
)

tag_events = Table(
    "tag_events",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("name_id", ID, ForeignKey("names.id"), nullable=False),
    Column("tag", Text, nullable=False),
    Column("version", Integer, nullable=True),
    Column("previous_version", Integer, nullable=True),
    Column("moved_at", DateTime(timezone=True), nullable=False),
    Column("author", Text, nullable=True),
    # A split: canonical JSON {"version": weight, ...}; NULL for a single-version move.
    Column("weights", Text, nullable=True),
    Index(None, "name_id", "tag"),
)

# While a tag splits traffic: one row per version with its weight (they sum to 1);
# tags.version then holds the heaviest of them (what get() and tags() report).
tag_splits = Table(
    "tag_splits",
    metadata,
    Column("name_id", ID, primary_key=True),
    Column("tag", Text, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("weight", Float, nullable=False),
    ForeignKeyConstraint(["name_id", "version"], ["versions.name_id", "versions.number"]),
)

tag_policies = Table(
    "tag_policies",
    metadata,
    Column("name_id", ID, ForeignKey("names.id"), primary_key=True),
    Column("tag", Text, primary_key=True),
    Column("require_expected", Boolean, nullable=False),
    Column("condition", Text, nullable=True),
    Column("protected_at", DateTime(timezone=True), nullable=False),
    Column("author", Text, nullable=True),
)

tag_audit = Table(
    "tag_audit",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("name_id", ID, ForeignKey("names.id"), nullable=False),
    Column("tag", Text, nullable=False),
    Column("action", String(16), nullable=False),  # protect, unprotect, refused, forced-untag
    Column("version", Integer, nullable=True),
    Column("weights", Text, nullable=True),
    Column("reason", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("author", Text, nullable=True),
    Index(None, "name_id", "tag"),
)

# Scores and other metadata that arrive after a save (StateStore.annotate), one
# row per key, append-only; versions.metadata holds the merged current value.
# No foreign key to versions: the record outlives a prune.
version_annotations = Table(
    "annotations",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("name_id", ID, ForeignKey("names.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("key", Text, nullable=False),
    Column("value", Text, nullable=False),  # canonical JSON
    Column("annotated_at", DateTime(timezone=True), nullable=False),
    Column("author", Text, nullable=True),
    Index(None, "name_id", "version"),
)

# Whole histories deleted or renamed (StateStore.delete_name / rename), append-only.
# It names the history by text: a deleted name's row is gone.
name_events = Table(
    "name_events",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("action", String(16), nullable=False),  # "deleted" or "renamed"
    Column("new_name", Text, nullable=True),
    Column("versions", Integer, nullable=False),
    Column("happened_at", DateTime(timezone=True), nullable=False),
    Column("author", Text, nullable=True),
)
