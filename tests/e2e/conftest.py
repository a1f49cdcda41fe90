"""A live `greenrights serve` process for end-to-end tests, and small httpx helpers to drive it.

The reliability promises about concurrency (no double spend, no deadlock, one effect per Idempotency-Key) only
mean something against the real stack: uvicorn, the middleware, the connection pool and the database's own
locking. So the `live` fixture migrates a clean database, bootstraps the registry (what `greenrights db upgrade`
does), starts the server as a subprocess on a free loopback port, waits for /health, and kills it at teardown.
It runs once per module and backend: SQLite always (a temporary file), PostgreSQL when
GREENRIGHTS_TEST_DATABASE_URL is set (its public schema is dropped and recreated first).

Tests then act as real clients: API keys are minted directly in the database (what `greenrights apikey
create` does) and every request goes over TCP with httpx.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from core import ledger
from core.clock import SystemClock
from core.db import Database, UnitOfWork, sync_url
from core.identity import Role, create_api_key, create_organisation
from registry.service import RegistryService
from server.migrate import upgrade
from tests.conftest import PG_URL  # one database per xdist worker
from tests.helpers import make_uscc

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 60.0
# Enterprise numbers for USCCs: high enough never to collide with tests/helpers' own counter in one process.
_uscc_seq = itertools.count(700_000_000 + os.getpid() % 1000 * 10_000)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def reset_postgres(url: str) -> None:
    """Start from nothing: drop and recreate the public schema (as tests/conftest.py's fresh_database_url)."""
    engine = create_engine(sync_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


async def prepare_database(url: str) -> None:
    """What `greenrights db upgrade` does: migrate to head, then create the registry operator's accounts."""
    upgrade(url)
    db = Database(url)
    try:
        await RegistryService(db, SystemClock()).bootstrap()
    finally:
        await db.dispose()


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_server(db_url: str, log_path: Path) -> Server:
    return wait_healthy(spawn_server(db_url, log_path))


def spawn_server(db_url: str, log_path: Path) -> Server:
    """Start `greenrights serve` (no embedded scheduler) on a free port, without waiting for it."""
    port = free_port()
    env = {
        **os.environ,
        "GREENRIGHTS_DATABASE_URL": db_url,
        "GREENRIGHTS_HOST": HOST,
        "GREENRIGHTS_PORT": str(port),
        "GREENRIGHTS_SCHEDULER_EMBEDDED": "false",
        # Load from one key well over 600 requests a minute: the per-key rate limit would answer 429 (a load test
        # measures the server, not the limiter; tests/core/test_rate_limit.py tests that).
        "GREENRIGHTS_API_RATE_LIMIT_PER_MINUTE": "0",
        "PYTHONUNBUFFERED": "1",
    }
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--host", HOST, "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return Server(process, f"http://{HOST}:{port}", log_path)


def wait_healthy(server: Server, timeout_s: float = START_TIMEOUT_S) -> Server:
    """Wait for a spawned server's /health; stop it and raise with its log when it exits or stays silent."""
    process = server.process
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"greenrights serve exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"greenrights serve did not answer /health within {timeout_s} s:\n{server.log_tail()}")


@dataclass
class Live:
    """A running server, its database (opened here too, for keys and invariant checks) and a setup client."""

    backend: str
    server: Server
    db: Database
    client: httpx.AsyncClient
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def headers(self, key: str, idem: str | None = None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {key}",
            "Idempotency-Key": idem or f"e2e-{next(self._counter)}-{uuid.uuid4().hex[:12]}",
        }

    async def post(
        self, path: str, key: str, body: Any, idem: str | None = None, client: httpx.AsyncClient | None = None
    ) -> httpx.Response:
        return await (client or self.client).post(path, json=body, headers=self.headers(key, idem))

    async def get(self, path: str, key: str, client: httpx.AsyncClient | None = None) -> httpx.Response:
        return await (client or self.client).get(path, headers={"Authorization": f"Bearer {key}"})

    async def organisation(self, name: str, kind: str) -> int:
        async def work(uow: UnitOfWork) -> int:
            return (await create_organisation(uow.session, name, kind, SystemClock().now())).id or 0

        return await self.db.run(work)

    async def key(self, role: Role, organisation_id: int) -> str:
        """A fresh API key, minted as `greenrights apikey create` does."""

        async def work(uow: UnitOfWork) -> str:
            _, k = await create_api_key(
                uow.session, organisation_id=organisation_id, role=role, label="e2e", now=SystemClock().now()
            )
            return k

        return await self.db.run(work)

    async def invariants(self) -> list[str]:
        async def work(uow: UnitOfWork) -> list[str]:
            return await ledger.check_invariants(uow.session)

        return await self.db.read(work)

    def clients(self, n: int) -> _Clients:
        return _Clients(self.base_url, n)


class _Clients:
    """`n` independent httpx clients (each its own connection), closed together."""

    def __init__(self, base_url: str, n: int) -> None:
        self.items = [httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S) for _ in range(n)]

    async def __aenter__(self) -> list[httpx.AsyncClient]:
        return self.items

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(c.aclose() for c in self.items))


async def release_together(
    live: Live, n: int, request: Callable[[int, httpx.AsyncClient], Awaitable[httpx.Response]]
) -> list[httpx.Response]:
    """Fire `request(i, client)` from `n` clients at the same instant and return the answers in order of i.

    Each client first opens its connection (GET /health) and then waits at a barrier, so that the requests
    reach the server together instead of trickling in behind the TCP handshakes.
    """
    barrier = asyncio.Barrier(n)
    async with live.clients(n) as clients:

        async def one(i: int, c: httpx.AsyncClient) -> httpx.Response:
            assert (await c.get("/health")).status_code == 200
            await barrier.wait()
            return await request(i, c)

        return list(
            await asyncio.wait_for(
                asyncio.gather(*(one(i, c) for i, c in enumerate(clients))), timeout=REQUEST_TIMEOUT_S * 2
            )
        )


def problem_type(r: httpx.Response) -> str | None:
    if r.headers.get("content-type", "").startswith("application/problem+json"):
        return str(r.json().get("type"))
    return None


@dataclass
class Holder:
    """One enterprise with its emitter keys and holding accounts, and the instrument it holds."""

    enterprise_id: int
    organisation_id: int
    key: str
    accounts: list[int]
    instrument_id: int


@dataclass
class World:
    regulator: str
    regulator2: str
    instrument_id: int
    holder: Holder


async def make_world(live: Live, *, accounts: int, issue: int) -> World:
    """A regulator (two keys, an allocation account) that issued `issue` CEA units, approved by the second key,
    and one enterprise with `accounts` holding accounts. Accounts of one organisation trust each other, so
    transfers between them post at once."""
    org = await live.organisation("江西省生态环境厅", "regulator")
    reg, reg2 = await live.key(Role.REGULATOR, org), await live.key(Role.REGULATOR, org)
    r = await live.post("/api/v1/accounts", reg, {"type": "allocation"})
    assert r.status_code == 201, r.text
    r = await live.post(
        "/api/v1/issuances", reg, {"kind": "cea", "scheme": "national", "vintage": 2025, "quantity": str(issue)}
    )
    assert r.status_code == 201, r.text
    tx = r.json()
    r = await live.post(f"/api/v1/transactions/{tx['id']}/approval", reg2, {"decision": "approve"})
    assert r.status_code == 200, r.text
    r = await live.post(
        "/api/v1/enterprises",
        reg,
        {
            "uscc": make_uscc(next(_uscc_seq)),
            "name": "并发测试企业",
            "city": "南昌",
            "industry_code": "D4411",
            "is_key_emitter": True,
        },
    )
    assert r.status_code == 201, r.text
    ent = r.json()
    account_ids = []
    for i in range(accounts):
        r = await live.post(
            "/api/v1/accounts", reg, {"type": "holding", "enterprise_id": ent["id"], "label": f"账户{i}"}
        )
        assert r.status_code == 201, r.text
        account_ids.append(r.json()["id"])
    key = await live.key(Role.EMITTER, ent["organisation_id"])
    return World(
        reg, reg2, tx["instrument_id"], Holder(ent["id"], ent["organisation_id"], key, account_ids, tx["instrument_id"])
    )


async def allocate(live: Live, w: World, account_id: int, quantity: int) -> None:
    r = await live.post(
        "/api/v1/allocations",
        w.regulator,
        {"to_account_id": account_id, "instrument_id": w.instrument_id, "quantity": str(quantity)},
    )
    assert r.status_code == 201, r.text


async def holding(
    live: Live, key: str, account_id: int, instrument_id: int, client: httpx.AsyncClient | None = None
) -> dict[str, Any]:
    """The account's holding of the instrument, as the API shows it (zeros when it never held any)."""
    r = await live.get(f"/api/v1/accounts/{account_id}/holdings", key, client)
    assert r.status_code == 200, r.text
    for h in r.json():
        if h["instrument"]["id"] == instrument_id:
            return h  # type: ignore[no-any-return]
    return {"balance_base": 0, "available_base": 0, "held": "0", "serial_blocks": []}


def transfer_body(w: World, from_account: int, to_account: int, quantity: int) -> dict[str, Any]:
    return {
        "from_account_id": from_account,
        "to_account_id": to_account,
        "instrument_id": w.instrument_id,
        "quantity": str(quantity),
    }


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def backend_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "postgres":
        if not PG_URL:
            pytest.skip("GREENRIGHTS_TEST_DATABASE_URL is not set: the PostgreSQL live-server variants need it")
        reset_postgres(PG_URL)
        yield PG_URL
    else:
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('e2e') / 'live.db'}"


@pytest.fixture(scope="module")
async def live(backend_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Live]:
    await prepare_database(backend_url)
    backend = "sqlite" if backend_url.startswith("sqlite") else "postgres"
    server = start_server(backend_url, tmp_path_factory.mktemp("server") / "serve.log")
    db = Database(backend_url)
    client = httpx.AsyncClient(base_url=server.base_url, timeout=REQUEST_TIMEOUT_S)
    try:
        yield Live(backend, server, db, client)
    finally:
        await client.aclose()
        await db.dispose()
        server.stop()
