"""Scenarios: a province-year of actors kept as data files (`server/scenarios/<name>/*.yaml`) and loaded into an
empty database through the services, as `greenrights demo --scenario <name>` does (the small default demo is
`server/demo.py`).

The Jiangxi scenario (`scenarios/jiangxi/`): the 11 prefecture-level cities, the authorities, three settlement
banks and a market maker, 150+ key emitters in seven sectors and 20 wind and solar farms, each with a synthetic but
valid unified social credit code registered in its city; the year's national allowances (pre-allocation), the
energy-use rights of the high-energy users, discharge permits for the plants that hold them and a month of green
power certificates for each farm; markets; opening deposits in every fund account, confirmed by the enterprise's
bank; the finance bureau's programme budgets; staff users for every role. How each figure was made is at the top
of each data file.

Loading is what the services do for anyone: each issuance is proposed by one key of its issuer and approved by a
second (four-eyes), allocations move what was issued from the issuer's allocation account, deposits credit
nothing until the bank confirms them, budgets are created and appropriated by the finance approver. Every unit
issued is allocated, so the registry reconciles afterwards (`greenrights audit reconcile`). API keys (one per
enterprise, one or two per authority, one per bank) and the staff's passwords are written once to a 0600 file
under var/ and never printed.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from stdnum.cn import uscc as uscc_std

from core import figures
from core.db import Database, UnitOfWork
from core.identity import Identity, Role, create_api_key, create_organisation, create_user
from registry import schemas as rs
from registry.models import Enterprise
from trading import schemas as ts

SCENARIOS_DIR = Path(__file__).with_name("scenarios")
POLLUTANTS = ("COD", "NH3-N", "SO2", "NOx")


def keys_file(name: str) -> Path:
    return Path("var") / f"scenario-{name}-keys.txt"


def available() -> list[str]:
    """The scenarios shipped with the package (a folder with a scenario.yaml)."""
    return sorted(p.parent.name for p in SCENARIOS_DIR.glob("*/scenario.yaml"))


# ---------------------------------------------------------------------------------------------------- the files
@dataclass(frozen=True)
class Emitter:
    uscc: str
    name: str
    city: str
    sector: str
    industry_code: str
    capacity: int | float
    capacity_unit: str
    emissions_t: int
    cea_pre_allocation_t: int
    bank: str
    deposit_yuan: int
    energy_tce: int | None = None
    energy_use_allocation_tce: int | None = None
    permits_t: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Farm:
    uscc: str
    name: str
    city: str
    industry_code: str
    technology: str
    generator: str
    capacity_mw: int
    annual_mwh: int
    bank: str

    @property
    def monthly_mwh(self) -> int:
        return self.annual_mwh // 12


@dataclass(frozen=True)
class MarketMaker:
    """The market maker's enterprise (not a key emitter): units are held only in an enterprise's account."""

    uscc: str
    name: str
    city: str
    industry_code: str
    bank: str
    deposit_yuan: int


@dataclass(frozen=True)
class Scenario:
    name: str
    year: int
    cities: dict[str, str]  # name -> GB/T 2260 code
    sectors: dict[str, dict[str, Any]]
    authorities: list[dict[str, Any]]
    banks: dict[str, str]  # code -> name
    member_deposit: dict[str, Any]
    staff: list[dict[str, str]]
    instruments: dict[str, Any]
    markets: list[dict[str, str]]
    budgets: list[dict[str, Any]]
    emitters: list[Emitter]
    farms: list[Farm]
    market_maker: MarketMaker | None = None

    @property
    def gec_months(self) -> list[str]:
        return list(self.instruments["gec"]["production_months"])

    def permit_total_t(self, pollutant: str) -> int:
        return sum(e.permits_t.get(pollutant, 0) for e in self.emitters)


_EMITTER_KEYS = {f for f in Emitter.__dataclass_fields__}
_FARM_KEYS = {f for f in Farm.__dataclass_fields__}


def read_scenario(name: str, enterprises: int | None = None) -> Scenario:
    """The scenario's three files, parsed; `problems(scenario)` says what is wrong with them. `enterprises`: keep only
    the first N emitters in file order (and every farm, bank and authority), e.g. for a quick simulated year; staff
    users of the emitters left out are left out too."""
    folder = SCENARIOS_DIR / name
    if not (folder / "scenario.yaml").is_file():
        raise ValueError(f"no scenario {name!r}; shipped: {', '.join(available())}")
    head = yaml.safe_load((folder / "scenario.yaml").read_text(encoding="utf-8"))
    emitters = yaml.safe_load((folder / "emitters.yaml").read_text(encoding="utf-8"))["emitters"]
    farms = yaml.safe_load((folder / "renewables.yaml").read_text(encoding="utf-8"))["farms"]
    if enterprises is not None:
        if enterprises < 1:
            raise ValueError("keep at least one emitter")
        emitters = emitters[:enterprises]
    kept = {row["uscc"] for row in emitters} | {row["uscc"] for row in farms}
    mm = head.get("market_maker")
    if mm:
        kept.add(mm["uscc"])
    staff = [
        s
        for s in head["staff"]
        if not s["organisation"].startswith("enterprise:") or s["organisation"].partition(":")[2] in kept
    ]
    return Scenario(
        name=head["name"],
        year=int(head["year"]),
        cities={c["name"]: str(c["code"]) for c in head["cities"]},
        sectors=head["sectors"],
        authorities=head["authorities"],
        banks={b["code"]: b["name"] for b in head["banks"]},
        member_deposit=head["member_deposit"],
        staff=staff,
        instruments=head["instruments"],
        markets=head["markets"],
        budgets=head["budgets"],
        emitters=[Emitter(**{k: v for k, v in row.items() if k in _EMITTER_KEYS}) for row in emitters],
        farms=[Farm(**{k: v for k, v in row.items() if k in _FARM_KEYS}) for row in farms],
        market_maker=MarketMaker(**mm) if mm else None,
    )


def _mm(sc: Scenario) -> list[MarketMaker]:
    return [sc.market_maker] if sc.market_maker else []


def problems(sc: Scenario) -> list[str]:
    """Every inconsistency in the files (empty when they load): codes valid (stdnum) and unique, each code's
    division in its enterprise's city, known cities, sectors, industry classes, banks and staff organisations,
    whole positive quantities."""
    out: list[str] = []
    enterprises: list[Emitter | Farm | MarketMaker] = [*sc.emitters, *sc.farms, *_mm(sc)]
    seen: Counter[str] = Counter(e.uscc for e in enterprises)
    out += [f"{code}: used {n} times" for code, n in seen.items() if n > 1]
    for e in enterprises:
        if not uscc_std.is_valid(e.uscc) or e.uscc != uscc_std.compact(e.uscc):
            out.append(f"{e.uscc}: not a valid unified social credit code")
        if e.city not in sc.cities:
            out.append(f"{e.uscc}: unknown city {e.city}")
        elif e.uscc[2:6] != sc.cities[e.city][:4]:
            out.append(f"{e.uscc}: division {e.uscc[2:8]} is not in {e.city} ({sc.cities[e.city]})")
        if e.bank not in sc.banks:
            out.append(f"{e.uscc}: unknown bank {e.bank}")
    for em in sc.emitters:
        sector = sc.sectors.get(em.sector)
        if sector is None:
            out.append(f"{em.uscc}: unknown sector {em.sector}")
        elif em.industry_code not in sector["industry_codes"]:
            out.append(f"{em.uscc}: industry {em.industry_code} is not one of {em.sector}'s")
        if em.cea_pre_allocation_t <= 0 or em.emissions_t <= 0 or em.deposit_yuan < 0:
            out.append(f"{em.uscc}: emissions, allocation and deposit must be positive whole numbers")
        if (em.energy_tce is None) != (em.energy_use_allocation_tce is None):
            out.append(f"{em.uscc}: give both energy_tce and energy_use_allocation_tce, or neither")
        out += [f"{em.uscc}: unknown pollutant {p}" for p in em.permits_t if p not in POLLUTANTS]
        out += [f"{em.uscc}: permit {p} must be positive" for p, t in em.permits_t.items() if t <= 0]
    for f in sc.farms:
        if f.monthly_mwh <= 0:
            out.append(f"{f.uscc}: annual_mwh too small for a month's certificates")
    codes = {e.uscc for e in enterprises}
    roles = {a["role"] for a in sc.authorities}
    for person in sc.staff:
        kind, _, ref = person["organisation"].partition(":")
        if (
            (kind == "bank" and ref not in sc.banks)
            or (kind == "enterprise" and ref not in codes)
            or (kind not in ("bank", "enterprise") and kind not in roles)
        ):
            out.append(f"staff {person['username']}: unknown organisation {person['organisation']}")
    missing = {r.value for r in Role} - {p["role"] for p in sc.staff}
    if missing:
        out.append(f"staff: no user for roles {', '.join(sorted(missing))}")
    return out


# ---------------------------------------------------------------------------------------------------- loading
@dataclass
class Loaded:
    """What a load made: its identities (for a caller that goes on, e.g. a simulation), accounts, instruments and
    counts, and the secrets' lines as written to the keys file."""

    who: dict[str, list[Identity]] = field(default_factory=dict)  # authority role / bank code -> identities
    enterprise_ids: dict[str, Identity] = field(default_factory=dict)  # USCC -> its emitter key's identity
    accounts: dict[str, int] = field(default_factory=dict)  # USCC -> holding account id
    instruments: dict[str, int] = field(default_factory=dict)  # "cea", "energy_use", "discharge:SO2", GEC code
    counts: Counter[str] = field(default_factory=Counter)
    secrets: list[str] = field(default_factory=list)


async def is_empty(db: Database) -> bool:
    async def work(uow: UnitOfWork) -> bool:
        return (await uow.session.execute(select(Enterprise.id).limit(1))).first() is None

    return await db.read(work)


async def load(services: dict[str, Any], sc: Scenario) -> Loaded:
    """Load `sc` into the (empty, bootstrapped) database of `services` (`server.services.build_services`)."""
    db: Database = services["db"]
    reg, trading, finance = services["registry"], services["trading"], services["finance"]
    now = services["clock"].now()
    out = Loaded()
    await _principals(db, sc, now, out)
    r1, r2 = out.who["regulator"]
    e1, e2 = out.who["energy_authority"]
    g1, g2 = out.who["gec_issuer"]
    alloc = {
        "regulator": (await reg.open_account(r1, rs.OpenAccount(type="allocation", label="省级配额分配账户"))).id,
        "energy_authority": (
            await reg.open_account(e1, rs.OpenAccount(type="allocation", label="省用能权分配账户"))
        ).id,
    }

    for em in sc.emitters:
        await _enterprise(reg, r1, em.uscc, em.name, em.city, em.industry_code, out, key_emitter=True)
    others: list[Farm | MarketMaker] = [*sc.farms, *_mm(sc)]
    for f in others:
        await _enterprise(reg, r1, f.uscc, f.name, f.city, f.industry_code, out, key_emitter=False)
    await _enterprise_keys(db, sc, now, out)

    async def issue(first: Identity, second: Identity, req: rs.IssueUnits) -> int:
        tx = await reg.issue_units(first, req, None)
        await reg.approve_transfer(second, tx.id, rs.Decision(decision="approve"))
        out.counts["issuances"] += 1
        return int(tx.instrument_id)

    async def allocate(who: Identity, label: str, inst: int, source: int, shares: list[tuple[str, int]]) -> None:
        total = sum(q for _, q in shares)
        out.instruments[label] = inst
        out.counts[f"units:{label}"] = total
        for code, quantity in shares:
            req = rs.AllocateUnits(
                to_account_id=out.accounts[code], instrument_id=inst, quantity=str(quantity), from_account_id=source
            )
            await reg.allocate_units(who, req, None)
            out.counts["allocations"] += 1

    cea = sc.instruments["cea"]
    shares = [(e.uscc, e.cea_pre_allocation_t) for e in sc.emitters]
    req = rs.IssueUnits(
        kind="cea", scheme=cea["scheme"], vintage=cea["vintage"], quantity=str(sum(q for _, q in shares))
    )
    await allocate(r1, "cea", await issue(r1, r2, req), alloc["regulator"], shares)

    eur = sc.instruments["energy_use"]
    shares = [(e.uscc, e.energy_use_allocation_tce) for e in sc.emitters if e.energy_use_allocation_tce]
    if shares:  # a reduced scenario (`read_scenario(enterprises=N)`) may keep no high-energy user
        req = rs.IssueUnits(
            kind="energy_use", region=eur["region"], vintage=eur["vintage"], quantity=str(sum(q for _, q in shares))
        )
        await allocate(e1, "energy_use", await issue(e1, e2, req), alloc["energy_authority"], shares)

    edp = sc.instruments["discharge"]
    for pollutant in edp["pollutants"]:
        shares = [(e.uscc, e.permits_t[pollutant]) for e in sc.emitters if pollutant in e.permits_t]
        if not shares:
            continue
        req = rs.IssueUnits(
            kind="discharge",
            pollutant=pollutant,
            region=edp["region"],
            vintage=edp["vintage"],
            quantity=str(sum(q for _, q in shares)),
        )
        await allocate(r1, f"discharge:{pollutant}", await issue(r1, r2, req), alloc["regulator"], shares)

    for month in sc.gec_months:
        for f in sc.farms:
            req = rs.IssueUnits(
                kind="gec",
                technology=f.technology,
                production_month=month,
                generator=f.generator,
                quantity=str(f.monthly_mwh),
                to_account_id=out.accounts[f.uscc],
            )
            inst = await issue(g1, g2, req)
            out.instruments[f"gec:{f.generator}:{month}"] = inst
            out.counts["units:gec"] += f.monthly_mwh

    for m in sc.markets:
        if m["instrument"] not in out.instruments:
            continue  # nothing of it was issued (a reduced scenario)
        inst = out.instruments[m["instrument"]]
        issuer = r1 if m["instrument"] == "cea" or m["instrument"].startswith("discharge:") else e1
        req_m = ts.CreateMarket(instrument_id=inst, mode=m["mode"], reference_price=m["reference_price"])
        await trading.create_market(issuer, req_m, None)
        out.counts["markets"] += 1

    depositors: list[Emitter | MarketMaker] = [*sc.emitters, *_mm(sc)]
    deposits = [(out.enterprise_ids[e.uscc], e.bank, e.deposit_yuan) for e in depositors if e.deposit_yuan > 0]
    member = out.who["member"][0]
    deposits.append((member, sc.member_deposit["bank"], int(sc.member_deposit["amount_yuan"])))
    for who, bank, amount in deposits:
        bank_who = out.who[f"bank:{bank}"][0]
        fund_req = ts.FundRequest(
            amount=str(amount), reference=f"开户入金 {sc.name}", bank_organisation_id=bank_who.organisation_id
        )
        mv = await trading.request_fund_movement(who, "deposit", fund_req, None)
        await trading.decide_fund_movement(bank_who, mv.id, ts.FundDecision(decision="confirm"))
        out.counts["deposits"] += 1
        out.counts["deposit_fen"] += amount * 100

    await _budgets(finance, out.who["finance_approver"][0], sc, out)
    await _staff(db, sc, now, out)
    return out


async def _principals(db: Database, sc: Scenario, now: dt.datetime, out: Loaded) -> None:
    """The authorities', the banks' and the member's organisations and their API keys, in one unit of work."""

    async def work(uow: UnitOfWork) -> None:
        orgs: dict[tuple[str, str], int] = {}

        async def org(name: str, kind: str) -> int:
            if (name, kind) not in orgs:
                orgs[(name, kind)] = (await create_organisation(uow.session, name, kind, now)).id or 0
            return orgs[(name, kind)]

        made: list[tuple[str, Role, int, str]] = []
        for a in sc.authorities:
            role = Role(a["role"])
            kind = "finance" if role in (Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER) else role.value
            org_id = await org(a["name"], kind)
            made += [(a["role"], role, org_id, f"{a['name']} #{n + 1}") for n in range(int(a["keys"]))]
        for code, name in sc.banks.items():
            made.append((f"bank:{code}", Role.BANK, await org(name, "bank"), name))
        for slot, role, org_id, label in made:
            p, key = await create_api_key(
                uow.session, organisation_id=org_id, role=role, label=f"scenario {label}", now=now
            )
            out.who.setdefault(slot, []).append(Identity(p.id or 0, org_id, role, label))
            out.secrets.append(f"apikey\t{role.value}\t{label}\torganisation {org_id}\t{key}")
        uow.audit("operator:cli", "scenario.principals", "scenario", sc.name, {"keys": len(made)})

    await db.run(work)


async def _enterprise(
    reg: Any, r1: Identity, code: str, name: str, city: str, industry: str, out: Loaded, *, key_emitter: bool
) -> None:
    req = rs.CreateEnterprise(uscc=code, name=name, city=city, industry_code=industry, is_key_emitter=key_emitter)
    ent = await reg.create_enterprise(r1, req)
    acc = await reg.open_account(r1, rs.OpenAccount(type="holding", enterprise_id=ent.id, label=f"{name} 持有账户"))
    out.accounts[code] = acc.id
    out.enterprise_ids[code] = Identity(0, ent.organisation_id, Role.EMITTER, name)
    out.counts["enterprises"] += 1
    out.counts["key_emitters"] += key_emitter


async def _enterprise_keys(db: Database, sc: Scenario, now: dt.datetime, out: Loaded) -> None:
    """One emitter key per enterprise, in one unit of work."""

    async def work(uow: UnitOfWork) -> None:
        enterprises: list[Emitter | Farm | MarketMaker] = [*sc.emitters, *sc.farms, *_mm(sc)]
        for e in enterprises:
            who = out.enterprise_ids[e.uscc]
            p, key = await create_api_key(
                uow.session, organisation_id=who.organisation_id, role=Role.EMITTER, label=f"scenario {e.name}", now=now
            )
            out.enterprise_ids[e.uscc] = Identity(p.id or 0, who.organisation_id, Role.EMITTER, e.name)
            out.secrets.append(f"apikey\temitter\t{e.uscc} {e.name}\taccount {out.accounts[e.uscc]}\t{key}")
        uow.audit("operator:cli", "scenario.enterprise_keys", "scenario", sc.name, {"keys": len(out.enterprise_ids)})

    await db.run(work)


async def _budgets(finance: Any, approver: Identity, sc: Scenario, out: Loaded) -> None:
    from finance import budgets
    from finance import schemas as fs

    for b in sc.budgets:
        made = await budgets.create_budget(
            finance.ctx,
            approver,
            fs.CreateBudget(programme=b["programme"], fiscal_year=b["fiscal_year"], name=b["name"]),
        )
        req = fs.Appropriate(amount_yuan=str(b["amount_yuan"]), reference=f"{sc.name} {b['fiscal_year']} 预算")
        await budgets.appropriate_budget(finance.ctx, approver, made.id, req, f"scenario:{sc.name}:budget:{made.id}")
        out.counts["budgets"] += 1
        out.counts["budget_fen"] += int(b["amount_yuan"]) * 100


async def _staff(db: Database, sc: Scenario, now: dt.datetime, out: Loaded) -> None:
    """Staff users with random passwords (shown once, in the keys file), in one unit of work."""

    async def work(uow: UnitOfWork) -> None:
        orgs = {w[0].role.value if not slot.startswith("bank:") else slot: w[0].organisation_id
                for slot, w in out.who.items()}  # fmt: skip
        for person in sc.staff:
            kind, _, ref = person["organisation"].partition(":")
            org_id = out.enterprise_ids[ref].organisation_id if kind == "enterprise" else orgs[person["organisation"]]
            password = secrets.token_urlsafe(12)
            p = await create_user(
                uow.session,
                organisation_id=org_id,
                role=Role(person["role"]),
                username=person["username"],
                password=password,
                now=now,
            )
            uow.audit("operator:cli", "user.create", "principal", str(p.id), {"role": person["role"]})
            out.secrets.append(f"user\t{person['role']}\t{person['username']}\torganisation {org_id}\t{password}")
            out.counts["users"] += 1

    await db.run(work)


def summary(sc: Scenario, loaded: Loaded, path: Path) -> list[str]:
    c = loaded.counts
    q = figures.quantity
    by_sector = Counter(e.sector for e in sc.emitters)
    return [
        f"scenario {sc.name} {sc.year} loaded: {c['enterprises']} enterprises in {len(sc.cities)} cities "
        f"({c['key_emitters']} key emitters, {len(sc.farms)} wind and solar farms"
        + (", the market maker's company)" if sc.market_maker else ")"),
        "  sectors: " + ", ".join(f"{sc.sectors[s]['label']} {n}" for s, n in sorted(by_sector.items())),
        f"  allowances {q(c['units:cea'])} t, energy-use rights {q(c['units:energy_use'])} tce, green certificates "
        f"{q(c['units:gec'])} MWh; discharge permits "
        + ", ".join(f"{p} {q(c['units:discharge:' + p])} t" for p in sc.instruments["discharge"]["pollutants"]),
        f"  {c['issuances']} issuances (each approved by a second person), {c['allocations']} allocations, "
        f"{c['markets']} markets",
        f"  {c['deposits']} deposits confirmed by {len(sc.banks)} banks ({figures.yuan(c['deposit_fen'], unit=True)}); "
        f"{c['budgets']} budgets ({figures.yuan(c['budget_fen'], unit=True)}); {c['users']} staff users",
        f"  API keys and passwords (shown nowhere else): {path}",
    ]


def write_secrets(path: Path, sc: Scenario, loaded: Loaded) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 before anything is written, so the secrets are never readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.chmod(path, 0o600)
    head = f"# greenrights scenario {sc.name}: API keys and staff passwords, shown once. Tab-separated columns:\n"
    head += "# kind\trole\twho\taccount or organisation\tsecret\n"
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(head + "\n".join(loaded.secrets) + "\n")


async def seed_scenario(
    name: str, database_url: str | None = None, path: Path | None = None, enterprises: int | None = None
) -> tuple[Loaded | None, list[str]]:
    """`greenrights demo --scenario NAME`: what was loaded (None when nothing was) and the lines to print. Refuses
    a database that has enterprises already (the demo's, or an earlier load's), changing nothing. `enterprises`:
    only the first N emitters (`read_scenario`)."""
    from core.audit import make_flusher
    from core.clock import SystemClock
    from core.settings import get_settings
    from server.services import build_services

    sc = read_scenario(name, enterprises)
    wrong = problems(sc)
    if wrong:
        return None, [f"scenario {name}: the data files are inconsistent:", *(f"  {w}" for w in wrong)]
    path = path or keys_file(name)
    clock = SystemClock()
    db = Database(database_url or get_settings().database_url)
    db.audit_flusher = make_flusher(clock)
    try:
        if not await is_empty(db):
            hint = f" (keys of an earlier load are in {path})" if path.exists() else ""
            return None, [f"scenario {name}: database already has data; nothing loaded{hint}"]
        services = build_services(db, clock)
        await services["registry"].bootstrap()
        loaded = await load(services, sc)
        write_secrets(path, sc, loaded)
        return loaded, summary(sc, loaded, path)
    finally:
        await db.dispose()
