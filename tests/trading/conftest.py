"""Scenario builders for the trading tests: a regulator with issued allowances, a market, traders with units and
confirmed deposits, and readers of the ledger balances the tests assert on.

Two ways in: `trading_world(env, ...)` drives the HTTP API (the `env` fixture of tests/conftest.py), and
`service_world(db, clock)` drives the services directly with hand-made identities (the property test, which
builds a fresh database per example and has no use for HTTP).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core import ledger
from core.clock import FixedClock
from core.db import Database, UnitOfWork
from core.identity import Identity, Role, create_organisation
from core.models import LedgerAccount, LedgerAsset
from registry import schemas as rs
from registry.domain.instruments import KIND_RULES, Kind
from registry.models import Instrument
from registry.service import OWNER, RegistryService
from tests.conftest import BACKENDS, schema_database_url
from tests.helpers import allocate, make_uscc, world
from trading import schemas as ts
from trading.service import TradingService

# Monday 2 March 2026, 10:00 Asia/Shanghai (tests/conftest.py's START): inside the morning session.
MONDAY_10 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)
MONDAY_13_30 = dt.datetime(2026, 3, 2, 5, 30, tzinfo=dt.UTC)
MONDAY_15_05 = dt.datetime(2026, 3, 2, 7, 5, tzinfo=dt.UTC)
TUESDAY_10 = MONDAY_10 + dt.timedelta(days=1)
_principals = itertools.count(10_000)


@dataclass
class Trader:
    key: str
    account_id: int
    organisation_id: int
    enterprise_id: int


@dataclass
class TradingWorld:
    env: Any
    regulator: str
    regulator_org: int
    allocation_account: int
    instrument_id: int
    bank: str
    traders: list[Trader]
    bank_org: int = 0

    async def order(self, trader: int, body: dict[str, Any], idem: str | None = None) -> Any:
        t = self.traders[trader]
        return await self.env.post(
            "/api/v1/orders", t.key, {"instrument_id": self.instrument_id, "account_id": t.account_id, **body}, idem
        )

    async def funds(self, trader: int) -> dict[str, Any]:
        r = await self.env.get("/api/v1/funds", self.traders[trader].key)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def units(self, trader: int) -> tuple[int, int]:
        """(posted balance, available) of the trader's holding of the instrument, in base units."""
        t = self.traders[trader]
        r = await self.env.get(f"/api/v1/accounts/{t.account_id}/holdings", t.key)
        assert r.status_code == 200, r.text
        for h in r.json():
            if h["instrument"]["id"] == self.instrument_id:
                return h["balance_base"], h["available_base"]
        return 0, 0


async def deposit(env: Any, key: str, bank: str, amount: str) -> dict[str, Any]:
    r = await env.post("/api/v1/funds/deposits", key, {"amount": amount, "reference": "test"})
    assert r.status_code == 201, r.text
    r = await env.post(f"/api/v1/funds/movements/{r.json()['id']}/decision", bank, {"decision": "confirm"})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def trading_world(
    env: Any,
    *,
    mode: str = "listed",
    traders: int = 2,
    units: int = 10_000,
    issue: int = 1_000_000,
    funds: str = "1000000.00",
    reference_price: str = "50.00",
    market: dict[str, Any] | None = None,
    kind: str = "cea",
) -> TradingWorld:
    """Traders with `units` display units of an instrument of `kind` (see `KIND_ISSUES`) and `funds` yuan each."""
    w = await world(env, n_enterprises=traders, issue=issue)
    issuer = w.regulator
    if kind != "cea":
        w, issuer = await _issue_kind(env, w, kind, issue)
    for ent in w.enterprises:
        if units:
            await allocate(env, w, ent["account_id"], units, key=issuer)
    r = await env.post(
        "/api/v1/markets",
        issuer,
        {"instrument_id": w.instrument_id, "mode": mode, "reference_price": reference_price, **(market or {})},
    )
    assert r.status_code == 201, r.text
    async def bank_organisation(uow: UnitOfWork) -> int:
        return (await create_organisation(uow.session, "结算银行", "bank", env.clock.now())).id or 0

    bank_org = await env.db.run(bank_organisation)
    bank = await env.key(Role.BANK, bank_org)
    out = [Trader(e["key"], e["account_id"], e["organisation_id"], e["id"]) for e in w.enterprises]
    for t in out:
        if funds != "0":
            await deposit(env, t.key, bank, funds)
    return TradingWorld(
        env, w.regulator, w.regulator_org, w.allocation_account, w.instrument_id, bank, out, bank_org=bank_org
    )


async def _issue_kind(env: Any, w: Any, kind: str, issue: int) -> tuple[Any, str]:
    """Issue `issue` display units of `kind` by its own authority (two people); the world then trades those."""
    from tests.helpers import World

    role, unit_class = KIND_ISSUES[kind]

    async def org(uow: UnitOfWork) -> int:
        o = await create_organisation(uow.session, f"{role.value} 发证机构", role.value, env.clock.now())
        return o.id or 0

    org_id = await env.db.run(org)
    key, key2 = await env.key(role, org_id), await env.key(role, org_id)
    r = await env.post("/api/v1/accounts", key, {"type": "allocation"})
    assert r.status_code == 201, r.text
    alloc = r.json()["id"]
    r = await env.post("/api/v1/issuances", key, {"kind": kind, "quantity": str(issue), **unit_class})
    assert r.status_code == 201, r.text
    tx = r.json()
    r = await env.post(f"/api/v1/transactions/{tx['id']}/approval", key2, {"decision": "approve"})
    assert r.status_code == 200, r.text
    return World(w.regulator, w.regulator2, w.regulator_org, alloc, w.enterprises, tx["instrument_id"]), key


async def invariants(db: Database) -> list[str]:
    async def work(uow: UnitOfWork) -> list[str]:
        return await ledger.check_invariants(uow.session)

    return await db.read(work)


async def pending_totals(db: Database, instrument_id: int) -> tuple[int, int]:
    """(units held on the instrument by registry accounts, yuan held by fund accounts): all pending debits."""

    async def work(uow: UnitOfWork) -> tuple[int, int]:
        ses = uow.session
        inst = await ses.get(Instrument, instrument_id)
        assert inst is not None
        units = sum(
            (
                await ses.execute(
                    select(LedgerAccount.debits_pending).where(
                        LedgerAccount.owner_kind == OWNER, LedgerAccount.asset_id == inst.asset_id
                    )
                )
            ).scalars()
        )
        funds = sum(
            (
                await ses.execute(
                    select(LedgerAccount.debits_pending)
                    .join(LedgerAsset, LedgerAsset.id == LedgerAccount.asset_id)
                    .where(LedgerAccount.owner_kind == "fund", LedgerAsset.code == "CNY")
                )
            ).scalars()
        )
        return units, funds

    return await db.read(work)


# ---------------------------------------------------------------------------- service-level world


def ident(role: Role, organisation_id: int) -> Identity:
    return Identity(principal_id=next(_principals), organisation_id=organisation_id, role=role, label="test")


# One instrument of each kind in use, with its issuing role and unit class: the money paths are tested at every
# scale (CEA and GEC 0; energy-use rights, tce over kgce, and discharge permits, t over kg: 3).
KIND_ISSUES: dict[str, tuple[Role, dict[str, Any]]] = {
    "cea": (Role.REGULATOR, {"scheme": "national", "vintage": 2025}),
    "energy_use": (Role.ENERGY_AUTHORITY, {"region": "JX", "vintage": 2026}),
    "gec": (Role.GEC_ISSUER, {"technology": "wind", "production_month": "2026-01", "generator": "JX-WIND-1"}),
    "discharge": (Role.REGULATOR, {"pollutant": "COD", "region": "JX", "vintage": 2026}),
}


@dataclass
class ServiceWorld:
    db: Database
    clock: FixedClock
    registry: RegistryService
    trading: TradingService
    regulator: Identity
    bank: Identity
    instrument_id: int
    scale: int = 0
    traders: list[Identity] = field(default_factory=list)
    accounts: list[int] = field(default_factory=list)


async def service_world(
    db: Database,
    clock: FixedClock,
    *,
    mode: str,
    traders: int = 3,
    units: int = 2_000,
    funds_yuan: str = "500000.00",
    reference_price: str = "50.00",
    fee_bps: int = 0,
    stp: str = "cancel-taker",
    kind: str = "cea",
) -> ServiceWorld:
    """Registry, market and traders through the services (no HTTP): fast enough for one world per example.

    `units` is in display units (t, tce, certificates) of the instrument of `kind` (see `KIND_ISSUES`)."""
    registry = RegistryService(db, clock)
    await registry.bootstrap()
    trading = TradingService(db, clock, registry)

    issuer_role, unit_class = KIND_ISSUES[kind]

    async def orgs(uow: UnitOfWork) -> tuple[int, int]:
        reg = await create_organisation(uow.session, "江西省生态环境厅", issuer_role.value, clock.now())
        bank = await create_organisation(uow.session, "结算银行", "bank", clock.now())
        return reg.id or 0, bank.id or 0

    reg_org, bank_org = await db.run(orgs)
    reg, reg2 = ident(issuer_role, reg_org), ident(issuer_role, reg_org)
    bank = ident(Role.BANK, bank_org)
    await registry.open_account(reg, rs.OpenAccount(type="allocation"))
    tx = await registry.issue_units(
        reg, rs.IssueUnits(kind=kind, quantity=str(units * traders * 2), **unit_class), None  # type: ignore[arg-type]
    )
    await registry.approve_transfer(reg2, tx.id, rs.Decision(decision="approve"))
    await trading.create_market(
        reg,
        ts.CreateMarket(
            instrument_id=tx.instrument_id,
            mode=mode,  # type: ignore[arg-type]
            reference_price=reference_price,
            taker_fee_bps=fee_bps,
            maker_fee_bps=fee_bps,
            stp=stp,  # type: ignore[arg-type]
        ),
        None,
    )
    sw = ServiceWorld(db, clock, registry, trading, reg, bank, tx.instrument_id, KIND_RULES[Kind(kind)].scale)
    for i in range(traders):
        ent = await registry.create_enterprise(
            reg,
            rs.CreateEnterprise(uscc=make_uscc(), name=f"企业{i}", city="南昌", industry_code="D4411"),
        )
        acc = await registry.open_account(reg, rs.OpenAccount(type="holding", enterprise_id=ent.id))
        await registry.allocate_units(
            reg, rs.AllocateUnits(to_account_id=acc.id, instrument_id=tx.instrument_id, quantity=str(units)), None
        )
        who = ident(Role.EMITTER, ent.organisation_id)
        mv = await trading.request_fund_movement(who, "deposit", ts.FundRequest(amount=funds_yuan), None)
        await trading.decide_fund_movement(bank, mv.id, ts.FundDecision(decision="confirm"))
        sw.traders.append(who)
        sw.accounts.append(acc.id)
    return sw


@pytest.fixture(params=BACKENDS)
async def service_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Database, FixedClock]]:
    """A fresh, empty schema and a clock standing at Monday 10:00, for tests that drive the services directly."""
    url = schema_database_url(request.param, tmp_path)
    db = Database(url)
    try:
        yield db, FixedClock(MONDAY_10)
    finally:
        await db.dispose()
