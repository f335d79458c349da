"""Conditions on version metadata: ``"score>=0.8"``, ``"score >= 0.8 and dataset == dev-v2"``.

One small parser, no ``eval``: shared by guarded tags (``protect(..., where=)``)
and, later, ``log --where``.

Grammar::

    condition  := comparison ("and" comparison)*
    comparison := path operator literal
    path       := a metadata key; dots reach into nested objects ("eval.score")
    operator   := ">=" | "<=" | "==" | "=" | "!=" | ">" | "<"
    literal    := JSON (0.8, -3, "two words", true, false, null), else the bare word
                  (no spaces, not starting with an operator) as a string

A comparison holds when the key exists and its value compares as asked with
the literal: numbers with numbers (``bool`` is not a number), strings with
strings, ``==`` / ``!=`` with anything. A missing key or values of different
kinds make it false, never an error.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from msgflux.store.errors import InvalidInputError

__all__ = ["Condition", "parse_condition"]

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_COMPARISON = re.compile(r"\s*([^<>=!\s]+)\s*(>=|<=|==|!=|=|>|<)\s*(.*?)\s*$", re.DOTALL)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_MAX_TEXT = 1000


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _literal(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError:
        return text


def _kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "other"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


@dataclass(frozen=True)
class _Comparison:
    path: tuple[str, ...]
    op: str
    value: Any

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        current: Any = metadata
        for part in self.path:
            if not isinstance(current, Mapping) or part not in current:
                return False
            current = current[part]
        if self.op in ("==", "=", "!="):
            same = _kind(current) == _kind(self.value) == "number" and current == self.value
            same = same or (type(current) is type(self.value) and current == self.value)
            return same if self.op != "!=" else not same
        kind = _kind(current)
        if kind == "other" or kind != _kind(self.value):
            return False
        return _OPERATORS[self.op](current, self.value)


@dataclass(frozen=True)
class Condition:
    """A parsed condition; ``text`` is what the user wrote, ``matches(metadata)`` tests it."""

    text: str
    comparisons: tuple[_Comparison, ...]

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        """Whether every comparison holds for ``metadata`` (a version's metadata dict)."""
        return all(comparison.matches(metadata) for comparison in self.comparisons)

    def __str__(self) -> str:
        return self.text


def parse_condition(text: Any) -> Condition:
    """Parse ``text`` such as ``"score>=0.8"``.

    Raises:
        InvalidInputError: not a string, empty, too long, or a part that is not
        ``KEY OPERATOR VALUE`` (the message quotes it).
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(
            f"a condition is a non-empty string such as 'score>=0.8', not {text!r}"
        )
    if len(text) > _MAX_TEXT or any(ord(char) < 32 for char in text):
        raise InvalidInputError(
            f"condition {text[:40]!r} is not allowed: at most {_MAX_TEXT} "
            "characters and no control characters"
        )
    comparisons = []
    for part in _AND.split(text.strip()):
        match = _COMPARISON.fullmatch(part)
        if match is None or not match.group(3) or match.group(3)[0] in "<>=!":
            raise InvalidInputError(
                f"condition {text!r}: {part!r} is not KEY OPERATOR VALUE (operators: "
                ">=, <=, ==, !=, >, <), e.g. 'score>=0.8'"
            )
        literal = _literal(match.group(3))
        if isinstance(literal, str) and literal == match.group(3) and re.search(r"\s", literal):
            raise InvalidInputError(
                f"condition {text!r}: the value {match.group(3)!r} has spaces; "
                'quote it as JSON ("...")'
            )
        path = tuple(match.group(1).split("."))
        if not all(path):
            raise InvalidInputError(f"condition {text!r}: {match.group(1)!r} is not a key path")
        comparisons.append(_Comparison(path, match.group(2), literal))
    return Condition(text.strip(), tuple(comparisons))
