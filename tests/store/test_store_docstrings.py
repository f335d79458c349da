"""Every ``>>>`` example in the store's docstrings runs (the core's: tests/core)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import msgflux.store


def _examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    names = [
        info.name
        for info in pkgutil.walk_packages(msgflux.store.__path__, "msgflux.store.")
        if not info.name.startswith("msgflux.store.migrations")
        and not info.name.endswith("__main__")  # running it is the CLI
    ]
    found = []
    for name in ["msgflux.store", *names]:
        module = importlib.import_module(name)
        found += [test for test in finder.find(module) if test.examples]
    return found


EXAMPLES = _examples()


def test_the_store_has_docstring_examples() -> None:
    assert EXAMPLES, "no >>> example found: the finder is broken"


@pytest.mark.parametrize("test", EXAMPLES, ids=lambda test: test.name)
def test_docstring_example_runs(test: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0, f"{test.name}: {runner.failures} of {len(test.examples)} failed"
