"""The HTML history report: structure, escaping, size, and a real headless Chromium."""

from __future__ import annotations

import os
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from msgflux.store import StateStore
from msgflux.store.report import render_report, word_diff

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=\"document.title='pwned'\">"
PWN = "<script>document.body.setAttribute('data-pwned','1')</script>"
TITLE = "History of pipeline \u2014 msgflux-store"


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
        return [found for name, found in self.tags if name == tag
                and all(attrs[key] in (found.get(key) or "").split() for key in attrs)]


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _hostile_history(target: str | Path) -> None:
    with StateStore(target) as store:
        store.save("pipeline", {"analyzer.instructions": "Be helpful and concise.",
                                "retriever.k": 4}, message="baseline", author="ana",
                   metadata={"score": 0.71, "latency_ms": 900})
        store.save("pipeline", {"analyzer.instructions": "Be very helpful and concise.",
                                "retriever.k": 4, "evil.prompt": SCRIPT},
                   message=f"add {SCRIPT}", author=IMG, metadata={"score": 0.78, "note": PWN})
        store.save("pipeline", {"analyzer.instructions": "Be very helpful and brief.\n" * 30,
                                "evil.prompt": PWN, "evil.img": IMG},
                   message="long prompt", metadata={"score": 0.74, "latency_ms": 700})
        store.tag("pipeline", 2, "production")
        store.tag("pipeline", 3, "<b>tag</b>")


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    target = tmp_path / "hostile.db"
    _hostile_history(target)
    return target


def test_the_report_holds_the_timeline_the_charts_and_every_diff_escaped(hostile):
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
    assert all(not (found.get("href") or "#").startswith(("http", "//"))
               for _tag, found in page.tags)
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


def test_the_report_stays_small_for_a_long_history(tmp_path):
    # 300 versions of 50 keys, two keys changing per version (the benchmark script in this
    # folder measures 1,000 versions).
    target = tmp_path / "long.db"
    state = {f"module{index // 10}.param{index}": f"value {index} " + "lorem ipsum " * (index % 7)
             for index in range(50)}
    with StateStore(target) as store:
        keys = list(state)
        for number in range(300):
            for key in (keys[number % 50], keys[(number * 7 + 3) % 50]):
                state[key] = f"{state[key]} v{number}"
            store.save("pipeline", state, metadata={"score": (number % 17) / 17})
        started = time.perf_counter()
        html = render_report(store, "pipeline")
        seconds = time.perf_counter() - started
    assert html.count("<article class=\"version\"") == 300
    assert len(html.encode("utf-8")) < 600_000
    assert seconds < 10


CHROMIUM_ENV = "MSGFLUX_TEST_CHROMIUM"


def test_chromium_renders_the_report_and_runs_no_stored_script(hostile, tmp_path):
    chromium = os.environ.get(CHROMIUM_ENV)
    if not chromium:
        pytest.skip(f"{CHROMIUM_ENV} is not set: no headless Chromium to open the report")
    with StateStore(hostile) as store:
        report = tmp_path / "history.html"
        report.write_text(render_report(store, "pipeline"), encoding="utf-8")
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         report.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    page = _parse(dom)
    assert [found["data-version"] for found in page.find("article", **{"class": "version"})] == [
        "3", "2", "1"]
    assert page.find("polyline") and page.find("svg")
    # The stored <script> and onerror= did not run: the body has no data-pwned attribute
    # and the title is the report's own.
    assert page.find("body") == [{}] and "data-pwned=" not in dom
    assert _title(dom) == TITLE
    assert not page.find("script") and not page.find("img")


def _title(dom: str) -> str:
    start = dom.index("<title>") + len("<title>")
    return dom[start:dom.index("</title>")]
