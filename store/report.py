"""The HTML history report of one name: ``render_report(store, name) -> str``.

One self-contained page (inline CSS and SVG, no script, no network request):
a timeline of the versions, a line chart of every numeric metadata field, and
each version's diff against its parent with changed words highlighted. Every
stored string reaches the page through :func:`html.escape`, so a value holding
``<script>`` is shown as text and never runs.

Size and speed: only the keys that changed are shown for each version, long
diffs are folded in ``<details>``, and the contents are read with a few
range queries over the ``state_values`` view (hashes decide what changed,
exactly as the store does) instead of one transaction per version. 1,000
versions of 50 keys render in about a second (see the README).

The word-level highlight (:func:`word_diff`, :func:`classify_lines`) is shared
with the command line's coloured ``diff``.

Example::

    from msgflux.store import StateStore
    from msgflux.store.report import render_report

    with StateStore("states.db") as store:
        Path("history.html").write_text(render_report(store, "pipeline"), encoding="utf-8")
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

from msgflux.store.hashing import decode_value
from msgflux.store.types import StateDiff, Version

if TYPE_CHECKING:
    from msgflux.store.api import StateStore

__all__ = ["DiffLine", "Segment", "classify_lines", "render_report", "word_diff"]

#: A piece of a line and whether it differs from the other side.
Segment = tuple[str, bool]

# Words, runs of spaces, single punctuation marks: the units a changed line is compared in.
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
# Beyond this many tokens a line is marked changed as a whole (SequenceMatcher is quadratic).
_MAX_TOKENS = 4000
# Versions read per query: bounds memory on stores with big values.
_CHUNK_VERSIONS = 200
# A key's diff longer than this (lines or characters) is folded in <details>.
_FOLD_LINES = 14
_FOLD_CHARS = 1500
# A version changing more keys than this shows them folded under one summary.
_FOLD_KEYS = 8
# Charts: at most this many metadata fields; dots with tooltips up to this many points.
_MAX_CHARTS = 16
_MAX_DOTS = 150


# -- word-level diff (shared with the CLI) --------------------------------------------------

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
    while (tail < limit - head
           and old_tokens[len(old_tokens) - 1 - tail] == new_tokens[len(new_tokens) - 1 - tail]):
        tail += 1
    old_middle = old_tokens[head:len(old_tokens) - tail]
    new_middle = new_tokens[head:len(new_tokens) - tail]
    old_segments: list[Segment] = []
    new_segments: list[Segment] = []
    _append(old_segments, "".join(old_tokens[:head]), False)
    _append(new_segments, "".join(new_tokens[:head]), False)
    if len(old_middle) + len(new_middle) > _MAX_TOKENS:
        _append(old_segments, "".join(old_middle), True)
        _append(new_segments, "".join(new_middle), True)
    else:
        matcher = difflib.SequenceMatcher(None, old_middle, new_middle, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            changed = tag != "equal"
            _append(old_segments, "".join(old_middle[i1:i2]), changed)
            _append(new_segments, "".join(new_middle[j1:j2]), changed)
    _append(old_segments, "".join(old_tokens[len(old_tokens) - tail:]), False)
    _append(new_segments, "".join(new_tokens[len(new_tokens) - tail:]), False)
    return old_segments, new_segments


def _append(segments: list[Segment], text: str, changed: bool) -> None:
    if not text:
        return
    if segments and segments[-1][1] == changed:
        segments[-1] = (segments[-1][0] + text, changed)
    else:
        segments.append((text, changed))


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
                _append(old_parts[-1], *segment)
            for segment in new:
                _append(new_parts[-1], *segment)
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


# -- reading the history ---------------------------------------------------------------------

# {key: (value_hash, value)}
_State = dict[str, tuple[str, Any]]


def _read_states(store: StateStore, name: str, low: int, high: int) -> dict[int, _State]:
    """Contents of versions ``low..high`` of ``name`` from the public ``state_values`` view."""
    mark = "?" if store.dialect == "sqlite" else "%s"
    rows = store.query(
        "SELECT version, key, value_type, value_hash, value FROM state_values "
        f"WHERE name = {mark} AND version >= {mark} AND version <= {mark}",
        (name, low, high), timeout=max(store.query_timeout, 120.0))
    states: dict[int, _State] = {}
    for number, key, kind, digest, text in rows:
        states.setdefault(number, {})[key] = (digest, decode_value(kind, text))
    return states


def _diffs(store: StateStore, name: str, versions: list[Version]) -> Iterator[StateDiff]:
    """Each version's diff against its parent (empty for the first or a pruned parent), oldest first."""
    cache: dict[int, _State] = {}
    for start in range(0, len(versions), _CHUNK_VERSIONS):
        chunk = versions[start:start + _CHUNK_VERSIONS]
        loaded = _read_states(store, name, chunk[0].number, chunk[-1].number)
        for version in chunk:
            state = loaded.get(version.number, {})
            parent: _State = {}
            label = f"{name}@empty"
            if version.parent is not None:
                label = f"{name}@{version.parent}"
                if version.parent in loaded:
                    parent = loaded[version.parent]
                elif version.parent in cache:
                    parent = cache[version.parent]
                else:  # older than this chunk, or pruned (then everything is added)
                    parent = _read_states(store, name, version.parent, version.parent).get(
                        version.parent, {})
            yield StateDiff(
                old=label, new=f"{name}@{version.number}",
                added={key: value for key, (_h, value) in state.items() if key not in parent},
                removed={key: value for key, (_h, value) in parent.items() if key not in state},
                changed={key: (parent[key][1], value) for key, (digest, value) in state.items()
                         if key in parent and parent[key][0] != digest})
        # The next chunk's first version usually has the last one here as parent.
        cache = {chunk[-1].number: loaded.get(chunk[-1].number, {})}


# -- rendering ------------------------------------------------------------------------------

def render_report(store: StateStore, name: str) -> str:
    """Return the HTML history report of ``name``: one self-contained page, no script.

    Raises:
        NameNotFound: ``name`` has no history.

    Example::

        Path("history.html").write_text(render_report(store, "pipeline"), encoding="utf-8")
    """
    versions = store.log(name)[::-1]  # oldest first
    tags = store.tags(name)
    diffs = list(_diffs(store, name, versions))
    generated = datetime.now(UTC)
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        # No script, no remote content: the page can't run or fetch anything even if
        # escaping were ever missed somewhere.
        ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
         "style-src 'unsafe-inline'; img-src data:\">\n"),
        f"<title>History of {escape(name)} \u2014 msgflux-store</title>\n",
        f"<style>{_CSS}</style>\n</head>\n<body>\n<header>\n",
        f"<h1>History of <code>{escape(name)}</code></h1>\n",
        (f"<p class=\"summary\">{_summary(versions, tags)} \u00b7 generated "
         f"{escape(_time(generated))}</p>\n</header>\n<main>\n"),
        _charts(versions),
        _timeline(versions, diffs),
        "<section id=\"changes\">\n<h2>Changes</h2>\n",
    ]
    for version, diff in zip(reversed(versions), reversed(diffs), strict=True):
        parts.append(_version_section(version, diff))
    parts.append("</section>\n</main>\n</body>\n</html>\n")
    return "".join(parts)


def _summary(versions: list[Version], tags: dict[str, int]) -> str:
    if not versions:
        return "no versions"
    latest = versions[-1]
    text = (f"{len(versions)} version{'s' if len(versions) != 1 else ''} \u00b7 latest "
            f"<a href=\"#v{latest.number}\">{latest.number}</a>")
    if tags:
        text += " \u00b7 tags " + ", ".join(
            f"<a href=\"#v{number}\" class=\"tag\">{escape(tag)}\u2192{number}</a>"
            for tag, number in tags.items())
    return text


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _timeline(versions: list[Version], diffs: list[StateDiff]) -> str:
    rows = []
    for version, diff in zip(reversed(versions), reversed(diffs), strict=True):
        counts = " ".join(f"<span class=\"{kind}\">{sign}{count}</span>" for kind, sign, count in (
            ("added", "+", len(diff.added)), ("removed", "\u2212", len(diff.removed)),
            ("changed", "~", len(diff.changed))) if count)
        rows.append(
            f"<tr><td class=\"num\"><a href=\"#v{version.number}\">{version.number}</a></td>"
            f"<td class=\"time\">{escape(_time(version.created_at))}</td>"
            f"<td>{escape(version.author or '')}</td>"
            f"<td class=\"message\">{escape(version.message)}</td>"
            f"<td>{_tag_list(version.tags)}</td><td class=\"counts\">{counts or '='}</td></tr>\n")
    return ("<section id=\"timeline\">\n<h2>Timeline</h2>\n<table class=\"timeline\">\n<thead><tr>"
            "<th>Version</th><th>Time</th><th>Author</th><th>Message</th><th>Tags</th>"
            "<th>Keys</th></tr></thead>\n<tbody>\n" + "".join(rows) + "</tbody>\n</table>\n"
            "</section>\n")


def _tag_list(tags: Iterable[str]) -> str:
    return " ".join(f"<span class=\"tag\">{escape(tag)}</span>" for tag in tags)


def _version_section(version: Version, diff: StateDiff) -> str:
    head = (f"<article class=\"version\" id=\"v{version.number}\" "
            f"data-version=\"{version.number}\">\n<h3>Version {version.number} "
            f"{_tag_list(version.tags)}</h3>\n<p class=\"meta\">"
            f"<span class=\"time\">{escape(_time(version.created_at))}</span>")
    if version.author:
        head += f" \u00b7 {escape(version.author)}"
    head += f" \u00b7 <code class=\"snapshot\">{escape(version.snapshot[:12])}</code>"
    if version.parent is not None:
        head += f" \u00b7 parent <a href=\"#v{version.parent}\">{version.parent}</a>"
    head += "</p>\n"
    if version.message:
        head += f"<p class=\"message\">{escape(version.message)}</p>\n"
    if version.metadata:
        head += ("<p class=\"metadata\">" + " ".join(
            f"<span>{escape(key)}=<code>{escape(_short(value))}</code></span>"
            for key, value in sorted(version.metadata.items())) + "</p>\n")
    if not diff:
        return head + "<p class=\"nochange\">same content as its parent</p>\n</article>\n"
    blocks = [_key_block(key, lines, _change_kind(diff, key)) for key, lines in diff.hunks()]
    body = "".join(blocks)
    if len(blocks) > _FOLD_KEYS:
        body = (f"<details class=\"keys\"><summary>{len(blocks)} keys differ from "
                f"{escape(diff.old)}</summary>\n{body}</details>\n")
    return head + f"<div class=\"diff\">\n{body}</div>\n</article>\n"


def _change_kind(diff: StateDiff, key: str) -> str:
    if key in diff.added:
        return "added"
    return "removed" if key in diff.removed else "changed"


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def _key_block(key: str, lines: list[str], kind: str) -> str:
    rendered = []
    classified = classify_lines(lines)
    # One hunk of a one-line value: its "@@ -1 +1 @@" says nothing the colours don't.
    single = sum(line.kind == "hunk" for line in classified) == 1 and all(
        line.kind != "context" for line in classified)
    for line in classified:
        if line.kind == "header" or (single and line.kind == "hunk"):
            continue  # the key is named in the block's heading
        cells = "".join(
            (f"<{'del' if line.kind == 'removed' else 'ins'}>{escape(text)}"
             f"</{'del' if line.kind == 'removed' else 'ins'}>")
            if changed else escape(text)
            for text, changed in line.segments)
        rendered.append(f"<span class=\"l {line.kind}\">{cells}</span>")
    body = "".join(rendered)  # each line is a display:block span
    title = (f"<code class=\"key\">{escape(key)}</code> <span class=\"{kind}\">{kind}</span>")
    size = sum(len(line) for line in lines)
    if len(rendered) > _FOLD_LINES or size > _FOLD_CHARS:
        return (f"<details class=\"key\"><summary>{title} <span class=\"size\">"
                f"{len(rendered)} lines</span></summary><pre>{body}</pre></details>\n")
    return f"<div class=\"key\"><div class=\"keyname\">{title}</div><pre>{body}</pre></div>\n"


# -- charts ---------------------------------------------------------------------------------

def _numeric_fields(versions: list[Version]) -> dict[str, list[tuple[int, float]]]:
    fields: dict[str, list[tuple[int, float]]] = {}
    for version in versions:
        for key, value in version.metadata.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                try:
                    point = float(value)
                except OverflowError:  # an int beyond float range: not chartable
                    continue
                fields.setdefault(key, []).append((version.number, point))
    return dict(sorted(fields.items()))


def _charts(versions: list[Version]) -> str:
    fields = _numeric_fields(versions)
    if not fields:
        return ("<section id=\"charts\">\n<h2>Metadata</h2>\n<p class=\"nochange\">no numeric "
                "metadata to chart</p>\n</section>\n")
    shown = list(fields.items())[:_MAX_CHARTS]
    charts = "".join(_chart(key, points) for key, points in shown)
    more = ""
    if len(fields) > len(shown):
        more = (f"<p class=\"nochange\">{len(fields) - len(shown)} more numeric fields not "
                "charted</p>\n")
    return (f"<section id=\"charts\">\n<h2>Metadata</h2>\n<div class=\"charts\">\n{charts}"
            f"</div>\n{more}</section>\n")


def _number(value: float) -> str:
    return f"{value:.4g}"


def _chart(key: str, points: list[tuple[int, float]]) -> str:
    width, height = 560, 200
    left, right, top, bottom = 64, 16, 14, 34
    xs = [number for number, _value in points]
    ys = [value for _number_, value in points]
    x_low, x_high = min(xs), max(xs)
    y_low, y_high = min(ys), max(ys)
    if x_low == x_high:
        x_low, x_high = x_low - 1, x_high + 1
    if y_low == y_high:
        pad = abs(y_low) * 0.1 or 1.0
        y_low, y_high = y_low - pad, y_high + pad
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_at(number: float) -> float:
        return left + (number - x_low) / (x_high - x_low) * plot_w

    def y_at(value: float) -> float:
        return top + (y_high - value) / (y_high - y_low) * plot_h

    line = " ".join(f"{x_at(number):.1f},{y_at(value):.1f}" for number, value in points)
    label = escape(key)
    svg = [(f"<figure class=\"chart\"><figcaption><code>{label}</code> latest "
            f"<b>{_number(ys[-1])}</b> (v{xs[-1]}) \u00b7 min {_number(min(ys))} \u00b7 "
            f"max {_number(max(ys))}</figcaption>\n"
            f"<svg viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" "
            f"role=\"img\" aria-label=\"{label} across versions\">\n"
            f"<title>{label} across versions</title>\n")]
    for fraction in (0.0, 0.5, 1.0):  # horizontal grid lines with their values
        value = y_low + (y_high - y_low) * fraction
        y = y_at(value)
        svg.append(f"<line class=\"grid\" x1=\"{left}\" y1=\"{y:.1f}\" x2=\"{width - right}\" "
                   f"y2=\"{y:.1f}\"/><text class=\"tick\" x=\"{left - 6}\" y=\"{y + 4:.1f}\" "
                   f"text-anchor=\"end\">{_number(value)}</text>\n")
    for number in _x_ticks(x_low, x_high, xs):
        x = x_at(number)
        svg.append(f"<line class=\"axis\" x1=\"{x:.1f}\" y1=\"{top + plot_h}\" x2=\"{x:.1f}\" "
                   f"y2=\"{top + plot_h + 4}\"/><text class=\"tick\" x=\"{x:.1f}\" "
                   f"y=\"{top + plot_h + 17}\" text-anchor=\"middle\">{number}</text>\n")
    svg.append(f"<line class=\"axis\" x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" "
               f"y2=\"{top + plot_h}\"/><line class=\"axis\" x1=\"{left}\" y1=\"{top + plot_h}\" "
               f"x2=\"{width - right}\" y2=\"{top + plot_h}\"/>\n"
               f"<text class=\"label\" x=\"{left + plot_w / 2:.1f}\" y=\"{height - 3}\" "
               f"text-anchor=\"middle\">version</text>\n"
               f"<polyline class=\"series\" points=\"{line}\"/>\n")
    if len(points) <= _MAX_DOTS:
        svg.extend(f"<circle cx=\"{x_at(number):.1f}\" cy=\"{y_at(value):.1f}\" r=\"3\">"
                   f"<title>v{number}: {label} = {_number(value)}</title></circle>"
                   for number, value in points)
    svg.append("\n</svg></figure>\n")
    return "".join(svg)


def _x_ticks(low: int, high: int, xs: list[int]) -> list[int]:
    if len(set(xs)) == 1:
        return [xs[0]]
    span = high - low
    step = max(1, round(span / 5))
    ticks = list(range(low, high + 1, step))
    if high - ticks[-1] < step / 2:
        ticks[-1] = high
    else:
        ticks.append(high)
    return ticks


_CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--soft:#f6f8fa;
--add:#e6ffec;--addw:#abf2bc;--del:#ffebe9;--delw:#ffc1c0;--accent:#0969da}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;
--bg:#0d1117;--soft:#151b23;--add:#12261e;--addw:#1f6f3a;--del:#25171c;--delw:#8e2b2f;
--accent:#4493f8}}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
header,main{max-width:1100px;margin:0 auto;padding:0 20px}
h1{font-size:24px;margin:24px 0 4px}h2{font-size:18px;margin:28px 0 10px;
border-bottom:1px solid var(--line);padding-bottom:4px}h3{font-size:15px;margin:0 0 4px}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
code,pre{font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.summary,.meta,.nochange,.size{color:var(--muted)}
.tag{display:inline-block;padding:0 7px;border-radius:10px;font-size:12px;font-weight:600;
background:#ddf4ff;color:#0550ae;margin-right:3px}
.charts{display:flex;flex-wrap:wrap;gap:12px}
figure.chart{margin:0;padding:8px;border:1px solid var(--line);border-radius:6px}
figcaption{font-size:13px;margin-bottom:4px}
svg{max-width:100%;height:auto}svg text{fill:var(--muted);font-size:11px}
.grid{stroke:var(--line);stroke-dasharray:3 3}.axis{stroke:var(--muted)}
.series{fill:none;stroke:var(--accent);stroke-width:1.6}circle{fill:var(--accent)}
table.timeline{border-collapse:collapse;width:100%}
.timeline th,.timeline td{text-align:left;padding:3px 8px;border-bottom:1px solid var(--line);
vertical-align:top}
.timeline th{position:sticky;top:0;background:var(--soft)}
td.num{text-align:right}td.time{white-space:nowrap;color:var(--muted)}
td.message{overflow-wrap:anywhere}td.counts{white-space:nowrap}
.added{color:#1a7f37}.removed{color:#cf222e}.changed{color:#9a6700}
article.version{border:1px solid var(--line);border-radius:6px;padding:10px 12px;margin:10px 0}
article.version:target{outline:2px solid var(--accent)}
.message{margin:2px 0;white-space:pre-wrap;overflow-wrap:anywhere}
.metadata span{margin-right:10px}.metadata code{background:var(--soft);padding:0 3px}
.key{margin:6px 0}.keyname,summary{font-size:13px}summary{cursor:pointer}
pre{margin:2px 0 0;padding:6px 0;background:var(--soft);border-radius:4px;overflow-x:auto;
white-space:pre-wrap;overflow-wrap:anywhere}
.l{display:block;padding:0 8px}.l.removed{background:var(--del);color:inherit}
.l.added{background:var(--add);color:inherit}.l.hunk{color:var(--muted)}
del{background:var(--delw);text-decoration:none;border-radius:2px}
ins{background:var(--addw);text-decoration:none;border-radius:2px}
"""
