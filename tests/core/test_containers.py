"""ModuleList, ModuleDict and Sequential behave like list, dict and a chain."""

from __future__ import annotations

import pytest

from msgflux.nn import (
    Module,
    ModuleDict,
    ModuleList,
    ModuleRegistrationError,
    Parameter,
    Sequential,
)


def _leaf(tag: str) -> Module:
    m = Module()
    m.tag = Parameter(tag, "tag")
    return m


def _tags(container) -> list[str]:
    return [m.tag.data for m in container]


# -- ModuleList -----------------------------------------------------------------


def test_module_list_indexing_and_slicing() -> None:
    a, b, c = _leaf("a"), _leaf("b"), _leaf("c")
    layers = ModuleList([a, b, c])
    assert len(layers) == 3
    assert layers[0] is a and layers[-1] is c and layers[-3] is a
    part = layers[1:]
    assert type(part) is ModuleList and list(part) == [b, c]
    assert list(layers[::-1]) == [c, b, a]
    with pytest.raises(IndexError, match="out of range"):
        layers[3]
    with pytest.raises(IndexError):
        layers[-4]
    with pytest.raises(TypeError):
        layers["0"]  # type: ignore[index]


def test_module_list_mutation() -> None:
    a, b, c, d = (_leaf(t) for t in "abcd")
    layers = ModuleList()
    assert layers.append(a) is layers
    layers.extend([b, c])
    layers.insert(1, d)
    assert _tags(layers) == ["a", "d", "b", "c"]
    assert list(layers._modules) == ["0", "1", "2", "3"]
    layers[1] = _leaf("x")
    assert _tags(layers) == ["a", "x", "b", "c"]
    assert layers.pop() is c and layers.pop(0) is a
    assert _tags(layers) == ["x", "b"] and list(layers._modules) == ["0", "1"]
    layers += [d]
    assert _tags(layers) == ["x", "b", "d"]
    with pytest.raises(TypeError):
        layers.append("not a module")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        layers.extend([d, "nope"])  # type: ignore[list-item]
    assert len(layers) == 3


def test_module_list_del_renumbers_and_state_dict_follows() -> None:
    layers = ModuleList([_leaf(t) for t in "abcd"])
    assert list(layers.state_dict()) == ["0.tag", "1.tag", "2.tag", "3.tag"]
    del layers[1]
    assert _tags(layers) == ["a", "c", "d"]
    assert layers.state_dict() == {"0.tag": "a", "1.tag": "c", "2.tag": "d"}
    del layers[-1]
    del layers[0:1]
    assert layers.state_dict() == {"0.tag": "c"}
    with pytest.raises(IndexError):
        del layers[5]


def test_module_list_add() -> None:
    a, b = _leaf("a"), _leaf("b")
    joined = ModuleList([a]) + ModuleList([b])
    assert type(joined) is ModuleList and list(joined) == [a, b]


def test_module_list_nested_state_dict_and_load() -> None:
    root = Module()
    root.layers = ModuleList([_leaf("a"), _leaf("b")])
    assert root.state_dict() == {"layers.0.tag": "a", "layers.1.tag": "b"}
    root.load_state_dict({"layers.1.tag": "B"})
    assert root.layers[1].tag.data == "B"
    assert root.get_parameter("layers.0.tag").data == "a"


# -- Sequential -------------------------------------------------------------------


class Append(Module):
    def __init__(self, suffix: str) -> None:
        super().__init__()
        self.suffix = Parameter(suffix, "suffix")

    def forward(self, text: str) -> str:
        return text + self.suffix


def test_sequential_chains_children() -> None:
    chain = Sequential(Append("a"), Append("b"), Append("c"))
    assert chain("x") == "xabc"
    assert list(chain.state_dict()) == ["0.suffix", "1.suffix", "2.suffix"]
    assert Sequential()("same") == "same"


def test_sequential_from_mapping_and_slicing_keeps_names() -> None:
    chain = Sequential({"first": Append("1"), "second": Append("2"), "third": Append("3")})
    assert list(chain.state_dict()) == ["first.suffix", "second.suffix", "third.suffix"]
    part = chain[1:]
    assert type(part) is Sequential and list(part._modules) == ["second", "third"]
    assert part("x") == "x23"
    assert chain[-1] is chain.third
    with pytest.raises(ModuleRegistrationError):
        Sequential({"a.b": Append("x")})


def test_sequential_list_operations() -> None:
    chain = Sequential(Append("a"))
    chain.append(Append("b"))
    chain.insert(0, Append("0"))
    chain.extend([Append("c")])
    assert chain("") == "0abc"
    assert chain.pop(1).suffix.data == "a"
    del chain[0]
    assert chain("") == "bc" and list(chain._modules) == ["0", "1"]
    joined = chain + Sequential(Append("d"))
    assert type(joined) is Sequential and joined("") == "bcd"
    chain[0] = Append("z")
    assert chain("") == "zc" and len(chain) == 2


# -- ModuleDict ---------------------------------------------------------------------


def test_module_dict_mapping_operations() -> None:
    a, b, c = _leaf("a"), _leaf("b"), _leaf("c")
    experts = ModuleDict({"a": a, "b": b})
    assert len(experts) == 2 and "a" in experts and "z" not in experts
    assert experts["a"] is a
    assert list(experts) == ["a", "b"]
    assert experts.keys() == ["a", "b"] and experts.values() == [a, b]
    assert experts.items() == [("a", a), ("b", b)]
    experts["c"] = c
    experts.update([("d", _leaf("d"))])
    experts.update({"a": _leaf("A")})
    assert list(experts) == ["a", "b", "c", "d"] and experts["a"].tag.data == "A"
    assert experts.pop("b") is b
    del experts["c"]
    assert list(experts) == ["a", "d"]
    with pytest.raises(KeyError):
        experts["missing"]
    with pytest.raises(KeyError):
        experts.pop("missing")
    experts.clear()
    assert len(experts) == 0 and experts.state_dict() == {}


def test_module_dict_update_checks_everything_first() -> None:
    experts = ModuleDict({"a": _leaf("a")})
    with pytest.raises(TypeError, match="key 'y'"):
        experts.update({"x": _leaf("x"), "y": "not a module"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="length 3"):
        experts.update([("x", _leaf("x"), 1)])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        experts.update(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="should be a string"):
        experts[1] = _leaf("x")  # type: ignore[index]
    with pytest.raises(ModuleRegistrationError):
        experts["a.b"] = _leaf("x")
    with pytest.raises(ModuleRegistrationError):
        experts[""] = _leaf("x")
    assert list(experts) == ["a"]


def test_module_dict_keys_named_like_methods_do_not_break_methods() -> None:
    root = Module()
    root.experts = ModuleDict()
    for key in ("train", "eval", "modules", "state_dict", "training", "keys", "_modules"):
        root.experts[key] = _leaf(key)
    assert root.eval() is root
    assert all(m.training is False for m in root.modules())
    assert root.experts.training is False
    assert len(list(root.modules())) == 9
    sd = root.state_dict()
    assert sd["experts.train.tag"] == "train" and sd["experts._modules.tag"] == "_modules"
    assert root.experts.keys()[0] == "train"
    root.load_state_dict({"experts.training.tag": "T"})
    assert root.experts["training"].tag.data == "T"
    assert root.get_submodule("experts.state_dict") is root.experts["state_dict"]
    del root.experts["training"]
    assert root.experts.training is False  # the attribute survives


def test_repr_of_containers() -> None:
    layers = ModuleList([Module()])
    assert repr(layers) == "ModuleList(\n  (0): Module()\n)"


# -- msgflux's container API ----------------------------------------------------------


def test_module_dict_get_and_set() -> None:
    a, b = _leaf("a"), _leaf("b")
    experts = ModuleDict({"a": a})
    assert experts.get("a") is a
    assert experts.get("missing") is None
    assert experts.get("missing", b) is b
    experts.set("b", b)
    assert experts["b"] is b and list(experts) == ["a", "b"]
    assert experts.state_dict() == {"a.tag": "a", "b.tag": "b"}
    with pytest.raises(ModuleRegistrationError):
        experts.set("x.y", b)
    with pytest.raises(TypeError, match="not a msgflux.nn.Module"):
        experts.set("c", "text")  # type: ignore[arg-type]


def test_module_dict_update_from_another_module_dict() -> None:
    a, b, c = _leaf("a"), _leaf("b"), _leaf("c")
    experts = ModuleDict({"a": a, "b": b})
    experts.update(ModuleDict({"b": c, "new": a}))
    assert experts.items() == [("a", a), ("b", c), ("new", a)]
    assert experts.state_dict() == {"a.tag": "a", "b.tag": "c", "new.tag": "a"}


def test_module_dict_is_hashable_by_identity() -> None:
    one, two = ModuleDict({"a": _leaf("a")}), ModuleDict({"a": _leaf("a")})
    assert len({one, two, one}) == 2
    assert one != two and one == one  # noqa: PLR0124


def test_sequential_insert_range_and_return_value() -> None:
    chain = Sequential(Append("a"), Append("b"))
    assert chain.insert(2, Append("end")) is chain  # n appends
    assert chain.insert(-3, Append("start")) is chain  # -n prepends
    assert chain("") == "startabend" and list(chain._modules) == ["0", "1", "2", "3"]
    for bad in (5, -5):
        with pytest.raises(IndexError, match=r"out of range \[-4, 4\]"):
            chain.insert(bad, Append("x"))
    assert len(chain) == 4


@pytest.mark.parametrize("operand", [3, "text", Append("single"), {"a": Append("a")}, [1]])
def test_sequential_add_wrong_type_is_both_type_error_and_value_error(operand) -> None:
    chain = Sequential(Append("a"))
    for caught in (TypeError, ValueError):
        with pytest.raises(caught, match=r"Sequential \+ takes a Sequential"):
            chain + operand
        with pytest.raises(caught, match=r"Sequential \+= takes a Sequential"):
            chain += operand
    assert len(chain) == 1 and chain("") == "a"


def test_sequential_add_accepts_module_sequences() -> None:
    chain = Sequential(Append("a"))
    assert (chain + ModuleList([Append("b")]))("") == "ab"
    assert (chain + [Append("c")])("") == "ac"
    chain += Sequential(Append("d"))
    assert chain("") == "ad"


def test_sequential_forward_passes_everything_to_the_first_module() -> None:
    class Join(Module):
        def forward(self, *parts: str, sep: str = "") -> str:
            return sep.join(parts)

    chain = Sequential(Join(), Append("!"))
    assert chain("a", "b", sep="-") == "a-b!"
    with pytest.raises(TypeError, match="exactly one positional argument"):
        Sequential()("a", sep="-")


def test_module_dict_empty_slot() -> None:
    a = _leaf("a")
    experts = ModuleDict({"a": a, "later": None})
    experts["also"] = None
    assert experts["later"] is None and "later" in experts and len(experts) == 3
    assert experts.state_dict() == {"a.tag": "a"}
    assert [name for name, _ in experts.named_modules()] == ["", "a"]
    assert list(experts.children()) == [a]
    experts["later"] = _leaf("b")
    assert experts.state_dict() == {"a.tag": "a", "later.tag": "b"}
