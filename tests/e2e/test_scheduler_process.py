"""The scheduler as its own process beside the API processes, killed in the middle of the settlement job (issue 13,
item 9; reliability.md, "Crash", promise 5). PostgreSQL only.

Two `greenrights serve` processes on two ports (`GREENRIGHTS_SCHEDULER_EMBEDDED=false`, tests/e2e/conftest.py's
`spawn_server`) and the installed `greenrights scheduler` console script share one database that holds a period
whose surrender deadline has passed, so the scheduler's catch-up at start fires the settlement. The first
scheduler stands still at the fault point `settlement-after-batch` (`GREENRIGHTS_FAULT`,
registry/compliance/settlement.py) with one batch committed, and is SIGKILLed there. A new `greenrights scheduler`
is started at once; it takes the dead run over once its lease (`GREENRIGHTS_SCHEDULER_LEASE_S`) has ended (if it
starts before that, it fires again when the lease ends: tests/scheduler/test_job_runs.py) and settles the rest.
Each effect lands once (settlement rows, forced surrenders, deductions, audit entries), the ledger invariants hold
and the audit chain verifies; both API processes answer /health, /ready and reads of the results before, during
and after; and nothing either scheduler printed contains a secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url, text

from core.db import UnitOfWork
from core.identity import Role
from tests.conftest import PG_URL, Env, make_env
from tests.e2e.conftest import (
    REPO,
    REQUEST_TIMEOUT_S,
    Server,
    prepare_database,
    reset_postgres,
    spawn_server,
    wait_healthy,
)
from tests.e2e.test_settlement_exactly_once import BATCH, N, assert_settled_exactly_once, past_deadline, scenario

pytestmark = pytest.mark.skipif(not PG_URL, reason="GREENRIGHTS_TEST_DATABASE_URL is not set (needs PostgreSQL)")

# GREENRIGHTS_SCHEDULER_LEASE_S for both schedulers (production default 600): long enough that on an idle machine the
# new scheduler usually starts inside the dead run's lease and waits it out; on a loaded one it may start after it.
LEASE_S = 15
WAIT_S = 90.0  # guards against a hang (on a loaded machine a process's imports alone take 15 s), not measurements


def scheduler_argv() -> list[str]:
    """The console script the package installs (`greenrights = server.cli:main`), or the same entry point by module
    where no script was installed."""
    script = Path(sys.executable).with_name("greenrights")
    return [str(script), "scheduler"] if script.exists() else [sys.executable, "-m", "server.cli", "scheduler"]


def start_scheduler(log_path: Path, *, fault: str | None = None) -> subprocess.Popen[bytes]:
    assert PG_URL
    env = {
        **os.environ,
        "GREENRIGHTS_DATABASE_URL": PG_URL,
        "GREENRIGHTS_SCHEDULER_LEASE_S": str(LEASE_S),
        "GREENRIGHTS_SETTLEMENT_BATCH_SIZE": str(BATCH),
        # The checkout under test, ahead of wherever the installed package points.
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("GREENRIGHTS_FAULT", None)
    if fault is not None:
        env["GREENRIGHTS_FAULT"] = fault
    with log_path.open("wb") as log:
        return subprocess.Popen(scheduler_argv(), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


@dataclass
class Stack:
    env: Env  # in-process services on the same database: the scenario and the checks
    api: list[Server]  # two `greenrights serve` processes
    logs: Path
    schedulers: list[subprocess.Popen[bytes]]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    assert PG_URL
    reset_postgres(PG_URL)
    await prepare_database(PG_URL)  # migrated to head, as `greenrights db upgrade`: both commands check it
    env, client = await make_env(PG_URL)
    # Both API processes start while the test builds its scenario; it waits for them before its first request.
    s = Stack(env, [spawn_server(PG_URL, tmp_path / f"serve-{i}.log") for i in (1, 2)], tmp_path, [])
    try:
        yield s
    finally:
        await teardown(s, client)


async def teardown(s: Stack, client: Any) -> None:
    for p in s.schedulers:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    for server in s.api:
        server.stop()
    await client.__aexit__(None, None, None)
    await s.env.db.dispose()


async def scalar(env: Env, sql: str) -> Any:
    async def work(uow: UnitOfWork) -> Any:
        return (await uow.session.execute(text(sql))).scalar_one_or_none()

    return await env.db.read(work)


async def settlement_run(env: Env) -> dict[str, Any] | None:
    async def work(uow: UnitOfWork) -> dict[str, Any] | None:
        row = (
            await uow.session.execute(
                text("SELECT status, owner, attempts, result FROM scheduler_job_run WHERE job = 'settlement'")
            )
        ).one_or_none()
        return None if row is None else dict(row._mapping)

    return await env.db.read(work)


async def api_answers(api: list[Server], key: str, period_id: int, *, ready: bool = True) -> tuple[int, str]:
    """Every API process answers /health, /ready (unless `ready` is false: it reads the migration table, and the
    polling loop spares the two cores) and two reads: the number of settlement results and the period's status as
    the API shows them (the process asked later never shows fewer results)."""
    seen: list[tuple[int, str]] = []
    for server in api:
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=REQUEST_TIMEOUT_S, headers={"Authorization": f"Bearer {key}"}
        ) as c:
            assert (await c.get("/health")).status_code == 200
            if ready:
                r = await c.get("/ready")
                assert r.status_code == 200, r.text
                assert r.json()["checks"]["scheduler"].startswith("external"), r.text
            results = await c.get(f"/api/v1/compliance/periods/{period_id}/results", params={"limit": 1000})
            assert results.status_code == 200, results.text
            period = await c.get(f"/api/v1/compliance/periods/{period_id}")
            assert period.status_code == 200, period.text
        seen.append((int(results.json()["total"]), str(period.json()["status"])))
    assert [t for t, _ in seen] == sorted(t for t, _ in seen), seen
    return seen[-1]


def log_of(path: Path) -> str:
    return path.read_text(errors="replace")


async def test_a_scheduler_process_killed_mid_settlement_is_finished_once_by_a_new_one(stack: Stack) -> None:
    env, api = stack.env, stack.api
    sc = await scenario(env, past_deadline())
    key = await env.key(Role.AUDITOR)
    for server in api:
        await asyncio.to_thread(wait_healthy, server, WAIT_S)
    total, status = await api_answers(api, key, sc.period_id)
    assert total == 0 and status != "settled"

    # 1. The first scheduler fires the due settlement at start and stands still after its first committed batch.
    first_log = stack.logs / "scheduler-1.log"
    first = start_scheduler(first_log, fault="settlement-after-batch")
    stack.schedulers.append(first)
    deadline = time.monotonic() + WAIT_S
    while await scalar(env, "SELECT count(*) FROM compliance_settlement") < BATCH:
        assert first.poll() is None, log_of(first_log)[-3000:]
        assert time.monotonic() < deadline, "the settlement never reached its first batch:\n" + log_of(first_log)
        await asyncio.sleep(0.1)
    total, status = await api_answers(api, key, sc.period_id)  # the API answers while the scheduler stands still
    assert total == BATCH and status != "settled"

    # 2. SIGKILL in the middle of the job: one batch of N / BATCH committed, the run still claimed by the dead owner.
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    assert await scalar(env, "SELECT count(*) FROM compliance_settlement") == BATCH
    dead = await settlement_run(env)
    assert dead is not None and (dead["status"], dead["attempts"]) == ("running", 1), dead
    assert f"scheduler {dead['owner']} starting; lease {LEASE_S} s" in log_of(first_log)
    total, status = await api_answers(api, key, sc.period_id)
    assert total == BATCH and status != "settled"

    # 3. A new scheduler, started at once: it takes the run over when the dead one's lease ends and finishes it.
    second_log = stack.logs / "scheduler-2.log"
    second = start_scheduler(second_log)
    stack.schedulers.append(second)
    seen = [BATCH]
    while (run := await settlement_run(env)) is None or run["status"] != "done":
        assert second.poll() is None, log_of(second_log)[-3000:]
        assert time.monotonic() < deadline, "the new scheduler never finished the settlement:\n" + log_of(second_log)
        total, _ = await api_answers(api, key, sc.period_id, ready=False)  # the API answers while it settles
        assert seen[-1] <= total <= N, (seen, total)
        seen.append(total)
        await asyncio.sleep(0.5)
    assert run["owner"] != dead["owner"] and run["attempts"] == 2, run
    assert json.loads(run["result"])["settled_now"] == N - BATCH, run
    assert f"scheduler {run['owner']} starting" in log_of(second_log)
    assert "(taken over)" in log_of(second_log), log_of(second_log)[-3000:]
    assert await api_answers(api, key, sc.period_id) == (N, "settled")

    # 4. Stopped, the new scheduler leaves every effect once, the ledger balanced and the audit chain whole.
    second.send_signal(signal.SIGTERM)
    second.wait(timeout=30)
    await assert_settled_exactly_once(env, sc)
    assert await api_answers(api, key, sc.period_id) == (N, "settled")
    assert all(server.process.poll() is None for server in api)  # the same two API processes throughout

    # 5. Neither scheduler printed a secret: the staff-token secret, the database password or the API key.
    assert PG_URL
    password = make_url(PG_URL).password
    secrets = [os.environ["GREENRIGHTS_JWT_SECRET"], key, PG_URL, f":{password}@"]
    for path in (first_log, second_log):
        printed = log_of(path)
        assert printed.strip(), path
        leaked = [i for i, secret in enumerate(secrets) if secret and secret in printed]
        assert not leaked, f"{path.name} printed secret #{leaked}"
