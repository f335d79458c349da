"""Parameter: a value plus its spec, behaving like its data where natural."""

from __future__ import annotations

import pytest

from msgflux.errors import MsgfluxError, StateValueError
from msgflux.nn import Parameter


def test_behaves_like_its_text() -> None:
    p = Parameter("Be helpful", "system_prompt")
    assert str(p) == "Be helpful"
    assert f"{p}" == "Be helpful"
    assert f"{p:>12}" == "  Be helpful"
    assert p + "!" == "Be helpful!"
    assert "Q: " + p == "Q: Be helpful"
    assert p + Parameter(" twice", "x") == "Be helpful twice"
    assert type(p + "!") is str
    assert not isinstance(p, str)


def test_non_text_data() -> None:
    p = Parameter([1, 2], "examples")
    assert p + [3] == [1, 2, 3]
    assert [0] + p == [0, 1, 2]
    assert Parameter(2, "n") + 3 == 5
    assert str(Parameter({"a": 1}, "cfg")) == "{'a': 1}"


def test_repr() -> None:
    assert repr(Parameter("Be helpful", "system_prompt")) == (
        "Parameter('Be helpful', spec='system_prompt')"
    )
    assert (
        repr(Parameter(3, "n", requires_grad=False))
        == "Parameter(3, spec='n', requires_grad=False)"
    )
    long = repr(Parameter("x" * 500, "s"))
    assert len(long) < 120 and "..." in long


def test_equality_and_hash_by_data_and_spec() -> None:
    a = Parameter("text", "s")
    assert a == Parameter("text", "s")
    assert a != Parameter("text", "other")
    assert a != Parameter("other", "s")
    assert a != "text"  # never equal to a plain value
    assert hash(a) == hash(Parameter("text", "s"))
    assert len({a, Parameter("text", "s"), Parameter("text", "t")}) == 2
    assert Parameter("text", "s", requires_grad=False) == a


def test_hash_of_unhashable_data_raises_type_error() -> None:
    with pytest.raises(TypeError, match="unhashable Parameter: its data is a list"):
        hash(Parameter([1], "s"))
    assert Parameter([1], "s") == Parameter([1], "s")


def test_data_is_settable_and_checked() -> None:
    p = Parameter("a", "s")
    p.data = ["b", {"c": 1.5}]
    assert p.data == ["b", {"c": 1.5}]
    with pytest.raises(StateValueError, match="type object"):
        p.data = object()
    with pytest.raises(StateValueError, match="NaN"):
        p.data = float("nan")
    assert p.data == ["b", {"c": 1.5}]


def test_constructor_checks() -> None:
    with pytest.raises(StateValueError):
        Parameter({1: "int key"}, "s")
    with pytest.raises(MsgfluxError):
        Parameter(float("inf"), "s")
    with pytest.raises(TypeError, match="spec must be a str"):
        Parameter("a", None)  # type: ignore[arg-type]


def test_clone_is_deep_and_independent() -> None:
    p = Parameter({"tags": ["a"]}, "cfg", requires_grad=False)
    q = p.clone()
    assert q == p and q is not p and q.requires_grad is False
    q.data["tags"].append("b")
    assert p.data == {"tags": ["a"]}


def test_copy_keeps_spec_and_copies_data() -> None:
    p = Parameter("a", "s")
    src = Parameter(["x"], "other")
    assert p.copy_(src) is p
    assert p.data == ["x"] and p.spec == "s"
    src.data.append("y")
    assert p.data == ["x"]
    p.copy_("plain")
    assert p.data == "plain"
    with pytest.raises(StateValueError):
        p.copy_(set())
    assert p.data == "plain"


def test_requires_grad() -> None:
    p = Parameter("a", "s")
    assert p.requires_grad is True
    assert p.requires_grad_(False) is p and p.requires_grad is False
    assert p.requires_grad_().requires_grad is True


# -- msgflux's Parameter API ----------------------------------------------------------


def test_grad_defaults_to_none_and_is_kept_by_clone() -> None:
    p = Parameter("Be brief", "system_prompt")
    assert p.grad is None
    p.grad = {"critique": ["too terse"]}
    twin = p.clone()
    assert twin.grad == {"critique": ["too terse"]} and twin.grad is not p.grad
    twin.grad["critique"].append("changed")
    assert p.grad == {"critique": ["too terse"]}
    assert twin == p  # grad is feedback, not part of the value


def test_copy_to_data_deep_copies_the_value_in() -> None:
    p = Parameter("a", "s")
    value = {"examples": [1, 2]}
    assert p.copy_to_data(value) is None
    value["examples"].append(3)
    assert p.data == {"examples": [1, 2]}
    with pytest.raises(StateValueError):
        p.copy_to_data({1, 2})
    assert p.data == {"examples": [1, 2]}


def test_copy_none_is_a_no_op() -> None:
    p = Parameter("kept", "s")
    assert p.copy_(None) is p and p.data == "kept"


def test_requires_grad_may_be_positional_as_in_msgflux() -> None:
    assert Parameter("a", "s", False).requires_grad is False


def test_repr_names_the_value_for_any_data() -> None:
    """Upstream bug: ``repr(Parameter)`` returns the bare data (indistinguishable from a
    str in a module's repr) and raises ``TypeError`` when the data is not a ``str``
    (``__repr__`` returns ``__str__``, which returns ``self.data``). Deliberately not copied."""
    for data in ("text", 3, [1, "a"], {"k": None}, None):
        text = repr(Parameter(data, "s"))
        assert text == f"Parameter({data!r}, spec='s')"
