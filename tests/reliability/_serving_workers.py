"""Child processes of the serving reliability tests: tag movers, followers, guarded racers.

Each function runs in a spawned process and reports by writing a JSON file.
Version ``n`` of a served name holds ``"v{n}:{i}"`` in key ``k{i}``, so a
module holding a mix of two versions is visible at a glance.
"""

from __future__ import annotations

import json
import random
import time
import traceback
from pathlib import Path
from typing import Any

KEYS = 30


def state_of(number: int, keys: int = KEYS) -> dict[str, str]:
    return {f"k{index}": f"v{number}:{index}" for index in range(keys)}


def make_module(keys: int = KEYS) -> Any:
    from msgflux import nn

    module = nn.Module()
    for index in range(keys):
        module.register_buffer(f"k{index}", "")
    return module


def mix_problem(module: Any, number: int) -> str | None:
    """``None`` if the module holds exactly version ``number``, else what it holds."""
    state = module.state_dict()
    if state != state_of(number, len(state)):
        held = sorted({value.split(":")[0] for value in state.values()})
        return f"follower at {number} holds {held}"
    return None


def _write(path: str, payload: Any) -> None:
    Path(path).write_text(json.dumps(payload))


def mover(
    url: str, name: str, versions: int, moves: int, seed: int, barrier: Any, out: str
) -> None:
    """Move the tag ``production`` ``moves`` times: single versions and splits, some with CAS."""
    from msgflux.store import ConflictError, StateStore

    rng = random.Random(seed)
    done, conflicts, errors = 0, 0, []
    store = StateStore(url, lock_timeout=120)
    barrier.wait()
    for _ in range(moves):
        try:
            cas = rng.random() < 0.3
            expected = store.tag_weights(name, "production") if cas else None
            if rng.random() < 0.4:
                first, second = rng.sample(range(1, versions + 1), 2)
                share = rng.choice((0.1, 0.25, 0.5, 0.75))
                weights = {first: share, second: 1 - share}
                if cas:
                    store.split(name, "production", weights, expected=expected)
                else:
                    store.split(name, "production", weights)
            elif cas:
                store.tag(name, rng.randint(1, versions), "production", expected=expected)
            else:
                store.tag(name, rng.randint(1, versions), "production")
            done += 1
        except ConflictError:
            conflicts += 1
        except Exception:  # noqa: BLE001 -- reported, the test fails on it
            errors.append(traceback.format_exc())
        time.sleep(rng.random() * 0.01)
    store.close()
    _write(out, {"moves": done, "conflicts": conflicts, "errors": errors})


def saver(url: str, name: str, first: int, count: int, barrier: Any, out: str) -> None:
    """Append ``count`` versions (numbers ``first``...) so that "latest" moves too."""
    from msgflux.store import StateStore

    errors = []
    store = StateStore(url, lock_timeout=120)
    barrier.wait()
    for number in range(first, first + count):
        try:
            store.save(name, state_of(number), metadata={"score": 1.0})
        except Exception:  # noqa: BLE001
            errors.append(traceback.format_exc())
        time.sleep(0.02)
    store.close()
    _write(out, {"errors": errors})


def follower(
    url: str,
    name: str,
    ref: str,
    route_key: str | None,
    threaded: bool,
    stop: Any,
    barrier: Any,
    out: str,
) -> None:
    """Follow ``ref`` until ``stop``; after every refresh check that no mix is held."""
    from msgflux.store import StateStore

    problems: list[str] = []
    swaps, checks, seen = 0, 0, set()
    store = StateStore(url, lock_timeout=120)
    module = make_module()
    follow = store.follow(module, name, ref, route_key=route_key)
    if threaded:
        follow.start(interval=0.002)
    barrier.wait()
    try:
        while not stop.is_set():
            if threaded:
                with follow.pinned() as version:
                    problem = mix_problem(module, version.number)
            else:
                swaps += follow.refresh()
                problem = mix_problem(module, follow.version.number)
            checks += 1
            seen.add(follow.version.number)
            if problem:
                problems.append(problem)
        # Converge: the final target, as the test's store sees it.
        deadline = time.monotonic() + 30
        final = None
        while time.monotonic() < deadline:
            if not threaded:
                swaps += follow.refresh()
            if ref == "latest":
                wanted = store.get(name).number
            else:
                weights = store.tag_weights(name, ref)
                from msgflux.store._split import Router, primary

                wanted = (
                    Router(name, ref, weights).pick(route_key)
                    if route_key is not None
                    else primary(weights)
                )
            final = follow.version.number
            if final == wanted:
                break
            time.sleep(0.01)
        problem = mix_problem(module, follow.version.number)
        if problem:
            problems.append(problem)
        result = {
            "problems": problems,
            "swaps": swaps,
            "checks": checks,
            "seen": sorted(seen),
            "final": final,
            "wanted": wanted,
            "errors": [],
        }
    except Exception:  # noqa: BLE001
        result = {"problems": problems, "errors": [traceback.format_exc()]}
    finally:
        follow.close()
        store.close()
    _write(out, result)


def guarded_racer(
    url: str, name: str, racer: int, rounds: int, versions: int, barriers: Any, out: str
) -> None:
    """Each round: read the tag, wait for every racer, then move it with ``expected=``.

    Even racers move to one version, odd ones split between two; about a fifth
    of the targets violate the tag's condition on purpose.
    """
    from msgflux.store import ConflictError, ProtectedTagError, StateStore

    rng = random.Random(racer * 7919)
    store = StateStore(url, lock_timeout=120)
    outcomes = []
    for round_ in range(rounds):
        barriers[0].wait()
        current = store.tag_weights(name, "production")
        choices = [number for number in range(1, versions + 1)]
        if racer % 2 == 0:
            target = {rng.choice([n for n in choices if {n: 1.0} != current]): 1.0}
        else:
            while True:
                first, second = rng.sample(choices, 2)
                target = {first: 0.5, second: 0.5}
                if target != current:
                    break
        barriers[1].wait()
        try:
            if len(target) == 1:
                store.tag(
                    name, next(iter(target)), "production", expected=current, author=f"racer{racer}"
                )
            else:
                store.split(name, "production", target, expected=current, author=f"racer{racer}")
            outcome = "won"
        except ProtectedTagError:
            outcome = "condition"
        except ConflictError:
            outcome = "conflict"
        except Exception:  # noqa: BLE001
            outcome = "error: " + traceback.format_exc()
        outcomes.append(
            {"round": round_, "target": {str(k): v for k, v in target.items()}, "outcome": outcome}
        )
    store.close()
    _write(out, {"outcomes": outcomes})
