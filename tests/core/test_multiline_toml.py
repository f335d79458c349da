"""State files show multi-line prompts as TOML multi-line strings and still round-trip exactly."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from core_testkit import assert_same
from hypothesis import given, settings
from hypothesis import strategies as st

import msgflux as mf
from msgflux.serialization import dumps, loads

PROMPT = 'You are a careful assistant.\nAnswer in one sentence.\n\nCite "sources" \\ as [n].\n'


def test_a_multi_line_prompt_is_written_as_it_will_be_sent(tmp_path: Path) -> None:
    path = tmp_path / "state.toml"
    state = {
        "generator.system_prompt": PROMPT,
        "retriever.k": 4,
        "router.routes": {"faq": "Short.\nFriendly."},
        "examples": ["a\nb", "c"],
    }
    mf.save(state, path)
    text = path.read_text()
    assert (
        '"generator.system_prompt" = """\nYou are a careful assistant.\nAnswer in one '
        'sentence.\n\nCite \\"sources\\" \\\\ as [n].\n"""' in text
    )
    assert '"retriever.k" = 4' in text
    assert mf.load(path) == state
    assert dumps(state, "toml") == text


def test_files_written_before_still_load_identically(tmp_path: Path) -> None:
    old = tmp_path / "old.toml"
    old.write_text('"generator.system_prompt" = "You are\\nAnswer.\\n"\n"retriever.k" = 4\n')
    assert mf.load(old) == {"generator.system_prompt": "You are\nAnswer.\n", "retriever.k": 4}


def test_a_carriage_return_falls_back_to_escaped_strings(tmp_path: Path) -> None:
    state = {"windows": "line one\r\nline two", "unix": "a\nb"}
    text = dumps(state, "toml")
    assert '"""' not in text and "\\r\\n" in text
    assert tomllib.loads(text) == state


def test_loads_reads_stdin_text_with_the_file_rules() -> None:
    assert loads('a = """\nx\ny"""\n', "toml") == {"a": "x\ny"}
    assert loads('{"a": 1}', "json") == {"a": 1}


_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
_values: Any = st.recursive(
    st.one_of(
        _text,
        st.integers(-(2**63), 2**63 - 1),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_text, inner, max_size=3)),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_text.filter(bool), _values, max_size=5))
def test_every_file_save_writes_round_trips_exactly(state: dict[str, Any]) -> None:
    text = dumps(state, "toml")
    loaded = tomllib.loads(text)
    assert_same(loaded, state)
