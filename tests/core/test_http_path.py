"""What one HTTP request costs the database, counted with SQLAlchemy's `before_cursor_execute` and `begin` events:
a transfer's Idempotency-Key is claimed, without a look-up first, in the service's own transaction (two
transactions per transfer: the service with its claim, then the stored answer), an API key is not read again
within its cache TTL (and a revoked one stops at the TTL; the cache is bounded), and listings read each
instrument once, not once per row (a 100-row history, a statement with its holdings); an account's holdings are
one statement."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import event, update

from core.clock import FixedClock
from core.db import UnitOfWork
from core.identity import CredentialCache, Identity, Role
from core.models import Principal
from core.settings import Settings
from server.app import create_app
from tests.conftest import START, Env
from tests.helpers import World, allocate, world

_TABLE = re.compile(r"^\s*(SELECT\s.*?\sFROM|INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)", re.S | re.I)
_CONTROL = ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT")


@dataclass
class Stmt:
    verb: str
    table: str
    tx: int


@dataclass
class Counter:
    statements: list[Stmt] = field(default_factory=list)
    transactions: int = 0

    def of(self, verb: str, table: str) -> list[Stmt]:
        return [s for s in self.statements if s.verb == verb and s.table == table]

    def writing_transactions(self) -> set[int]:
        return {s.tx for s in self.statements if s.verb in ("INSERT", "UPDATE", "DELETE")}

    def selects(self) -> int:
        return len([s for s in self.statements if s.verb == "SELECT"])


@contextmanager
def counting(engine: Any) -> Iterator[Counter]:
    """Every SQL statement (not BEGIN/SAVEPOINT/...) the engine sends, with the transaction it ran in."""
    counter = Counter()
    numbers = itertools.count(1)

    def on_begin(conn: Any) -> None:
        conn.info["test_tx"] = next(numbers)
        counter.transactions += 1

    def on_execute(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        head = statement.lstrip().split(None, 1)[0].upper()
        if head in _CONTROL:
            return
        m = _TABLE.match(statement)
        counter.statements.append(Stmt(head, m.group(2).lower() if m else "?", int(conn.info.get("test_tx", 0))))

    event.listen(engine, "begin", on_begin)
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "begin", on_begin)


def engine_of(env: Env) -> Any:
    return env.db.engine.sync_engine


async def two_accounts(env: Env) -> tuple[World, dict[str, Any], int]:
    w = await world(env, n_enterprises=1, issue=10_000)
    a = w.enterprises[0]
    r = await env.post("/api/v1/accounts", w.regulator, {"type": "holding", "enterprise_id": a["id"]})
    assert r.status_code == 201, r.text
    await allocate(env, w, a["account_id"], 1_000)
    return w, a, r.json()["id"]


async def test_a_transfer_claims_its_key_in_the_service_transaction_and_reads_no_principal(env: Env) -> None:
    w, a, dest = await two_accounts(env)
    body = {
        "from_account_id": a["account_id"],
        "to_account_id": dest,
        "instrument_id": w.instrument_id,
        "quantity": "1",
    }
    for _ in range(2):  # warm: the key's principal is cached, ledger accounts exist
        assert (await env.post("/api/v1/transfers", a["key"], body)).status_code == 201
    n = 5
    with counting(engine_of(env)) as c:
        for _ in range(n):
            r = await env.post("/api/v1/transfers", a["key"], body)
            assert r.status_code == 201 and r.json()["status"] == "completed", r.text
    assert c.of("SELECT", "principal") == []  # the API key came from the process cache
    assert c.of("SELECT", "idempotency_record") == []  # a new key is claimed, not looked up first
    claims, finishes = c.of("INSERT", "idempotency_record"), c.of("UPDATE", "idempotency_record")
    assert len(claims) == n and len(finishes) == n
    services = c.of("INSERT", "registry_transaction")
    assert len(services) == n
    # The claim and the effect commit together; the stored answer is the only other writing transaction.
    assert [s.tx for s in claims] == [s.tx for s in services]
    assert {s.tx for s in finishes}.isdisjoint(s.tx for s in claims)
    assert len(c.writing_transactions()) == 2 * n
    assert c.transactions <= 2 * n  # the service with the claim, the answer (before: 4, of which 3 writing)
    assert len(c.statements) <= 10 * n, [(s.verb, s.table) for s in c.statements]


async def test_an_api_key_is_read_once_within_the_ttl_and_a_revocation_ends_it(env: Env) -> None:
    cache: CredentialCache = env.app.state.credentials
    now = [1_000.0]
    cache.now = lambda: now[0]
    org = await env.key(Role.AUDITOR)
    path = "/api/v1/instruments"
    with counting(engine_of(env)) as c:
        assert (await env.get(path, org)).status_code == 200
        assert (await env.get(path, org)).status_code == 200
    assert len(c.of("SELECT", "principal")) == 1

    prefix = org.split("_", 2)[1]

    async def revoke(uow: UnitOfWork) -> None:
        await uow.session.execute(
            update(Principal).where(Principal.key_prefix == prefix).values(revoked_at=env.clock.now())
        )

    await env.db.run(revoke)
    # Revoked in the database only: honoured from the cache until its TTL, never after.
    now[0] += cache.ttl_s - 1
    assert (await env.get(path, org)).status_code == 200
    now[0] += 2
    r = await env.get(path, org)
    assert r.status_code == 401 and r.json()["type"] == "/problems/unauthenticated"


def test_the_credential_cache_holds_at_most_size_max_keys_and_drops_the_oldest() -> None:
    now = [0.0]
    cache = CredentialCache(ttl_s=30, size_max=3, now=lambda: now[0])
    ident = Identity(principal_id=1, organisation_id=1, role=Role.AUDITOR, label="t")
    for i in range(5):
        now[0] += 1
        cache.put(f"d{i}", ident)
    assert len(cache) == 3
    assert cache.get("d0") is None and cache.get("d1") is None and cache.get("d4") is ident
    now[0] += 30
    assert cache.get("d4") is None  # past its TTL
    off = CredentialCache(ttl_s=0)
    off.put("d", ident)
    assert len(off) == 0 and off.get("d") is None


async def test_an_unknown_key_is_looked_up_every_time_and_never_cached(env: Env) -> None:
    bogus = f"gr_{uuid.uuid4().hex[:12]}_{uuid.uuid4().hex}"
    with counting(engine_of(env)) as c:
        for _ in range(3):
            assert (await env.get("/api/v1/instruments", bogus)).status_code == 401
    assert len(c.of("SELECT", "principal")) == 3


async def _history(env: Env, vintages: int, per_vintage: int) -> tuple[dict[str, Any], list[int]]:
    """An enterprise account that received `per_vintage` allocations of each of `vintages` instruments."""
    w = await world(env, n_enterprises=1, issue=10_000, vintage=2020)
    a = w.enterprises[0]
    instruments = [w.instrument_id]
    for v in range(1, vintages):
        r = await env.post(
            "/api/v1/issuances",
            w.regulator,
            {"kind": "cea", "scheme": "national", "vintage": 2020 + v, "quantity": "10000"},
        )
        assert r.status_code == 201, r.text
        r2 = await env.post(f"/api/v1/transactions/{r.json()['id']}/approval", w.regulator2, {"decision": "approve"})
        assert r2.status_code == 200, r2.text
        instruments.append(r.json()["instrument_id"])
    for _ in range(per_vintage):
        for inst in instruments:
            r = await env.post(
                "/api/v1/allocations",
                w.regulator,
                {"to_account_id": a["account_id"], "instrument_id": inst, "quantity": "1"},
            )
            assert r.status_code == 201, r.text
    return a, instruments


async def test_a_100_row_history_and_a_statement_read_each_instrument_once(env: Env) -> None:
    a, instruments = await _history(env, vintages=4, per_vintage=25)
    # A second app on the same database: a new engine, so no instrument is in its process cache yet (the cold
    # case the per-row look-up hit after every start).
    cold = create_app(Settings(database_url=env.url, scheduler_embedded=False), FixedClock(START))
    async with AsyncTestClient(app=cold) as client:
        headers = {"Authorization": f"Bearer {a['key']}"}
        try:
            with counting(cold.state.db.engine.sync_engine) as c:
                r = await client.get(f"/api/v1/accounts/{a['account_id']}/transactions?limit=100", headers=headers)
            assert r.status_code == 200, r.text
            assert len(r.json()["items"]) == 100
            assert {t["instrument_id"] for t in r.json()["items"]} == set(instruments)
            # The principal, the page (the account's visibility tested in it) and the page's instruments: not one
            # instrument per row.
            assert c.selects() == 3, [(s.verb, s.table) for s in c.statements]

            with counting(cold.state.db.engine.sync_engine) as c:
                r = await client.get(f"/api/v1/accounts/{a['account_id']}/holdings", headers=headers)
            assert r.status_code == 200
            held = r.json()
            assert len(held) == 4
            for h in held:  # every holding lists its serial ranges, all of them here (25 units each)
                assert sum(b["quantity"] for b in h["serial_blocks"]) == h["balance_base"] == 25
            # The holdings with their instruments and the serial blocks of all four, the account's visibility
            # tested in the same read.
            assert c.selects() == 1, [(s.verb, s.table) for s in c.statements]

            with counting(cold.state.db.engine.sync_engine) as c:
                r = await client.get(f"/api/v1/accounts/{a['account_id']}/statement.pdf", headers=headers)
            assert r.status_code == 200 and r.content.startswith(b"%PDF")
            assert c.selects() <= 10, [(s.verb, s.table) for s in c.statements]
        finally:
            await cold.state.db.dispose()
