"""Quickstart: build a pipeline, version its prompts, diff, tag, roll back, query.

Run it from the folder you will use the command line in:
``python examples/quickstart.py``. It writes the history ``pipeline`` into
``msgflux_state.db`` in the current folder (or the store ``$MSGFLUX_STORE``
names), the command line's default store, so ``msgflux-store log pipeline``
shows it next; and ``state.toml`` next to this script. Each run starts the
``pipeline`` history afresh, and refuses to touch one it did not write.
"""

import os
from pathlib import Path

import msgflux as mf
import msgflux.nn as nn
from msgflux.store import StateStore

HERE = Path(__file__).resolve().parent


class Analyzer(nn.Module):
    def __init__(self):
        super().__init__()
        self.instructions = nn.Parameter("Be helpful and concise", "system_prompt")
        self.register_buffer("expected_output", "JSON format")


class Pipeline(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("flux", "preprocess -> analyze")
        self.analyzer = Analyzer()

    def forward(self, x, **kwargs):
        return x + " | " + self.analyzer.instructions


def main() -> None:
    # 1. The core library: a module's state is a flat dict of plain values.
    p = Pipeline()
    print(p.state_dict())
    mf.save(p.state_dict(), HERE / "state.toml")
    sd = mf.load(HERE / "state.toml")
    sd["analyzer.instructions"] = "Answer in one sentence."
    p.load_state_dict(sd)  # hot swap, no re-construction
    print(p("hi"))

    # 2. The store: every save is a version.
    db = os.environ.get("MSGFLUX_STORE", "msgflux_state.db")  # the CLI's default store
    store = StateStore(db)
    _start_afresh(store)
    p.analyzer.instructions.data = "Be helpful and concise"
    v1 = store.save("pipeline", p, message="baseline", metadata={"score": 0.71})
    p.analyzer.instructions.data = "Answer in one sentence."
    v2 = store.save("pipeline", p, message="shorter", author="ana", metadata={"score": 0.78})
    print(v1, v2, sep="\n")

    print(store.diff("pipeline", 1, 2))  # what changed, as a unified diff
    store.tag("pipeline", 2, "production")

    p.analyzer.instructions.data = "Reply in French."  # an experiment goes wrong...
    store.load_into(p, "pipeline", "production")  # ...production is back in the module
    assert p("hi") == "hi | Answer in one sentence."

    v3 = store.rollback("pipeline", 1, message="revert")  # a NEW version equal to version 1
    assert v3.number == 3 and v3.snapshot == v1.snapshot

    for version in store.log("pipeline"):  # newest first
        print(version)
    rows = store.query(
        "SELECT version, value FROM state_values WHERE name = ? AND key = ? ORDER BY version",
        ("pipeline", "analyzer.instructions"),
    )
    print(rows)
    best = store.query(
        "SELECT version, json_extract(metadata, '$.score') AS score FROM state_history "
        "WHERE name = ? ORDER BY score DESC LIMIT 1",
        ("pipeline",),
    )
    print("best:", best)
    assert store.verify().ok
    store.close()
    print(f"wrote the history 'pipeline' to {db}; next: msgflux-store log pipeline")


QUICKSTART_MESSAGES = {"baseline", "shorter", "revert"}


def _start_afresh(store: StateStore) -> None:
    """Delete a 'pipeline' history left by an earlier run (and only such a one)."""
    if "pipeline" not in store.names():
        return
    if any(version.message not in QUICKSTART_MESSAGES for version in store.log("pipeline")):
        raise SystemExit(
            "the store already has a 'pipeline' history this example did not "
            "write; run it in another folder or set MSGFLUX_STORE"
        )
    store.delete_name("pipeline", force=True, author="quickstart")


if __name__ == "__main__":
    main()
