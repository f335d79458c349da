"""The issue's example, verbatim, must work exactly as written."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_readme_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    import msgflux as mf
    import msgflux.nn as nn

    class Analyzer(nn.Module):
        def __init__(self):
            super().__init__()
            self.instructions = nn.Parameter("Be helpful and concise", "system_prompt")
            self.register_buffer("expected_output", "JSON format")

    class Pipeline(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("flux", "preprocess -> analyze")
            self.analyzer = Analyzer()

        def forward(self, x, **kwargs):
            return x + " | " + self.analyzer.instructions

    p = Pipeline()
    assert p.state_dict() == {
        "flux": "preprocess -> analyze",
        "analyzer.instructions": "Be helpful and concise",
        "analyzer.expected_output": "JSON format",
    }
    assert list(p.state_dict()) == ["flux", "analyzer.instructions", "analyzer.expected_output"]
    mf.save(p.state_dict(), "state.toml")
    sd = mf.load("state.toml")
    sd["analyzer.instructions"] = "Answer in one sentence."
    instructions = p.analyzer.instructions
    analyzer = p.analyzer
    result = p.load_state_dict(sd)
    assert p("hi") == "hi | Answer in one sentence."
    # Hot swap: the same objects, no re-construction.
    assert p.analyzer is analyzer and p.analyzer.instructions is instructions
    assert instructions.spec == "system_prompt"
    assert repr(result) == "<All keys matched successfully>"


def test_saved_toml_keeps_dotted_keys_flat(tmp_path: Path, pipeline) -> None:
    import msgflux as mf

    path = tmp_path / "state.toml"
    mf.save(pipeline.state_dict(), path)
    text = path.read_text(encoding="utf-8")
    assert '"analyzer.instructions" = "Be helpful and concise"' in text
    assert "[analyzer]" not in text
    assert mf.load(path) == pipeline.state_dict()


def test_store_style_data_assignment_shows_in_state_dict(pipeline) -> None:
    pipeline.analyzer.instructions.data = "Answer in one sentence."
    assert pipeline.state_dict()["analyzer.instructions"] == "Answer in one sentence."
    assert pipeline("hi") == "hi | Answer in one sentence."


def test_import_msgflux_does_not_import_the_store() -> None:
    import subprocess
    import sys

    code = (
        "import sys, msgflux, msgflux.nn; "
        "assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'; "
        "assert 'msgflux.store' not in sys.modules, 'store imported'; "
        "assert 'StateStore' in msgflux.__all__"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_import_paths() -> None:
    import msgflux
    import msgflux.nn as nn
    from msgflux.nn.modules.container import ModuleDict, ModuleList, Sequential
    from msgflux.nn.modules.module import Module, _IncompatibleKeys
    from msgflux.nn.parameter import Parameter

    assert nn.Module is Module and nn.Parameter is Parameter
    assert (nn.ModuleList, nn.ModuleDict, nn.Sequential) == (ModuleList, ModuleDict, Sequential)
    assert callable(msgflux.save) and callable(msgflux.load)
    assert _IncompatibleKeys([], []).missing_keys == []
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        msgflux.nope  # noqa: B018


def test_readme_core_library_hooks_and_acall() -> None:
    import asyncio

    import msgflux.nn as nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("response", "Yes I did.")

        def forward(self, x, **kwargs):
            name = kwargs.get("user_name")
            return x + (" Hi " + name + " " if name else "") + self.response

    def pre_hook(module, args, kwargs):  # before forward: may change the inputs
        if kwargs.get("user_id") == "123":
            kwargs["user_name"] = "Clark"
        return args, kwargs

    def post_hook(module, args, kwargs, output):  # after forward: may replace the output
        return output + " (checked)"

    model = Model()
    pre = model.register_forward_pre_hook(pre_hook)
    post = model.register_forward_hook(post_hook)
    assert model("You did the work?", user_id="123") == (
        "You did the work? Hi Clark Yes I did. (checked)"
    )

    class Shout(nn.Module):
        async def aforward(self, text):  # awaited by acall, between the same hooks
            return text.upper()

    async def main() -> None:
        assert await Shout().acall("hi") == "HI"
        assert await model.acall("You did the work?") == "You did the work?Yes I did. (checked)"
        assert await nn.Sequential(Model(), Shout()).acall("ok? ") == "OK? YES I DID."

    asyncio.run(main())
    pre.remove()
    post.remove()
    assert model("x") == "xYes I did."


def test_readme_lists_the_deliberate_differences() -> None:
    text = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    core = text[text.index("## Core library") : text.index("## The store")]
    for needle in (
        "Deliberate differences",
        "repr(param)",
        "strict=True",
        "only JSON values",
        "register_forward_pre_hook(pre_hook)",
        "acall",
        "with_kwargs=False",
    ):
        assert needle in core, needle
