"""Reading history: prefix sub-trees, rollback, diff and log."""

from __future__ import annotations

import pytest
from store_testkit import Pipeline

from msgflux.errors import StateDictError
from msgflux.store import InvalidInputError, NameNotFound, StateDiff, StateStore


@pytest.fixture
def saved(store: StateStore, pipeline: Pipeline) -> StateStore:
    store.save("pipeline", pipeline, message="baseline")
    pipeline.analyzer.instructions.data = "Answer in one sentence."
    pipeline.retriever.query_template.data = "Search: {q}"
    pipeline.retriever.top_k = 8
    store.save("pipeline", pipeline, message="tuned")
    return store


# -- prefix sub-trees ------------------------------------------------------------------------------


def test_load_with_a_prefix_returns_only_that_branch(saved: StateStore) -> None:
    assert saved.load("pipeline", 1, prefix="retriever.") == {
        "retriever.query_template": "Find: {q}",
        "retriever.top_k": 5,
    }
    assert saved.load("pipeline", prefix="analyzer.") == {
        "analyzer.instructions": "Answer in one sentence.",
        "analyzer.expected_output": "JSON format",
    }
    assert saved.load("pipeline", prefix="nothing.") == {}


def test_load_into_with_a_prefix_updates_only_that_branch(saved: StateStore) -> None:
    module = Pipeline()
    module.analyzer.instructions.data = "local edit"
    module.register_buffer("flux", "local flux")
    instructions = module.analyzer.instructions
    version = saved.load_into(module, "pipeline", 2, prefix="retriever.")
    assert version.number == 2
    assert module.state_dict() == {
        "flux": "local flux",
        "analyzer.instructions": "local edit",
        "analyzer.expected_output": "JSON format",
        "retriever.query_template": "Search: {q}",
        "retriever.top_k": 8,
    }
    saved.load_into(module, "pipeline", 2, prefix="analyzer.")
    assert module.analyzer.instructions is instructions  # hot swap, same object
    assert module.state_dict()["analyzer.instructions"] == "Answer in one sentence."
    assert module.state_dict()["flux"] == "local flux"


def test_load_into_strict_refuses_a_state_that_does_not_fit(store: StateStore) -> None:
    store.save("other", {"flux": "x", "analyzer.instructions": "y"})
    module = Pipeline()
    before = module.state_dict()
    with pytest.raises(StateDictError) as caught:
        store.load_into(module, "other")
    assert "analyzer.expected_output" in caught.value.missing_keys
    assert module.state_dict() == before
    store.load_into(module, "other", strict=False)
    assert module.state_dict()["analyzer.instructions"] == "y"


def test_diff_with_a_prefix_compares_only_that_branch(saved: StateStore) -> None:
    diff = saved.diff("pipeline", 1, 2, prefix="retriever.")
    assert diff.changed == {
        "retriever.query_template": ("Find: {q}", "Search: {q}"),
        "retriever.top_k": (5, 8),
    }
    assert diff.added == {} and diff.removed == {}


# -- rollback --------------------------------------------------------------------------------------


def test_rollback_appends_a_version_equal_to_the_old_one(saved: StateStore) -> None:
    saved.save("pipeline", {"flux": "gone"}, message="broken")
    back = saved.rollback("pipeline", 1, author="ana")
    assert back.number == 4
    assert back.parent == 3
    assert back.snapshot == saved.get("pipeline", 1).snapshot
    assert back.message == "rollback to version 1"
    assert back.author == "ana"
    assert saved.load("pipeline") == saved.load("pipeline", 1)
    assert list(saved.load("pipeline")) == list(saved.load("pipeline", 1))
    assert [v.number for v in saved.log("pipeline")] == [4, 3, 2, 1]  # history kept
    assert saved.load("pipeline", 3) == {"flux": "gone"}


def test_rollback_by_tag_with_a_message(saved: StateStore) -> None:
    saved.tag("pipeline", 1, "production")
    back = saved.rollback("pipeline", "production", message="revert", metadata={"why": "bug"})
    assert (back.number, back.parent, back.message, back.metadata) == (
        3,
        2,
        "revert",
        {"why": "bug"},
    )


def test_rollback_to_the_head_content_writes_nothing(saved: StateStore) -> None:
    head = saved.get("pipeline")
    assert saved.rollback("pipeline", 2) == head
    assert saved.get("pipeline").number == 2


# -- diff ------------------------------------------------------------------------------------------


def test_diff_reports_added_removed_and_changed_with_values(store: StateStore) -> None:
    store.save("p", {"keep": 1, "change": "old", "drop": [1, 2], "type": 1})
    store.save("p", {"keep": 1, "change": "new", "add": {"a": True}, "type": 1.0})
    diff = store.diff("p", 1, 2)
    assert isinstance(diff, StateDiff)
    assert diff.added == {"add": {"a": True}}
    assert diff.removed == {"drop": [1, 2]}
    assert diff.changed == {"change": ("old", "new"), "type": (1, 1.0)}  # 1 -> 1.0 is a change
    assert diff.keys == ["add", "change", "drop", "type"]
    assert diff and not store.diff("p", 2, 2)
    assert (diff.old, diff.new) == ("p@1", "p@2")


def test_diff_across_names(store: StateStore) -> None:
    store.save("production", {"prompt": "A", "k": 1})
    store.save("experiment", {"prompt": "B", "k": 1})
    store.save("experiment", {"prompt": "C", "k": 1})
    diff = store.diff("production", "latest", ("experiment", 1))
    assert diff.changed == {"prompt": ("A", "B")}
    assert (diff.old, diff.new) == ("production@1", "experiment@1")
    diff = store.diff("ignored", ("experiment", 2), ("production", 1))
    assert diff.changed == {"prompt": ("C", "A")}
    with pytest.raises(NameNotFound):
        store.diff("production", 1, ("nope", 1))
    with pytest.raises(InvalidInputError):
        store.diff("production", 1, ("experiment", 1, 2))  # type: ignore[arg-type]


def test_str_of_a_diff_is_a_unified_diff_line_by_line(store: StateStore) -> None:
    store.save("p", {"prompt": "Be helpful.\nUse JSON.\nCite sources.", "k": 5})
    store.save("p", {"prompt": "Be helpful.\nUse YAML.\nCite sources.", "k": 8})
    text = str(store.diff("p", 1, 2))
    lines = text.splitlines()
    assert "--- p@1:k" in lines and "+++ p@2:k" in lines
    assert "--- p@1:prompt" in lines and "+++ p@2:prompt" in lines
    assert "-5" in lines and "+8" in lines
    assert "-Use JSON." in lines and "+Use YAML." in lines
    assert " Be helpful." in lines and " Cite sources." in lines  # unchanged context lines
    assert not any(line.startswith(("-Be helpful", "+Be helpful")) for line in lines)
    assert str(store.diff("p", 1, 1)) == "no differences between p@1 and p@1"


def test_diff_without_b_compares_with_the_parent(store: StateStore) -> None:
    store.save("p", {"a": 1})
    store.save("p", {"a": 2, "b": 1})
    store.rollback("p", 1)
    first = store.diff("p", 1)
    assert first.added == {"a": 1} and (first.old, first.new) == ("p@empty", "p@1")
    second = store.diff("p", 2)
    assert (second.old, second.new) == ("p@1", "p@2")
    assert second.changed == {"a": (1, 2)} and second.added == {"b": 1}
    third = store.diff("p", "latest")
    assert (third.old, third.new) == ("p@2", "p@3")
    assert third.removed == {"b": 1} and third.changed == {"a": (2, 1)}


# -- log -------------------------------------------------------------------------------------------


def test_log_is_newest_first_with_a_limit(store: StateStore) -> None:
    for step in range(5):
        store.save("p", {"step": step}, message=f"step {step}")
    store.tag("p", 4, "production")
    log = store.log("p")
    assert [v.number for v in log] == [5, 4, 3, 2, 1]
    assert [v.message for v in log] == [f"step {n}" for n in (4, 3, 2, 1, 0)]
    assert log[1].tags == ("production",)
    assert log == [store.get("p", n) for n in (5, 4, 3, 2, 1)]
    assert [v.number for v in store.log("p", limit=2)] == [5, 4]


def test_log_of_a_key_lists_the_versions_that_changed_it(store: StateStore) -> None:
    store.save("p", {"other": 1})  # 1: key absent
    store.save("p", {"other": 1, "key": "a"})  # 2: added
    store.save("p", {"other": 2, "key": "a"})  # 3: unchanged
    store.save("p", {"other": 2, "key": "b"})  # 4: changed
    store.save("p", {"other": 2, "key": 1})  # 5: changed
    store.save("p", {"other": 2, "key": 1.0})  # 6: changed (int -> float)
    store.save("p", {"other": 3})  # 7: removed
    store.save("p", {"other": 4})  # 8: still absent
    store.save("p", {"other": 4, "key": "a"})  # 9: added again
    assert [v.number for v in store.log("p", key="key")] == [9, 7, 6, 5, 4, 2]
    assert [v.number for v in store.log("p", key="key", limit=3)] == [9, 7, 6]
    assert [v.number for v in store.log("p", key="other")] == [8, 7, 3, 1]
    assert store.log("p", key="never") == []
