"""A small Jiangxi demo, seeded once into an empty database: the provincial ecology and environment department
(two regulator keys, for four-eyes), an allocation account, two key emitters (a power plant in 南昌 and a cement
plant in 九江), 2025 national allowances issued, approved and allocated, and each emitter trusting the other so
that a transfer between them executes at once; a continuous market for those allowances, a settlement bank with its
own key, and each emitter's fund account credited by a deposit the bank confirmed, so that trading works out of the
box; people who sign in to the workbench (regulators, auditor, finance bureau, bank, emitters' staff). Keys and
passwords are printed once and kept in ./var/demo-keys.txt (0600)."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

from sqlalchemy import select

from core import figures
from core.audit import make_flusher
from core.clock import SystemClock
from core.db import Database, UnitOfWork
from core.identity import Identity, Role, create_api_key, create_organisation, create_user
from core.settings import get_settings
from registry import schemas as s
from registry.models import Enterprise, TrustedAccount
from registry.service import RegistryService
from trading import schemas as ts
from trading.service import TradingService

KEYS_FILE = Path("var/demo-keys.txt")
POWER = ("91360100MA35F0XK2T", "江西赣能示范电厂", "南昌", "D4411")
CEMENT = ("91360400MA35G1YL33", "九江示范水泥有限公司", "九江", "C3011")
BANK = "中国银行江西省分行"
# The market's reference price (the first day's previous close), 元/t, near the national market's 2025 prices.
REFERENCE_PRICE = "85.00"
# What each emitter deposits with the settlement bank before trading, in fen.
DEPOSITS_FEN = {POWER[0]: 100_000_000, CEMENT[0]: 300_000_000}


async def demo_people(
    uow: UnitOfWork, keys: dict[str, tuple[int, int, str]], now: dt.datetime
) -> list[tuple[str, str, str]]:
    """Staff users for every kind of person, each with a random password shown once: the regulator's two officers,
    an auditor, a finance bureau reviewer and approver, a bank officer and one staff member per demo emitter."""
    bureau = await create_organisation(uow.session, "江西省财政厅", "finance", now)
    regulator_org = keys["regulator"][1]
    bank_org = keys["bank"][1]
    people = [
        ("regulator", Role.REGULATOR, regulator_org),
        ("regulator2", Role.REGULATOR, regulator_org),
        ("auditor", Role.AUDITOR, regulator_org),
        ("reviewer", Role.FINANCE_REVIEWER, bureau.id or 0),
        ("approver", Role.FINANCE_APPROVER, bureau.id or 0),
        ("bank", Role.BANK, bank_org),
        ("power", Role.EMITTER, keys[POWER[0]][1]),
        ("cement", Role.EMITTER, keys[CEMENT[0]][1]),
    ]
    out = []
    for username, role, org_id in people:
        password = secrets.token_urlsafe(12)
        await create_user(uow.session, organisation_id=org_id, role=role, username=username, password=password, now=now)
        out.append((username, role.value, password))
    return out


async def seed_demo() -> list[str]:
    settings = get_settings()
    clock = SystemClock()
    db = Database(settings.database_url)
    db.audit_flusher = make_flusher(clock)
    reg = RegistryService(db, clock)
    try:

        async def empty(uow: UnitOfWork) -> bool:
            return (await uow.session.execute(select(Enterprise.id).limit(1))).first() is None

        if not await db.read(empty):
            hint = f" (keys are in {KEYS_FILE})" if KEYS_FILE.exists() else ""
            return [f"demo: database already has data; nothing seeded{hint}"]
        await reg.bootstrap()
        now = clock.now()

        async def principals(uow: UnitOfWork) -> dict[str, tuple[int, int, str]]:
            org = await create_organisation(uow.session, "江西省生态环境厅", "regulator", now)
            out = {}
            for name in ("regulator", "regulator-2"):
                p, key = await create_api_key(
                    uow.session, organisation_id=org.id or 0, role=Role.REGULATOR, label=f"demo {name}", now=now
                )
                out[name] = (p.id or 0, org.id or 0, key)
            ap, akey = await create_api_key(
                uow.session, organisation_id=org.id or 0, role=Role.AUDITOR, label="demo auditor", now=now
            )
            out["auditor"] = (ap.id or 0, org.id or 0, akey)
            bank = await create_organisation(uow.session, BANK, "bank", now)
            bp, bkey = await create_api_key(
                uow.session, organisation_id=bank.id or 0, role=Role.BANK, label="demo settlement bank", now=now
            )
            out["bank"] = (bp.id or 0, bank.id or 0, bkey)
            return out

        keys = await db.run(principals)
        r1 = Identity(keys["regulator"][0], keys["regulator"][1], Role.REGULATOR, "demo regulator")
        r2 = Identity(keys["regulator-2"][0], keys["regulator-2"][1], Role.REGULATOR, "demo regulator 2")
        alloc = await reg.open_account(r1, s.OpenAccount(type="allocation", label="省级配额分配账户"))
        tx = await reg.issue_units(
            r1, s.IssueUnits(kind="cea", scheme="national", vintage=2025, quantity="100000"), None
        )
        await reg.approve_transfer(r2, tx.id, s.Decision(decision="approve"))
        accounts = []
        for uscc, name, city, industry in (POWER, CEMENT):
            ent = await reg.create_enterprise(
                r1, s.CreateEnterprise(uscc=uscc, name=name, city=city, industry_code=industry, is_key_emitter=True)
            )
            acc = await reg.open_account(
                r1, s.OpenAccount(type="holding", enterprise_id=ent.id, label=f"{name} 持有账户")
            )

            async def emitter_key(
                uow: UnitOfWork, org_id: int = ent.organisation_id, label: str = name
            ) -> tuple[int, int, str]:
                p, key = await create_api_key(
                    uow.session, organisation_id=org_id, role=Role.EMITTER, label=f"demo {label}", now=now
                )
                return (p.id or 0, org_id, key)

            keys[uscc] = await db.run(emitter_key)
            accounts.append((uscc, name, acc.id))
        await reg.allocate_units(
            r1,
            s.AllocateUnits(
                to_account_id=accounts[0][2], instrument_id=tx.instrument_id, quantity="60000", from_account_id=alloc.id
            ),
            None,
        )
        await reg.allocate_units(
            r1,
            s.AllocateUnits(
                to_account_id=accounts[1][2], instrument_id=tx.instrument_id, quantity="30000", from_account_id=alloc.id
            ),
            None,
        )

        people = await db.run(demo_people, keys, now)
        market = await seed_market(db, clock, reg, r1, tx.instrument_id, keys)

        async def trust(uow: UnitOfWork) -> None:
            # Demo data: the mutual trust is seeded as already in force, skipping the four-working-day wait.
            (_, _, a), (_, _, b) = accounts
            for x, y in ((a, b), (b, a)):
                uow.session.add(
                    TrustedAccount(
                        account_id=x,
                        trusted_account_id=y,
                        added_by=r1.principal_id,
                        effective_from=now - dt.timedelta(days=7),
                    )
                )
            uow.audit(r1.actor, "demo.trust", "account", str(a), {"pair": [a, b]})

        await db.run(trust)
        lines = [
            "demo seeded: 100000 t of 2025 national allowances (instrument "
            f"{tx.instrument_id}, {tx.instrument_code}) issued into allocation account {alloc.id}",
            f"  regulator key:    {keys['regulator'][2]}",
            f"  regulator-2 key:  {keys['regulator-2'][2]}   (the second person for four-eyes approvals)",
            f"  auditor key:      {keys['auditor'][2]}",
        ]
        for uscc, name, acc_id in accounts:
            lines.append(f"  {name} ({uscc}) holding account {acc_id}, emitter key: {keys[uscc][2]}")
        lines.append(
            f"  market {market.id}: {tx.instrument_code}, {market.mode}, reference price {REFERENCE_PRICE} 元/t; "
            f"fund deposits confirmed by {BANK}: "
            + ", ".join(f"{name} {figures.yuan(DEPOSITS_FEN[uscc], unit=True)}" for uscc, name, _ in accounts)
        )
        lines.append(f"  bank key:         {keys['bank'][2]}   ({BANK}, organisation {keys['bank'][1]})")
        lines.append("people who sign in at http://127.0.0.1:8000/ (username / password):")
        for username, role, password in people:
            lines.append(f"  {username:<18} {password}   {role}")
        KEYS_FILE.parent.mkdir(parents=True, exist_ok=True)
        KEYS_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.chmod(KEYS_FILE, 0o600)
        return lines
    finally:
        await db.dispose()


async def seed_market(
    db: Database,
    clock: SystemClock,
    reg: RegistryService,
    regulator: Identity,
    instrument_id: int,
    keys: dict[str, tuple[int, int, str]],
) -> ts.MarketOut:
    """A continuous market for the demo's allowances and each emitter's money at the settlement bank: a deposit
    announced by the emitter and confirmed by the bank, as every deposit is (trading/funds.py)."""
    trading = TradingService(db, clock, reg)
    market = await trading.create_market(
        regulator,
        ts.CreateMarket(instrument_id=instrument_id, mode="continuous", reference_price=REFERENCE_PRICE),
        None,
    )
    bank_principal, bank_org, _ = keys["bank"]
    bank = Identity(bank_principal, bank_org, Role.BANK, "demo settlement bank")
    for uscc, amount_fen in DEPOSITS_FEN.items():
        principal_id, org_id, _ = keys[uscc]
        emitter = Identity(principal_id, org_id, Role.EMITTER, f"demo emitter {uscc}")
        deposit = await trading.request_fund_movement(
            emitter,
            "deposit",
            ts.FundRequest(amount=figures.yuan_plain(amount_fen), reference="demo opening deposit"),
            None,
        )
        await trading.decide_fund_movement(
            bank, deposit.id, ts.FundDecision(decision="confirm", reference="demo: funds received")
        )
    return market
