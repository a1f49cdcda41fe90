"""Decisions that move value or change a status are said, never assumed: an empty body does not confirm a fund
movement or approve a transaction, and closing a trading day before its sessions end needs `early_close` with a
reason, which the audit log keeps."""

from __future__ import annotations

import json

from sqlalchemy import select

from core.db import UnitOfWork
from core.models import AuditEntry
from tests.helpers import world
from tests.trading.conftest import MONDAY_15_05, trading_world


async def test_an_empty_body_does_not_confirm_a_withdrawal(env) -> None:
    tw = await trading_world(env, mode="listed", funds="5000.00")
    t = tw.traders[0]
    r = await env.post("/api/v1/funds/withdrawals", t.key, {"amount": "1000.00", "reference": "test"})
    assert r.status_code == 201, r.text
    movement = r.json()["id"]
    before = await tw.funds(0)
    r = await env.post(f"/api/v1/funds/movements/{movement}/decision", tw.bank, {})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "decision"
    assert await tw.funds(0) == before
    r = await env.post(f"/api/v1/funds/movements/{movement}/decision", tw.bank, {"decision": "confirm"})
    assert r.status_code == 200, r.text
    assert (await tw.funds(0))["balance"] == "4000.00"


async def test_an_empty_body_does_not_approve_an_issuance(env) -> None:
    w = await world(env, n_enterprises=1, issue=10)
    r = await env.post(
        "/api/v1/issuances", w.regulator, {"kind": "cea", "scheme": "national", "vintage": 2026, "quantity": "10"}
    )
    assert r.status_code == 201, r.text
    tx = r.json()["id"]
    r = await env.post(f"/api/v1/transactions/{tx}/approval", w.regulator2, {})
    assert r.status_code == 422 and r.json()["field"] == "decision", r.text
    r = await env.get(f"/api/v1/transactions/{tx}", w.regulator)
    assert r.json()["status"] == "awaiting_approval"


async def _close_entries(env) -> list[dict]:  # type: ignore[type-arg]
    async def work(uow: UnitOfWork) -> list[dict]:  # type: ignore[type-arg]
        rows = await uow.session.execute(select(AuditEntry.data).where(AuditEntry.action == "market.close"))
        return [json.loads(d) for d in rows.scalars()]

    return await env.db.read(work)


async def test_closing_during_the_session_needs_an_explicit_early_close_with_a_reason(env) -> None:
    tw = await trading_world(env, mode="listed")  # Monday 10:00 Shanghai: sessions still to come
    r = await env.post("/api/v1/trading-days/close", tw.regulator, {})
    assert r.status_code == 409 and r.json()["field"] == "early_close", r.text
    assert await _close_entries(env) == []
    r = await env.post("/api/v1/trading-days/close", tw.regulator, {"early_close": True})
    assert r.status_code == 422 and r.json()["field"] == "reason", r.text
    r = await env.post(
        "/api/v1/trading-days/close", tw.regulator, {"early_close": True, "reason": "交易系统故障，提前收市"}
    )
    assert r.status_code == 200, r.text
    [entry] = await _close_entries(env)
    assert entry["early_close_reason"] == "交易系统故障，提前收市"


async def test_after_the_sessions_a_close_needs_no_reason(env) -> None:
    tw = await trading_world(env, mode="listed")
    env.clock.set(MONDAY_15_05)
    r = await env.post("/api/v1/trading-days/close", tw.regulator, {})
    assert r.status_code == 200, r.text
    [entry] = await _close_entries(env)
    assert "early_close_reason" not in entry
