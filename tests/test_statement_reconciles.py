"""Every account's statement reconciles, across every path that moves units or money, in one world.

One world (a carbon period, two CEA vintages, green certificates, three enterprises, a bank, two markets) is driven
through every value-moving path there is:

- registry, through the API: issuance (four-eyes), allocation (allocateUnits, and an allocation table whose true-up
  claws units back: `allocation_reversal`), transfers (within one organisation at once; to another organisation
  held, approved by a second person and executed the next working day; one rejected), freeze and release (no
  balance change, only availability), surrender, retirement;
- the compliance cycle, through the API: reserve funding and the forced surrender from the reserve at settlement;
- the market, through the API: continuous trading with fees (fills, a cancelled remainder), listed trading with a
  pick (摘牌) of a listing, a block trade, a primary auction; fund deposits and withdrawals, confirmed and rejected;
- two scheduler jobs, through their services (no route runs them): `RegistryService.execute_due_transfers`
  (the approved transfer) and `RegistryService.expire_certificates` (核销 of green certificates past their term).
  No path cancels units (the `cancellation` account exists for the circulation identity only).

Then for every user account (holding, trading, allocation) and every instrument: opening balance (nothing: the
accounts are new) + the completed movements `listAccountTransactions` lists = the closing balance `listHoldings`
shows, and the same from the rows of the statement PDF (its text extracted with pypdf). The system accounts
(issuance, surrender, retirement, expiry, reserve, freeze), which no route shows, are reconciled the same way from
the registry's transaction log against the ledger. Every fund account: confirmed deposits − confirmed withdrawals
(`listFundMovements`) + the trade cash of the organisation's trades (the price and the fees each trade records)
= the balance `getFundAccount` shows = the sum of the rows its statement `listFundTransactions` lists, and the same
from the ledger's transfers on that account; the fee account
holds the fees, the clearing accounts hold nothing. Every code the walk wrote has a Chinese label on the statement
and a row in docs/api.md's table of registry transaction codes.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from sqlalchemy import or_, select

from core import ledger
from core.db import UnitOfWork
from core.identity import Role, create_organisation
from core.models import LedgerAccount, LedgerAsset, LedgerTransfer
from registry.domain import checks
from registry.models import Instrument, RegistryAccount, RegistryTransaction
from registry.pdf import CODE_ZH, STATUS_ZH
from registry.service import OWNER
from tests.registry.compliance.kit import (
    BASE,
    allocate_table,
    at,
    authority,
    carbon_lines,
    carbon_world,
    enterprise,
    issue,
    report,
    settle,
)
from tests.trading.conftest import MONDAY_13_30, deposit
from trading.models import Trade

DOCS_API = Path(__file__).resolve().parents[1] / "docs" / "api.md"
TUESDAY_NOON = dt.datetime(2026, 3, 3, 4, 0, tzinfo=dt.UTC)  # 12:00 Asia/Shanghai: untrusted transfers execute
# Every registry transaction code the walk must write (each path above leaves its rows under its own code).
CODES_WALKED = {
    "issuance",
    "allocation",
    "allocation_reversal",
    "transfer",
    "freeze",
    "surrender",
    "retirement",
    "expiry",
    "trade",
    "reserve_funding",
    "forced_surrender",
}


@dataclass
class Walk:
    env: Any
    reg: Any
    reader: str  # a regulator's key: it reads every user account
    keys: dict[int, str]  # organisation id -> a key of that organisation (for its own fund account)
    instruments: dict[int, str]  # instrument id -> code
    scales: dict[int, int]  # instrument id -> decimals of its display unit


async def _ok(r: Any, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------------ the readers
async def listed(env: Any, key: str, account_id: int) -> list[dict[str, Any]]:
    """Every transaction `listAccountTransactions` lists for the account (all pages, newest first)."""
    rows: list[dict[str, Any]] = []
    before = None
    while True:
        q = f"?limit=7{'' if before is None else f'&before_id={before}'}"  # small pages: the paging is walked too
        page = await _ok(await listed_page(env, key, account_id, q))
        rows += page["items"]
        before = page["next_before_id"]
        if before is None:
            return rows


async def listed_page(env: Any, key: str, account_id: int, q: str) -> Any:
    return await env.get(f"/api/v1/accounts/{account_id}/transactions{q}", key)


def net_by_instrument(rows: list[dict[str, Any]], account_id: int) -> Counter[int]:
    """The account's net movement per instrument from listed rows: completed ones only (a freeze, a held or
    rejected transfer moves no balance)."""
    net: Counter[int] = Counter()
    for t in rows:
        if t["status"] != "completed":
            continue
        if t["to_account_id"] == account_id:
            net[t["instrument_id"]] += t["quantity_base"]
        if t["from_account_id"] == account_id:
            net[t["instrument_id"]] -= t["quantity_base"]
    return net


async def holdings(env: Any, key: str, account_id: int) -> dict[int, dict[str, Any]]:
    return {h["instrument"]["id"]: h for h in await _ok(await env.get(f"/api/v1/accounts/{account_id}/holdings", key))}


_ID = re.compile(r"^\d+$")
_WHEN = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$")
_SIGNED = re.compile(r"^[+-][\d,.]+$")


def statement_rows(pdf: bytes) -> list[tuple[int, str, str, str]]:
    """The transaction rows of a statement PDF: (id, type label + instrument code, signed quantity, status label).

    pypdf gives each table cell on its own line(s): a row is an id, a Beijing time, the type and the instrument code
    (each on one line, or more where the cell wraps: read together), a signed quantity and a status."""
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    lines = [x.strip() for x in text[text.index("二、最近交易") :].splitlines()]
    rows = []
    i = 0
    while i + 5 < len(lines):
        if not (_ID.match(lines[i]) and _WHEN.match(lines[i + 1])):
            i += 1
            continue
        j = i + 4
        while j < len(lines) and not _SIGNED.match(lines[j]):
            j += 1
        assert j < len(lines) - 1, f"a statement row without its quantity: {lines[i:j]}"
        rows.append((int(lines[i]), "".join(lines[i + 2 : j]), lines[j], lines[j + 1]))
        i = j + 2
    return rows


def base_units(display: str, scale: int) -> int:
    sign = -1 if display.startswith("-") else 1
    whole, _, frac = display.lstrip("+-").replace(",", "").partition(".")
    return sign * (int(whole) * 10**scale + int((frac or "0").ljust(scale, "0")))


# ------------------------------------------------------------------------------------------------ the checks
async def reconcile_user_accounts(w: Walk, *, pdf: bool) -> set[str]:
    """Opening (0) + listed movements = closing, per user account and instrument; from the PDF's rows too.
    Returns the codes listed."""
    env = w.env

    async def accounts(uow: UnitOfWork) -> list[RegistryAccount]:
        q = select(RegistryAccount).where(RegistryAccount.type.in_(checks.USER_ACCOUNT_TYPES))  # type: ignore[attr-defined]
        return list((await uow.session.execute(q.order_by(RegistryAccount.id))).scalars())

    codes: set[str] = set()
    checked = 0
    for acc in await env.db.read(accounts):
        acc_id = acc.id or 0
        rows = await listed(env, w.reader, acc_id)
        codes |= {t["code"] for t in rows}
        net = net_by_instrument(rows, acc_id)
        held = await holdings(env, w.reader, acc_id)
        closing = {i: h["balance_base"] for i, h in held.items()}
        for inst in set(net) | set(closing):
            assert net[inst] == closing.get(inst, 0), (
                f"account {acc_id} ({acc.type}), {w.instruments[inst]}: listed movements {net[inst]}, "
                f"holdings {closing.get(inst, 0)}; rows {[(t['code'], t['status'], t['quantity']) for t in rows]}"
            )
        checked += bool(rows)
        if not pdf:
            continue
        r = await env.get(f"/api/v1/accounts/{acc_id}/statement.pdf", w.reader)
        assert r.status_code == 200, r.text
        printed = statement_rows(r.content)
        assert [p[0] for p in printed] == [t["id"] for t in rows], f"account {acc_id}: PDF rows differ from the list"
        pdf_net: Counter[int] = Counter()
        for (tx_id, what, signed, status), t in zip(printed, rows, strict=True):
            assert (what, status) == (CODE_ZH[t["code"]] + t["instrument_code"], STATUS_ZH[t["status"]]), tx_id
            if status == STATUS_ZH["completed"]:
                pdf_net[t["instrument_id"]] += base_units(signed, w.scales[t["instrument_id"]])
        for inst in set(pdf_net) | set(closing):
            assert pdf_net[inst] == closing.get(inst, 0), f"account {acc_id}, {w.instruments[inst]}: PDF rows"
    assert checked == 6  # three enterprises' holding accounts, A's trading account, two authorities' allocations
    return codes


async def reconcile_system_accounts(env: Any) -> set[str]:
    """The system accounts (no route shows them): the registry's completed transactions into and out of each
    = its posted ledger balance, per instrument. Returns the codes seen."""

    async def work(uow: UnitOfWork) -> set[str]:
        ses = uow.session
        system = (
            await ses.execute(
                select(RegistryAccount).where(RegistryAccount.type.in_(checks.SYSTEM_ACCOUNT_TYPES))  # type: ignore[attr-defined]
            )
        ).scalars()
        codes = set()
        for acc in system:
            net: Counter[int] = Counter()
            txs = (
                await ses.execute(
                    select(RegistryTransaction).where(
                        or_(RegistryTransaction.from_account_id == acc.id, RegistryTransaction.to_account_id == acc.id)
                    )
                )
            ).scalars()
            for t in txs:
                codes.add(t.code)
                if t.status == "completed":
                    net[t.instrument_id] += t.quantity if t.to_account_id == acc.id else -t.quantity
            balances = {
                inst.id: la.credits_posted - la.debits_posted
                for la, inst in (
                    await ses.execute(
                        select(LedgerAccount, Instrument)
                        .join(Instrument, Instrument.asset_id == LedgerAccount.asset_id)
                        .where(LedgerAccount.owner_kind == OWNER, LedgerAccount.owner_id == acc.id)
                    )
                ).all()
            }
            for inst_id in set(net) | set(balances):
                assert net[inst_id] == balances.get(inst_id, 0), (acc.type, inst_id, net[inst_id], balances)
        return codes

    return await env.db.read(work)


async def reconcile_funds(w: Walk) -> None:
    """Each fund account: confirmed deposits − confirmed withdrawals + trade cash = its balance, and = the sum of
    the ledger's transfers on it; the fee account holds the fees; the clearing accounts hold nothing."""
    env = w.env

    async def ledger_view(uow: UnitOfWork) -> tuple[dict[int, int], dict[str, int], list[Trade]]:
        ses = uow.session
        accounts = (
            await ses.execute(
                select(LedgerAccount)
                .join(LedgerAsset, LedgerAsset.id == LedgerAccount.asset_id)
                .where(LedgerAsset.code == "CNY")
            )
        ).scalars()
        by_id = {a.id: a for a in accounts}
        flows: dict[int, int] = defaultdict(int)
        transfers = (
            await ses.execute(
                select(LedgerTransfer).where(
                    LedgerTransfer.asset_id == next(iter(by_id.values())).asset_id,
                    LedgerTransfer.kind.in_([ledger.POSTED, ledger.POST_PENDING]),  # type: ignore[attr-defined]
                )
            )
        ).scalars()
        for t in transfers:
            flows[t.credit_account_id] += t.amount
            flows[t.debit_account_id] -= t.amount
        fund_by_org = {a.owner_id: flows[a.id] for a in by_id.values() if a.owner_kind == "fund"}
        for a in by_id.values():
            assert a.credits_posted - a.debits_posted == flows[a.id], (a.owner_kind, a.owner_id)
        others = {a.owner_kind: a.credits_posted - a.debits_posted for a in by_id.values() if a.owner_kind != "fund"}
        trades = list((await ses.execute(select(Trade))).scalars())
        return fund_by_org, others, trades

    fund_by_org, others, trades = await env.db.read(ledger_view)
    cash: Counter[int] = Counter()
    for t in trades:
        cash[t.seller_organisation_id] += t.notional_fen - t.seller_fee_fen
        cash[t.buyer_organisation_id] -= t.notional_fen + t.buyer_fee_fen
    fees = sum(t.buyer_fee_fen + t.seller_fee_fen for t in trades)
    assert fees > 0 and others["fee"] == fees and others["clearing"] == 0
    assert len(fund_by_org) >= 4  # three enterprises and the authority that sold at auction
    for org, key in w.keys.items():
        account = await _ok(await env.get("/api/v1/funds", key))
        moves = await _ok(await env.get("/api/v1/funds/movements?limit=100", key))
        confirmed = sum(  # (a regulator's key lists every organisation's movements)
            m["amount_fen"] * (1 if m["kind"] == "deposit" else -1)
            for m in moves
            if m["status"] == "confirmed" and m["organisation_id"] == org
        )
        assert confirmed + cash[org] == account["balance_fen"] == fund_by_org.get(org, 0), org
        assert account["held_fen"] == 0 and account["available_fen"] == account["balance_fen"]
        statement = await fund_statement(env, key)
        assert sum(t["amount_fen"] for t in statement) == account["balance_fen"], org
        assert {t["code"] for t in statement} <= {"deposit", "withdrawal", "trade"}
        listed_cash = sum(t["amount_fen"] for t in statement if t["code"] == "trade")
        assert listed_cash == cash[org], org


async def fund_statement(env: Any, key: str) -> list[dict[str, Any]]:
    """Every row `listFundTransactions` lists for the caller's fund account (all pages)."""
    rows: list[dict[str, Any]] = []
    before = None
    while True:
        q = f"?limit=5{'' if before is None else f'&before_id={before}'}"
        page = await _ok(await env.get(f"/api/v1/funds/transactions{q}", key))
        rows += page["items"]
        before = page["next_before_id"]
        if before is None:
            return rows


def documented_codes() -> set[str]:
    text = DOCS_API.read_text(encoding="utf-8")
    section = text[text.index("## Registry transaction codes") :]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M))


# ------------------------------------------------------------------------------------------------ the walk
async def test_every_value_moving_path_reconciles_on_every_statement(env) -> None:
    cw = await carbon_world(env, year=2025, issue_quantity=1_000_000)  # issuance, four-eyes approved
    reg = cw.reg
    cea = cw.cea
    cea24 = await issue(env, reg, {"kind": "cea", "scheme": "national", "vintage": 2024, "quantity": "500000"})
    gec_auth = await authority(env, Role.GEC_ISSUER, "国家可再生能源信息管理中心")
    gec = await issue(
        env,
        gec_auth,
        {
            "kind": "gec",
            "technology": "wind",
            "production_month": "2024-06",
            "generator": "JX-WIND-1",
            "quantity": "1000",
        },
    )
    a, b, c = [await enterprise(env, reg, name) for name in ("甲电厂", "乙水泥", "丙钢铁")]
    a["key2"] = await env.key(Role.EMITTER, a["organisation_id"])

    async def bank_org(uow: UnitOfWork) -> int:
        return (await create_organisation(uow.session, "结算银行", "bank", env.clock.now())).id or 0

    bank = await env.key(Role.BANK, await env.db.run(bank_org))
    instruments = await _ok(await env.get("/api/v1/instruments", reg.key))
    w = Walk(
        env,
        reg,
        reg.key,
        {e["organisation_id"]: e["key"] for e in (a, b, c)} | {reg.org: reg.key},
        {i["id"]: i["code"] for i in instruments},
        {i["id"]: i["scale"] for i in instruments},
    )

    # Allocation: by hand, and by a table whose true-up claws 200 back from C.
    for ent, inst, q, key in (
        (a, cea, 20_000, reg.key),
        (b, cea, 20_000, reg.key),
        (c, cea, 5_000, reg.key),
        (a, cea24, 150_000, reg.key),
        (b, cea24, 1_000, reg.key),
        (a, gec, 100, gec_auth.key),
        (b, gec, 50, gec_auth.key),
    ):
        body = {"to_account_id": ent["account_id"], "instrument_id": inst, "quantity": str(q)}
        await _ok(await env.post("/api/v1/allocations", key, body), 201)
    await allocate_table(cw, [{"enterprise_id": c["id"], "previous_verified": "1000"}], kind="pre_allocation")
    table = await allocate_table(cw, [{"enterprise_id": c["id"], "quantity": "500"}], kind="true_up")
    assert (table["lines"][0]["direction"], table["lines"][0]["posted"]) == ("reverse", 200)

    # Transfers: within A's organisation (at once), A → B (held, approved, executed tomorrow), A → C (rejected).
    trading_acc = (
        await _ok(await env.post("/api/v1/accounts", reg.key, {"type": "trading", "enterprise_id": a["id"]}), 201)
    )["id"]
    move = {"from_account_id": a["account_id"], "instrument_id": cea}
    await _ok(
        await env.post("/api/v1/transfers", a["key"], {**move, "to_account_id": trading_acc, "quantity": "1000"}), 201
    )
    held = await _ok(
        await env.post("/api/v1/transfers", a["key"], {**move, "to_account_id": b["account_id"], "quantity": "300"}),
        201,
    )
    assert held["status"] == "awaiting_approval"
    await _ok(await env.post(f"/api/v1/transactions/{held['id']}/approval", a["key2"], {"decision": "approve"}))
    refused = await _ok(
        await env.post("/api/v1/transfers", a["key"], {**move, "to_account_id": c["account_id"], "quantity": "100"}),
        201,
    )
    await _ok(
        await env.post(
            f"/api/v1/transactions/{refused['id']}/approval",
            a["key2"],
            {"decision": "reject", "reason": "错误的收款账户"},
        )
    )

    # Freeze: the balance stays, what is available drops; the listed movements do not change.
    before = (await holdings(env, reg.key, b["account_id"]))[cea]
    freeze = await _ok(
        await env.post(
            "/api/v1/freezes",
            reg.key,
            {
                "account_id": b["account_id"],
                "instrument_id": cea,
                "quantity": "2000",
                "legal_basis": "judicial",
                "authority": "南昌市中级人民法院",
                "reference": "（2026）赣01执12号",
            },
        ),
        201,
    )
    after = (await holdings(env, reg.key, b["account_id"]))[cea]
    assert (after["balance_base"], after["available_base"]) == (before["balance_base"], before["available_base"] - 2000)
    assert net_by_instrument(await listed(env, reg.key, b["account_id"]), b["account_id"])[cea] == after["balance_base"]

    # Money: deposits confirmed (one rejected), a withdrawal confirmed and one rejected.
    for ent in (a, b, c):
        await deposit(env, ent["key"], bank, "10000000.00")
    mv = await _ok(await env.post("/api/v1/funds/deposits", c["key"], {"amount": "5.00", "reference": "未到账"}), 201)
    await _ok(await env.post(f"/api/v1/funds/movements/{mv['id']}/decision", bank, {"decision": "reject"}))
    mv = await _ok(await env.post("/api/v1/funds/withdrawals", a["key"], {"amount": "1000.00"}), 201)
    await _ok(await env.post(f"/api/v1/funds/movements/{mv['id']}/decision", bank, {"decision": "confirm"}))
    mv = await _ok(await env.post("/api/v1/funds/withdrawals", c["key"], {"amount": "7.00"}), 201)
    await _ok(await env.post(f"/api/v1/funds/movements/{mv['id']}/decision", bank, {"decision": "reject"}))

    # Markets: CEA 2025 continuous, CEA 2024 listed, both with fees.
    fees = {"taker_fee_bps": 10, "maker_fee_bps": 5}
    await _ok(
        await env.post(
            "/api/v1/markets", reg.key, {"instrument_id": cea, "mode": "continuous", "reference_price": "50.00", **fees}
        ),
        201,
    )
    await _ok(
        await env.post(
            "/api/v1/markets", reg.key, {"instrument_id": cea24, "mode": "listed", "reference_price": "60.00", **fees}
        ),
        201,
    )

    async def order(ent: dict[str, Any], inst: int, body: dict[str, Any]) -> dict[str, Any]:
        return await _ok(
            await env.post(
                "/api/v1/orders", ent["key"], {"instrument_id": inst, "account_id": ent["account_id"], **body}
            ),
            201,
        )

    sell = await order(a, cea, {"side": "sell", "price": "50.00", "quantity": "300"})
    assert (await order(b, cea, {"side": "buy", "price": "50.00", "quantity": "120"}))["fills"]
    assert (await order(b, cea, {"side": "buy", "price": "51.00", "quantity": "80"}))["fills"]
    await _ok(await env.post(f"/api/v1/orders/{sell['id']}/cancel", a["key"], None))  # the other 100 released
    resting = await order(c, cea, {"side": "buy", "price": "49.00", "quantity": "50"})
    await _ok(await env.post(f"/api/v1/orders/{resting['id']}/cancel", c["key"], None))
    listing = await order(a, cea24, {"side": "sell", "price": "60.00", "quantity": "500"})
    assert (await order(b, cea24, {"side": "buy", "quantity": "200", "listing_id": listing["id"]}))["fills"]
    await _ok(await env.post(f"/api/v1/orders/{listing['id']}/cancel", a["key"], None))

    # A primary auction of CEA 2025 from the authority's allocation account.
    auction = await _ok(
        await env.post(
            "/api/v1/auctions",
            reg.key,
            {
                "instrument_id": cea,
                "type": "primary",
                "volume": "1000",
                "reserve_price": "40.00",
                "bidder_cap_bps": 6000,
            },
        ),
        201,
    )
    for ent, price, q in ((b, "52.00", "600"), (c, "51.00", "600")):
        await _ok(
            await env.post(
                f"/api/v1/auctions/{auction['id']}/bids",
                ent["key"],
                {"account_id": ent["account_id"], "price": price, "quantity": q},
            ),
            201,
        )
    assert (await _ok(await env.post(f"/api/v1/auctions/{auction['id']}/clear", reg.key, None)))["sold"] == "1000"

    # Compliance: A reports and surrenders, B reports and falls short; the reserve is funded and a forced
    # surrender ordered for B; A retires green certificates.
    await report(cw, a, carbon_lines(5_000))
    await report(cw, b, carbon_lines(40_000))
    await _ok(
        await env.post(
            "/api/v1/surrenders",
            a["key"],
            {"account_id": a["account_id"], "instrument_id": cea, "quantity": "5000", "period": cw.code},
        ),
        201,
    )
    await _ok(
        await env.post(
            "/api/v1/retirements",
            a["key"],
            {"account_id": a["account_id"], "instrument_id": gec, "quantity": "10", "beneficiary": "甲电厂"},
        ),
        201,
    )
    await _ok(await env.post(f"{BASE}/reserve", reg.key, {"instrument_id": cea, "quantity": "3000"}), 201)
    await _ok(
        await env.post(
            f"{BASE}/periods/{cw.pid}/forced-surrenders", reg.key, {"enterprise_id": b["id"], "quantity": "600"}
        )
    )

    # A block trade of CEA 2024 in the afternoon session.
    env.clock.set(MONDAY_13_30)
    block = await _ok(
        await env.post(
            "/api/v1/block-trades",
            a["key"],
            {
                "instrument_id": cea24,
                "account_id": a["account_id"],
                "side": "sell",
                "counterparty_organisation_id": b["organisation_id"],
                "price": "60.00",
                "quantity": "100000",
            },
        ),
        201,
    )
    await _ok(await env.post(f"/api/v1/block-trades/{block['id']}/accept", b["key"], {"account_id": b["account_id"]}))
    await reconcile_user_accounts(w, pdf=False)  # mid-walk: a freeze active, a transfer approved and held

    # Tuesday noon: the approved transfer executes (scheduler job); the freeze is released.
    env.clock.set(TUESDAY_NOON)
    assert await env.app.state.registry.execute_due_transfers() == 1
    await _ok(await env.post(f"/api/v1/freezes/{freeze['id']}/release", reg.key, {"reason": "解除查封"}))

    # After the deadline: settlement (the forced surrender from the reserve) and expiry of the certificates.
    env.clock.set(at("2027-01-02"))
    await _ok(await env.post(f"{BASE}/periods/{cw.pid}/reference-price", reg.key, {"price_yuan": "50.00"}))
    await _ok(await settle(cw))
    assert await env.app.state.registry.expire_certificates() == 3  # A, B and the issuer's allocation account

    codes = await reconcile_user_accounts(w, pdf=True) | await reconcile_system_accounts(env)
    await reconcile_funds(w)
    assert codes == CODES_WALKED, codes ^ CODES_WALKED
    assert codes <= set(CODE_ZH), codes - set(CODE_ZH)
    assert codes <= documented_codes(), codes - documented_codes()

    async def invariants(uow: UnitOfWork) -> list[str]:
        return await ledger.check_invariants(uow.session)

    assert await env.db.read(invariants) == []
    assert await env.app.state.trading.reconcile() == []
