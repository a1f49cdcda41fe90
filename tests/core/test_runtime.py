"""`core.runtime.tune_gc`: what `greenrights serve` does to the collector once its app is built (in a child process,
so the test process keeps its own collector)."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import gc
from core.runtime import GEN0_THRESHOLD, tune_gc
kept = [[] for _ in range(1000)]  # alive when the process is tuned: frozen
changed = tune_gc()
print(changed, gc.get_threshold() == (GEN0_THRESHOLD, 10, 10), gc.get_freeze_count() >= 1000)
# Cycles are still collected.
class Node:
    pass
a, b = Node(), Node()
a.other, b.other = b, a
del a, b
print(gc.collect() >= 2)
"""


def _probe(**env: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    return out.stdout.split()


def test_the_served_process_freezes_what_it_holds_and_collects_the_young_less_often() -> None:
    assert _probe(GREENRIGHTS_GC_DEFAULT="") == ["True", "True", "True", "True"]


def test_gc_default_leaves_the_interpreters_settings() -> None:
    # Python's own young threshold is 700, and nothing is frozen.
    assert _probe(GREENRIGHTS_GC_DEFAULT="1") == ["False", "False", "False", "True"]
