"""`greenrights serve --workers 2` on PostgreSQL: two uvicorn processes, each with its own app and pool, serve one
database, and the promises hold across them: concurrent transfers post exactly once each, one Idempotency-Key
fired from many clients has one effect whichever process each request reached, and the ledger reconciles. (On
SQLite the command refuses several workers: tests/core/test_sqlite_write_queue.py.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.db import Database
from tests.conftest import PG_URL
from tests.e2e.conftest import (
    HOST,
    REPO,
    REQUEST_TIMEOUT_S,
    START_TIMEOUT_S,
    Live,
    Server,
    allocate,
    free_port,
    holding,
    make_world,
    prepare_database,
    problem_type,
    release_together,
    reset_postgres,
    transfer_body,
)

WORKERS = 2

pytestmark = pytest.mark.skipif(not PG_URL, reason="GREENRIGHTS_TEST_DATABASE_URL is not set (workers need PostgreSQL)")


def start_workers(db_url: str, log_path: Path) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "GREENRIGHTS_DATABASE_URL": db_url,
        "GREENRIGHTS_SCHEDULER_EMBEDDED": "false",
        "PYTHONUNBUFFERED": "1",
    }
    argv = [sys.executable, "-m", "server.cli", "serve", "--host", HOST, "--port", str(port), "--workers", str(WORKERS)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(process, f"http://{HOST}:{port}", log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"greenrights serve exited with {process.returncode}:\n{server.log_tail()}")
        started = len(re.findall(r"Started server process", log_path.read_text(errors="replace")))
        try:
            if started >= WORKERS and httpx.get(f"{server.base_url}/health", timeout=1.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{WORKERS} workers did not start within {START_TIMEOUT_S} s:\n{server.log_tail()}")


@pytest.fixture(scope="module")
async def live_workers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Live]:
    assert PG_URL
    reset_postgres(PG_URL)
    await prepare_database(PG_URL)
    server = start_workers(PG_URL, tmp_path_factory.mktemp("workers") / "serve.log")
    db = Database(PG_URL)
    client = httpx.AsyncClient(base_url=server.base_url, timeout=REQUEST_TIMEOUT_S)
    try:
        yield Live("postgres", server, db, client)
    finally:
        await client.aclose()
        await db.dispose()
        server.stop()


async def test_two_workers_serve_one_database_with_one_effect_per_key(live_workers: Live) -> None:
    live = live_workers
    pids = set(re.findall(r"Started server process \[(\d+)\]", live.server.log_path.read_text(errors="replace")))
    assert len(pids) == WORKERS
    w = await make_world(live, accounts=2, issue=1000)
    src, dst = w.holder.accounts
    await allocate(live, w, src, 100)

    # 16 distinct transfers of 1: all post, from whichever worker.
    answers = await release_together(
        live, 16, lambda _i, c: live.post("/api/v1/transfers", w.holder.key, transfer_body(w, src, dst, 1), client=c)
    )
    assert Counter(r.status_code for r in answers) == {201: 16}, [r.text for r in answers if r.status_code != 201]

    # One key from 16 clients: one effect; the others replay it or see it in flight.
    body = transfer_body(w, src, dst, 10)
    same = await release_together(
        live, 16, lambda _i, c: live.post("/api/v1/transfers", w.holder.key, body, idem="workers-one-key", client=c)
    )
    late = await live.post("/api/v1/transfers", w.holder.key, body, idem="workers-one-key")
    first = [r for r in same if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    rest = [r for r in same if r not in first]
    assert len(first) == 1, Counter((r.status_code, problem_type(r)) for r in same)
    assert all(
        (r.status_code == 201 and r.headers.get("idempotent-replayed") == "true")
        or (r.status_code == 409 and problem_type(r) == "/problems/idempotency-key-in-flight")
        for r in rest
    )
    assert late.status_code == 201 and late.headers.get("idempotent-replayed") == "true"
    assert late.json() == first[0].json()

    assert (await holding(live, w.holder.key, src, w.instrument_id))["balance_base"] == 100 - 16 - 10
    assert (await holding(live, w.holder.key, dst, w.instrument_id))["balance_base"] == 16 + 10
    assert await live.invariants() == []
