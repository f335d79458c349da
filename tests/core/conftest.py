"""The modules of the README example, shared by the core tests."""

from __future__ import annotations

from typing import Any

import pytest

import msgflux.nn as nn


class Analyzer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.instructions = nn.Parameter("Be helpful and concise", "system_prompt")
        self.register_buffer("expected_output", "JSON format")


class Pipeline(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("flux", "preprocess -> analyze")
        self.analyzer = Analyzer()

    def forward(self, x: Any, **kwargs: Any) -> Any:
        return x + " | " + self.analyzer.instructions


class Echo(nn.Module):
    """Returns its input with its tag appended."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = nn.Parameter(tag, "tag")

    def forward(self, x: str) -> str:
        return x + self.tag


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
