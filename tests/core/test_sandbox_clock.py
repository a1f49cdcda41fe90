"""The sandbox clock (core/sandbox.py): a database is a sandbox only when it was marked empty at creation; a
production database refuses every clock move (CLI and API); a move reaches every process on the database; the clock
never goes back. SQLite always, PostgreSQL when GREENRIGHTS_TEST_DATABASE_URL is set."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import create_engine, text

from core.clock import SHANGHAI, FixedClock, SandboxClock, SystemClock
from core.db import sync_url
from core.identity import Role
from core.sandbox import sandbox_offset, sandbox_refusal
from core.settings import Settings
from server.app import create_app
from server.cli import db_upgrade
from tests.conftest import BACKENDS, START, Env, fresh_database_url, make_env

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 120
WAIT_S = 20.0  # how long a test waits for another app to see a move (it should take about a second)


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GREENRIGHTS_DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT_S, check=False)  # fmt: skip


def settings(url: str) -> Settings:
    return Settings(database_url=url, scheduler_embedded=False, api_rate_limit_per_minute=0)


async def app_env(url: str, clock: Any = None) -> Env:
    """An app on an existing database; its clock is the database's (sandbox or system time) unless given."""
    app = create_app(settings(url), clock)
    client = AsyncTestClient(app=app)
    await client.__aenter__()
    return Env(url=url, client=client, db=app.state.db, clock=app.state.clock, app=app)


async def close(e: Env) -> None:
    await e.client.__aexit__(None, None, None)
    await e.db.dispose()


async def sandbox_url(backend: str, tmp: Path) -> str:
    url = fresh_database_url(backend, tmp)
    message = await asyncio.to_thread(db_upgrade, url, sandbox=True)
    assert "marked a sandbox" in message
    return url


def audit_rows(url: str) -> list[tuple[str, dict[str, Any]]]:
    engine = create_engine(sync_url(url))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT actor, data FROM audit_entry WHERE action = 'sandbox.clock_advance' "
                                 "ORDER BY id")).all()  # fmt: skip
    engine.dispose()
    return [(r[0], json.loads(r[1])) for r in rows]


def shown_now(stdout: str) -> dt.datetime:
    m = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) Shanghai", stdout)
    assert m, stdout
    return dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    yield str(request.param)


# ---------------------------------------------------------------- the mark


async def test_only_an_empty_database_is_marked_a_sandbox(backend: str, tmp_path: Path) -> None:
    url = await sandbox_url(backend, tmp_path)
    assert sandbox_offset(url) == dt.timedelta(0)
    # Upgrading a sandbox again keeps it one, with or without --sandbox.
    assert "a sandbox" in await asyncio.to_thread(db_upgrade, url, sandbox=True)
    assert "a sandbox" in await asyncio.to_thread(db_upgrade, url)
    assert sandbox_offset(url) == dt.timedelta(0)

    # A database created without the mark stays production, even while it holds nothing of an enterprise's.
    url = fresh_database_url(backend, tmp_path)
    assert await asyncio.to_thread(db_upgrade, url) == "database upgraded"
    with pytest.raises(SystemExit, match=r"refused: .*registry accounts"):
        await asyncio.to_thread(db_upgrade, url, sandbox=True)
    assert sandbox_offset(url) is None

    # A schema without data or migrations history, then the same with an enterprise.
    url = fresh_database_url(backend, tmp_path)
    env, _ = await make_env(url)
    try:
        assert "registry accounts" in (sandbox_refusal(url) or "")  # the registry's own accounts, made at bootstrap
        regulator = await env.key(Role.REGULATOR)
        from tests.helpers import enterprise

        await enterprise(env, regulator)
        refusal = sandbox_refusal(url) or ""
        assert "1 enterprises" in refusal and "only an empty database" in refusal
    finally:
        await close(env)
    with pytest.raises(SystemExit):
        await asyncio.to_thread(db_upgrade, url, sandbox=True)
    assert sandbox_offset(url) is None


def test_the_cli_refuses_the_mark_on_a_database_upgraded_before(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'prod.db'}"
    assert cli(url, "db", "upgrade").returncode == 0
    run = cli(url, "db", "upgrade", "--sandbox")
    assert run.returncode == 1
    assert "refused" in run.stderr and "only an empty database can become a sandbox" in run.stderr
    assert sandbox_offset(url) is None


# ---------------------------------------------------------------- production refuses


async def test_a_production_database_refuses_every_clock_move(backend: str, tmp_path: Path) -> None:
    url = fresh_database_url(backend, tmp_path)
    await asyncio.to_thread(db_upgrade, url)
    for args in (("--days", "1"), ("--hours", "3"), ("--to", "2031-01-01")):
        run = cli(url, "clock", "advance", *args)
        assert run.returncode == 1, (args, run.stdout, run.stderr)
        assert "production" in run.stderr and "cannot be moved" in run.stderr
    show = cli(url, "clock", "show")
    assert show.returncode == 0 and "production database: the clock is real time" in show.stdout

    e = await app_env(url)
    try:
        assert isinstance(e.clock, SystemClock)
        regulator = await e.key(Role.REGULATOR)
        for body in ({"days": 1}, {"hours": 1}, {"to": "2031-01-01T09:30"}):
            r = await e.post("/api/v1/sandbox/clock", regulator, body)
            assert r.status_code == 409, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["type"] == "/problems/not-a-sandbox" and "production" in r.json()["detail"]
        r = await e.post("/api/v1/sandbox/clock", await e.key(Role.EMITTER), {"days": 1})
        assert r.status_code == 403
        got = (await e.get("/api/v1/sandbox/clock", regulator)).json()
        assert got["sandbox"] is False and got["offset_seconds"] == 0 and got["moves"] == 0
        assert (await e.client.get("/health")).json() == {"status": "ok", "sandbox": False}
    finally:
        await close(e)
    assert sandbox_offset(url) is None and audit_rows(url) == []


# ---------------------------------------------------------------- moves reach every process


async def test_a_move_reaches_a_second_app_and_a_second_process(backend: str, tmp_path: Path) -> None:
    url = await sandbox_url(backend, tmp_path)
    a, b = await app_env(url), await app_env(url)
    try:
        assert isinstance(a.clock, SandboxClock) and isinstance(b.clock, SandboxClock)
        regulator = await a.key(Role.REGULATOR)
        before = SystemClock().now()
        r = await a.post("/api/v1/sandbox/clock", regulator, {"days": 40})
        assert r.status_code == 200, r.text
        moved = r.json()
        assert moved["sandbox"] is True and moved["offset_seconds"] == 40 * 86400 and moved["moves"] == 1
        # The app that moved it: at once.
        health = (await a.client.get("/health")).json()
        assert health["sandbox"] is True
        assert dt.datetime.fromisoformat(health["now"]) >= before + dt.timedelta(days=40)
        # Another app on the same database: within about a second (its background re-read).
        deadline = asyncio.get_running_loop().time() + WAIT_S
        seen = (await b.client.get("/health")).json()
        while seen["offset_seconds"] == 0 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
            seen = (await b.client.get("/health")).json()
        assert seen["offset_seconds"] == 40 * 86400
        assert dt.datetime.fromisoformat(seen["now"]) >= before + dt.timedelta(days=40)
        ready = (await b.client.get("/ready")).json()
        assert ready["sandbox"] is True and ready["offset_seconds"] == 40 * 86400
    finally:
        await close(a)
        await close(b)
    # Another process: the CLI reads the same simulated now, and moves it for everyone.
    show = cli(url, "clock", "show")
    assert show.returncode == 0 and "sandbox clock" in show.stdout and "40 days" in show.stdout
    assert shown_now(show.stdout) >= before + dt.timedelta(days=40)
    run = cli(url, "clock", "advance", "--hours", "5")
    assert run.returncode == 0, run.stderr
    assert sandbox_offset(url) == dt.timedelta(days=40, hours=5)
    c = await app_env(url)
    try:
        assert c.clock.now() >= SystemClock().now() + dt.timedelta(days=40, hours=5) - dt.timedelta(seconds=1)
    finally:
        await close(c)
    # Each move audited, with who moved it and from when to when.
    rows = audit_rows(url)
    assert [r[0] for r in rows] == [f"principal:{regulator_id(url)}", "operator:cli"]
    assert rows[0][1]["days"] == 40 and rows[1][1]["hours"] == 5
    assert dt.datetime.fromisoformat(rows[1][1]["to_now"]) > dt.datetime.fromisoformat(rows[1][1]["from"])


def regulator_id(url: str) -> int:
    engine = create_engine(sync_url(url))
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT id FROM principal WHERE role = 'regulator' ORDER BY id")).scalar_one()
    engine.dispose()
    return int(pid)


# ---------------------------------------------------------------- forward only


async def test_the_clock_only_moves_forward(backend: str, tmp_path: Path) -> None:
    url = await sandbox_url(backend, tmp_path)
    # The app's clock runs on a fixed base here, so the instants below are exact.
    e = await app_env(url, SandboxClock(dt.timedelta(0), base=FixedClock(START)))
    try:
        regulator = await e.key(Role.REGULATOR)
        r = await e.post("/api/v1/sandbox/clock", regulator, {"to": "2026-04-01T09:30"})
        assert r.status_code == 200, r.text
        assert r.json()["now_shanghai"] == "2026-04-01 09:30:00"
        assert e.clock.now() == dt.datetime(2026, 4, 1, 9, 30, tzinfo=SHANGHAI)
        for body in ({"to": "2026-04-01T09:30"}, {"to": "2026-03-15"}, {"to": "2020-01-01"}):
            r = await e.post("/api/v1/sandbox/clock", regulator, body)
            assert r.status_code == 409 and r.json()["type"] == "/problems/clock-not-forward", r.text
            assert r.json()["field"] == "to" and "2026-04-01 09:30" in r.json()["detail"]
        for body, field in (({"days": 0}, "days"), ({"hours": -1}, "hours"), ({"days": 1, "hours": 1}, "hours"),
                            ({}, "days"), ({"to": "next tuesday"}, "to"), ({"days": 10**6}, "days")):  # fmt: skip
            r = await e.post("/api/v1/sandbox/clock", regulator, body)
            assert r.status_code in (400, 422) and r.json().get("field") == field, (body, r.text)
        assert e.clock.now() == dt.datetime(2026, 4, 1, 9, 30, tzinfo=SHANGHAI)
        r = await e.post("/api/v1/sandbox/clock", regulator, {"days": 1})
        assert r.status_code == 200 and r.json()["now_shanghai"] == "2026-04-02 09:30:00"
        got = (await e.get("/api/v1/sandbox/clock", await e.key(Role.AUDITOR))).json()
        assert got["moves"] == 2 and got["now_shanghai"] == "2026-04-02 09:30:00"
    finally:
        await close(e)
    # The CLI refuses a move back too, and the database refuses a negative offset whoever writes it.
    run = cli(url, "clock", "advance", "--to", "2020-01-01")
    assert run.returncode == 1 and "only moves forward" in run.stderr
    run = cli(url, "clock", "advance", "--days", "0")
    assert run.returncode == 2 and "days" in run.stderr
    engine = create_engine(sync_url(url))
    with pytest.raises(Exception, match=r"(?i)check|constraint"), engine.begin() as conn:
        conn.execute(text("UPDATE sandbox_clock SET offset_us = -1"))
    engine.dispose()


def test_a_process_never_adopts_a_smaller_offset() -> None:
    clock = SandboxClock(dt.timedelta(hours=2), base=FixedClock(START))
    assert not clock.adopt(dt.timedelta(hours=1))  # a stale read arriving late
    assert clock.now() == START + dt.timedelta(hours=2)
    assert clock.adopt(dt.timedelta(days=1)) and clock.now() == START + dt.timedelta(days=1)
    with pytest.raises(ValueError, match="never behind"):
        SandboxClock(dt.timedelta(seconds=-1))
