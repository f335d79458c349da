"""The HTML history report of one name: ``render_report(store, name) -> str``.

One self-contained page (inline CSS and SVG, no script, no network request, a
Content-Security-Policy that forbids both): a timeline of the versions, a line
chart of every numeric metadata field, and the newest versions' diffs against
their parents with changed words highlighted. Every stored string reaches the
page through :func:`html.escape`, so a value holding ``<script>`` is shown as
text and never runs.

Bounded at any history length (20,000 versions of 50 keys: see the README):

* the newest ``recent`` versions (default 200) are shown with their diffs;
  older ones are summarised: the timeline groups them in at most 100 rows of
  version ranges, lists every tagged one on its own, and the charts still
  plot them. The page states the command that shows any version's diff
  (``msgflux-store diff NAME N``);
* a value's diff is line-level first, word-level only inside short changed
  lines, and capped ("n more lines changed"), see :mod:`._report_diff`; a
  version shows at most 20 keys, and once the page holds about 4 MB of diffs
  older versions list their changed keys without a diff;
* charts plot at most the minimum and maximum of each of 240 buckets of
  versions, plus every tagged point and the best (highest) one.

The history is read in one read transaction through the store's own read
path (not through :meth:`StateStore.query`), see :mod:`._report_data`.

The word-level highlight (:func:`word_diff`, :func:`classify_lines`) is shared
with the command line's coloured ``diff``.

Example::

    from msgflux.store import StateStore
    from msgflux.store.report import render_report

    with StateStore("states.db") as store:
        Path("history.html").write_text(render_report(store, "pipeline"), encoding="utf-8")
"""

from __future__ import annotations

import json
import math
import shlex
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

from msgflux.store._report_data import History, read_history
from msgflux.store._report_diff import Row, value_rows
from msgflux.store._word_diff import DiffLine, Segment, classify_lines, word_diff
from msgflux.store.errors import InvalidInputError
from msgflux.store.types import StateDiff, Version

if TYPE_CHECKING:
    from msgflux.store.api import StateStore

__all__ = ["DiffLine", "Segment", "classify_lines", "render_report", "word_diff", "RECENT"]

#: Versions shown with their diffs by default (the newest ones).
RECENT = 200
# Older versions are grouped into at most this many timeline rows.
_SUMMARY_ROWS = 100
# A key's diff with more rows (or characters) than this is folded in <details>.
_FOLD_ROWS = 14
_FOLD_CHARS = 1500
# A version changing more keys than this shows them folded under one summary ...
_FOLD_KEYS = 8
# ... and at most this many of them with their diff; the rest by name.
_MAX_KEYS_SHOWN = 20
_MAX_KEYS_NAMED = 30
# Once the page holds this many characters of diffs, older versions list keys only.
_DIFF_BUDGET = 4_000_000
# Tags named in the page's summary line.
_MAX_TAGS_LISTED = 40
# Charts: at most this many metadata fields; min and max of this many buckets per chart;
# a dot with a tooltip for every point up to this many, else for tagged and best points.
_MAX_CHARTS = 16
_BUCKETS = 240
_MAX_DOTS = 150


# -- the page -------------------------------------------------------------------------------

def render_report(store: StateStore, name: str, *, recent: int = RECENT) -> str:
    """Return the HTML history report of ``name``: one self-contained page, no script.

    The newest ``recent`` versions are shown with their diffs; older ones are
    summarised (timeline ranges, chart points, tags). The history is read in
    one read transaction.

    Raises:
        NameNotFound: ``name`` has no history. InvalidInputError: ``recent`` is
        not a non-negative integer. IntegrityError: a stored row can't be decoded.

    Example::

        Path("history.html").write_text(render_report(store, "pipeline"), encoding="utf-8")
    """
    return _render(store, name, recent=recent)[0]


def _render(store: StateStore, name: str, *, recent: int = RECENT) -> tuple[str, int]:
    """The page and the number of versions on it (the command line prints both)."""
    if isinstance(recent, bool) or not isinstance(recent, int) or recent < 0:
        raise InvalidInputError(f"recent must be a non-negative integer, not {recent!r}")
    history = read_history(store, name, detailed=recent)
    return _page(history), len(history.versions)


def _page(history: History) -> str:
    name = history.name
    generated = datetime.now(UTC)
    diffs = [history.diff(version) for version in history.detailed]
    numbers = {version.number for version in history.versions}
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
        (f"<p class=\"summary\">{_summary(history)} \u00b7 generated "
         f"{escape(_time(generated))}</p>\n"),
        _how_to_diff(history),
        "</header>\n<main>\n",
        _charts(history.versions),
        _timeline(history, diffs),
        "<section id=\"changes\">\n<h2>Changes</h2>\n",
    ]
    # Versions with an element of their own on the page: the detailed ones, tagged older ones.
    anchored = {version.number for version in history.detailed} | {
        version.number for version in history.summarised if version.tags}
    budget = _DIFF_BUDGET
    for version, diff in zip(reversed(history.detailed), reversed(diffs), strict=True):
        section = _version_section(name, version, diff, budget > 0,
                                   parent_exists=version.parent in numbers, anchored=anchored,
                                   base=history.base(version))
        budget -= len(section)
        parts.append(section)
    if history.summarised:
        parts.append(f"<p class=\"nochange\">Versions {_range(history.summarised)} are "
                     "summarised in the timeline; their diffs are not on this page.</p>\n")
    parts.append("</section>\n</main>\n</body>\n</html>\n")
    return "".join(parts)


def _command(name: str, number: int | str) -> str:
    """The shell command that prints one version's diff against its parent, escaped for HTML."""
    return escape(f"msgflux-store diff {shlex.quote(name)} {number}")


def _range(versions: list[Version]) -> str:
    first, last = versions[0].number, versions[-1].number
    return f"{first:,}" if first == last else f"{first:,}\u2013{last:,}"


def _summary(history: History) -> str:
    versions = history.versions
    if not versions:
        return "no versions"
    latest = versions[-1]
    text = (f"{len(versions):,} version{'s' if len(versions) != 1 else ''} "
            f"({_range(versions)}) \u00b7 latest <a href=\"#v{latest.number}\">"
            f"{latest.number}</a>")
    if history.tags:
        listed = list(history.tags.items())[:_MAX_TAGS_LISTED]
        text += " \u00b7 tags " + ", ".join(
            f"<a href=\"#v{number}\" class=\"tag\">{escape(tag)}\u2192{number}</a>"
            for tag, number in listed)
        if len(history.tags) > len(listed):
            text += f" and {len(history.tags) - len(listed):,} more"
    return text


def _how_to_diff(history: History) -> str:
    shown = ""
    if history.summarised:
        shown = (f"The newest {len(history.detailed):,} versions are shown with their diffs; "
                 f"the {len(history.summarised):,} older ones are summarised. ")
    return (f"<p class=\"how\">{shown}Any version's diff against its parent: "
            f"<code>{_command(history.name, 'N')}</code> (with this store's <code>--db</code>)."
            "</p>\n")


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- timeline -------------------------------------------------------------------------------

def _timeline(history: History, diffs: list[StateDiff]) -> str:
    rows = []
    for version, diff in zip(reversed(history.detailed), reversed(diffs), strict=True):
        counts = " ".join(f"<span class=\"{kind}\">{sign}{count}</span>" for kind, sign, count in (
            ("added", "+", len(diff.added)), ("removed", "\u2212", len(diff.removed)),
            ("changed", "~", len(diff.changed))) if count)
        rows.append(
            f"<tr><td class=\"num\"><a href=\"#v{version.number}\">{version.number}</a></td>"
            f"<td class=\"time\">{escape(_time(version.created_at))}</td>"
            f"<td>{escape(version.author or '')}</td>"
            f"<td class=\"message\">{escape(version.message)}</td>"
            f"<td>{_tag_list(version.tags)}</td><td class=\"counts\">{counts or '='}</td></tr>\n")
    parts = ["<section id=\"timeline\">\n<h2>Timeline</h2>\n<table class=\"timeline\">\n"
             "<thead><tr><th>Version</th><th>Time</th><th>Author</th><th>Message</th>"
             "<th>Tags</th><th>Keys</th></tr></thead>\n<tbody>\n", *rows, "</tbody>\n</table>\n"]
    if history.summarised:
        parts.append(_older(history))
    parts.append("</section>\n")
    return "".join(parts)


def _older(history: History) -> str:
    """The summarised versions: ranges of versions, then every tagged one on its own row."""
    older = history.summarised
    size = math.ceil(len(older) / _SUMMARY_ROWS)
    rows = []
    for start in reversed(range(0, len(older), size)):
        group = older[start:start + size]
        authors = Counter(version.author for version in group if version.author)
        named = ", ".join(escape(author) for author, _count in authors.most_common(3))
        if len(authors) > 3:
            named += f" +{len(authors) - 3}"
        tags = " ".join(f"<a href=\"#v{version.number}\">{_tag_list(version.tags)}</a>"
                        for version in group if version.tags)
        rows.append(
            f"<tr><td class=\"num\">{_range(group)}</td><td class=\"num\">{len(group):,}</td>"
            f"<td class=\"time\">{escape(_time(group[0].created_at))}</td>"
            f"<td class=\"time\">{escape(_time(group[-1].created_at))}</td><td>{named}</td>"
            f"<td>{tags}</td><td class=\"message\">{escape(_short(group[-1].message))}</td>"
            "</tr>\n")
    parts = [f"<h3>Older versions {_range(older)}</h3>\n<table class=\"timeline older\">\n"
             "<thead><tr><th>Versions</th><th>Count</th><th>From</th><th>To</th>"
             "<th>Authors</th><th>Tags</th><th>Last message</th></tr></thead>\n<tbody>\n",
             *rows, "</tbody>\n</table>\n"]
    tagged = [version for version in older if version.tags]
    if tagged:
        parts.append("<h3>Tagged older versions</h3>\n<table class=\"timeline\">\n<thead><tr>"
                     "<th>Version</th><th>Time</th><th>Author</th><th>Message</th><th>Tags</th>"
                     "<th>Its diff</th></tr></thead>\n<tbody>\n")
        parts.extend(
            f"<tr id=\"v{version.number}\"><td class=\"num\">{version.number}</td>"
            f"<td class=\"time\">{escape(_time(version.created_at))}</td>"
            f"<td>{escape(version.author or '')}</td>"
            f"<td class=\"message\">{escape(version.message)}</td>"
            f"<td>{_tag_list(version.tags)}</td>"
            f"<td><code>{_command(history.name, version.number)}</code></td></tr>\n"
            for version in reversed(tagged))
        parts.append("</tbody>\n</table>\n")
    return "".join(parts)


def _tag_list(tags: Iterable[str]) -> str:
    return " ".join(f"<span class=\"tag\">{escape(tag)}</span>" for tag in tags)


# -- one version's diff ---------------------------------------------------------------------

def _version_section(name: str, version: Version, diff: StateDiff, with_diff: bool, *,
                     parent_exists: bool, anchored: set[int], base: int | None = None) -> str:
    head = (f"<article class=\"version\" id=\"v{version.number}\" "
            f"data-version=\"{version.number}\">\n<h3>Version {version.number} "
            f"{_tag_list(version.tags)}</h3>\n<p class=\"meta\">"
            f"<span class=\"time\">{escape(_time(version.created_at))}</span>")
    if version.author:
        head += f" \u00b7 {escape(version.author)}"
    head += f" \u00b7 <code class=\"snapshot\">{escape(version.snapshot[:12])}</code>"
    if version.parent is not None:
        head += (f" \u00b7 parent <a href=\"#v{version.parent}\">{version.parent}</a>"
                 if version.parent in anchored else f" \u00b7 parent {version.parent}")
        if not parent_exists:
            head += (" (pruned: every key is shown as added)" if base is None else
                     f" (pruned: compared with the nearest surviving ancestor, "
                     f"<a href=\"#v{base}\">{base}</a>)" if base in anchored else
                     f" (pruned: compared with the nearest surviving ancestor, {base})")
    head += "</p>\n"
    if version.message:
        head += f"<p class=\"message\">{escape(version.message)}</p>\n"
    if version.metadata:
        head += ("<p class=\"metadata\">" + " ".join(
            f"<span>{escape(key)}=<code>{escape(_short(value))}</code></span>"
            for key, value in sorted(version.metadata.items())) + "</p>\n")
    if not diff:
        return head + "<p class=\"nochange\">same content as its parent</p>\n</article>\n"
    keys = diff.keys
    if not with_diff:
        return (head + f"<p class=\"nochange\">{len(keys):,} keys differ: "
                f"{_key_names(keys)}. Diff not shown (this page keeps its size bounded): "
                f"<code>{_command(name, version.number)}</code></p>\n</article>\n")
    command = _command(name, version.number)
    blocks = [_key_block(key, diff, command) for key in keys[:_MAX_KEYS_SHOWN]]
    body = "".join(blocks)
    if len(keys) > _MAX_KEYS_SHOWN:
        body += (f"<p class=\"nochange\">{len(keys) - _MAX_KEYS_SHOWN:,} more keys differ: "
                 f"{_key_names(keys[_MAX_KEYS_SHOWN:])} (<code>{command}</code>)</p>\n")
    if len(keys) > _FOLD_KEYS:
        body = (f"<details class=\"keys\"><summary>{len(keys):,} keys differ from "
                f"{escape(diff.old)}</summary>\n{body}</details>\n")
    return head + f"<div class=\"diff\">\n{body}</div>\n</article>\n"


def _key_names(keys: list[str]) -> str:
    named = ", ".join(f"<code>{escape(key)}</code>" for key in keys[:_MAX_KEYS_NAMED])
    return named + (f" and {len(keys) - _MAX_KEYS_NAMED:,} more" if len(keys) > _MAX_KEYS_NAMED
                    else "")


def _key_block(key: str, diff: StateDiff, command: str) -> str:
    if key in diff.added:
        kind, rows = "added", value_rows(None, diff.added[key], old_missing=True)
    elif key in diff.removed:
        kind, rows = "removed", value_rows(diff.removed[key], None, new_missing=True)
    else:
        kind, rows = "changed", value_rows(*diff.changed[key])
    rendered = [_row(row, command) for row in rows]
    body = "".join(rendered)  # each row is a display:block span
    title = f"<code class=\"key\">{escape(key)}</code> <span class=\"{kind}\">{kind}</span>"
    size = sum(len(text) for row in rows for text, _changed in row.segments)
    if len(rendered) > _FOLD_ROWS or size > _FOLD_CHARS:
        return (f"<details class=\"key\"><summary>{title} <span class=\"size\">"
                f"{len(rendered)} lines</span></summary><pre>{body}</pre></details>\n")
    return f"<div class=\"key\"><div class=\"keyname\">{title}</div><pre>{body}</pre></div>\n"


_SIGNS = {"context": " ", "removed": "-", "added": "+"}
_MARKS = {"removed": "del", "added": "ins"}


def _row(row: Row, command: str) -> str:
    if row.kind == "gap":
        return (f"<span class=\"l gap\">\u22ef {row.skipped:,} unchanged "
                f"line{'s' if row.skipped != 1 else ''}</span>")
    if row.kind == "more":
        return (f"<span class=\"l more\">\u2026 {row.skipped:,} more "
                f"line{'s' if row.skipped != 1 else ''} changed: <code>{command}</code></span>")
    mark = _MARKS.get(row.kind)
    cells = "".join(f"<{mark}>{escape(text)}</{mark}>" if changed and mark else escape(text)
                    for text, changed in row.segments)
    cont = " cont" if row.continued else ""
    return f"<span class=\"l {row.kind}{cont}\">{_SIGNS[row.kind]}{cells}</span>"


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


# -- charts ---------------------------------------------------------------------------------

Point = tuple[int, float]


def _numeric_fields(versions: list[Version]) -> dict[str, list[Point]]:
    fields: dict[str, list[Point]] = {}
    for version in versions:
        for key, value in version.metadata.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                try:
                    point = float(value)
                except OverflowError:  # an int beyond float range: not chartable
                    continue
                if math.isfinite(point):
                    fields.setdefault(key, []).append((version.number, point))
    return dict(sorted(fields.items()))


def _charts(versions: list[Version]) -> str:
    fields = _numeric_fields(versions)
    if not fields:
        return ("<section id=\"charts\">\n<h2>Metadata</h2>\n<p class=\"nochange\">no numeric "
                "metadata to chart</p>\n</section>\n")
    tags = {version.number: version.tags for version in versions if version.tags}
    shown = list(fields.items())[:_MAX_CHARTS]
    charts = "".join(_chart(key, points, tags) for key, points in shown)
    more = ""
    if len(fields) > len(shown):
        more = (f"<p class=\"nochange\">{len(fields) - len(shown)} more numeric fields not "
                "charted</p>\n")
    return (f"<section id=\"charts\">\n<h2>Metadata</h2>\n<div class=\"charts\">\n{charts}"
            f"</div>\n{more}</section>\n")


def downsample(points: list[Point], keep: set[int], buckets: int = _BUCKETS) -> list[Point]:
    """At most the lowest and highest point of each of ``buckets`` runs of points, in order.

    The first and last points and every point whose version is in ``keep`` are
    always kept, so a tagged version or the best score is never dropped.
    """
    if len(points) <= 2 * buckets:
        return points
    chosen = {0, len(points) - 1}
    chosen.update(index for index, (number, _value) in enumerate(points) if number in keep)
    size = len(points) / buckets
    for bucket in range(buckets):
        indexes = range(int(bucket * size), int((bucket + 1) * size))
        if indexes:
            chosen.add(min(indexes, key=lambda index: points[index][1]))
            chosen.add(max(indexes, key=lambda index: points[index][1]))
    return [points[index] for index in sorted(chosen)]


def _number(value: float) -> str:
    return f"{value:.4g}"


def _chart(key: str, points: list[Point], tags: dict[int, tuple[str, ...]]) -> str:
    width, height = 560, 200
    left, right, top, bottom = 64, 16, 14, 34
    best = max(points, key=lambda point: point[1])
    shown = downsample(points, {*tags, best[0]})
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

    line = " ".join(f"{x_at(number):.1f},{y_at(value):.1f}" for number, value in shown)
    label = escape(key)
    sampled = ""
    if len(shown) < len(points):
        sampled = (f" \u00b7 {len(points):,} points, drawn as the low and high of "
                   f"{_BUCKETS} runs")
    svg = [(f"<figure class=\"chart\"><figcaption><code>{label}</code> latest "
            f"<b>{_number(ys[-1])}</b> (v{xs[-1]}) \u00b7 min {_number(min(ys))} \u00b7 "
            f"max {_number(best[1])} (v{best[0]}){sampled}</figcaption>\n"
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
    for number, value in shown:
        marked = number in tags or number == best[0]
        if len(shown) > _MAX_DOTS and not marked:
            continue
        names = ", ".join(tags.get(number, ()))
        note = f" ({escape(names)})" if names else ""
        note += " best" if number == best[0] else ""
        kind = " class=\"tagged\"" if number in tags else (
            " class=\"best\"" if number == best[0] else "")
        svg.append(f"<circle{kind} cx=\"{x_at(number):.1f}\" cy=\"{y_at(value):.1f}\" "
                   f"r=\"{4 if marked else 3}\"><title>v{number}{note}: {label} = "
                   f"{_number(value)}</title></circle>")
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
.l.cont{padding-left:24px}.l.gap,.l.more{color:var(--muted);font-style:italic}
circle.tagged{fill:#bf8700}circle.best{fill:#1a7f37}.how{color:var(--muted)}
table.older td{font-size:13px}
del{background:var(--delw);text-decoration:none;border-radius:2px}
ins{background:var(--addw);text-decoration:none;border-radius:2px}
"""
