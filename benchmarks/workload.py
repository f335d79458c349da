"""The benchmark workload: a state dict of prompt texts and a history of one-key changes.

Everything is derived from one seed, so every implementation replays exactly
the same saves and loads:

* a fixed vocabulary of :data:`VOCABULARY_SIZE` made-up words;
* ``keys`` prompts of 30 to 300 words each (the initial state, version 1);
* ``versions`` changes, each replacing one random key with a fresh prompt;
* ``loads`` version numbers to load, drawn uniformly from every saved version.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Workload", "make_workload", "prompt", "key_names", "states"]

VOCABULARY_SIZE = 2_000
MIN_WORDS, MAX_WORDS = 30, 300
_ROLES = ("instructions", "system_message", "expected_output", "task_template")


def _vocabulary(seed: int) -> list[str]:
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < VOCABULARY_SIZE:
        words.add("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 11))))
    return sorted(words)


def prompt(rng: random.Random, vocabulary: list[str]) -> str:
    """A prompt of 30 to 300 words from the vocabulary, ending with a full stop."""
    words = rng.choices(vocabulary, k=rng.randint(MIN_WORDS, MAX_WORDS))
    return " ".join(words).capitalize() + "."


def key_names(count: int) -> list[str]:
    """Dotted keys as a module tree would name them: ``blocks.003.analyzer.instructions``."""
    return [
        f"blocks.{index // len(_ROLES):03d}.agent.{_ROLES[index % len(_ROLES)]}"
        for index in range(count)
    ]


@dataclass(frozen=True)
class Workload:
    """The initial state, the one-key changes and the versions to load."""

    initial: dict[str, str]
    changes: list[tuple[str, str]]  # (key, new prompt) for versions 2, 3, ...
    load_versions: list[int]

    @property
    def keys(self) -> int:
        return len(self.initial)

    @property
    def versions(self) -> int:
        """Number of saved versions: the initial state plus one per change."""
        return 1 + len(self.changes)


def make_workload(keys: int, changes: int, loads: int, seed: int = 0) -> Workload:
    vocabulary = _vocabulary(seed)
    rng = random.Random(seed + 1)
    names = key_names(keys)
    initial = {name: prompt(rng, vocabulary) for name in names}
    history = [(rng.choice(names), prompt(rng, vocabulary)) for _ in range(changes)]
    load_versions = [rng.randint(1, 1 + changes) for _ in range(loads)]
    return Workload(initial, history, load_versions)


def states(workload: Workload) -> Iterator[dict[str, str]]:
    """Yield the state dict of every version, as a running module would build it.

    Each is a new dict, but unchanged values are the *same* string objects as
    in the previous version (a module's ``state_dict()`` returns its attributes).
    """
    state = dict(workload.initial)
    yield state
    for key, text in workload.changes:
        state = dict(state)
        state[key] = text
        yield state


class ChangeStream:
    """An endless stream of one-key changes (for the ``--deep`` fill)."""

    def __init__(self, keys: int, seed: int = 0) -> None:
        self._vocabulary = _vocabulary(seed)
        self._rng = random.Random(seed + 2)
        self.names = key_names(keys)
        self.state = {name: prompt(self._rng, self._vocabulary) for name in self.names}

    def next_state(self) -> dict[str, str]:
        state = dict(self.state)
        state[self._rng.choice(self.names)] = prompt(self._rng, self._vocabulary)
        self.state = state
        return state
