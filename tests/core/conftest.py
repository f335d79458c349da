"""Fixtures of the core tests: the README example's modules (defined in ``core_testkit``)."""

from __future__ import annotations

import pytest
from core_testkit import Analyzer, Echo, Pipeline


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline()


@pytest.fixture
def analyzer_cls() -> type[Analyzer]:
    return Analyzer


@pytest.fixture
def pipeline_cls() -> type[Pipeline]:
    return Pipeline


@pytest.fixture
def echo_cls() -> type[Echo]:
    return Echo
