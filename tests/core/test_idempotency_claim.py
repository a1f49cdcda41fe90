"""The Idempotency-Key claim rides in the handler's own unit of work (core/http.py, core/db.py `riding`), and what
a client sees does not change: a replay carries `Idempotent-Replayed: true` and the first answer, another body
under the key is 422, a key in flight is 409, a missing key 400, a 4xx refusal is stored (and nothing else of it
is), a 5xx releases the key, and a handler that writes nothing still stores its answer.

A small Litestar app with the real middleware (BearerAuth, EdgeMiddleware) and handlers that write organisations
(a table any unit of work may touch) proves it on SQLite and PostgreSQL, in the test's own event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, post
from litestar.middleware import DefineMiddleware
from sqlalchemy import func, select, update

from core.clock import SystemClock
from core.db import Database, UnitOfWork
from core.errors import AppError
from core.http import EXCEPTION_HANDLERS, IDEMPOTENT, BearerAuth, EdgeMiddleware
from core.identity import CredentialCache, Role, create_api_key, create_organisation
from core.models import IdempotencyRecord, Organisation
from core.settings import Settings
from tests.conftest import BACKENDS, schema_database_url

IN_FLIGHT = "/problems/idempotency-key-in-flight"


@dataclass
class Gate:
    """Holds the `slow` handler inside its unit of work (after the claim) until the test opens it."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def build_app(db: Database, gate: Gate) -> Litestar:
    clock = SystemClock()

    async def add_org(uow: UnitOfWork, name: str) -> int:
        return (await create_organisation(uow.session, name, "test", clock.now())).id or 0

    @post("/api/w", opt=IDEMPOTENT, status_code=201)
    async def write(data: dict[str, Any]) -> dict[str, Any]:
        return {"id": await db.run(add_org, str(data["name"])), "name": data["name"]}

    @post("/api/refuse", opt=IDEMPOTENT, status_code=201)
    async def refuse(data: dict[str, Any]) -> dict[str, Any]:
        async def work(uow: UnitOfWork) -> None:
            await add_org(uow, str(data["name"]))
            await uow.session.flush()
            raise AppError("invalid-state", "Refused after writing; nothing of it may stay.")

        await db.run(work)
        return {}

    @post("/api/nowrite", opt=IDEMPOTENT, status_code=201)
    async def nowrite(data: dict[str, Any]) -> dict[str, Any]:
        raise AppError("not-found", "Nothing here; no unit of work ran.")

    @post("/api/boom", opt=IDEMPOTENT, status_code=201)
    async def boom(data: dict[str, Any]) -> dict[str, Any]:
        async def work(uow: UnitOfWork) -> None:
            await add_org(uow, str(data["name"]))
            raise RuntimeError("a bug")

        await db.run(work)
        return {}

    @post("/api/two", opt=IDEMPOTENT, status_code=201)
    async def two(data: dict[str, Any]) -> dict[str, Any]:
        first = await db.run(add_org, f"{data['name']}-1")
        second = await db.run(add_org, f"{data['name']}-2")
        return {"ids": [first, second]}

    @post("/api/slow", opt=IDEMPOTENT, status_code=201)
    async def slow(data: dict[str, Any]) -> dict[str, Any]:
        async def work(uow: UnitOfWork) -> int:
            org = await add_org(uow, str(data["name"]))
            gate.entered.set()
            await gate.release.wait()
            return org

        return {"id": await db.run(work)}

    settings = Settings(database_url=db.url, scheduler_embedded=False)
    return Litestar(
        route_handlers=[write, refuse, nowrite, boom, two, slow],
        middleware=[
            DefineMiddleware(
                BearerAuth,
                db_getter=lambda: db,
                secret_getter=lambda: ["x" * 48],
                credential_cache=CredentialCache(),
            ),
            DefineMiddleware(
                EdgeMiddleware, db_getter=lambda: db, settings_getter=lambda: settings, clock_getter=lambda: clock
            ),
        ],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        debug=False,
    )


@dataclass
class Edge:
    db: Database
    client: httpx.AsyncClient
    key: str
    gate: Gate

    def h(self, idem: str | None) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.key}"}
        if idem is not None:
            out["Idempotency-Key"] = idem
        return out

    async def post(self, path: str, body: Any, idem: str | None) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.h(idem))

    async def orgs(self, name_like: str) -> int:
        async def work(uow: UnitOfWork) -> int:
            q = select(func.count()).select_from(Organisation).where(Organisation.name.like(name_like))  # type: ignore[attr-defined]
            return int((await uow.session.execute(q)).scalar_one())

        return await self.db.read(work)

    async def records(self) -> list[tuple[str, str, int | None]]:
        async def work(uow: UnitOfWork) -> list[tuple[str, str, int | None]]:
            rows = await uow.session.execute(
                select(IdempotencyRecord.key, IdempotencyRecord.state, IdempotencyRecord.response_status).order_by(
                    IdempotencyRecord.id
                )
            )
            return [tuple(r) for r in rows.all()]  # type: ignore[misc]

        return await self.db.read(work)


@pytest.fixture(params=BACKENDS)
async def edge(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Edge]:
    url = schema_database_url(request.param, tmp_path)
    db = Database(url)

    async def mint(uow: UnitOfWork) -> str:
        org = await create_organisation(uow.session, "edge-test", "test", SystemClock().now())
        _, key = await create_api_key(
            uow.session, organisation_id=org.id or 0, role=Role.MEMBER, label="t", now=SystemClock().now()
        )
        return key

    key = await db.run(mint)
    gate = Gate()
    app = build_app(db, gate)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://edge")
    try:
        yield Edge(db, client, key, gate)
    finally:
        await client.aclose()
        await db.dispose()


async def test_a_replay_returns_the_first_answer_and_one_effect(edge: Edge) -> None:
    name = f"w-{uuid.uuid4().hex[:8]}"
    first = await edge.post("/api/w", {"name": name}, "k1")
    again = await edge.post("/api/w", {"name": name}, "k1")
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await edge.orgs(name) == 1
    assert await edge.records() == [("k1", "done", 201)]


async def test_another_body_under_the_key_is_422_and_a_missing_key_400(edge: Edge) -> None:
    assert (await edge.post("/api/w", {"name": "a"}, "k2")).status_code == 201
    other = await edge.post("/api/w", {"name": "b"}, "k2")
    assert other.status_code == 422 and other.json()["type"] == "/problems/idempotency-key-reused"
    missing = await edge.post("/api/w", {"name": "c"}, None)
    assert missing.status_code == 400 and missing.json()["type"] == "/problems/idempotency-key-missing"
    assert await edge.orgs("b") == 0 and await edge.orgs("c") == 0


async def test_a_refusal_is_stored_and_nothing_of_its_unit_of_work_stays(edge: Edge) -> None:
    name = f"r-{uuid.uuid4().hex[:8]}"
    first = await edge.post("/api/refuse", {"name": name}, "k3")
    assert first.status_code == 409 and first.json()["type"] == "/problems/invalid-state"
    assert await edge.orgs(name) == 0  # the handler's write rolled back with its savepoint
    assert await edge.records() == [("k3", "done", 409)]  # the claim committed and holds the answer
    again = await edge.post("/api/refuse", {"name": name}, "k3")
    assert again.status_code == 409 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    # The key is taken by the refused request: another body under it is still 422.
    assert (await edge.post("/api/refuse", {"name": "other"}, "k3")).status_code == 422


async def test_an_answer_without_any_unit_of_work_is_stored_too(edge: Edge) -> None:
    first = await edge.post("/api/nowrite", {"x": 1}, "k4")
    assert first.status_code == 404
    again = await edge.post("/api/nowrite", {"x": 1}, "k4")
    assert again.status_code == 404 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert await edge.records() == [("k4", "done", 404)]


async def test_a_5xx_changes_nothing_and_releases_the_key(edge: Edge) -> None:
    name = f"b-{uuid.uuid4().hex[:8]}"
    r = await edge.post("/api/boom", {"name": name}, "k5")
    assert r.status_code == 500
    assert await edge.orgs(name) == 0
    assert await edge.records() == []
    # Released: the same key now runs a request afresh.
    ok = await edge.post("/api/w", {"name": name}, "k5")
    assert ok.status_code == 201 and "idempotent-replayed" not in ok.headers


async def test_the_claim_commits_with_the_first_write_and_later_writes_run_as_usual(edge: Edge) -> None:
    name = f"t-{uuid.uuid4().hex[:8]}"
    r = await edge.post("/api/two", {"name": name}, "k6")
    assert r.status_code == 201
    assert await edge.orgs(f"{name}-%") == 2
    assert await edge.records() == [("k6", "done", 201)]


async def test_a_second_request_while_the_first_is_in_flight_gets_409_and_then_the_replay(edge: Edge) -> None:
    name = f"s-{uuid.uuid4().hex[:8]}"
    first = asyncio.create_task(edge.post("/api/slow", {"name": name}, "k7"))
    await asyncio.wait_for(edge.gate.entered.wait(), 10)
    # The first holds its claim uncommitted inside its unit of work: the second's claim waits (the write queue on
    # SQLite, the unique index on PostgreSQL) and finds the key taken; the key's row then answers it: in flight
    # while the first's answer is not stored yet, its replay once it is.
    second = asyncio.create_task(edge.post("/api/slow", {"name": name}, "k7"))
    await asyncio.sleep(0.3)
    edge.gate.release.set()
    a, b = await asyncio.wait_for(asyncio.gather(first, second), 20)
    assert a.status_code == 201 and "idempotent-replayed" not in a.headers
    if b.status_code == 409:
        assert b.json()["type"] == IN_FLIGHT and b.json()["field"] == "Idempotency-Key"
        assert "idempotent-replayed" not in b.headers
    else:
        assert b.status_code == 201 and b.headers["idempotent-replayed"] == "true" and b.json() == a.json()
    assert await edge.orgs(name) == 1
    late = await edge.post("/api/slow", {"name": name}, "k7")
    assert late.status_code == 201 and late.headers["idempotent-replayed"] == "true" and late.json() == a.json()


async def test_answers_of_concurrent_requests_are_all_stored_and_replay(edge: Edge) -> None:
    # Answers finishing together are written in batches (one transaction each); every one must land.
    names = [f"c-{i}-{uuid.uuid4().hex[:6]}" for i in range(16)]
    firsts = await asyncio.gather(*(edge.post("/api/w", {"name": n}, f"c{i}") for i, n in enumerate(names)))
    assert [r.status_code for r in firsts] == [201] * 16
    assert sorted(await edge.records()) == sorted((f"c{i}", "done", 201) for i in range(16))
    again = await asyncio.gather(*(edge.post("/api/w", {"name": n}, f"c{i}") for i, n in enumerate(names)))
    assert all(r.headers.get("idempotent-replayed") == "true" for r in again)
    assert [r.json() for r in again] == [r.json() for r in firsts]


async def test_a_replay_runs_no_write_of_its_handler(edge: Edge) -> None:
    # The key is not looked up first: the replay's handler runs until its first writing unit of work, whose
    # claim finds the key taken; that unit of work and every later one refuse, and the stored answer is sent.
    name = f"p-{uuid.uuid4().hex[:8]}"
    first = await edge.post("/api/two", {"name": name}, "k8")
    again = await edge.post("/api/two", {"name": name}, "k8")
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await edge.orgs(f"{name}-%") == 2
    assert await edge.records() == [("k8", "done", 201)]


async def test_a_first_attempt_that_died_is_taken_over_and_its_handler_runs_again(edge: Edge) -> None:
    name = f"d-{uuid.uuid4().hex[:8]}"
    first = await edge.post("/api/w", {"name": name}, "k9")
    assert first.status_code == 201

    # As if the process died after the effect and before the answer was stored, its lease long over.
    async def died(uow: UnitOfWork) -> None:
        await uow.session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == "k9")
            .values(
                state="in_flight",
                response_status=None,
                response_body=None,
                lease_until=SystemClock().now() - dt.timedelta(minutes=1),
            )
        )

    await edge.db.run(died)
    retry = await edge.post("/api/w", {"name": name}, "k9")
    # The retry took the lease over and ran the handler again (this test handler is not keyed by its request,
    # as the services are, so it added a second organisation), and its answer is the key's from now on.
    assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
    assert await edge.orgs(name) == 2
    assert await edge.records() == [("k9", "done", 201)]
    again = await edge.post("/api/w", {"name": name}, "k9")
    assert again.headers["idempotent-replayed"] == "true" and again.json() == retry.json()
    assert await edge.orgs(name) == 2
