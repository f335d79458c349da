"""The HTML history report: structure, escaping, bounds at any length, both backends, Chromium."""

from __future__ import annotations

import html as html_module
import math
import os
import random
import re
import subprocess
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from msgflux.store import NameNotFound, ReadOnlyError, StateStore
from msgflux.store import report as report_module
from msgflux.store._report_diff import MAX_CHANGED_ROWS, MAX_ROW_CHARS, value_rows
from msgflux.store.report import downsample, render_report, word_diff

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=\"document.title='pwned'\">"
PWN = "<script>document.body.setAttribute('data-pwned','1')</script>"
TITLE = "History of pipeline \u2014 msgflux-store"
POSTGRES_ENV = "MSGFLUX_TEST_POSTGRES_URL"


class _Page(HTMLParser):
    """Collects the tags and attributes of a page, and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            found
            for name, found in self.tags
            if name == tag and all(attrs[key] in (found.get(key) or "").split() for key in attrs)
        ]


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _hostile_history(target: str | Path) -> None:
    with StateStore(target) as store:
        store.save(
            "pipeline",
            {"analyzer.instructions": "Be helpful and concise.", "retriever.k": 4},
            message="baseline",
            author="ana",
            metadata={"score": 0.71, "latency_ms": 900},
        )
        store.save(
            "pipeline",
            {
                "analyzer.instructions": "Be very helpful and concise.",
                "retriever.k": 4,
                "evil.prompt": SCRIPT,
            },
            message=f"add {SCRIPT}",
            author=IMG,
            metadata={"score": 0.78, "note": PWN},
        )
        store.save(
            "pipeline",
            {
                "analyzer.instructions": "Be very helpful and brief.\n" * 30,
                "evil.prompt": PWN,
                "evil.img": IMG,
            },
            message="long prompt",
            metadata={"score": 0.74, "latency_ms": 700},
        )
        store.tag("pipeline", 2, "production")
        store.tag("pipeline", 3, "<b>tag</b>")


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    target = tmp_path / "hostile.db"
    _hostile_history(target)
    return target


@pytest.fixture
def hostile_anywhere(store_url: str) -> str:
    """The hostile history on each backend (PostgreSQL: an ordinary role)."""
    _hostile_history(store_url)
    return store_url


@pytest.fixture
def superuser_url() -> Iterator[str]:
    """A PostgreSQL store URL whose session is a superuser, in a fresh schema."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set: no PostgreSQL server for this run")
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            assert connection.exec_driver_sql(
                "SELECT rolsuper FROM pg_roles WHERE rolname = session_user"
            ).scalar()
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        separator = "&" if "?" in base else "?"
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    finally:
        admin.dispose()


def test_the_report_holds_the_timeline_the_charts_and_every_diff_escaped(hostile_anywhere):
    hostile = hostile_anywhere
    with StateStore(hostile) as store:
        html = render_report(store, "pipeline")
    page = _parse(html)
    text = "".join(page.text)

    versions = page.find("article", **{"class": "version"})
    assert [found["data-version"] for found in versions] == ["3", "2", "1"]
    assert len(page.find("tr")) == 1 + 3  # the timeline: a header and one row per version
    assert "shorter" not in text and "baseline" in text and "ana" in text
    # the diffs: changed words are marked inside changed lines
    assert page.find("del") and page.find("ins")
    assert "very " in [data for data in page.text if data.strip()]
    # long values are folded
    assert page.find("details")
    # one chart per numeric metadata field, with a polyline and axes
    assert len(page.find("svg")) == 2 and len(page.find("polyline")) == 2
    assert "latency_ms" in text and "score" in text and "note" in text

    # Stored markup is text: never an element, never a script, nothing external.
    assert SCRIPT in text and IMG in text and PWN in text and "<b>tag</b>" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not page.find("script") and not page.find("img")
    assert not page.find("link") and not page.find("iframe")
    assert all(
        not (found.get("href") or "#").startswith(("http", "//")) for _tag, found in page.tags
    )
    assert "onerror" not in "".join(str(attrs) for _tag, attrs in page.tags)
    assert page.find("title") and TITLE in text


def test_word_diff_marks_only_the_changed_words():
    old, new = word_diff("Be very helpful and concise.", "Be very helpful and brief.")
    assert [text for text, changed in old if changed] == ["concise"]
    assert [text for text, changed in new if changed] == ["brief"]
    assert "".join(text for text, _ in new) == "Be very helpful and brief."


def test_the_report_command_writes_the_file(hostile, tmp_path, cli):
    output = tmp_path / "history.html"
    result = cli("report", "pipeline", "-o", str(output), "--json", db=str(hostile))
    assert result.code == 0
    data = result.json()
    assert data["versions"] == 3 and data["bytes"] == output.stat().st_size
    assert output.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    missing = cli("report", "nope", "-o", str(tmp_path / "nope.html"), db=str(hostile))
    assert missing.code == 3 and not (tmp_path / "nope.html").exists()


def test_the_report_reads_through_the_store_even_as_a_postgres_superuser(
    superuser_url, tmp_path, cli
):
    # The user-SQL sandbox refuses a superuser session; the report is the store's own code
    # and reads through its internal read path instead.
    _hostile_history(superuser_url)
    with StateStore(superuser_url) as store:
        with pytest.raises(ReadOnlyError, match="superuser"):
            store.query("SELECT 1")
        html = render_report(store, "pipeline")
    page = _parse(html)
    assert [found["data-version"] for found in page.find("article", **{"class": "version"})] == [
        "3",
        "2",
        "1",
    ]
    assert SCRIPT in "".join(page.text) and not page.find("script")
    output = tmp_path / "history.html"
    result = cli("report", "pipeline", "-o", str(output), "--json", db=superuser_url)
    assert result.code == 0, result.err
    assert result.json()["versions"] == 3 and output.read_text(encoding="utf-8") != ""


def test_the_report_never_uses_the_sql_sandbox(hostile_anywhere, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("the report called StateStore.query")

    monkeypatch.setattr(StateStore, "query", refuse)
    with StateStore(hostile_anywhere) as store:
        assert 'data-version="3"' in render_report(store, "pipeline")


class _Rewrites:
    """Prompts of several sentences; each version rewrites one sentence of one or two keys."""

    def __init__(self, keys: int, seed: int = 5) -> None:
        self.rng = random.Random(seed)
        self.sentences = {
            f"block{index}.prompt": [self.sentence() for _ in range(8)] for index in range(keys)
        }

    def sentence(self) -> str:
        words = [
            "".join(self.rng.choices("abcdefghij", k=self.rng.randint(2, 8)))
            for _ in range(self.rng.randint(6, 14))
        ]
        return " ".join(words).capitalize() + "."

    def state(self) -> dict[str, str]:
        return {key: " ".join(parts) for key, parts in self.sentences.items()}

    def step(self) -> dict[str, str]:
        for key in self.rng.sample(sorted(self.sentences), self.rng.choice((1, 2))):
            self.sentences[key][self.rng.randrange(8)] = self.sentence()
        return self.state()


def _long_history(store: StateStore, versions: int, keys: int = 12) -> None:
    stream = _Rewrites(keys)
    store.save(
        "pipeline", stream.state(), message="baseline", author="ana", metadata={"score": 0.5}
    )
    for number in range(2, versions + 1):
        store.save(
            "pipeline",
            stream.step(),
            message=f"step {number}",
            author=("ana", "bo", "opt")[number % 3],
            metadata={"score": (number * 37 % 101) / 101, "latency_ms": number},
        )
        if number % 25 == 0:
            store.tag("pipeline", number, f"release-{number // 25}")


def test_a_long_history_shows_the_newest_diffs_and_summarises_the_rest(store_url):
    with StateStore(store_url) as store:
        _long_history(store, 260)
        html = render_report(store, "pipeline", recent=20)
    page = _parse(html)
    text = "".join(page.text)
    # The newest 20 versions, newest first, each with its diff against its parent; the
    # oldest of them (241) is compared with 240, read although 240 is not detailed.
    articles = [found["data-version"] for found in page.find("article", **{"class": "version"})]
    assert articles == [str(number) for number in range(260, 240, -1)]
    oldest = html[html.index('id="v241"') : html.index("</article>", html.index('id="v241"'))]
    assert 'class="changed">changed' in oldest and 'class="added">added' not in oldest
    # The 240 older ones: grouped into at most 100 timeline rows (here 80 rows of 3) ...
    older = page.find("table", **{"class": "older"})
    assert len(older) == 1
    body = html[html.index('<table class="timeline older">') :]
    body = body[: body.index("</table>")]
    assert body.count("<tr>") == 1 + 80
    assert "238\u2013240" in body and "1\u20133" in body
    # ... every tagged one listed on its own, with the command that shows its diff.
    for number in range(25, 241, 25):
        assert page.find("tr", id=f"v{number}")
        assert f"msgflux-store diff pipeline {number}" in text
    assert "msgflux-store diff pipeline N" in text and "240 older ones are summarised" in text
    # Every link points at something on the page.
    ids = {found.get("id") for _tag, found in page.tags}
    for _tag, found in page.tags:
        href = found.get("href")
        if href:
            assert href.startswith("#") and href[1:] in ids, href
    # The charts still cover every version, tagged points marked.
    assert len(page.find("svg")) == 2
    assert "v250 (release-10): score" in text and "v25 (release-1): score" in text


def test_a_pruned_parent_is_said_so(store_url):
    with StateStore(store_url) as store:
        _long_history(store, 30, keys=3)
        store.prune("pipeline", keep_last=3)
        html = render_report(store, "pipeline", recent=3)
    oldest = html[html.index('id="v28"') :]
    oldest = oldest[: oldest.index("</article>")]
    # Version 25 (tagged) survives: 28 is compared with it, never "everything added".
    assert (
        'parent 27 (pruned: compared with the nearest surviving ancestor, <a href="#v25">25</a>)'
    ) in oldest
    assert 'class="added">added' not in oldest
    with StateStore(store_url) as store:
        expected = store.diff("pipeline", 28)
        assert expected.old == "pipeline@25" and "nearest surviving ancestor" in expected.note
        assert oldest.count('<code class="key">') == len(expected.keys)
        store.untag("pipeline", "release-1")
        store.prune("pipeline", keep_last=3)
        alone = render_report(store, "pipeline", recent=3)
    first = alone[alone.index('id="v28"') :]
    first = first[: first.index("</article>")]
    assert "parent 27 (pruned: every key is shown as added)" in first
    assert first.count('class="added">added') == 3


def test_a_version_shows_at_most_20_keys_and_names_the_rest(tmp_path):
    with StateStore(tmp_path / "wide.db") as store:
        store.save("pipeline", {f"k{index:02d}": "one" for index in range(30)})
        store.save("pipeline", {f"k{index:02d}": "two" for index in range(30)})
        html = render_report(store, "pipeline")
    newest = html[html.index('id="v2"') :]
    newest = newest[: newest.index("</article>")]
    assert newest.count('class="key"><div class="keyname">') == 20
    assert "10 more keys differ: <code>k20</code>" in newest
    assert "msgflux-store diff pipeline 2" in newest


def test_once_the_page_holds_enough_diffs_older_versions_list_their_keys(tmp_path, monkeypatch):
    monkeypatch.setattr(report_module, "_DIFF_BUDGET", 1)
    with StateStore(tmp_path / "budget.db") as store:
        for number in range(1, 5):
            store.save("pipeline", {"prompt": f"Version {number}.", "k": number})
        html = render_report(store, "pipeline")
    assert html.count("Diff not shown") == 3
    newest = html[html.index('id="v4"') :]
    assert "<del>3</del>" in newest[: newest.index("</article>")]


def test_the_report_refuses_a_bad_recent_and_an_unknown_name(store_url):
    from msgflux.store import InvalidInputError

    with StateStore(store_url) as store:
        store.save("pipeline", {"a": "x"})
        for bad in (-1, 2.5, True, "3"):
            with pytest.raises(InvalidInputError, match="recent"):
                render_report(store, "pipeline", recent=bad)  # type: ignore[arg-type]
        with pytest.raises(NameNotFound, match="nope"):
            render_report(store, "nope")
        assert "same content" not in render_report(store, "pipeline", recent=0)


def test_summarised_versions_are_escaped_too(hostile, tmp_path):
    with StateStore(hostile) as store:
        html = render_report(store, "pipeline", recent=1)
    page = _parse(html)
    text = "".join(page.text)
    assert IMG in text and "<b>tag</b>" in text
    assert not page.find("script") and not page.find("img")
    assert len(page.find("b")) == len(page.find("svg"))  # only the charts' own "latest"
    assert page.find("tr", id="v2")  # tagged production, summarised


# -- the bounded diff of one value ------------------------------------------------------------


def _changed_words(rows, kind):
    return [text for row in rows if row.kind == kind for text, changed in row.segments if changed]


def test_a_rewritten_sentence_in_a_long_paragraph_is_one_changed_row_pair():
    stream = _Rewrites(1)
    old = " ".join(stream.sentence() for _ in range(40))
    sentences = re.findall(r"[^.]+\.\s*", old)
    replaced = sentences[20]
    new_sentence = "Completely different words here. "
    new = old.replace(replaced, new_sentence)
    rows = value_rows(old, new)
    kinds = [row.kind for row in rows]
    assert kinds == ["gap", "context", "removed", "added", "context", "gap"]
    assert rows[0].skipped == 19 and rows[-1].skipped == 18
    assert rows[2].continued and rows[3].continued
    assert "".join(text for text, _ in rows[3].segments) == new_sentence
    # A rewritten sentence is shown whole; one with a word changed gets that word marked.
    assert not _changed_words(rows, "added") and not _changed_words(rows, "removed")
    first_word = replaced.split()[0]
    edited = old.replace(replaced, replaced.replace(first_word, "Zzz", 1))
    rows = value_rows(old, edited)
    assert [row.kind for row in rows] == ["gap", "context", "removed", "added", "context", "gap"]
    assert [word.strip() for word in _changed_words(rows, "removed")] == [first_word]
    assert [word.strip() for word in _changed_words(rows, "added")] == ["Zzz"]


def test_a_value_diff_is_capped_with_a_count_of_what_is_left():
    old = "\n".join(f"line {index} old" for index in range(1000))
    new = "\n".join(f"line {index} new" for index in range(1000))
    rows = value_rows(old, new)
    assert sum(row.kind in ("removed", "added") for row in rows) == MAX_CHANGED_ROWS
    assert rows[-1].kind == "more" and rows[-1].skipped == 2000 - MAX_CHANGED_ROWS
    added = value_rows(None, new, old_missing=True)
    assert [row.kind for row in added].count("added") == MAX_CHANGED_ROWS
    assert added[-1].skipped == 1000 - MAX_CHANGED_ROWS


def test_a_huge_changed_line_is_cut_and_not_word_diffed():
    old = "word " * 20_000
    new = "word " * 19_999 + "other"
    rows = value_rows(old, new)
    assert [row.kind for row in rows] == ["removed", "added"]
    for row in rows:
        assert row.segments == [(row.segments[0][0], False)]
        assert len(row.segments[0][0]) < MAX_ROW_CHARS + 40
        assert row.segments[0][0].endswith("characters)")


def test_structured_values_are_compared_line_by_line():
    rows = value_rows({"k": 4, "model": "a"}, {"k": 6, "model": "a"})
    assert _changed_words(rows, "removed") == ["4"] and _changed_words(rows, "added") == ["6"]


def test_charts_downsample_to_bucket_extremes_and_keep_tagged_and_best_points():
    rng = random.Random(2)
    points = [(number, rng.random()) for number in range(1, 20_001)]
    best = max(points, key=lambda point: point[1])
    worst = min(points, key=lambda point: point[1])
    kept = downsample(points, {17, 12_345, best[0]}, buckets=240)
    assert len(kept) <= 2 * 240 + 4
    assert kept == sorted(kept) and set(kept) <= set(points)
    numbers = {number for number, _value in kept}
    assert {1, 17, 12_345, 20_000, best[0], worst[0]} <= numbers
    # each bucket's extremes survive: the drawn line spans the same range in every bucket
    for bucket in range(240):
        chunk = points[int(bucket * 20_000 / 240) : int((bucket + 1) * 20_000 / 240)]
        assert max(chunk, key=lambda point: point[1]) in kept
        assert min(chunk, key=lambda point: point[1]) in kept
    assert downsample(points[:100], set()) == points[:100]


CHROMIUM_ENV = "MSGFLUX_TEST_CHROMIUM"


@pytest.mark.parametrize("recent", [200, 1])
def test_chromium_renders_the_report_and_runs_no_stored_script(hostile, tmp_path, recent):
    chromium = os.environ.get(CHROMIUM_ENV)
    if not chromium:
        pytest.skip(f"{CHROMIUM_ENV} is not set: no headless Chromium to open the report")
    with StateStore(hostile) as store:
        report = tmp_path / "history.html"
        report.write_text(render_report(store, "pipeline", recent=recent), encoding="utf-8")
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    page = _parse(dom)
    assert [found["data-version"] for found in page.find("article", **{"class": "version"})] == [
        "3",
        "2",
        "1",
    ][:recent]
    assert page.find("polyline") and page.find("svg")
    if recent == 1:  # the summarised versions' table and the tagged one are on the page
        assert page.find("table", **{"class": "older"}) and page.find("tr", id="v2")
    # The stored <script> and onerror= did not run: the body has no data-pwned attribute
    # and the title is the report's own.
    assert page.find("body") == [{}] and "data-pwned=" not in dom
    assert _title(dom) == TITLE
    assert not page.find("script") and not page.find("img")


def _title(dom: str) -> str:
    start = dom.index("<title>") + len("<title>")
    return dom[start : dom.index("</title>")]


def _churn(target: str, rounds: int) -> None:
    """Save versions that each change one key; every few saves prune the rest and gc."""
    with StateStore(target, lock_timeout=30) as store:
        for number in range(rounds):
            store.save("pipeline", {"counter": number, "fixed": "Be brief."})
            if number % 4 == 3:
                store.prune("pipeline", keep_last=3)
                store.gc()


def test_a_report_during_prune_and_gc_shows_one_consistent_snapshot(store_url):
    import multiprocessing

    with StateStore(store_url) as store:
        store.save("pipeline", {"counter": -1, "fixed": "Be brief."})
    context = multiprocessing.get_context("spawn")
    writer = context.Process(target=_churn, args=(store_url, 160))
    writer.start()
    try:
        with StateStore(store_url) as store:
            pages = 0
            while writer.is_alive() or pages < 3:
                html = render_report(store, "pipeline", recent=6)
                pages += 1
                for chunk in html.split("<article")[1:]:
                    article = chunk[: chunk.index("</article>")]
                    if "(pruned: every key is shown as added)" in article or (
                        "parent" not in article
                    ):
                        # a parent gone before this snapshot: all of it is added
                        assert article.count('class="added">added') == 2, article
                    else:  # the parent is in the same snapshot: exactly one key changed
                        assert article.count('<code class="key">counter</code>') == 1, article
                        assert 'class="added">added' not in article, article
                        assert "fixed" not in article.split("</p>\n<div")[-1], article
    finally:
        writer.join(timeout=120)
    assert writer.exitcode == 0 and pages >= 3


# -- what a tuner asks: metadata columns, tags, charts, current state, folding, Chromium -------

_VOID = {
    "meta",
    "link",
    "br",
    "img",
    "hr",
    "input",
    "area",
    "base",
    "col",
    "embed",
    "source",
    "track",
    "wbr",
}


class _Tree(HTMLParser):
    """Every element with its attributes and the chain of its ancestors' (tag, attrs)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str | None]]] = []
        self.elements: list[
            tuple[str, dict[str, str | None], list[tuple[str, dict[str, str | None]]]]
        ] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs), list(self.stack)))
        if tag not in _VOID:
            self.stack.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs), list(self.stack)))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                return


def _tree(html: str) -> _Tree:
    tree = _Tree()
    tree.feed(html)
    tree.close()
    return tree


def _classes(attrs: dict[str, str | None]) -> list[str]:
    return (attrs.get("class") or "").split()


def _inside(ancestors: list[tuple[str, dict[str, str | None]]], tag: str, cls: str) -> bool:
    return any(name == tag and cls in _classes(attrs) for name, attrs in ancestors)


def _cell_text(cell: str) -> str:
    return html_module.unescape(re.sub(r"<[^>]+>", "", cell)).strip()


def _table(html: str, start: str) -> tuple[list[str], list[list[str]]]:
    """The header cells and the body rows (cell texts) of the first table at or after
    ``start``, a piece of markup the page holds once."""
    body = html[html.index(start) :]
    body = body[: body.index("</table>")]
    head = [_cell_text(cell) for cell in re.findall(r"<th[^>]*>(.*?)</th>", body)]
    rows = [
        [_cell_text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("<tbody>", 1)[1], re.S)
    ]
    return head, rows


def _tuner_history(target: str | Path) -> dict[str, dict[str, object]]:
    """Four versions with numeric, boolean, mixed and text metadata; production -> 2, a canary
    split 3 (75%) / 4 (25%). Returns the metadata saved, by version."""
    metadata: dict[str, dict[str, object]] = {
        "1": {"score": 0.71, "cost": 3, "flag": True, "mixed": 1, "note": "first"},
        "2": {"score": 0.785, "cost": 2.5, "flag": False, "mixed": "n/a"},
        "3": {"score": 0.8, "note": "no cost"},
        "4": {"score": 0.9125, "cost": 12, "flag": True},
    }
    with StateStore(target) as store:
        for number in range(1, 5):
            store.save(
                "pipeline",
                {
                    "generator.system_prompt": f"You are a tuner.\nAnswer in {number} lines.\n",
                    "retriever.k": 2 * number,
                    "generator.model": "gpt-x",
                    **({"evil": SCRIPT} if number == 2 else {}),
                },
                message=f"step {number}",
                author="ana",
                metadata=metadata[str(number)],
            )
        store.tag("pipeline", 2, "production")
        store.split("pipeline", "canary", {3: 0.75, 4: 0.25})
    return metadata


def test_the_timeline_has_a_column_per_numeric_field_and_tag_badges_with_split_weights(store_url):
    _tuner_history(store_url)
    with StateStore(store_url) as store:
        html = render_report(store, "pipeline")
    head, rows = _table(html, '<table class="timeline">')
    # score and cost are numeric in every version that has them; flag is a bool, mixed holds
    # a string once, note is text: no column for those.
    assert head == ["Version", "Time", "Author", "Message", "cost", "score", "Tags", "Keys"]
    by_version = {row[0]: dict(zip(head, row, strict=True)) for row in rows}
    assert [row[0] for row in rows] == ["4", "3", "2", "1"]
    assert [(by_version[n]["score"], by_version[n]["cost"]) for n in "4321"] == [
        ("0.9125", "12"),
        ("0.8", ""),
        ("0.785", "2.5"),
        ("0.71", "3"),
    ]
    assert [by_version[n]["Tags"] for n in "4321"] == ["canary 25%", "canary 75%", "production", ""]
    # the split's badges carry its class; the plain tag's does not
    timeline = html[html.index('<table class="timeline">') :]
    timeline = timeline[: timeline.index("</table>")]
    assert timeline.count('class="tag split"') == 2
    assert timeline.count('<span class="tag">production</span>') == 1
    # the version headings carry the same badges
    third = html[html.index('id="v3"') :]
    assert "canary 75%" in third[: third.index("</h3>")]
    # the summary line names both versions of the split with their weights
    summary = html[html.index('<p class="summary">') :]
    summary = _cell_text(summary[: summary.index("</p>")])
    assert "canary\u21923 75% / 4 25%" in summary and "production\u21922" in summary


def test_older_versions_keep_their_metadata_values_in_the_tables(tmp_path):
    with StateStore(tmp_path / "older.db") as store:
        for number in range(1, 41):
            store.save("pipeline", {"k": number}, metadata={"score": number / 8, "cost": number})
        store.tag("pipeline", 7, "production")
        html = render_report(store, "pipeline", recent=10)
    # Every older version has a row with its values in the folded table of every older
    # version (the tagged one links to its own row in "Tagged older versions").
    head, rows = _table(html, '<details class="every" id="every-older">')
    assert head == ["Version", "Time", "Author", "cost", "score", "Tags", "Message"]
    assert [row[0] for row in rows] == [str(number) for number in range(30, 0, -1)]
    assert all(row[3] == row[0] and float(row[4]) == int(row[0]) / 8 for row in rows)
    assert rows[30 - 7][5] == "production"
    page = _parse(html)
    assert page.find("tr", id="v8") and page.find("tr", id="v7")
    # the range table gives each group's low and high
    head, rows = _table(html, '<table class="timeline older">')
    assert head[5:7] == ["cost", "score"] and rows[-1][:2] == ["1", "1"]
    older = dict((row[0], row) for row in rows)
    assert len(older) == 30 and older["30"][5] == "30" and older["1"][6] == "0.125"


def test_chart_points_link_to_their_versions_and_tagged_versions_are_marked(tmp_path):
    with StateStore(tmp_path / "charts.db") as store:
        for number in range(1, 1201):
            store.save(
                "pipeline",
                {"k": number % 7},
                metadata={"score": (number * 37 % 101) / 101, "cost": number},
            )
            if number % 300 == 0:
                store.tag("pipeline", number, f"release-{number // 300}")
        html = render_report(store, "pipeline")
    tree = _tree(html)
    ids = {attrs["id"] for _tag, attrs, _up in tree.elements if attrs.get("id")}
    assert {f"v{number}" for number in range(1, 1201)} <= ids  # every version has an anchor
    figures = [attrs for tag, attrs, _up in tree.elements if tag == "figure"]
    assert [figure["id"] for figure in figures] == ["chart-0", "chart-1"]
    for figure in ("chart-0", "chart-1"):
        circles = [
            (attrs, up)
            for tag, attrs, up in tree.elements
            if tag == "circle" and any(a.get("id") == figure for _n, a in up)
        ]
        # Thinned to the lows and highs of 240 runs plus tagged and best points, not 1,200;
        # each one a link to its version's anchor.
        assert 200 < len(circles) <= 2 * 240 + 4 + 1
        links = [up[-1][1]["href"] for _attrs, up in circles]
        assert all(up[-1][0] == "a" for _attrs, up in circles)
        assert all(link.startswith("#v") and link[1:] in ids for link in links)
        tagged = {
            link
            for (attrs, _up), link in zip(circles, links, strict=True)
            if "tagged" in _classes(attrs)
        }
        assert tagged == {f"#v{number}" for number in (300, 600, 900, 1200)}
        svg = html[html.index(f'id="{figure}"') :]
        svg = svg[: svg.index("</svg>")]
        assert svg.count('class="tagline"') == 4
        assert "<title>v600: release-2</title>" in svg
    # the cost chart draws 1..1200 exactly at its ends
    cost = html[html.index('id="chart-0"') :]
    assert "<title>v1200 (release-4) best: cost = 1200</title>" in cost[: cost.index("</svg>")]


def test_the_current_state_section_shows_every_key_and_value_of_the_head_and_each_tag(store_url):
    _tuner_history(store_url)
    with StateStore(store_url) as store:
        html = render_report(store, "pipeline")
        expected = {number: store.load("pipeline", number) for number in (2, 3, 4)}
    tree = _tree(html)
    blocks = [
        attrs["id"]
        for tag, attrs, up in tree.elements
        if tag == "details" and "state" in _classes(attrs)
    ]
    # the head (4, also canary 25%) first, then the tagged versions newest first
    assert blocks == ["state-v4", "state-v3", "state-v2"]
    section = html[html.index('<section id="state">') :]
    section = section[: section.index("</section>")]
    for number, state in expected.items():
        block = section[section.index(f'id="state-v{number}"') :]
        block = block[: block.index("</details>")]
        keys = [_cell_text(key) for key in re.findall(r"<dt>(.*?)</dt>", block)]
        values = [
            html_module.unescape(value)
            for value in re.findall(r"<dd><pre>(.*?)</pre></dd>", block, re.S)
        ]
        assert [key.removesuffix("differs from the head").strip() for key in keys] == sorted(state)
        assert values == [
            value if isinstance(value, str) else str(value) for _key, value in sorted(state.items())
        ]
        differs = {key.split()[0] for key in keys if key.endswith("differs from the head")}
        assert differs == (
            {"generator.system_prompt", "retriever.k", "evil"}
            if number == 2
            else {"generator.system_prompt", "retriever.k"}
            if number == 3
            else set()
        )
    summary = section[section.index('id="state-v4"') :]
    assert 'class="tag head">head</span>' in summary[: summary.index("</summary>")]
    assert "canary 25%" in summary[: summary.index("</summary>")]
    # a stored script in a value is text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section and "<script" not in html


def test_tagged_versions_beyond_the_shown_states_are_listed_with_the_command(tmp_path, monkeypatch):
    from msgflux.store import _report_data

    monkeypatch.setattr(_report_data, "STATES_SHOWN", 2)
    with StateStore(tmp_path / "tags.db") as store:
        for number in range(1, 6):
            store.save("pipeline", {"k": number})
            store.tag("pipeline", number, f"t{number}")
        html = render_report(store, "pipeline")
    section = html[html.index('<section id="state">') :]
    section = section[: section.index("</section>")]
    assert re.findall(r"id=\"(state-v\d+)\"", section) == ["state-v5", "state-v4"]
    assert "3 more tagged versions" in section and "msgflux-store show pipeline N" in section
    assert [int(n) for n in re.findall(r"<a href=\"#v(\d+)\">\1</a> \(", section)] == [3, 2, 1]


@pytest.mark.parametrize("versions, folds", [(50, 0), (51, 1), (130, 2), (260, 3)])
def test_older_diffs_fold_with_a_table_of_contents_and_back_to_top_links(tmp_path, versions, folds):
    with StateStore(tmp_path / "fold.db") as store:
        for number in range(1, versions + 1):
            store.save(
                "pipeline",
                {"k": number, "prompt": f"Step {number // 3}."},
                metadata={"score": number / versions},
            )
        html = render_report(store, "pipeline")
    tree = _tree(html)
    articles = [
        (int(attrs["data-version"] or 0), _inside(up, "details", "fold"))
        for tag, attrs, up in tree.elements
        if tag == "article" and "version" in _classes(attrs)
    ]
    detailed = min(versions, 200)
    assert [number for number, _folded in articles] == list(
        range(versions, versions - detailed, -1)
    )
    # the newest 50 open, outside any fold; every older one inside a fold of at most 50
    assert all(not folded for _number, folded in articles[:50])
    assert all(folded for _number, folded in articles[50:])
    fold_ids = [
        attrs["id"]
        for tag, attrs, _up in tree.elements
        if tag == "details" and "fold" in _classes(attrs)
    ]
    assert len(fold_ids) == folds
    assert all(
        "open" not in attrs
        for tag, attrs, _up in tree.elements
        if tag == "details" and "fold" in _classes(attrs)
    )
    if folds:
        assert fold_ids[0] == f"fold-{versions - 50}-{max(versions - 99, 1)}"
    # the table of contents: every link resolves to an id; it lists each fold
    ids = {attrs["id"] for _tag, attrs, _up in tree.elements if attrs.get("id")}
    toc = [
        attrs["href"]
        for tag, attrs, up in tree.elements
        if tag == "a" and _inside(up, "nav", "toc")
    ]
    assert {"#charts", "#timeline", "#state", "#changes", "#chart-0", f"#state-v{versions}"} <= set(
        toc
    )
    assert all(href[1:] in ids for href in toc)
    assert [href for href in toc if href.startswith("#fold-")] == [f"#{i}" for i in fold_ids]
    # back-to-top: every section and every version, to the page's header
    tops = [up for tag, attrs, up in tree.elements if tag == "a" and attrs.get("href") == "#top"]
    assert (
        "top" in ids
        and tree.elements[[t for t, _a, _u in tree.elements].index("header")][1].get("id") == "top"
    )
    assert sum(_inside(up, "article", "version") for up in tops) == detailed
    assert (
        sum(
            any(name == "section" for name, _a in up) and not _inside(up, "article", "version")
            for up in tops
        )
        == 4
    )  # charts, timeline, state, changes
    # and no link anywhere points at nothing
    assert all(
        attrs["href"][1:] in ids
        for tag, attrs, _up in tree.elements
        if tag == "a" and attrs.get("href")
    )


# -- Chromium at 30, 300 and 3,000 versions -----------------------------------------------------


def _quick_history(target: Path, versions: int) -> None:
    """``versions`` small versions with score and cost, tags and a split: fast to build."""
    with StateStore(target) as store:
        for number in range(1, versions + 1):
            store.save(
                "pipeline",
                {
                    "generator.system_prompt": f"You are helpful.\nStep {number // 7}.\n",
                    "retriever.k": number % 5,
                },
                message=f"step {number}",
                author=("ana", "bo")[number % 2],
                metadata={"score": (number * 37 % 101) / 101, "cost": number / 1000},
            )
        store.tag("pipeline", max(1, versions // 3), "production")
        store.split("pipeline", "canary", {versions - 1: 0.9, versions: 0.1})


def _chromium_run(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _png_facts(data: bytes) -> tuple[int, int, int]:
    """Width, height and number of distinct pixel rows of a PNG (8-bit RGB or RGBA)."""
    import struct
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, list[bytes]] = {}
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        chunks.setdefault(kind, []).append(data[offset + 8 : offset + 8 + length])
        offset += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][0][:10])
    assert depth == 8 and colour in (2, 6)
    raw = zlib.decompress(b"".join(chunks[b"IDAT"]))
    stride = width * (4 if colour == 6 else 3) + 1
    # Filtered rows (without their filter byte) are compared: a blank page has one distinct
    # row, a drawn page many; exact pixels are not needed for that.
    rows = {raw[index * stride + 1 : (index + 1) * stride] for index in range(height)}
    return width, height, len(rows)


@pytest.mark.parametrize("versions", [30, 300, pytest.param(3000, marks=pytest.mark.slow)])
def test_chromium_draws_the_report_at_30_300_and_3000_versions(tmp_path, versions):
    chromium = os.environ.get(CHROMIUM_ENV)
    if not chromium:
        pytest.skip(f"{CHROMIUM_ENV} is not set: no headless Chromium to open the report")
    _quick_history(tmp_path / "history.db", versions)
    with StateStore(tmp_path / "history.db") as store:
        report = tmp_path / f"history-{versions}.html"
        report.write_text(render_report(store, "pipeline"), encoding="utf-8")
    screenshot = tmp_path / f"report-{versions}.png"
    drawn = _chromium_run(
        chromium,
        tmp_path / "profile",
        f"--screenshot={screenshot}",
        "--window-size=1280,2000",
        report.as_uri(),
    )
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    data = screenshot.read_bytes()
    width, height, distinct = _png_facts(data)
    assert (width, height) == (1280, 2000)
    assert len(data) > 20_000 and distinct > 200, (len(data), distinct)  # not a blank page
    # Opened at a version in the second folded group: Chromium opens that group, no other.
    target = 1 if versions < 200 else versions - 110
    dumped = _chromium_run(
        chromium, tmp_path / "profile", "--dump-dom", f"{report.as_uri()}#v{target}"
    )
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    tree = _tree(dumped.stdout)
    detailed = min(versions, 200)
    articles = [
        attrs
        for tag, attrs, _up in tree.elements
        if tag == "article" and "version" in _classes(attrs)
    ]
    assert len(articles) == detailed and articles[0]["data-version"] == str(versions)
    folds = [
        attrs for tag, attrs, _up in tree.elements if tag == "details" and "fold" in _classes(attrs)
    ]
    assert len(folds) == math.ceil(detailed / 50) - 1
    opened = [attrs["id"] for attrs in folds if "open" in attrs]
    assert opened == ([] if versions < 200 else [f"fold-{versions - 100}-{versions - 149}"])
    assert len([1 for tag, _attrs, _up in tree.elements if tag == "svg"]) == 2
    states = [
        attrs["id"]
        for tag, attrs, _up in tree.elements
        if tag == "details" and "state" in _classes(attrs)
    ]
    assert states == [
        f"state-v{versions}",
        f"state-v{versions - 1}",
        f"state-v{max(1, versions // 3)}",
    ]
    ids = {attrs["id"] for _tag, attrs, _up in tree.elements if attrs.get("id")}
    assert {f"v{number}" for number in range(1, versions + 1)} <= ids
    assert all(
        attrs["href"][1:] in ids
        for tag, attrs, _up in tree.elements
        if tag == "a" and attrs.get("href")
    )
    assert not [1 for tag, _attrs, _up in tree.elements if tag == "script"]
