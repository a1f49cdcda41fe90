"""`greenrights simulate` end to end: a reduced Jiangxi year (the first 12 emitters, seed 7) on a fresh SQLite
sandbox, driven through the API by the SDK, twice. Both runs must print the same state digest, pass the audit chain
and the reconciliation, trade on every market the scenario opened, fine at least one emitter, pay at least one
subsidy claim and give every emitter a compliance result. The final state each run wrote is checked against its
digest, so the checks read what was hashed.

Each run is its own process in its own working directory (the command writes under ./var), as a person would run
it. The penalty notices need 2027's working days: tests/conftest.py publishes test ones (GREENRIGHTS_HOLIDAYS_PATH),
which the processes inherit."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
ARGS = ["simulate", "--scenario", "jiangxi", "--year", "2025", "--enterprises", "12", "--seed", "7"]


def _run(cwd: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], str]:
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.pop("GREENRIGHTS_DATABASE_URL", None)
    cmd = [sys.executable, "-m", "server.cli", *ARGS]
    done = subprocess.run(cmd, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1].startswith("digest="), lines[-5:]
    printed = lines[-1].removeprefix("digest=")
    state_file = cwd / "var" / "simulate-2025-7" / "final-state.json"
    text = state_file.read_text(encoding="utf-8")
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == printed
    return done, json.loads(text), printed


def test_a_reduced_year_runs_end_to_end_and_the_same_seed_gives_the_same_digest(tmp_path: Path) -> None:
    first, state, digest = _run(tmp_path / "a")
    out = first.stdout
    assert re.search(r"^audit verify: audit chain intact: \d+ entries checked$", out, re.M), out[-2000:]
    assert re.search(r"^audit reconcile: ledger reconciled: ", out, re.M)
    assert re.search(r"^audit reconcile: circulation reconciled: ", out, re.M)
    line = rf"^simulate_seconds=\d+ enterprises=12 trades=\d+ transfers=\d+ claims=\d+ state_digest={digest}$"
    assert re.search(line, out, re.M)

    head = yaml.safe_load((REPO / "server/scenarios/jiangxi/scenario.yaml").read_text(encoding="utf-8"))
    emitters = yaml.safe_load((REPO / "server/scenarios/jiangxi/emitters.yaml").read_text(encoding="utf-8"))
    kept = emitters["emitters"][:12]
    # The markets the load opened: allowances, and the permits these 12 plants hold (power: SO2 and NOx).
    markets = {"CEA-NATIONAL-2025"} | {f"EDP-{p}-JX-2025" for e in kept for p in e.get("permits_t", {})}
    traded = {t[0] for t in state["trades"]}
    assert traded == markets
    venues = {t[2] for t in state["trades"] if t[0] == "CEA-NATIONAL-2025"}
    assert {"listed", "block", "primary-auction"} <= venues
    assert {t[2] for t in state["trades"] if t[0] != "CEA-NATIONAL-2025"} == {"continuous"}

    results = state["results"]
    assert sorted(r[0] for r in results) == sorted(e["uscc"] for e in kept)  # one carbon result per emitter
    assert {r[3] for r in results} <= {"A", "B", "C"}
    assert sum(r[3] == "A" for r in results) > len(results) // 2  # most surrender in full
    short = [r for r in results if r[3] == "B"]
    assert short and all(r[8] > 0 and r[9] > 0 for r in short)  # fined, and owed from the next allocation
    assert state["fines"] and all(f[3] > 0 for f in state["fines"])
    assert state["disbursed_fen"] > 0
    assert any(c[3] == "disbursed" for c in state["claims"])
    assert state["penalties"] and any(p[1] == "paid" for p in state["penalties"])
    # The market maker's company traded: it holds units or money other than its opening deposit.
    mm = head["market_maker"]
    mm_funds = {f[0]: f[1] for f in state["funds"]}[mm["uscc"]]
    mm_units = [h for h in state["holdings"] if h[0] == mm["uscc"]]
    assert mm_units or mm_funds != mm["deposit_yuan"] * 100

    # The year's report, written at the end from the same database: every trade of the year and every carbon
    # result is in its open data, and its page and PDF exist.
    report = tmp_path / "a" / "var" / "reports" / "2025"
    assert "year report: var/reports/2025/ " in out
    with (report / "trades.csv").open(encoding="utf-8-sig", newline="") as f:
        assert sum(1 for _ in csv.DictReader(f)) == len(state["trades"])
    with (report / "compliance.csv").open(encoding="utf-8-sig", newline="") as f:
        carbon = [r for r in csv.DictReader(f) if r["scheme_kind"] == "carbon"]
    assert sorted(r["uscc"] for r in carbon) == sorted(e["uscc"] for e in kept)
    assert (report / "report.pdf").read_bytes().startswith(b"%PDF") and (report / "index.html").stat().st_size > 0

    _, again, digest2 = _run(tmp_path / "b")
    assert digest2 == digest, "the same seed gave a different final state"
    assert again == state
