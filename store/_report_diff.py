"""The report's diff of one value: line-level first, word-level only inside short lines, capped.

Why bounded: the word-level diff of two rewritten 300-word prompts cost
~10 ms, so a report of 20,000 versions spent minutes in it. Here:

1. A value is cut into *units*: its lines, and a line longer than
   :data:`SPLIT_AT` characters is cut further after each sentence (``. `` /
   ``! `` / ``? ``), so a rewritten sentence in a one-paragraph prompt is one
   changed unit, not one changed paragraph.
2. Units are matched line by line (the common head and tail directly,
   :class:`difflib.SequenceMatcher` on what is left, if that is at most
   :data:`MAX_MATCHED` units; beyond, the middle counts as replaced).
3. A removed unit and the added unit paired with it get a word-level diff
   only when both are at most :data:`WORD_DIFF_CHARS` characters, and only if
   the new unit keeps at least :data:`KEPT_FOR_WORDS` of its text (a rewritten
   sentence is shown as removed and added whole).
4. At most :data:`MAX_CHANGED_ROWS` removed or added rows are shown per value,
   then one "n more lines changed" row; a row longer than :data:`MAX_ROW_CHARS`
   is cut with "(+n characters)".

So one value's diff costs at most a fixed amount of work and page, whatever
its size.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

from msgflux.store._word_diff import Segment, word_diff

__all__ = ["Row", "Segment", "units", "value_rows", "word_diff"]

# The bounds of the module docstring.
SPLIT_AT = 240
MAX_MATCHED = 3000
WORD_DIFF_CHARS = 400
MAX_CHANGED_ROWS = 24
MAX_ROW_CHARS = 800
KEPT_FOR_WORDS = 0.4  # word marks only when at least this share of the new line is kept
CONTEXT = 1  # unchanged units shown around each change

_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+")


@dataclass(frozen=True)
class Row:
    """One shown row: ``kind`` is context, removed, added, gap or more.

    ``continued`` marks a unit that continues the line above it (a long line cut
    after a sentence). ``skipped`` counts hidden units (gap) or changed units (more).
    """

    kind: str
    segments: list[Segment]
    continued: bool = False
    skipped: int = 0


def units(value: Any) -> tuple[list[str], list[bool]]:
    """A value's comparison units and, for each, whether it continues the previous line."""
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    )
    pieces: list[str] = []
    continued: list[bool] = []
    for line in text.splitlines() or [""]:
        if len(line) <= SPLIT_AT:
            pieces.append(line)
            continued.append(False)
            continue
        start = 0
        for match in _SENTENCE_END.finditer(line):
            if match.end() < len(line):
                pieces.append(line[start : match.end()])
                continued.append(start > 0)
                start = match.end()
        pieces.append(line[start:])
        continued.append(start > 0)
    return pieces, continued


def value_rows(
    old: Any, new: Any, *, old_missing: bool = False, new_missing: bool = False
) -> list[Row]:
    """Rows showing how ``old`` became ``new`` (a missing side: the key was added or removed)."""
    old_units, old_cont = ([], []) if old_missing else units(old)
    new_units, new_cont = ([], []) if new_missing else units(new)
    rows: list[Row] = []
    budget = MAX_CHANGED_ROWS
    hidden_changes = 0
    old_done = new_done = 0  # units before these indexes are shown or counted in a gap
    for group in _groups(_opcodes(old_units, new_units)):
        skipped = max(group[0][1] - old_done, group[0][3] - new_done)
        if skipped:
            rows.append(Row("gap", [], skipped=skipped))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows.extend(
                    Row("context", [(_cut(new_units[j]), False)], new_cont[j])
                    for j in range(j1, j2)
                )
                continue
            changed = _changed_rows(
                old_units[i1:i2], old_cont[i1:i2], new_units[j1:j2], new_cont[j1:j2], budget
            )
            rows.extend(changed)
            budget -= len(changed)
            hidden_changes += (i2 - i1) + (j2 - j1) - len(changed)
        old_done, new_done = group[-1][2], group[-1][4]
    if hidden_changes:
        rows.append(Row("more", [], skipped=hidden_changes))
    elif new_done and max(len(old_units) - old_done, len(new_units) - new_done):
        rows.append(
            Row("gap", [], skipped=max(len(old_units) - old_done, len(new_units) - new_done))
        )
    return rows


def _changed_rows(
    removed: list[str],
    removed_cont: list[bool],
    added: list[str],
    added_cont: list[bool],
    budget: int,
) -> list[Row]:
    """Removed then added rows, each removed unit paired with an added one for word marks."""
    if budget <= 0:
        return []
    pairs = min(len(removed), len(added))
    old_rows: list[Row] = []
    new_rows: list[Row] = []
    for index in range(pairs):
        before, after = removed[index], added[index]
        old_segments, new_segments = [(_cut(before), False)], [(_cut(after), False)]
        # A long unit is marked changed as a whole (word matching is quadratic), and so
        # is a rewritten one: marking the few words it kept would only add noise.
        if len(before) <= WORD_DIFF_CHARS and len(after) <= WORD_DIFF_CHARS:
            words_old, words_new = word_diff(before, after)
            kept = sum(len(text) for text, changed in words_new if not changed)
            if kept >= KEPT_FOR_WORDS * len(after):
                old_segments, new_segments = words_old, words_new
        old_rows.append(Row("removed", old_segments, removed_cont[index]))
        new_rows.append(Row("added", new_segments, added_cont[index]))
    old_rows += [
        Row("removed", [(_cut(unit), False)], cont)
        for unit, cont in zip(removed[pairs:], removed_cont[pairs:], strict=True)
    ]
    new_rows += [
        Row("added", [(_cut(unit), False)], cont)
        for unit, cont in zip(added[pairs:], added_cont[pairs:], strict=True)
    ]
    interleaved = [row for pair in zip(old_rows, new_rows, strict=False) for row in pair]
    return (interleaved + old_rows[pairs:] + new_rows[pairs:])[:budget]


def _cut(unit: str) -> str:
    if len(unit) <= MAX_ROW_CHARS:
        return unit
    return f"{unit[:MAX_ROW_CHARS]}\u2026 (+{len(unit) - MAX_ROW_CHARS:,} characters)"


Opcode = tuple[str, int, int, int, int]


def _opcodes(old: list[str], new: list[str]) -> list[Opcode]:
    head = 0
    limit = min(len(old), len(new))
    while head < limit and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < limit - head and old[len(old) - 1 - tail] == new[len(new) - 1 - tail]:
        tail += 1
    old_end, new_end = len(old) - tail, len(new) - tail
    codes: list[Opcode] = [("equal", 0, head, 0, head)] if head else []
    middle_old, middle_new = old[head:old_end], new[head:new_end]
    if middle_old or middle_new:
        if len(middle_old) + len(middle_new) > MAX_MATCHED or not middle_old or not middle_new:
            codes.append(("replace", head, old_end, head, new_end))
        else:
            matcher = difflib.SequenceMatcher(None, middle_old, middle_new, autojunk=False)
            codes += [
                (tag, i1 + head, i2 + head, j1 + head, j2 + head)
                for tag, i1, i2, j1, j2 in matcher.get_opcodes()
            ]
    if tail:
        codes.append(("equal", old_end, len(old), new_end, len(new)))
    return codes


def _groups(codes: list[Opcode]) -> list[list[Opcode]]:
    """Changes with :data:`CONTEXT` units of context around each, as in a unified diff."""
    groups: list[list[Opcode]] = []
    current: list[Opcode] = []
    for index, (tag, i1, i2, j1, j2) in enumerate(codes):
        if tag != "equal":
            current.append((tag, i1, i2, j1, j2))
            continue
        first, last = index == 0, index == len(codes) - 1
        if first:
            current.append((tag, max(i1, i2 - CONTEXT), i2, max(j1, j2 - CONTEXT), j2))
        elif last:
            current.append((tag, i1, min(i2, i1 + CONTEXT), j1, min(j2, j1 + CONTEXT)))
        elif i2 - i1 > 2 * CONTEXT:
            current.append((tag, i1, i1 + CONTEXT, j1, j1 + CONTEXT))
            groups.append(current)
            current = [(tag, i2 - CONTEXT, i2, j2 - CONTEXT, j2)]
        else:
            current.append((tag, i1, i2, j1, j2))
    if any(code[0] != "equal" for code in current):
        groups.append(current)
    return [[code for code in group if code[1] < code[2] or code[3] < code[4]] for group in groups]
