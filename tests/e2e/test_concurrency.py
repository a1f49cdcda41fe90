"""Concurrency promises against a live server: no double spend, crossed transfers without deadlock, one effect
per Idempotency-Key, and balances that always sum to what was issued.

Each test releases many independent httpx clients at one barrier against `greenrights serve` (see conftest.py),
on SQLite always and on PostgreSQL when GREENRIGHTS_TEST_DATABASE_URL is set. Transfers go between holding
accounts of one enterprise: accounts of one organisation trust each other, so every accepted transfer posts at
once and the balance rule is tested by the ledger itself, not by the approval queue.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import col

from core.db import UnitOfWork
from core.models import LedgerAccount
from registry.models import Instrument
from registry.service import OWNER
from tests.e2e.conftest import Live, World, allocate, holding, make_world, problem_type, release_together, transfer_body

INSUFFICIENT = "/problems/insufficient-available"
IN_FLIGHT = "/problems/idempotency-key-in-flight"


def assert_no_5xx(live: Live, answers: list[httpx.Response]) -> None:
    bad = [(r.status_code, r.text[:300]) for r in answers if r.status_code >= 500]
    assert not bad, f"{len(bad)} answers were 5xx, e.g. {bad[:3]}\nserver log:\n{live.server.log_tail()}"


def random_move(rng: random.Random, accounts: list[int], max_quantity: int) -> tuple[int, int, int]:
    src, dst = rng.sample(accounts, 2)
    return src, dst, rng.randint(1, max_quantity)


async def ledger_sum(live: Live, w: World, accounts: list[int]) -> int:
    """Posted units held by `accounts`, read by ONE statement: a snapshot on either database."""

    async def work(uow: UnitOfWork) -> int:
        stmt = (
            select(func.coalesce(func.sum(LedgerAccount.credits_posted - LedgerAccount.debits_posted), 0))
            .join(Instrument, col(Instrument.asset_id) == col(LedgerAccount.asset_id))
            .where(
                col(Instrument.id) == w.instrument_id,
                col(LedgerAccount.owner_kind) == OWNER,
                col(LedgerAccount.owner_id).in_(accounts),
            )
        )
        return int((await uow.session.execute(stmt)).scalar_one())

    return await live.db.read(work)


async def test_64_transfers_of_7_from_100_post_exactly_14_and_refuse_50(live: Live) -> None:
    w = await make_world(live, accounts=2, issue=1000)
    src, dst = w.holder.accounts
    await allocate(live, w, src, 100)
    # The destination already holds the instrument, so this test is about the balance rule alone; the race to
    # open a ledger account on first use has its own test below.
    await allocate(live, w, dst, 5)
    body = transfer_body(w, src, dst, 7)

    answers = await release_together(
        live, 64, lambda _i, c: live.post("/api/v1/transfers", w.holder.key, body, client=c)
    )

    assert_no_5xx(live, answers)
    assert Counter(r.status_code for r in answers) == {201: 14, 409: 50}
    assert all(
        r.json()["status"] == "completed" and r.json()["quantity_base"] == 7 for r in answers if r.status_code == 201
    )
    assert {problem_type(r) for r in answers if r.status_code == 409} == {INSUFFICIENT}
    h_src = await holding(live, w.holder.key, src, w.instrument_id)
    h_dst = await holding(live, w.holder.key, dst, w.instrument_id)
    assert (h_src["balance_base"], h_src["available_base"]) == (2, 2)
    assert h_dst["balance_base"] == 5 + 14 * 7
    assert await live.invariants() == []


async def test_first_transfers_into_a_new_account_race_without_a_5xx(
    live: Live, request: pytest.FixtureRequest
) -> None:
    w = await make_world(live, accounts=2, issue=1000)
    src, fresh = w.holder.accounts
    await allocate(live, w, src, 100)
    body = transfer_body(w, src, fresh, 1)

    answers = await release_together(
        live, 16, lambda _i, c: live.post("/api/v1/transfers", w.holder.key, body, client=c)
    )

    assert_no_5xx(live, answers)
    assert Counter(r.status_code for r in answers) == {201: 16}
    assert (await holding(live, w.holder.key, fresh, w.instrument_id))["balance_base"] == 16
    assert await live.invariants() == []


async def test_crossed_transfers_never_deadlock_and_balances_match_the_successes(live: Live) -> None:
    w = await make_world(live, accounts=2, issue=1000)
    a, b = w.holder.accounts
    quantity, each_way = 3, 32
    await allocate(live, w, a, quantity * each_way)
    await allocate(live, w, b, quantity * each_way)

    def fire(i: int, c: httpx.AsyncClient) -> Any:
        src, dst = (a, b) if i % 2 == 0 else (b, a)
        return live.post("/api/v1/transfers", w.holder.key, transfer_body(w, src, dst, quantity), client=c)

    answers = await release_together(live, 2 * each_way, fire)

    assert_no_5xx(live, answers)
    refused = [r for r in answers if r.status_code != 201]
    assert all(r.status_code == 409 and problem_type(r) == INSUFFICIENT for r in refused), refused[:3]
    a_to_b = sum(1 for i, r in enumerate(answers) if i % 2 == 0 and r.status_code == 201)
    b_to_a = sum(1 for i, r in enumerate(answers) if i % 2 == 1 and r.status_code == 201)
    # Each opening balance alone covers every transfer out of it, so nothing may be refused.
    assert a_to_b == b_to_a == each_way
    opening = quantity * each_way
    h_a = await holding(live, w.holder.key, a, w.instrument_id)
    h_b = await holding(live, w.holder.key, b, w.instrument_id)
    assert h_a["balance_base"] == opening - quantity * a_to_b + quantity * b_to_a
    assert h_b["balance_base"] == opening + quantity * a_to_b - quantity * b_to_a
    assert await live.invariants() == []


async def test_one_idempotency_key_fired_32_times_has_exactly_one_effect(live: Live) -> None:
    w = await make_world(live, accounts=2, issue=1000)
    src, dst = w.holder.accounts
    await allocate(live, w, src, 100)
    await allocate(live, w, dst, 1)
    body = transfer_body(w, src, dst, 10)
    key = "e2e-one-key-32-times"

    answers = await release_together(
        live, 32, lambda _i, c: live.post("/api/v1/transfers", w.holder.key, body, idem=key, client=c)
    )
    # A late retry after everything settled must replay the stored answer too.
    late = await live.post("/api/v1/transfers", w.holder.key, body, idem=key)

    assert_no_5xx(live, [*answers, late])
    first = [r for r in answers if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    replays = [r for r in [*answers, late] if r.status_code == 201 and r.headers.get("idempotent-replayed") == "true"]
    in_flight = [r for r in answers if r.status_code == 409 and problem_type(r) == IN_FLIGHT]
    assert len(first) == 1, Counter((r.status_code, problem_type(r)) for r in answers)
    assert len(first) + len(replays) + len(in_flight) == len(answers) + 1
    assert late in replays
    assert all(r.json() == first[0].json() for r in replays)
    txs = await live.get(f"/api/v1/accounts/{src}/transactions", w.holder.key)
    assert [t["id"] for t in txs.json()["items"] if t["code"] == "transfer"] == [first[0].json()["id"]]
    assert (await holding(live, w.holder.key, src, w.instrument_id))["balance_base"] == 90
    assert (await holding(live, w.holder.key, dst, w.instrument_id))["balance_base"] == 11
    assert await live.invariants() == []


async def test_random_transfers_under_snapshot_reads_always_sum_to_the_total(live: Live) -> None:
    n_accounts, opening, workers, per_worker = 5, 200, 6, 10
    total = n_accounts * opening
    w = await make_world(live, accounts=n_accounts, issue=total)
    accounts = w.holder.accounts
    for acc in accounts:
        await allocate(live, w, acc, opening)
    rng = random.Random(20260302)
    plan = [[random_move(rng, accounts, 80) for _ in range(per_worker)] for _ in range(workers)]
    done = asyncio.Event()
    posted: list[tuple[int, int, int]] = []
    answers: list[httpx.Response] = []
    snapshots: list[int] = []
    views: list[dict[str, Any]] = []

    async def worker(client: httpx.AsyncClient, moves: list[tuple[int, int, int]]) -> None:
        for src, dst, qty in moves:
            r = await live.post("/api/v1/transfers", w.holder.key, transfer_body(w, src, dst, qty), client=client)
            answers.append(r)
            if r.status_code == 201:
                posted.append((src, dst, qty))

    async def reader(client: httpx.AsyncClient) -> None:
        for _ in range(400):  # bounded; normally ends when the workers finish
            snapshots.append(await ledger_sum(live, w, accounts))
            views.append(await holding(live, w.holder.key, rng.choice(accounts), w.instrument_id, client))
            if done.is_set():
                return
            await asyncio.sleep(0.01)

    async with live.clients(workers + 1) as clients:
        read_task = asyncio.create_task(reader(clients[-1]))
        await asyncio.wait_for(asyncio.gather(*(worker(c, m) for c, m in zip(clients, plan, strict=False))), 120)
        done.set()
        await asyncio.wait_for(read_task, 60)

    assert_no_5xx(live, answers)
    assert all(r.status_code == 201 or (r.status_code == 409 and problem_type(r) == INSUFFICIENT) for r in answers)
    assert len(answers) == workers * per_worker and posted
    assert len(snapshots) >= 2 and set(snapshots) == {total}
    # Nothing is held between accounts of one organisation, so every balance read is fully available.
    assert all(v["available_base"] == v["balance_base"] >= 0 for v in views), views
    expected = dict.fromkeys(accounts, opening)
    for src, dst, qty in posted:
        expected[src] -= qty
        expected[dst] += qty
    final = {acc: (await holding(live, w.holder.key, acc, w.instrument_id))["balance_base"] for acc in accounts}
    assert final == expected
    assert sum(final.values()) == total
    assert await live.invariants() == []


async def test_a_holdings_answer_is_one_snapshot_while_transfers_run(
    live: Live, request: pytest.FixtureRequest
) -> None:
    w = await make_world(live, accounts=3, issue=300)
    accounts = w.holder.accounts
    for acc in accounts:
        await allocate(live, w, acc, 100)
    rng = random.Random(7)
    workers, per_worker = 4, 10
    moves = [random_move(rng, accounts, 30) for _ in range(workers * per_worker)]
    answers: list[httpx.Response] = []
    torn: list[dict[str, Any]] = []
    reads = 0
    done = asyncio.Event()

    async def worker(client: httpx.AsyncClient, mine: list[tuple[int, int, int]]) -> None:
        for src, dst, qty in mine:
            answers.append(
                await live.post("/api/v1/transfers", w.holder.key, transfer_body(w, src, dst, qty), client=client)
            )

    async def reader(client: httpx.AsyncClient, acc: int) -> None:
        nonlocal reads
        for _ in range(1000):  # bounded; normally ends when the workers finish
            v = await holding(live, w.holder.key, acc, w.instrument_id, client)
            reads += 1
            if len(v["serial_blocks"]) < 100 and sum(b["quantity"] for b in v["serial_blocks"]) != v["balance_base"]:
                torn.append(v)
            if done.is_set():
                return

    # A torn read needs a commit inside one read's few milliseconds, so PostgreSQL gets two readers per account.
    watched = accounts * (2 if live.backend == "postgres" else 1)
    async with live.clients(workers + len(watched)) as clients:
        readers = [asyncio.create_task(reader(c, acc)) for c, acc in zip(clients[workers:], watched, strict=True)]
        await asyncio.wait_for(asyncio.gather(*(worker(clients[i], moves[i::workers]) for i in range(workers))), 120)
        done.set()
        await asyncio.wait_for(asyncio.gather(*readers), 60)

    assert_no_5xx(live, answers)
    assert reads >= len(accounts)
    assert torn == [], f"{len(torn)} of {reads} holdings answers had serial blocks not summing to the balance"
