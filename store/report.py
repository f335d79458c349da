"""The HTML history report of one name: ``render_report(store, name) -> str``.

One self-contained page (inline CSS and SVG, no script, no network request, a
Content-Security-Policy that forbids both): a table of contents, a line chart
of every numeric metadata field (tagged versions marked, each point a link to
its version), a timeline with a column per numeric metadata field and tag
badges (a traffic split's weight on each of its versions), the full current
state of the head and of each tag, and the newest versions' diffs against
their parents with changed words highlighted. Every stored string reaches the
page through :func:`html.escape`, so a value holding ``<script>`` is shown as
text and never runs.

Bounded at any history length (20,000 versions of 50 keys: see the README):

* the newest ``recent`` versions (default 200) are shown with their diffs,
  the newest :data:`OPEN` of them open and older ones folded in ``<details>``
  groups of :data:`OPEN` (the table of contents links each group);
  older versions are summarised: the timeline groups them in at most 100 rows
  of version ranges, lists every tagged one on its own, and a folded table
  lists every one of them with its metadata (so every version has an anchor
  on the page); the charts still plot them. The page states the command that
  shows any version's diff (``msgflux-store diff NAME N``);
* a value's diff is line-level first, word-level only inside short changed
  lines, and capped ("n more lines changed"), see :mod:`._report_diff`; a
  version shows at most 20 keys, and once the page holds about 4 MB of diffs
  older versions list their changed keys without a diff;
* charts plot at most the minimum and maximum of each of 240 buckets of
  versions (one per 2 pixels), plus every tagged point and the best (highest)
  one; the tables keep every value;
* the current-state section shows at most 20 versions (head first, then
  tagged ones newest first), and once it holds about 2 MB later ones list
  their keys only.

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
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

from msgflux.store._report_data import History, State, read_history
from msgflux.store._report_diff import Row, value_rows
from msgflux.store._word_diff import DiffLine, Segment, classify_lines, word_diff
from msgflux.store.errors import InvalidInputError
from msgflux.store.types import StateDiff, Version

if TYPE_CHECKING:
    from msgflux.store.api import StateStore

__all__ = [
    "DiffLine",
    "Segment",
    "classify_lines",
    "downsample",
    "render_report",
    "word_diff",
    "OPEN",
    "RECENT",
]

#: Versions shown with their diffs by default (the newest ones).
RECENT = 200
#: Diffs shown open; older ones fold in <details> groups of this many.
OPEN = 50
# The current-state section stops showing values once it holds this many characters.
_STATE_BUDGET = 2_000_000
# Tagged-version blocks of the current-state section shown open (the head's always is).
_STATES_OPEN = 3
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

    The page holds a table of contents, a chart per numeric metadata field
    (points link to their versions, tagged versions marked), the timeline with
    a column per numeric metadata field and tag badges, the full state of the
    head and of each tagged version, and the newest ``recent`` versions' diffs
    (the newest :data:`OPEN` open, older ones folded in ``<details>``); older
    versions are summarised (timeline ranges, a folded row each, chart points,
    tags). The history is read in one read transaction.

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
    diffs = {version.number: history.diff(version) for version in history.detailed}
    # Every version has an element of its own on the page: a detailed one its article, an
    # older tagged one its row in "Tagged older versions", any other its row in the
    # folded table of every older version.
    numbers = {version.number for version in history.versions}
    keys = _numeric_keys(history.versions)
    charted = _charted(history.versions, keys)
    groups = _diff_groups(history)
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        # No script, no remote content: the page can't run or fetch anything even if
        # escaping were ever missed somewhere.
        (
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'; img-src data:\">\n"
        ),
        f"<title>History of {escape(name)} \u2014 msgflux-store</title>\n",
        f'<style>{_CSS}</style>\n</head>\n<body>\n<header id="top">\n',
        f"<h1>History of <code>{escape(name)}</code></h1>\n",
        (
            f'<p class="summary">{_summary(history)} \u00b7 generated '
            f"{escape(_time(generated))}</p>\n"
        ),
        _how_to_diff(history),
        _contents(history, charted, groups),
        "</header>\n<main>\n",
        _charts(history, keys, charted),
        _timeline(history, diffs, keys[:_MAX_CHARTS]),
        _current(history),
        '<section id="changes">\n',
        _heading("Changes"),
    ]
    budget = _DIFF_BUDGET
    for index, group in enumerate(groups):
        sections = []
        for version in group:
            section = _version_section(
                name,
                version,
                diffs[version.number],
                budget > 0,
                parent_exists=version.parent in numbers,
                anchored=numbers,
                base=history.base(version),
                badges=_badges(history, version),
            )
            budget -= len(section)
            sections.append(section)
        if index == 0:
            parts.extend(sections)
        else:  # older diffs fold, a group of OPEN at a time
            parts.append(
                f'<details class="fold" id="{_fold_id(group)}"><summary>Versions '
                f"{_range(group[::-1])}: {len(group):,} older diffs (folded)</summary>\n"
            )
            parts.extend(sections)
            parts.append("</details>\n")
    if history.summarised:
        parts.append(
            f'<p class="nochange">Versions {_range(history.summarised)} are '
            "summarised in the timeline; their diffs are not on this page.</p>\n"
        )
    parts.append("</section>\n</main>\n</body>\n</html>\n")
    return "".join(parts)


def _heading(title: str) -> str:
    """A section heading with its back-to-top link."""
    return f'<h2>{title} <a class="top" href="#top">\u2191 top</a></h2>\n'


def _diff_groups(history: History) -> list[list[Version]]:
    """The detailed versions newest first, in groups of :data:`OPEN` (the first one open)."""
    newest = history.detailed[::-1]
    return [newest[start : start + OPEN] for start in range(0, len(newest), OPEN)]


def _fold_id(group: list[Version]) -> str:
    return f"fold-{group[0].number}-{group[-1].number}"


def _contents(
    history: History, charted: list[tuple[str, list[Point]]], groups: list[list[Version]]
) -> str:
    """The table of contents: every section, chart, current state and group of diffs."""
    charts = "".join(
        f'<li><a href="#chart-{index}"><code>{escape(key)}</code></a></li>'
        for index, (key, _points) in enumerate(charted)
    )
    items = [
        f'<li><a href="#charts">Metadata charts</a>{f"<ol>{charts}</ol>" if charts else ""}</li>\n'
    ]
    timeline = '<li><a href="#timeline">Timeline</a>'
    if history.summarised:
        timeline += (
            f'<ol><li><a href="#older">Older versions {_range(history.summarised)}'
            '</a></li><li><a href="#every-older">Every older version</a></li></ol>'
        )
    items.append(timeline + "</li>\n")
    head = history.versions[-1].number if history.versions else None
    tags = {version.number: version.tags for version in history.versions if version.tags}
    states = []
    for number in history.current:
        labels = (["head"] if number == head else []) + [
            escape(tag) for tag in tags.get(number, ())
        ]
        shown = ", ".join(labels[:4]) + (f" +{len(labels) - 4}" if len(labels) > 4 else "")
        states.append(f'<li><a href="#state-v{number}">v{number}</a> {shown}</li>')
    items.append(f'<li><a href="#state">Current state</a><ol>{"".join(states)}</ol></li>\n')
    changes = []
    for index, group in enumerate(groups):
        target = "changes" if index == 0 else _fold_id(group)
        label = "open" if index == 0 else "folded"
        changes.append(f'<li><a href="#{target}">Versions {_range(group[::-1])}</a> ({label})</li>')
    items.append(
        f'<li><a href="#changes">Changes</a>'
        f"{f'<ol>{chr(10).join(changes)}</ol>' if changes else ''}</li>\n"
    )
    return (
        '<nav class="toc" aria-label="Contents"><h2 id="contents">Contents</h2>\n<ol>\n'
        + "".join(items)
        + "</ol>\n</nav>\n"
    )


def _command(name: str, number: int | str, action: str = "diff") -> str:
    """The shell command that prints one version's diff against its parent (or ``show``s it),
    escaped for HTML."""
    return escape(f"msgflux-store {action} {shlex.quote(name)} {number}")


def _range(versions: list[Version]) -> str:
    first, last = versions[0].number, versions[-1].number
    return f"{first:,}" if first == last else f"{first:,}\u2013{last:,}"


def _percent(weight: float) -> str:
    return f"{weight * 100:.4g}%"


def _summary(history: History) -> str:
    versions = history.versions
    if not versions:
        return "no versions"
    latest = versions[-1]
    text = (
        f"{len(versions):,} version{'s' if len(versions) != 1 else ''} "
        f'({_range(versions)}) \u00b7 latest <a href="#v{latest.number}">'
        f"{latest.number}</a>"
    )
    if history.targets:
        listed = list(history.targets.items())[:_MAX_TAGS_LISTED]
        links = []
        for tag, weights in listed:
            if len(weights) == 1:
                number = next(iter(weights))
                links.append(f'<a href="#v{number}" class="tag">{escape(tag)}\u2192{number}</a>')
            else:
                links.append(
                    f'<span class="tag split">{escape(tag)}\u2192'
                    + " / ".join(
                        f'<a href="#v{number}">{number}</a> {_percent(weight)}'
                        for number, weight in sorted(weights.items())
                    )
                    + "</span>"
                )
        text += " \u00b7 tags " + ", ".join(links)
        if len(history.targets) > len(listed):
            text += f" and {len(history.targets) - len(listed):,} more"
    return text


def _how_to_diff(history: History) -> str:
    shown = ""
    if history.summarised:
        shown = (
            f"The newest {len(history.detailed):,} versions are shown with their diffs; "
            f"the {len(history.summarised):,} older ones are summarised. "
        )
    if len(history.detailed) > OPEN:
        shown += (
            f"The newest {OPEN} diffs are open, older ones fold in groups of {OPEN} "
            "(a link to a version opens its group). "
        )
    return (
        f'<p class="how">{shown}Any version\'s diff against its parent: '
        f"<code>{_command(history.name, 'N')}</code> (with this store's <code>--db</code>)."
        "</p>\n"
    )


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- timeline -------------------------------------------------------------------------------


def _timeline(history: History, diffs: dict[int, StateDiff], keys: list[str]) -> str:
    fields = "".join(f'<th class="num field">{escape(key)}</th>' for key in keys)
    rows = []
    for version in reversed(history.detailed):
        diff = diffs[version.number]
        counts = " ".join(
            f'<span class="{kind}">{sign}{count}</span>'
            for kind, sign, count in (
                ("added", "+", len(diff.added)),
                ("removed", "\u2212", len(diff.removed)),
                ("changed", "~", len(diff.changed)),
            )
            if count
        )
        rows.append(
            f'<tr><td class="num"><a href="#v{version.number}">{version.number}</a></td>'
            f'<td class="time">{escape(_time(version.created_at))}</td>'
            f"<td>{escape(version.author or '')}</td>"
            f'<td class="message">{escape(version.message)}</td>{_field_cells(version, keys)}'
            f'<td>{_badges(history, version)}</td><td class="counts">{counts or "="}</td>'
            "</tr>\n"
        )
    parts = [
        '<section id="timeline">\n',
        _heading("Timeline"),
        '<table class="timeline">\n'
        "<thead><tr><th>Version</th><th>Time</th><th>Author</th><th>Message</th>"
        f"{fields}<th>Tags</th><th>Keys</th></tr></thead>\n<tbody>\n",
        *rows,
        "</tbody>\n</table>\n",
    ]
    if history.summarised:
        parts.append(_older(history, keys))
    parts.append("</section>\n")
    return "".join(parts)


def _field_text(value: Any) -> str:
    """A numeric metadata value as a table shows it: an int whole, a float to 6 digits."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _field_cells(version: Version, keys: list[str]) -> str:
    return "".join(
        f'<td class="num field">{escape(_field_text(version.metadata[key]))}</td>'
        if key in version.metadata
        else '<td class="num field"></td>'
        for key in keys
    )


def _span(group: list[Version], key: str) -> str:
    """The lowest and highest value of ``key`` in ``group`` ("low\u2013high")."""
    values = [version.metadata[key] for version in group if key in version.metadata]
    finite = [value for value in values if _finite(value) is not None]
    if not finite:
        return ", ".join(sorted({_field_text(value) for value in values}))
    low, high = min(finite), max(finite)
    return _field_text(low) if low == high else f"{_field_text(low)}\u2013{_field_text(high)}"


def _older(history: History, keys: list[str]) -> str:
    """The summarised versions: ranges of versions, every tagged one on its own row, then a
    folded table of every one of them with its metadata."""
    older = history.summarised
    size = math.ceil(len(older) / _SUMMARY_ROWS)
    fields = "".join(f'<th class="num field">{escape(key)}</th>' for key in keys)
    rows = []
    for start in reversed(range(0, len(older), size)):
        group = older[start : start + size]
        authors = Counter(version.author for version in group if version.author)
        named = ", ".join(escape(author) for author, _count in authors.most_common(3))
        if len(authors) > 3:
            named += f" +{len(authors) - 3}"
        tags = " ".join(
            f'<a href="#v{version.number}">{_badges(history, version)}</a>'
            for version in group
            if version.tags
        )
        spans = "".join(f'<td class="num field">{escape(_span(group, key))}</td>' for key in keys)
        rows.append(
            f'<tr><td class="num">{_range(group)}</td><td class="num">{len(group):,}</td>'
            f'<td class="time">{escape(_time(group[0].created_at))}</td>'
            f'<td class="time">{escape(_time(group[-1].created_at))}</td><td>{named}</td>'
            f'{spans}<td>{tags}</td><td class="message">{escape(_short(group[-1].message))}</td>'
            "</tr>\n"
        )
    parts = [
        f'<h3 id="older">Older versions {_range(older)}</h3>\n'
        '<table class="timeline older">\n'
        "<thead><tr><th>Versions</th><th>Count</th><th>From</th><th>To</th>"
        f"<th>Authors</th>{fields}<th>Tags</th><th>Last message</th></tr></thead>\n<tbody>\n",
        *rows,
        "</tbody>\n</table>\n",
    ]
    tagged = [version for version in older if version.tags]
    if tagged:
        parts.append(
            '<h3>Tagged older versions</h3>\n<table class="timeline">\n<thead><tr>'
            "<th>Version</th><th>Time</th><th>Author</th><th>Message</th>"
            f"{fields}<th>Tags</th><th>Its diff</th></tr></thead>\n<tbody>\n"
        )
        parts.extend(
            f'<tr id="v{version.number}"><td class="num">{version.number}</td>'
            f'<td class="time">{escape(_time(version.created_at))}</td>'
            f"<td>{escape(version.author or '')}</td>"
            f'<td class="message">{escape(version.message)}</td>'
            f"{_field_cells(version, keys)}<td>{_badges(history, version)}</td>"
            f"<td><code>{_command(history.name, version.number)}</code></td></tr>\n"
            for version in reversed(tagged)
        )
        parts.append("</tbody>\n</table>\n")
    # Every older version, each with an anchor of its own (a tagged one links to its row
    # above): the tables keep every value the charts thin out.
    parts.append(
        f'<details class="every" id="every-older"><summary>Every older version '
        f'with its metadata ({len(older):,} rows)</summary>\n<table class="timeline">'
        "\n<thead><tr><th>Version</th><th>Time</th><th>Author</th>"
        f"{fields}<th>Tags</th><th>Message</th></tr></thead>\n<tbody>\n"
    )
    parts.extend(
        (
            f'<tr><td class="num"><a href="#v{version.number}">{version.number}</a></td>'
            if version.tags
            else f'<tr id="v{version.number}"><td class="num">{version.number}</td>'
        )
        + f'<td class="time">{escape(_time(version.created_at))}</td>'
        f"<td>{escape(version.author or '')}</td>{_field_cells(version, keys)}"
        f"<td>{_badges(history, version)}</td>"
        f'<td class="message">{escape(_short(version.message))}</td></tr>\n'
        for version in reversed(older)
    )
    parts.append("</tbody>\n</table>\n</details>\n")
    return "".join(parts)


def _badges(history: History, version: Version) -> str:
    """The tags pointing at ``version``; a split's tag with this version's weight."""
    badges = []
    for tag in version.tags:
        weight = history.weight(tag, version.number)
        if weight is None:
            badges.append(f'<span class="tag">{escape(tag)}</span>')
        else:
            badges.append(
                f'<span class="tag split" title="traffic split">{escape(tag)} '
                f"{_percent(weight)}</span>"
            )
    return " ".join(badges)


# -- the current state of the head and of each tag ------------------------------------------


def _current(history: History) -> str:
    """Every key and value of the head and of each tagged version (bounded, see the module)."""
    parts = [
        '<section id="state">\n',
        _heading("Current state"),
        '<p class="how">Every key and value of the head and of each tagged version; '
        "a tagged version's keys that differ from the head are marked.</p>\n",
    ]
    if not history.versions:
        return "".join([*parts, "</section>\n"])
    head = history.versions[-1].number
    by_number = {version.number: version for version in history.versions}
    head_state = history.states.get(head, {})
    budget = _STATE_BUDGET
    for index, number in enumerate(history.current):
        version = by_number[number]
        state = history.states.get(number, {})
        differs = (
            set()
            if number == head
            else {
                key
                for key, (digest, _value) in state.items()
                if key not in head_state or head_state[key][0] != digest
            }
        )
        missing = [] if number == head else sorted(set(head_state) - set(state))
        label = ('<span class="tag head">head</span> ' if number == head else "") + _badges(
            history, version
        )
        note = ""
        if number != head:
            note = (
                f", {len(differs):,} differ from the head"
                if differs or missing
                else ", same as the head"
            )
        summary = (
            f'<summary><a href="#v{number}">Version {number}</a> {label} \u00b7 '
            f"{len(state):,} key{'s' if len(state) != 1 else ''}{note}</summary>\n"
        )
        if budget > 0:
            body = _state_values(state, differs)
            if missing:
                body += (
                    f'<p class="nochange">Not in this version, in the head: '
                    f"{_key_names(missing)}</p>\n"
                )
            budget -= len(body)
        else:
            body = (
                f'<p class="nochange">Keys: {_key_names(sorted(state))}. Values not shown '
                "(this page keeps its size bounded): "
                f"<code>{_command(history.name, number, 'show')}</code></p>\n"
            )
        opened = " open" if index < _STATES_OPEN else ""
        parts.append(
            f'<details class="state" id="state-v{number}"{opened}>{summary}{body}</details>\n'
        )
    if history.unread:
        listed = ", ".join(
            f'<a href="#v{number}">{number}</a> ({_badges(history, by_number[number])})'
            for number in history.unread[:_MAX_TAGS_LISTED]
        )
        more = len(history.unread) - _MAX_TAGS_LISTED
        parts.append(
            f'<p class="nochange">{len(history.unread):,} more tagged versions, not '
            f"shown here: {listed}{f' and {more:,} more' if more > 0 else ''} "
            f"(<code>{_command(history.name, 'N', 'show')}</code>)</p>\n"
        )
    parts.append("</section>\n")
    return "".join(parts)


def _state_values(state: State, differs: set[str]) -> str:
    items = []
    for key in sorted(state):
        value = state[key][1]
        text = (
            value
            if isinstance(value, str)
            else json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
        )
        mark = ' <span class="changed">differs from the head</span>' if key in differs else ""
        # (HTML drops one newline right after <pre>: a value starting with one keeps it.)
        lead = "\n" if text.startswith("\n") else ""
        items.append(
            f'<dt><code class="statekey">{escape(key)}</code>{mark}</dt>'
            f"<dd><pre>{lead}{escape(text)}</pre></dd>\n"
        )
    if not items:
        return '<p class="nochange">no keys</p>\n'
    return f'<dl class="state">\n{"".join(items)}</dl>\n'


# -- one version's diff ---------------------------------------------------------------------


def _version_section(
    name: str,
    version: Version,
    diff: StateDiff,
    with_diff: bool,
    *,
    parent_exists: bool,
    anchored: set[int],
    base: int | None = None,
    badges: str = "",
) -> str:
    head = (
        f'<article class="version" id="v{version.number}" '
        f'data-version="{version.number}">\n<h3>Version {version.number} '
        f'{badges}<a class="top" href="#top">\u2191 top</a></h3>\n<p class="meta">'
        f'<span class="time">{escape(_time(version.created_at))}</span>'
    )
    if version.author:
        head += f" \u00b7 {escape(version.author)}"
    head += f' \u00b7 <code class="snapshot">{escape(version.snapshot[:12])}</code>'
    if version.parent is not None:
        head += (
            f' \u00b7 parent <a href="#v{version.parent}">{version.parent}</a>'
            if version.parent in anchored
            else f" \u00b7 parent {version.parent}"
        )
        if not parent_exists:
            head += (
                " (pruned: every key is shown as added)"
                if base is None
                else f" (pruned: compared with the nearest surviving ancestor, "
                f'<a href="#v{base}">{base}</a>)'
                if base in anchored
                else f" (pruned: compared with the nearest surviving ancestor, {base})"
            )
    head += "</p>\n"
    if version.message:
        head += f'<p class="message">{escape(version.message)}</p>\n'
    if version.metadata:
        head += (
            '<p class="metadata">'
            + " ".join(
                f"<span>{escape(key)}=<code>{escape(_short(value))}</code></span>"
                for key, value in sorted(version.metadata.items())
            )
            + "</p>\n"
        )
    if not diff:
        return head + '<p class="nochange">same content as its parent</p>\n</article>\n'
    keys = diff.keys
    if not with_diff:
        return (
            head + f'<p class="nochange">{len(keys):,} keys differ: '
            f"{_key_names(keys)}. Diff not shown (this page keeps its size bounded): "
            f"<code>{_command(name, version.number)}</code></p>\n</article>\n"
        )
    command = _command(name, version.number)
    blocks = [_key_block(key, diff, command) for key in keys[:_MAX_KEYS_SHOWN]]
    body = "".join(blocks)
    if len(keys) > _MAX_KEYS_SHOWN:
        body += (
            f'<p class="nochange">{len(keys) - _MAX_KEYS_SHOWN:,} more keys differ: '
            f"{_key_names(keys[_MAX_KEYS_SHOWN:])} (<code>{command}</code>)</p>\n"
        )
    if len(keys) > _FOLD_KEYS:
        body = (
            f'<details class="keys"><summary>{len(keys):,} keys differ from '
            f"{escape(diff.old)}</summary>\n{body}</details>\n"
        )
    return head + f'<div class="diff">\n{body}</div>\n</article>\n'


def _key_names(keys: list[str]) -> str:
    named = ", ".join(f"<code>{escape(key)}</code>" for key in keys[:_MAX_KEYS_NAMED])
    return named + (
        f" and {len(keys) - _MAX_KEYS_NAMED:,} more" if len(keys) > _MAX_KEYS_NAMED else ""
    )


def _key_block(key: str, diff: StateDiff, command: str) -> str:
    if key in diff.added:
        kind, rows = "added", value_rows(None, diff.added[key], old_missing=True)
    elif key in diff.removed:
        kind, rows = "removed", value_rows(diff.removed[key], None, new_missing=True)
    else:
        kind, rows = "changed", value_rows(*diff.changed[key])
    rendered = [_row(row, command) for row in rows]
    body = "".join(rendered)  # each row is a display:block span
    title = f'<code class="key">{escape(key)}</code> <span class="{kind}">{kind}</span>'
    size = sum(len(text) for row in rows for text, _changed in row.segments)
    if len(rendered) > _FOLD_ROWS or size > _FOLD_CHARS:
        return (
            f'<details class="key"><summary>{title} <span class="size">'
            f"{len(rendered)} lines</span></summary><pre>{body}</pre></details>\n"
        )
    return f'<div class="key"><div class="keyname">{title}</div><pre>{body}</pre></div>\n'


_SIGNS = {"context": " ", "removed": "-", "added": "+"}
_MARKS = {"removed": "del", "added": "ins"}


def _row(row: Row, command: str) -> str:
    if row.kind == "gap":
        return (
            f'<span class="l gap">\u22ef {row.skipped:,} unchanged '
            f"line{'s' if row.skipped != 1 else ''}</span>"
        )
    if row.kind == "more":
        return (
            f'<span class="l more">\u2026 {row.skipped:,} more '
            f"line{'s' if row.skipped != 1 else ''} changed: <code>{command}</code></span>"
        )
    mark = _MARKS.get(row.kind)
    cells = "".join(
        f"<{mark}>{escape(text)}</{mark}>" if changed and mark else escape(text)
        for text, changed in row.segments
    )
    cont = " cont" if row.continued else ""
    return f'<span class="l {row.kind}{cont}">{_SIGNS[row.kind]}{cells}</span>'


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# -- charts ---------------------------------------------------------------------------------

Point = tuple[int, float]


def _finite(value: Any) -> float | None:
    """``value`` as a finite float; None for NaN, an infinity or an int beyond float range."""
    try:
        point = float(value)
    except OverflowError:
        return None
    return point if math.isfinite(point) else None


def _numeric_keys(versions: list[Version]) -> list[str]:
    """The metadata fields whose every present value is a number (int or float, not bool)."""
    numeric: dict[str, bool] = {}
    for version in versions:
        for key, value in version.metadata.items():
            number = isinstance(value, int | float) and not isinstance(value, bool)
            numeric[key] = numeric.get(key, True) and number
    return sorted(key for key, number in numeric.items() if number)


def _charted(versions: list[Version], keys: list[str]) -> list[tuple[str, list[Point]]]:
    """The fields that get a chart (at most :data:`_MAX_CHARTS`), each with its finite points."""
    fields: dict[str, list[Point]] = {key: [] for key in keys}
    for version in versions:
        for key, value in version.metadata.items():
            if key in fields and (point := _finite(value)) is not None:
                fields[key].append((version.number, point))
    return [(key, points) for key, points in fields.items() if points][:_MAX_CHARTS]


def _charts(history: History, keys: list[str], charted: list[tuple[str, list[Point]]]) -> str:
    heading = _heading("Metadata")
    if not charted:
        return (
            f'<section id="charts">\n{heading}<p class="nochange">no numeric '
            "metadata to chart</p>\n</section>\n"
        )
    tags = {version.number: version.tags for version in history.versions if version.tags}
    charts = "".join(
        _chart(index, key, points, tags) for index, (key, points) in enumerate(charted)
    )
    more = ""
    left = len([key for key in keys if key not in dict(charted)])
    if left:
        more = f'<p class="nochange">{left} more numeric fields not charted</p>\n'
    return (
        f'<section id="charts">\n{heading}<p class="how">Each point links to its '
        'version; <span class="swatch tagged"></span> tagged (a dashed line marks '
        'each tagged version), <span class="swatch best"></span> best.</p>\n'
        f'<div class="charts">\n{charts}</div>\n{more}</section>\n'
    )


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


def _chart(index: int, key: str, points: list[Point], tags: dict[int, tuple[str, ...]]) -> str:
    width, height = 560, 200
    left, right, top, bottom = 64, 16, 16, 34
    best = max(points, key=lambda point: point[1])
    shown = downsample(points, {*tags, best[0]})
    xs = [number for number, _value in points]
    ys = [value for _number_, value in points]
    x_low, x_high = min(xs), max(xs)
    if x_low == x_high:
        x_low, x_high = x_low - 1, x_high + 1
    # Tagged versions are marked across the chart's span, even without a value here.
    x_low, x_high = min(x_low, *tags) if tags else x_low, max(x_high, *tags) if tags else x_high
    y_low, y_high = min(ys), max(ys)
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
        sampled = f" \u00b7 {len(points):,} points, drawn as the low and high of {_BUCKETS} runs"
    svg = [
        (
            f'<figure class="chart" id="chart-{index}"><figcaption><code>{label}</code> '
            f"latest <b>{_number(ys[-1])}</b> (v{xs[-1]}) \u00b7 min {_number(min(ys))} \u00b7 "
            f"max {_number(best[1])} (v{best[0]}){sampled}</figcaption>\n"
            f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
            f'role="img" aria-label="{label} across versions">\n'
            f"<title>{label} across versions</title>\n"
        )
    ]
    for fraction in (0.0, 0.5, 1.0):  # horizontal grid lines with their values
        value = y_low + (y_high - y_low) * fraction
        y = y_at(value)
        svg.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - right}" '
            f'y2="{y:.1f}"/><text class="tick" x="{left - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{_number(value)}</text>\n'
        )
    for number in _x_ticks(x_low, x_high, xs):
        x = x_at(number)
        svg.append(
            f'<line class="axis" x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" '
            f'y2="{top + plot_h + 4}"/><text class="tick" x="{x:.1f}" '
            f'y="{top + plot_h + 17}" text-anchor="middle">{number}</text>\n'
        )
    svg.append(_tag_marks(tags, x_at, top, plot_h, width))
    svg.append(
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" '
        f'y2="{top + plot_h}"/><line class="axis" x1="{left}" y1="{top + plot_h}" '
        f'x2="{width - right}" y2="{top + plot_h}"/>\n'
        f'<text class="label" x="{left + plot_w / 2:.1f}" y="{height - 3}" '
        f'text-anchor="middle">version</text>\n'
        f'<polyline class="series" points="{line}"/>\n'
    )
    # Every drawn point is a dot linking to its version; when they are dense, small ones
    # (tagged and best ones stay large and are drawn last, on top).
    plain_r = 3 if len(shown) <= _MAX_DOTS else 1.8
    dots: list[str] = []
    marked: list[str] = []
    for number, value in shown:
        names = ", ".join(tags.get(number, ()))
        note = f" ({escape(names)})" if names else ""
        note += " best" if number == best[0] else ""
        kind = (
            ' class="tagged"' if number in tags else (' class="best"' if number == best[0] else "")
        )
        special = number in tags or number == best[0]
        (marked if special else dots).append(
            f'<a href="#v{number}"><circle{kind} cx="{x_at(number):.1f}" '
            f'cy="{y_at(value):.1f}" r="{4.5 if special else plain_r}"><title>v{number}'
            f"{note}: {label} = {_number(value)}</title></circle></a>"
        )
    svg.extend(dots)
    svg.extend(marked)
    svg.append("\n</svg></figure>\n")
    return "".join(svg)


def _tag_marks(
    tags: dict[int, tuple[str, ...]], x_at: Any, top: int, plot_h: int, edge: int
) -> str:
    """A dashed vertical line at each tagged version; its tag names when there is room."""
    numbers = sorted(tags)
    xs = [x_at(number) for number in numbers]
    # Names only when few and at least 70 px apart, so they never overlap.
    named = len(numbers) <= 8 and all(b - a >= 70 for a, b in zip(xs, xs[1:], strict=False))
    marks = []
    for number, x in zip(numbers, xs, strict=True):
        names = ", ".join(tags[number])
        marks.append(
            f'<line class="tagline" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" '
            f'y2="{top + plot_h}"><title>v{number}: {escape(names)}</title></line>'
        )
        if named:
            # in the margin above the plot, clear of the series
            anchor = "end" if x > edge - 30 else "middle"
            marks.append(
                f'<text class="taglabel" x="{x:.1f}" y="{top - 3}" '
                f'text-anchor="{anchor}">'
                f"{escape(_short(names, 12))}</text>"
            )
    return "".join(marks) + ("\n" if marks else "")


def _x_ticks(low: int, high: int, xs: list[int]) -> list[int]:
    if len(set(xs)) == 1 and low == xs[0] - 1 and high == xs[0] + 1:
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
.tag.split{background:#fff8c5;color:#7d4e00}.tag.head{background:#dafbe1;color:#116329}
a.top{font-size:12px;font-weight:400;margin-left:8px;color:var(--muted)}
nav.toc{border:1px solid var(--line);border-radius:6px;padding:4px 14px;margin:10px 0}
nav.toc h2{border:0;margin:6px 0 0;font-size:15px}nav.toc ol{margin:4px 0;padding-left:20px}
nav.toc ol ol{display:flex;flex-wrap:wrap;gap:2px 14px;padding-left:4px;list-style:none}
.tagline{stroke:#bf8700;stroke-dasharray:2 3;stroke-width:1}
svg text.taglabel{fill:#9a6700;font-size:10px}
.swatch{display:inline-block;width:9px;height:9px;border-radius:50%;background:var(--accent)}
.swatch.tagged{background:#bf8700}.swatch.best{background:#1a7f37}
th.field,td.field{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
details.fold,details.every,details.state{border:1px solid var(--line);border-radius:6px;
padding:6px 12px;margin:10px 0}
details.fold>summary,details.every>summary,details.state>summary{font-weight:600}
dl.state{margin:6px 0}dl.state dt{margin-top:6px}dl.state dd{margin:0}
del{background:var(--delw);text-decoration:none;border-radius:2px}
ins{background:var(--addw);text-decoration:none;border-radius:2px}
"""
