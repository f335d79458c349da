"""`msgflux-store gc --vacuum` and `report --recent`, as a user runs them, on both backends."""

from __future__ import annotations

from msgflux.store import StateStore


def test_gc_vacuum_prints_the_sizes_and_keeps_the_history(store_url, cli):
    with StateStore(store_url) as store:
        for step in range(30):
            store.save("pipeline", {"prompt": f"{step} " + "lorem ipsum " * 2000, "k": step})
    assert cli("prune", "pipeline", "--keep-last", "2", db=store_url).code == 0
    result = cli("gc", "--vacuum", "--json", db=store_url)
    assert result.code == 0, result.err
    data = result.json()
    assert data["snapshots"] == 28 and data["bytes_before"] > 0 and data["bytes_after"] > 0
    if not store_url.startswith("postgresql"):
        assert data["bytes_after"] < data["bytes_before"] / 3
    plain = cli("gc", db=store_url)
    assert plain.code == 0 and "vacuumed" not in plain.out
    text = cli("gc", "--vacuum", db=store_url)
    assert text.code == 0 and "vacuumed: " in text.out and " MB -> " in text.out
    with StateStore(store_url) as store:
        assert [version.number for version in store.log("pipeline")] == [30, 29]
        assert store.load("pipeline")["k"] == 29
        assert store.verify().ok


def test_report_recent_limits_the_diffed_versions(store_url, cli, tmp_path):
    with StateStore(store_url) as store:
        for step in range(12):
            store.save("pipeline", {"prompt": f"Step {step}."})
    output = tmp_path / "history.html"
    result = cli("report", "pipeline", "--recent", "5", "-o", str(output), "--json", db=store_url)
    assert result.code == 0, result.err
    assert result.json()["versions"] == 12
    page = output.read_text(encoding="utf-8")
    assert page.count('<article class="version"') == 5
    assert "msgflux-store diff pipeline N" in page
    bad = cli("report", "pipeline", "--recent", "0", db=store_url)
    assert bad.code == 2 and "--recent" in bad.err
