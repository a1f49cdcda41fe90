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


# ------------------------------------------------------------------------ units in circulation and market money
async def _circulation_world(env):  # type: ignore[no-untyped-def]
    """Two instruments and a market: a carbon period with a compliance allocation, a verified report and a surrender;
    a second vintage allocated and partly retired; a continuous market with fees where the two enterprises trade; a
    deposit each and a withdrawal. Returns (the compliance world, the two enterprises, the second instrument)."""
    from core.identity import Role, create_organisation
    from tests.registry.compliance.kit import allocate_table, carbon_lines, carbon_world, enterprise, issue, report
    from tests.trading.conftest import deposit

    cw = await carbon_world(env, year=2025, issue_quantity=100_000)
    a, b = await enterprise(env, cw.reg, "甲电厂"), await enterprise(env, cw.reg, "乙水泥")
    await allocate_table(cw, [{"enterprise_id": e["id"], "previous_verified": "10000"} for e in (a, b)],
                         kind="pre_allocation")  # fmt: skip
    await report(cw, a, carbon_lines(300))
    r = await env.post("/api/v1/surrenders", a["key"], {"account_id": a["account_id"], "instrument_id": cw.cea,
                                                       "quantity": "300", "period": cw.code})  # fmt: skip
    assert r.status_code == 201, r.text
    other = await issue(env, cw.reg, {"kind": "cea", "scheme": "national", "vintage": 2024, "quantity": "5000"})
    r = await env.post("/api/v1/allocations", cw.reg.key,
                       {"to_account_id": b["account_id"], "instrument_id": other, "quantity": "800"})  # fmt: skip
    assert r.status_code == 201, r.text
    r = await env.post("/api/v1/retirements", b["key"], {"account_id": b["account_id"], "instrument_id": other,
                                                        "quantity": "120", "beneficiary": "乙水泥"})  # fmt: skip
    assert r.status_code == 201, r.text

    async def bank_org(uow: UnitOfWork) -> int:
        return (await create_organisation(uow.session, "结算银行", "bank", env.clock.now())).id or 0

    bank = await env.key(Role.BANK, await env.db.run(bank_org))
    r = await env.post("/api/v1/markets", cw.reg.key, {"instrument_id": cw.cea, "mode": "continuous",
                                                      "reference_price": "50.00", "taker_fee_bps": 10,
                                                      "maker_fee_bps": 5})  # fmt: skip
    assert r.status_code == 201, r.text
    for e in (a, b):
        await deposit(env, e["key"], bank, "100000.00")
    order = {"instrument_id": cw.cea, "price": "50.00", "quantity": "1000"}
    r = await env.post("/api/v1/orders", a["key"], {**order, "account_id": a["account_id"], "side": "sell"})
    assert r.status_code == 201, r.text
    r = await env.post("/api/v1/orders", b["key"], {**order, "account_id": b["account_id"], "side": "buy",
                                                   "quantity": "600"})  # fmt: skip
    assert r.status_code == 201 and r.json()["fills"], r.text
    r = await env.post("/api/v1/funds/withdrawals", a["key"], {"amount": "12345.67"})
    assert r.status_code == 201, r.text
    r = await env.post(f"/api/v1/funds/movements/{r.json()['id']}/decision", bank, {"decision": "confirm"})
    assert r.status_code == 200, r.text
    return cw, (a, b), other


async def _code_of(env, instrument_id: int) -> str:  # type: ignore[no-untyped-def]
    async def work(uow: UnitOfWork) -> str:
        row = await uow.session.execute(
            text("SELECT code FROM registry_instrument WHERE id = :i"), {"i": instrument_id}
        )
        return str(row.scalar_one())

    return await env.db.read(work)


async def test_circulation_reconciles_per_instrument_and_for_market_money_until_a_balance_row_is_edited(env) -> None:
    from trading.circulation import reconcile_circulation

    cw, (_, b), other = await _circulation_world(env)
    cea, vintage_2024 = await _code_of(env, cw.cea), await _code_of(env, other)
    report = await reconcile_circulation(env.db)
    assert report.ok, report.lines()
    by_code = {u.figures.code: u for u in report.units}
    # 100,000 issued, 300 surrendered (7,000 allocated to each enterprise, the rest in the allocation account).
    f = by_code[cea].figures
    assert (f.log_issued, f.log_exits["surrender"], f.ledger_held, f.serials_held) == (100_000, 300, 99_700, 99_700)
    f = by_code[vintage_2024].figures
    assert (f.log_issued, f.log_exits["retirement"], f.ledger_held) == (5_000, 120, 4_880)
    # 600 t at 50.00: notional 30,000.00; taker (the buyer) pays 10 bp = 30.00, the maker 5 bp = 15.00.
    m = report.money.figures
    assert (m.deposits, m.withdrawals, m.fees_charged, m.fees, m.clearing) == (20_000_000, 1_234_567, 4_500, 4_500, 0)
    assert m.funds == 20_000_000 - 1_234_567 - 4_500

    code, out = await _reconcile(env.url)
    assert code == 0, out
    assert "ledger reconciled" in out  # the old report is still there, first
    lines = out.splitlines()
    assert f"{cea}: held 99,700 = issued 100,000 - surrendered 300 - retired 0 - cancelled 0 - expired 0; " \
           "serials held 99,700 of 100,000 cut: OK" in lines  # fmt: skip
    assert any(
        line.startswith(f"{vintage_2024}: held 4,880 = issued 5,000 ") and line.endswith(": OK") for line in lines
    )
    assert "CNY: funds 187,609.33 + fees 45.00 + clearing 0.00 = deposits 200,000.00 - withdrawals 12,345.67; " \
           "fees charged on trades 45.00: OK" in lines  # fmt: skip
    assert "circulation reconciled: 2 instruments and CNY" in lines

    # An edit of one holding's balance row, bypassing every service, shows as a MISMATCH of that instrument only.
    la = await _ledger_account_of_instrument(env, b["account_id"], cw.cea)

    async def edit(uow: UnitOfWork) -> None:
        await uow.session.execute(
            text("UPDATE ledger_account SET credits_posted = credits_posted + 7 WHERE id = :id"), {"id": la}
        )

    await env.db.run(edit)
    report = await reconcile_circulation(env.db)
    assert not report.ok and report.mismatched == [cea]
    assert by_code[vintage_2024].ok and report.money.ok
    code, out = await _reconcile(env.url)
    assert code == 1, out
    [line] = [line for line in out.splitlines() if line.startswith(f"{cea}:")]
    assert line.endswith("MISMATCH (held 99,707 != 99,700 by the transaction log; "
                         "serial blocks held 99,700 != held 99,707)"), line  # fmt: skip
    assert [line for line in out.splitlines() if "MISMATCH" in line] == [line, f"circulation NOT reconciled: "
                                                                               f"MISMATCH in {cea}"]  # fmt: skip


async def _ledger_account_of_instrument(env, account_id: int, instrument_id: int) -> int:  # type: ignore[no-untyped-def]
    async def work(uow: UnitOfWork) -> int:
        row = await uow.session.execute(
            text(
                "SELECT la.id FROM ledger_account la JOIN registry_instrument i ON i.asset_id = la.asset_id "
                "WHERE la.owner_kind = 'registry' AND la.owner_id = :a AND i.id = :i"
            ),
            {"a": account_id, "i": instrument_id},
        )
        return int(row.scalar_one())

    return await env.db.read(work)
