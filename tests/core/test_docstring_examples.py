"""Every ``>>>`` example in the docstrings of ``msgflux`` (the core; the store: tests/store/test_store_docstrings.py) runs.

Each docstring runs as one doctest in a fresh namespace: its module's globals
plus the names ``msgflux/__init__.py`` promises (``mf``, ``nn``, ``Module``,
``Parameter``, the README Quickstart's ``Analyzer`` and ``Pipeline``, and a new
``pipeline = Pipeline()``), in a temporary working folder.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path
from typing import Any

import pytest
from core_testkit import Analyzer, Pipeline

import msgflux
import msgflux as mf
import msgflux.nn as nn


def _core_modules() -> list[Any]:
    names = ["msgflux"] + [
        info.name for info in pkgutil.walk_packages(msgflux.__path__, "msgflux.")
    ]
    # msgflux.store is the store/ folder (a symlink in the checkout); not part of this check.
    return [
        importlib.import_module(name)
        for name in names
        if name != "msgflux.store" and not name.startswith("msgflux.store.")
    ]


def _examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = []
    for module in _core_modules():
        found.extend(test for test in finder.find(module) if test.examples)
    return sorted(found, key=lambda test: test.name)


EXAMPLES = _examples()


def test_the_examples_are_found() -> None:
    # A finder that silently found nothing would make every other test here pass.
    assert sum(len(test.examples) for test in EXAMPLES) >= 40
    assert {
        "msgflux.serialization.save",
        "msgflux.serialization.load",
        "msgflux.nn.parameter.Parameter",
        "msgflux.nn.modules.module.Module",
        "msgflux.nn.modules._state.StateMixin.load_state_dict",
        "msgflux.nn.hooks.hook.Hook",
    } <= {test.name for test in EXAMPLES}


@pytest.mark.parametrize("test", EXAMPLES, ids=[test.name for test in EXAMPLES])
def test_docstring_example(
    test: doctest.DocTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    test.globs = {
        **test.globs,
        "mf": mf,
        "nn": nn,
        "Module": nn.Module,
        "Parameter": nn.Parameter,
        "Analyzer": Analyzer,
        "Pipeline": Pipeline,
        "pipeline": Pipeline(),
    }
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    output: list[str] = []
    result = runner.run(test, out=output.append)
    assert result.failed == 0, "".join(output)
