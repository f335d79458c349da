"""The word diff shared by the command line's coloured ``diff`` and the HTML report.

:func:`word_diff` marks the words that differ between two lines;
:func:`classify_lines` sorts unified-diff lines into header, hunk, context,
removed and added, and gives each removed line paired with an added one its
word-level segments. Neither knows about HTML or terminals.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["DiffLine", "Segment", "append_segment", "classify_lines", "word_diff"]

#: A piece of a line and whether it differs from the other side.
Segment = tuple[str, bool]

# Words and single punctuation marks, each with the spaces after it: the units a changed
# line is compared in (spaces as tokens of their own made matching ~3x slower).
_TOKEN = re.compile(r"\w+\s*|[^\w\s]\s*|\s+")
# Beyond this many tokens a line is marked changed as a whole (SequenceMatcher is quadratic).
_MAX_TOKENS = 4000


def word_diff(old: str, new: str) -> tuple[list[Segment], list[Segment]]:
    """Split two lines into segments, marking the words that differ (difflib on words).

    Example::

        >>> word_diff("Be brief.", "Be very brief.")
        ([('Be brief.', False)], [('Be ', False), ('very ', True), ('brief.', False)])
    """
    old_tokens, new_tokens = _TOKEN.findall(old), _TOKEN.findall(new)
    # Most edits touch a few words: match the common head and tail directly and
    # leave only the middle to SequenceMatcher (quadratic in the worst case).
    head = 0
    limit = min(len(old_tokens), len(new_tokens))
    while head < limit and old_tokens[head] == new_tokens[head]:
        head += 1
    tail = 0
    while (
        tail < limit - head
        and old_tokens[len(old_tokens) - 1 - tail] == new_tokens[len(new_tokens) - 1 - tail]
    ):
        tail += 1
    old_middle = old_tokens[head : len(old_tokens) - tail]
    new_middle = new_tokens[head : len(new_tokens) - tail]
    old_segments: list[Segment] = []
    new_segments: list[Segment] = []
    append_segment(old_segments, "".join(old_tokens[:head]), False)
    append_segment(new_segments, "".join(new_tokens[:head]), False)
    if len(old_middle) + len(new_middle) > _MAX_TOKENS:
        append_segment(old_segments, "".join(old_middle), True)
        append_segment(new_segments, "".join(new_middle), True)
    else:
        matcher = difflib.SequenceMatcher(None, old_middle, new_middle, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            changed = tag != "equal"
            append_segment(old_segments, "".join(old_middle[i1:i2]), changed)
            append_segment(new_segments, "".join(new_middle[j1:j2]), changed)
    append_segment(old_segments, "".join(old_tokens[len(old_tokens) - tail :]), False)
    append_segment(new_segments, "".join(new_tokens[len(new_tokens) - tail :]), False)
    return old_segments, new_segments


def append_segment(segments: list[Segment], text: str, changed: bool) -> None:
    if not text:
        return
    if segments and segments[-1][1] == changed:
        segments[-1] = (segments[-1][0] + text, changed)
    else:
        segments.append((text, changed))


# -- unified-diff lines ------------------------------------------------


@dataclass(frozen=True)
class DiffLine:
    """One line of a unified diff: ``kind`` is header, hunk, context, removed or added."""

    kind: str
    segments: list[Segment]

    @property
    def text(self) -> str:
        return "".join(text for text, _changed in self.segments)


def classify_lines(lines: Iterable[str]) -> list[DiffLine]:
    """Classify unified-diff lines; pair each run of removed lines with the added run after it.

    Paired lines get word-level segments from :func:`word_diff`; unpaired ones
    are a single unchanged segment (the whole line is already marked by its kind).
    """
    result: list[DiffLine] = []
    removed: list[str] = []
    added: list[str] = []

    def flush() -> None:
        pairs = min(len(removed), len(added))
        old_parts: list[list[Segment]] = []
        new_parts: list[list[Segment]] = []
        for index in range(pairs):
            old, new = word_diff(removed[index][1:], added[index][1:])
            old_parts.append([("-", False)])
            new_parts.append([("+", False)])
            for segment in old:
                append_segment(old_parts[-1], *segment)
            for segment in new:
                append_segment(new_parts[-1], *segment)
        old_parts += [[(line, False)] for line in removed[pairs:]]
        new_parts += [[(line, False)] for line in added[pairs:]]
        result.extend(DiffLine("removed", segments) for segments in old_parts)
        result.extend(DiffLine("added", segments) for segments in new_parts)
        removed.clear()
        added.clear()

    for line in lines:
        if line.startswith(("---", "+++")) and not removed and not added:
            result.append(DiffLine("header", [(line, False)]))
        elif line.startswith("-"):
            if added:
                flush()
            removed.append(line)
        elif line.startswith("+"):
            added.append(line)
        else:
            flush()
            kind = "hunk" if line.startswith("@@") else "context"
            result.append(DiffLine(kind, [(line, False)]))
    flush()
    return result
