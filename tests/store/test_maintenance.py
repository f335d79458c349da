"""prune, gc and verify; corruption is made with direct SQL on the database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from store_testkit import count, execute, expected_snapshot, expected_value_hash, scalar

from msgflux.store import InvalidInputError, StateStore


def _five(store: StateStore) -> None:
    for step in range(1, 6):
        store.save("p", {"shared": "kept everywhere", "step": step, f"only{step}": "x" * step})


def test_prune_keeps_the_last_and_every_tagged_version(store: StateStore) -> None:
    _five(store)
    store.tag("p", 1, "production")
    store.tag("p", 3, "staging")
    assert store.prune("p", keep_last=1) == [2, 4]
    assert [v.number for v in store.log("p")] == [5, 3, 1]
    assert store.prune("p", keep_last=1) == []
    store.untag("p", "staging")
    assert store.prune("p", keep_last=1) == [3]
    assert [v.number for v in store.log("p")] == [5, 1]
    # numbers are never reused
    assert store.save("p", {"new": True}).number == 6


def test_prune_touches_only_its_name(store: StateStore) -> None:
    _five(store)
    store.save("other", {"step": 1})
    store.save("other", {"step": 2})
    assert store.prune("p", keep_last=2) == [1, 2, 3]
    assert [v.number for v in store.log("other")] == [2, 1]
    with pytest.raises(InvalidInputError):
        store.prune("p", keep_last=0)


def test_gc_removes_only_unreferenced_snapshots_and_values(
    store: StateStore, db: sa.Engine
) -> None:
    _five(store)
    store.save("twin", {"shared": "kept everywhere", "step": 2, "only2": "xx"})  # = p@2
    store.tag("p", 1, "production")
    assert store.gc().snapshots == 0
    assert (count(db, "snapshots"), count(db, "blobs")) == (5, 11)
    store.prune("p", keep_last=2)  # removes 2, 3; p@2's snapshot is still used by twin
    result = store.gc()
    assert (result.snapshots, result.blobs) == (1, 2)  # p@3: 3 and "xxx", nothing else
    assert (count(db, "snapshots"), count(db, "blobs")) == (4, 9)
    assert (
        scalar(db, "SELECT count(*) FROM blobs WHERE hash = :h", {"h": expected_value_hash("xxx")})
        == 0
    )
    assert (
        scalar(
            db,
            "SELECT count(*) FROM blobs WHERE hash = :h",
            {"h": expected_value_hash("kept everywhere")},
        )
        == 1
    )
    for number in (1, 4, 5):
        state = store.load("p", number)
        assert state["step"] == number
        assert store.get("p", number).snapshot == expected_snapshot(state)
    assert store.load("twin")["only2"] == "xx"
    assert store.verify().ok
    assert (store.gc().snapshots, store.gc().blobs) == (0, 0)


def test_rollback_to_a_version_whose_content_was_collected_elsewhere(store: StateStore) -> None:
    _five(store)
    store.prune("p", keep_last=3)
    store.gc()
    back = store.rollback("p", 3)
    assert store.load("p") == store.load("p", 3)
    assert back.parent == 5
    assert store.diff("p", 3).added == store.load("p", 3)  # parent 2 was pruned
    assert store.verify().ok


# -- verify ----------------------------------------------------------------------------------------


def _three_versions(store: StateStore) -> None:
    for step in (1, 2, 3):
        store.save("p", {"prompt": f"prompt {step}", "shared": "Be brief.", "top_k": step})


def test_verify_of_a_clean_store_is_ok(store: StateStore) -> None:
    report = store.verify()
    assert report.ok and bool(report) and report.problems == ()
    _three_versions(store)
    store.tag("p", 2, "production")
    report = store.verify()
    assert report.ok, str(report)
    assert (report.versions_checked, report.snapshots_checked, report.blobs_checked) == (3, 3, 7)
    assert str(report).endswith(": ok")


def test_verify_reports_a_flipped_byte_in_a_value(store: StateStore, db: sa.Engine) -> None:
    _three_versions(store)
    store.save("q", {"copy": "Be brief."})
    execute(
        db,
        "UPDATE blobs SET text = :t WHERE hash = :h",
        {"t": "Be brieg.", "h": expected_value_hash("Be brief.")},
    )
    report = store.verify()
    assert not report.ok
    assert {(p.kind, p.name, p.version, p.key) for p in report.problems} == {
        ("value", "p", 1, "shared"),
        ("value", "p", 2, "shared"),
        ("value", "p", 3, "shared"),
        ("value", "q", 1, "copy"),
    }
    assert "p:2 key 'shared'" in str(report)


def test_verify_reports_a_flipped_byte_in_json_text(store: StateStore, db: sa.Engine) -> None:
    _three_versions(store)
    execute(db, "UPDATE blobs SET text = '3' WHERE hash = :h", {"h": expected_value_hash(2)})
    problems = store.verify().problems
    assert [(p.name, p.version, p.key) for p in problems] == [("p", 2, "top_k")]


def test_verify_reports_a_deleted_span_with_its_key(store: StateStore, db: sa.Engine) -> None:
    _three_versions(store)
    execute(
        db,
        "DELETE FROM spans WHERE since = 2 AND key_id = (SELECT id FROM keys WHERE key = 'prompt')",
    )
    problems = store.verify().problems
    assert [(p.kind, p.name, p.version, p.key) for p in problems] == [
        ("snapshot", "p", 2, "prompt")
    ]
    assert "key missing" in problems[0].message


def test_verify_reports_a_changed_snapshot_hash(store: StateStore, db: sa.Engine) -> None:
    _three_versions(store)
    store.save("q", {"prompt": "prompt 3", "shared": "Be brief.", "top_k": 3})  # shares p@3
    execute(
        db,
        "UPDATE snapshots SET hash = :new WHERE hash = :old",
        {"new": "0" * 64, "old": store.get("p", 3).snapshot},
    )
    problems = store.verify().problems
    assert [(p.kind, p.name, p.version) for p in problems] == [
        ("snapshot", "p", 3),
        ("snapshot", "q", 1),
    ]
    assert all("snapshot hash mismatch" in p.message for p in problems)


def test_long_operations_report_progress_up_to_their_totals(tmp_path) -> None:  # noqa: ANN001
    store = StateStore(tmp_path / "progress.db")
    for number in range(1, 31):
        store.save("p", {"fixed": "same", "k": number})
    calls: list[tuple[str, int, int]] = []

    def seen(phase: str, done: int, total: int) -> None:
        calls.append((phase, done, total))

    assert store.verify(progress=seen).ok
    assert ("values", 31, 31) in calls and ("versions", 30, 30) in calls
    calls.clear()
    store.export_bundle(tmp_path / "b.json", progress=seen)
    assert calls[0] == ("versions of p", 0, 30) and calls[-1] == ("versions of p", 30, 30)
    calls.clear()
    other = StateStore(tmp_path / "other.db")
    other.import_bundle(tmp_path / "b.json", progress=seen)
    assert calls[0] == ("versions of p", 0, 30) and calls[-1] == ("versions of p", 30, 30)
    assert all(done <= total for _phase, done, total in calls)
