"""Code that runs in child processes: stress writers, readers, CAS racers, migrators, crash child.

Each function is started with ``multiprocessing`` (``spawn``) and reports by
writing a JSON file; the crash child runs as ``python _workers.py crash URL
SEED START`` and prints one line per completed save.
"""

from __future__ import annotations

import json
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `_support` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _support import crash_state, expected_snapshot, placeholder, state_for  # type: ignore
else:
    from ._support import crash_state, expected_snapshot, placeholder, state_for


def _write(path: str, payload: Any) -> None:
    Path(path).write_text(json.dumps(payload))


def stress_writer(url: str, writer: int, count: int, names: int, barrier: Any, out: str) -> None:
    """Save ``count`` distinct states; save ``i`` goes to name ``(writer + i) % names``."""
    from msgflux.store import StateStore

    saved, errors, slowest = [], [], 0.0
    store = StateStore(url, lock_timeout=120)
    barrier.wait()
    for index in range(count):
        name = f"stress-{(writer + index) % names}"
        started = time.monotonic()
        try:
            version = store.save(name, state_for(writer, index), message=f"w{writer} i{index}")
        except Exception:  # noqa: BLE001 - the test asserts that none escaped
            errors.append(traceback.format_exc())
            continue
        slowest = max(slowest, time.monotonic() - started)
        saved.append([name, version.number, version.snapshot, writer, index])
    store.close()
    _write(out, {"saved": saved, "errors": errors, "slowest": slowest})


def reader(url: str, stop: Any, out: str) -> None:
    """Read random versions until ``stop`` is set; check each is complete and hashes right."""
    from msgflux.store import NameNotFound, StateStore
    from msgflux.store.hashing import snapshot_hash, value_hash

    store = StateStore(url, lock_timeout=120)
    mark = placeholder(store.dialect)
    checked, errors, slowest, rng = 0, [], 0.0, random.Random(7)
    while not stop.is_set():
        try:
            started = time.monotonic()
            names = store.names()
            if not names:
                continue
            name = rng.choice(names)
            head = store.get(name).number
            number = rng.choice([head, rng.randint(1, head)])
            version = store.get(name, number)
            state = store.load(name, number)
            [(key_count,)] = store.query(
                f"SELECT key_count FROM state_history WHERE name = {mark} AND version = {mark}",
                [name, number],
            )
            slowest = max(slowest, time.monotonic() - started)
        except NameNotFound:
            continue
        except Exception:  # noqa: BLE001
            errors.append(traceback.format_exc())
            continue
        actual = snapshot_hash({key: value_hash(value) for key, value in state.items()})
        if len(state) != key_count or actual != version.snapshot:
            errors.append(
                f"{name}@{number}: {len(state)} keys of {key_count}, "
                f"hash {actual[:12]} vs {version.snapshot[:12]}"
            )
        if state != state_for(state["writer"], state["index"]):
            errors.append(f"{name}@{number}: content differs from what its writer saved")
        checked += 1
    store.close()
    _write(out, {"checked": checked, "errors": errors, "slowest": slowest})


def cas_writer(url: str, writer: int, rounds: int, barrier: Any, out: str) -> None:
    """Each round: read the head, wait for all racers, save with ``expected_head`` = that head."""
    from msgflux.store import ConflictError, StateStore

    outcomes, errors = [], []
    store = StateStore(url, lock_timeout=120)
    for round_ in range(rounds):
        barrier.wait()
        head = store.get("cas").number
        barrier.wait()  # every racer has read the same head: now they really race
        try:
            version = store.save("cas", {"writer": writer, "round": round_}, expected_head=head)
            outcomes.append([round_, head, "ok", version.number])
        except ConflictError:
            outcomes.append([round_, head, "conflict", None])
        except Exception:  # noqa: BLE001
            errors.append(traceback.format_exc())
            outcomes.append([round_, head, "error", None])
    store.close()
    _write(out, {"outcomes": outcomes, "errors": errors})


def migrator(path: str, barrier: Any, out: str) -> None:
    """Open an old-schema store together with other processes; report upgrade's (before, after)."""
    from msgflux.store import StateStore
    from msgflux.store.engine import create_store_engine, resolve_url
    from msgflux.store.migrate import upgrade

    try:
        engine = create_store_engine(resolve_url(path), lock_timeout=60, durability="normal")
        barrier.wait()
        before, after = upgrade(engine, lock_timeout=60)
        engine.dispose()
        with StateStore(path, migrate=False) as store:  # refuses unless the schema is at head
            numbers = [version.number for version in store.log("old")]
        _write(out, {"before": before, "after": after, "numbers": numbers})
    except Exception:  # noqa: BLE001
        _write(out, {"error": traceback.format_exc()})


def crash_child(url: str, seed: int, start: int) -> None:
    """Save ``crash_state(seed, counter)`` for counter = start, start+1...; print each result."""
    from msgflux.store import StateStore

    store = StateStore(url, lock_timeout=60)
    print("ready", flush=True)
    counter = start
    while True:
        state = crash_state(seed, counter)
        version = store.save("crash", state, message=f"counter {counter}")
        assert version.snapshot == expected_snapshot(state)
        print(counter, version.number, version.snapshot, flush=True)
        counter += 1


if __name__ == "__main__":
    if sys.argv[1] == "crash":
        crash_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))


def one_name_writer(url: str, writer: int, rounds: int, barrier: Any, out: str) -> None:
    """Each round, behind a barrier: a distinct save, an identical save, a racing CAS save.

    All writers target the name ``"one"``. Reports what each save returned and
    the text of every :class:`ConflictError`.
    """
    from msgflux.store import ConflictError, StateStore

    distinct, identical, conflicts, errors = [], [], [], []
    store = StateStore(url, lock_timeout=120)
    for round_ in range(rounds):
        try:
            barrier.wait()
            version = store.save("one", state_for(writer, round_), message=f"w{writer} r{round_}")
            distinct.append([version.number, version.parent, version.snapshot, writer, round_])
            barrier.wait()
            version = store.save("one", {"round": round_, "same": True}, message="same")
            identical.append([round_, version.number, version.parent, version.snapshot])
            barrier.wait()
            head = store.get("one").number
            barrier.wait()
            try:
                version = store.save("one", {"cas": writer, "round": round_}, expected_head=head)
            except ConflictError as error:
                conflicts.append([round_, head, str(error)])
        except Exception:  # noqa: BLE001 - the test asserts that none escaped
            errors.append(traceback.format_exc())
            barrier.abort()
            break
    store.close()
    _write(
        out,
        {"distinct": distinct, "identical": identical, "conflicts": conflicts, "errors": errors},
    )


def round_state(round_: int) -> dict[str, Any]:
    """The state the prune/gc writer saves in ``round_``: 40 keys, half of them shared."""
    state: dict[str, Any] = {"round": round_}
    for key in range(40):
        state[f"layer.k{key}"] = f"value {key}" if key % 2 else f"round {round_} key {key}"
    return state


def prune_gc_writer(url: str, seconds: float, ready: Any, out: str) -> None:
    """For ``seconds``: save a round, move ``production`` to it, prune to 1 version, gc."""
    from msgflux.store import StateStore

    store = StateStore(url, lock_timeout=120)
    rounds, errors = 1, []  # the test saved round 0
    ready.wait()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            version = store.save("p", round_state(rounds), message=f"round {rounds}")
            store.tag("p", version.number, "production")
            store.prune("p", keep_last=1)
            store.gc()
        except Exception:  # noqa: BLE001 - the test asserts that none escaped
            errors.append(traceback.format_exc())
        rounds += 1
    store.close()
    _write(out, {"rounds": rounds, "errors": errors})


def snapshot_reader(url: str, mode: str, seconds: float, ready: Any, folder: str, out: str) -> None:
    """Read while the prune/gc writer runs; every read must show one whole state.

    ``mode`` "load": load by tag, by "latest" and diff against the parent;
    "verify": verify() and export a bundle, then import it into a fresh SQLite store.
    """
    from msgflux.store import StateStore

    store = StateStore(url, lock_timeout=120)
    reads, problems = 0, []
    ready.wait()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if mode == "load":
                for ref in ("production", "latest"):
                    state = store.load("p", ref)
                    if not state or state != round_state(state.get("round", -1)):
                        problems.append(f"load {ref}: {sorted(state)[:3]}... ({len(state)} keys)")
                changes = store.diff("p", "production")
                if not changes.added and not changes.changed:
                    problems.append(f"diff {changes.new} against its parent is empty")
            else:
                report = store.verify()
                if not report.ok:
                    problems.append(f"verify: {report}")
                bundle = Path(folder) / f"bundle{reads}.json"
                store.export_bundle(bundle)
                with StateStore(Path(folder) / f"import{reads}.db") as fresh:
                    fresh.import_bundle(bundle)
                    if fresh.verify().ok is not True:
                        problems.append("imported bundle does not verify")
                bundle.unlink()
            reads += 1
        except Exception:  # noqa: BLE001 - a tag always names a live version: nothing may raise
            problems.append(traceback.format_exc())
    store.close()
    _write(out, {"reads": reads, "problems": problems})
