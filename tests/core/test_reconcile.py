"""`greenrights audit reconcile` recomputes every ledger balance from the transfers and every holding from its serial
blocks, and exits non-zero on any difference: an edited balance row or a removed serial block is found."""

from __future__ import annotations

import asyncio
import os
import sys

from sqlalchemy import text

from core.db import UnitOfWork
from tests.helpers import allocate, holding, world


async def _reconcile(url: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        "audit",
        "reconcile",
        env={**os.environ, "GREENRIGHTS_DATABASE_URL": url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def _ledger_account_of(env, account_id: int) -> int:
    async def work(uow: UnitOfWork) -> int:
        row = await uow.session.execute(
            text("SELECT id FROM ledger_account WHERE owner_kind = 'registry' AND owner_id = :a"), {"a": account_id}
        )
        return int(row.scalar_one())

    return await env.db.read(work)


async def test_an_edited_balance_row_fails_reconciliation(env) -> None:
    w = await world(env, n_enterprises=2, issue=1_000)
    a, b = w.enterprises
    await allocate(env, w, a["account_id"], 600)
    r = await env.post(
        "/api/v1/transfers",
        a["key"],
        {"from_account_id": a["account_id"], "to_account_id": b["account_id"], "instrument_id": w.instrument_id,
         "quantity": "250"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    code, out = await _reconcile(env.url)
    assert code == 0, out
    assert "ledger reconciled" in out

    la = await _ledger_account_of(env, a["account_id"])

    async def edit(uow: UnitOfWork) -> None:
        await uow.session.execute(
            text("UPDATE ledger_account SET credits_posted = credits_posted + 5000 WHERE id = :id"), {"id": la}
        )

    await env.db.run(edit)
    # The edit is visible where a person looks, which is why it must be caught.
    h = await holding(env, a["key"], a["account_id"], w.instrument_id)
    assert h is not None and h["balance_base"] == 600 + 5_000  # the transfer to b awaits its second person
    code, out = await _reconcile(env.url)
    assert code == 1, out
    assert f"DIFFERENCE account {la}: balances" in out
    assert "ledger NOT reconciled" in out


async def test_a_removed_serial_block_fails_reconciliation(env) -> None:
    w = await world(env, n_enterprises=1, issue=1_000)
    [a] = w.enterprises
    await allocate(env, w, a["account_id"], 400)
    la = await _ledger_account_of(env, a["account_id"])

    async def drop(uow: UnitOfWork) -> None:
        await uow.session.execute(text("DELETE FROM serial_block WHERE ledger_account_id = :id"), {"id": la})

    await env.db.run(drop)
    code, out = await _reconcile(env.url)
    assert code == 1, out
    assert f"DIFFERENCE account {la}: serial blocks 0 != balance 400" in out
