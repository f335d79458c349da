"""The ``nn`` examples of upstream msgflux's documentation, retyped, with their outputs.

Pages: ``docs/learn/nn/module/forward-and-async.md``, ``docs/learn/nn/module/sequential.md``,
``docs/learn/nn/agent/hooks.md`` and the ``nn`` part of ``docs/quickstart.md`` (plus the
naming example of ``docs/learn/nn/module/index.md``). Parts that need an LLM client
(``nn.Agent``, models, guards) or an optional plotting package (``model.plot()``) are
left out; where a page calls an undefined helper (``some_async_operation``) a small
stand-in is defined. Each test follows one example in order; ``print`` output is
checked with ``capsys`` against the output the page shows.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from pathlib import Path

import pytest

import msgflux as mf
import msgflux.nn as nn
from msgflux.nn.hooks import Hook, RemovableHandle

# -- docs/learn/nn/module/forward-and-async.md -------------------------------------------


def test_forward() -> None:
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("response", "Yes I did.")

        def forward(self, x, **kwargs):
            user_name = kwargs.get("user_name", None)
            if user_name:
                model_response = " Hi " + user_name + self.response
            else:
                model_response = self.response
            x = x + model_response
            return x

    model = Model()
    result = model("You did the work?")  # Calls forward()
    assert result == "You did the work?Yes I did."


def test_aforward_is_called_by_acall() -> None:
    async def some_async_operation(data):  # stand-in: the page leaves it undefined
        await asyncio.sleep(0)
        return f"processed {data}"

    class AsyncProcessor(nn.Module):
        async def aforward(self, data, **kwargs):
            result = await some_async_operation(data)
            return result

    processor = AsyncProcessor()
    result = asyncio.run(processor.acall("data"))  # Calls aforward()
    assert result == "processed data"


def test_acall_falls_back_to_forward_without_aforward() -> None:
    class Model(nn.Module):
        def forward(self, x):
            return x + "!"

    assert asyncio.run(Model().acall("sync")) == "sync!"


def _retrieve_user_name(user_id: str):
    if user_id == "123":
        return "Clark"
    return None


def test_complete_hook_example_and_removing_hooks(capsys: pytest.CaptureFixture[str]) -> None:
    retrieve_user_name = _retrieve_user_name

    def pre_hook(module, args, kwargs):
        """Enrich context before forward."""
        if kwargs.get("user_id"):
            user_name = retrieve_user_name(kwargs["user_id"])
            kwargs["user_name"] = user_name
        return args, kwargs

    def post_hook(module, args, kwargs, output):
        """Inspect output after forward."""
        print(f"inspect output: {output}")
        return output

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("response", "Yes I did.")

        def forward(self, x, **kwargs):
            user_name = kwargs.get("user_name", None)
            if user_name:
                return x + " Hi " + user_name + " " + self.response
            return x + self.response

    model = Model()

    # Register hooks
    pre_hook_handle = model.register_forward_pre_hook(pre_hook)
    post_hook_handle = model.register_forward_hook(post_hook)

    # Execute - pre_hook enriches kwargs, post_hook inspects output
    result = model("You did the work?", user_id="123")
    print(f"Output: {result}")
    assert capsys.readouterr().out == (
        "inspect output: You did the work? Hi Clark Yes I did.\n"
        "Output: You did the work? Hi Clark Yes I did.\n"
    )

    # Inspecting Registered Hooks
    assert list(model._forward_pre_hooks.values()) == [pre_hook]
    assert list(model._forward_hooks.values()) == [post_hook]

    # Removing Hooks
    pre_hook_handle.remove()
    post_hook_handle.remove()

    # Now forward runs without hooks
    result = model("You did the work?", user_id="123")
    print(result)
    assert capsys.readouterr().out == "You did the work?Yes I did.\n"
    assert not model._forward_pre_hooks and not model._forward_hooks


# -- docs/learn/nn/module/sequential.md ------------------------------------------------


class ExpertSales(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("response", "Hi, let's talk?")

    def forward(self, msg: str):
        return msg + self.response


class ExpertSupport(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("response", "Hi, call 190")

    def forward(self, msg: str):
        return msg + self.response


EXPECTED_CHAIN = "I need help with my tv.Hi, let's talk?Hi, call 190"


def test_sequential_basic_usage() -> None:
    experts = nn.Sequential(ExpertSales(), ExpertSupport())
    assert experts("I need help with my tv.") == EXPECTED_CHAIN
    assert experts.state_dict() == {"0.response": "Hi, let's talk?", "1.response": "Hi, call 190"}


def test_sequential_using_ordered_dict() -> None:
    experts_dict = nn.Sequential(
        OrderedDict([("expert_sales", ExpertSales()), ("expert_support", ExpertSupport())])
    )

    assert experts_dict("I need help with my tv.") == EXPECTED_CHAIN
    assert list(experts_dict.state_dict()) == [
        "expert_sales.response",
        "expert_support.response",
    ]


def test_sequential_async_support() -> None:
    experts = nn.Sequential(ExpertSales(), ExpertSupport())
    result = asyncio.run(experts.acall("I need help with my tv."))
    assert result == EXPECTED_CHAIN


# -- docs/learn/nn/agent/hooks.md (the parts that need no LLM) --------------------------


def test_custom_logging_hook(capsys: pytest.CaptureFixture[str]) -> None:
    class LoggingHook(Hook):
        """Logs every call to the module."""

        def __init__(self):
            super().__init__(on="pre", target=None)

        def __call__(self, module, args, kwargs, output=None):
            print(f"[{module.__class__.__name__}] called with {len(kwargs)} kwargs")

    module = ExpertSales()
    handle = LoggingHook().register(module)
    assert isinstance(handle, RemovableHandle)
    assert module("Hello. ") == "Hello. Hi, let's talk?"
    assert capsys.readouterr().out == "[ExpertSales] called with 0 kwargs\n"
    handle.remove()
    module("Hello. ")
    assert capsys.readouterr().out == ""


def test_custom_token_counter_hook() -> None:
    class TokenCounterHook(Hook):
        """Tracks cumulative token usage from model responses."""

        def __init__(self):
            super().__init__(on="post", target="generator")
            self.total_tokens = 0

        def __call__(self, module, args, kwargs, output=None):
            if hasattr(output, "usage"):
                self.total_tokens += output.usage.get("total_tokens", 0)

    class Response:  # stand-in for a model response
        usage = {"total_tokens": 7}

    class Generator(nn.Module):
        def forward(self, prompt):
            return Response()

    hook = TokenCounterHook()
    generator = Generator()
    hook.register(generator)
    generator("a")
    generator("b")
    assert hook.total_tokens == 14 and hook.target == "generator"


def test_using_hooks_with_nn_module_directly(capsys: pytest.CaptureFixture[str]) -> None:
    module = ExpertSupport()  # the page uses an nn.Agent; any module works

    # Register a plain function as a pre-hook
    def my_pre_hook(module, args, kwargs):
        print("About to call forward")

    handle = module.register_forward_pre_hook(my_pre_hook)

    # Register a plain function as a post-hook
    def my_post_hook(module, args, kwargs, output):
        print(f"Forward returned: {type(output)}")

    handle = module.register_forward_hook(my_post_hook)
    assert module("x ") == "x Hi, call 190"
    assert capsys.readouterr().out == ("About to call forward\nForward returned: <class 'str'>\n")
    handle.remove()


# -- docs/quickstart.md, the nn part -----------------------------------------------------


def test_quickstart_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)

    class Workflow(nn.Module):
        def __init__(self):
            super().__init__()
            self.instructions = nn.Parameter("<param_content>", "<spec>")  # will can be optimized
            self.register_buffer("expected_output", "<expected_output>")

    assert Workflow().state_dict() == {
        "instructions": "<param_content>",
        "expected_output": "<expected_output>",
    }

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("response", "Yes I did.")

        def forward(self, x, **kwargs):
            user_name = kwargs.get("user_name", None)
            if user_name:
                model_response = " Hi " + user_name + self.response
            else:
                model_response = self.response
            x = x + model_response
            return x

    retrieve_user_name = _retrieve_user_name

    def pre_hook(module, args, kwargs):
        # enhance context
        if kwargs.get("user_id"):
            user_name = retrieve_user_name(kwargs["user_id"])
            kwargs["user_name"] = user_name
        return args, kwargs

    def post_hook(module, args, kwargs, output):
        print(f"inpect output: {output}")
        return output

    model = Model()

    # hooks returns a handle object
    pre_hook_handle = model.register_forward_pre_hook(pre_hook)
    post_hook_handle = model.register_forward_hook(post_hook)

    assert len(model._forward_pre_hooks) == 1 and len(model._forward_hooks) == 1

    input_x = "You did the work?"
    kwargs = {"user_id": "123"}
    result = model(input_x, **kwargs)
    print(f"Output: {result}")
    assert capsys.readouterr().out == (
        "inpect output: You did the work? Hi ClarkYes I did.\n"
        "Output: You did the work? Hi ClarkYes I did.\n"
    )
    assert kwargs == {"user_id": "123"}  # the caller's dict is not the one the hook edits

    # remove hooks (optional)
    pre_hook_handle.remove()
    post_hook_handle.remove()

    result_without_hooks = model(input_x, **kwargs)
    print(result_without_hooks)
    assert capsys.readouterr().out == "You did the work?Yes I did.\n"

    # save state dict
    # format: default is toml but json also
    mf.save(model.state_dict(), "state_dict.toml")

    state_dict = mf.load("state_dict.toml")

    assert state_dict == {"response": "Yes I did."}

    # update param
    state_dict["response"] = "No, I didn't."

    # update model state dict
    model.load_state_dict(state_dict)

    input_x = "You did the work?"
    kwargs = {"user_id": "123"}
    result = model(input_x, **kwargs)
    print(f"Output: {result}")
    assert capsys.readouterr().out == "Output: You did the work?No, I didn't.\n"


def test_quickstart_module_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    def draw_choice(choices: list[str]) -> str:
        return random.choice(choices)

    class Router(nn.Module):
        def __init__(self):
            super().__init__()
            self.choices = nn.ModuleDict({"sales": ExpertSales(), "support": ExpertSupport()})

        def forward(self, msg: str) -> str:
            choice = draw_choice(list(self.choices.keys()))
            msg = self.choices[choice](msg)
            return msg

    router = Router()

    assert "(choices): ModuleDict(" in repr(router) and "(sales): ExpertSales(" in repr(router)

    assert router.state_dict() == {
        "choices.sales.response": "Hi, let's talk?",
        "choices.support.response": "Hi, call 190",
    }

    answers = {router("I need help with my tv.") for _ in range(50)}
    assert answers <= {
        "I need help with my tv.Hi, let's talk?",
        "I need help with my tv.Hi, call 190",
    }
    assert len(answers) == 2


def test_quickstart_module_list() -> None:
    class Expert(nn.Module):
        def __init__(self):
            super().__init__()
            self.experts = nn.ModuleList([ExpertSales(), ExpertSupport()])

        def forward(self, msg: str) -> str:
            # ModuleList can act as an iterable, or be indexed using ints
            for i, l in enumerate(self.experts):  # noqa: B007, E741
                msg = self.experts[i](msg)
            return msg

    expert = Expert()

    assert "(experts): ModuleList(" in repr(expert)

    assert expert("I need help with my tv.") == EXPECTED_CHAIN


def test_quickstart_sequential() -> None:
    experts = nn.Sequential(ExpertSales(), ExpertSupport())

    assert repr(experts).startswith("Sequential(\n  (0): ExpertSales(")

    assert experts("I need help with my tv.") == EXPECTED_CHAIN

    experts_dict = nn.Sequential(
        OrderedDict([("expert_sales", ExpertSales()), ("expert_support", ExpertSupport())])
    )

    assert experts_dict("I need help with my tv.") == EXPECTED_CHAIN


# -- docs/learn/nn/module/index.md -------------------------------------------------------


def test_index_quick_start_and_naming() -> None:
    class MyWorkflow(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("greeting", "Hello!")

        def forward(self, name: str) -> str:
            return f"{self.greeting} {name}"

    workflow = MyWorkflow()
    result = workflow("World")  # "Hello! World"
    assert result == "Hello! World"

    class MyAgent(nn.Module):
        def __init__(self):
            super().__init__()
            self.set_name("my-agent")
            self.set_description("An agent that helps with X")

    agent = MyAgent()
    assert agent.get_module_name() == "my-agent"
    assert agent.get_module_description() == "An agent that helps with X"
