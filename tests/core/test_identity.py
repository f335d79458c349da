"""Module identity (``set_name`` / ``set_description`` / ``set_annotations``) and grads.

As upstream's docs use them on a plain ``nn.Module``:

    class MyAgent(nn.Module):
        def __init__(self):
            super().__init__()
            self.set_name("my-agent")
            self.set_description("An agent that helps with X")
"""

from __future__ import annotations

import pytest

import msgflux.nn as nn
from msgflux.nn import Module, Parameter


class MyAgent(nn.Module):
    """Class docstring used when no description is set."""

    question: str

    def __init__(self) -> None:
        super().__init__()
        self.set_name("my-agent")
        self.set_description(
            """
            An agent that helps with X.
                Indented detail.
            """
        )


def test_name_and_description_are_buffers_in_the_state_dict() -> None:
    agent = MyAgent()
    assert agent.name == "my-agent" and agent.get_module_name() == "my-agent"
    assert agent.description == "An agent that helps with X.\n    Indented detail."
    assert agent.get_module_description() == agent.description
    assert agent.state_dict() == {"name": "my-agent", "description": agent.description}
    agent.load_state_dict({"name": "renamed"})
    assert agent.get_module_name() == "renamed"


def test_getters_fall_back_to_the_class() -> None:
    plain = MyAgent.__new__(MyAgent)
    Module.__init__(plain)
    assert plain.get_module_name() == "MyAgent"
    assert plain.get_module_description() == "Class docstring used when no description is set."
    # the class's own annotations, as written (strings here: `from __future__ import annotations`)
    assert plain.get_module_annotations() == {"question": "str"}


def test_set_description_none_clears_it() -> None:
    agent = MyAgent()
    agent.set_description(None)
    assert agent.description is None
    assert agent.get_module_description() == MyAgent.__doc__


def test_set_annotations_is_a_plain_attribute() -> None:
    agent = MyAgent()
    agent.set_annotations({"x": int, "y": str})
    assert agent.annotations == {"x": int, "y": str}
    assert agent.get_module_annotations() == {"x": int, "y": str}
    assert "annotations" not in agent.state_dict()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: m.set_name(""), ValueError, "non-empty"),
        (lambda m: m.set_name(3), TypeError, "must be a str"),
        (lambda m: m.set_description(3), ValueError, "str or None"),
        (lambda m: m.set_annotations([("x", int)]), TypeError, "must be a dict"),
    ],
)
def test_bad_identity_values_are_refused_and_change_nothing(call, error, match) -> None:
    agent = MyAgent()
    before = agent.state_dict()
    with pytest.raises(error, match=match):
        call(agent)
    assert agent.state_dict() == before and "annotations" not in agent.__dict__


def test_requires_grad_and_zero_grad_cover_the_whole_tree() -> None:
    root = Module()
    root.a = Parameter("a", "s")
    root.child = Module()
    root.child.b = Parameter("b", "s")
    root.child.register_parameter("empty", None)
    assert root.requires_grad_(requires_grad=False) is root
    assert [p.requires_grad for p in root.parameters()] == [False, False]
    root.child.requires_grad_()
    assert [p.requires_grad for p in root.parameters()] == [False, True]
    root.a.grad = "too verbose"
    root.child.b.grad = {"critique": "vague"}
    root.zero_grad()
    assert [p.grad for p in root.parameters()] == [None, None]
    assert root.state_dict() == {"a": "a", "child.b": "b"}
