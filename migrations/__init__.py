"""Alembic migrations of the store's schema, shipped inside the package.

``StateStore`` runs them on open (see ``msgflux/store/migrate.py``). To write a
new one: change ``store/schema.py``, then add ``versions/NNNN_what.py`` with
``down_revision`` set to the current head, written with ``op.batch_alter_table``
so that it also runs on SQLite; ``tests/store/test_migrations.py`` checks that
the migrated schema equals ``schema.metadata`` and that there is a single head.
"""
