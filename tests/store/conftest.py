"""Fixtures of the store tests; the helpers live in ``store_testkit``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from store_testkit import Pipeline, raw_engine

from msgflux.store import StateStore


@pytest.fixture
def db(store: StateStore) -> Iterator[sa.Engine]:
    """Direct access to the ``store`` fixture's database, bypassing the store."""
    engine = raw_engine(store)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline()
