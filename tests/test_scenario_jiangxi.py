"""The Jiangxi scenario (`greenrights demo --scenario jiangxi`): its data files are consistent (every unified social
credit code valid per python-stdnum and unique, registered in its enterprise's city; all 11 cities and 7
industries; 150+ key emitters), and loading them into an empty database through the services leaves a ledger that
reconciles as `greenrights audit reconcile` checks it, with the database's counts equal to the files'; a second
load is refused."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from stdnum.cn import uscc as stdnum_uscc

from core.clock import SystemClock
from core.db import Database, UnitOfWork
from core.identity import Role
from core.models import Organisation, Principal
from finance.models import FinanceBudget
from registry.enterprises import JIANGXI_CITIES
from registry.models import Enterprise
from registry.service import RegistryService
from server.cli import main
from server.scenario import Loaded, Scenario, problems, read_scenario, seed_scenario
from tests.conftest import BACKENDS, schema_database_url
from trading.circulation import reconcile_circulation
from trading.models import FundMovement, Market

# GB/T 2260 prefecture-level codes of Jiangxi, stated here independently of the data file.
CITY_CODES = {
    "南昌": "3601", "景德镇": "3602", "萍乡": "3603", "九江": "3604", "新余": "3605", "鹰潭": "3606",
    "赣州": "3607", "吉安": "3608", "宜春": "3609", "抚州": "3610", "上饶": "3611",
}  # fmt: skip
SECTORS = {"power", "steel", "cement", "ceramics", "copper", "petrochem", "paper"}


@pytest.fixture(scope="module")
def sc() -> Scenario:
    return read_scenario("jiangxi")


# ---------------------------------------------------------------------------------------------------- the files
def test_every_code_is_a_valid_uscc_per_stdnum_and_unique(sc: Scenario) -> None:
    codes = [e.uscc for e in sc.emitters] + [f.uscc for f in sc.farms] + [m.uscc for m in [sc.market_maker] if m]
    assert all(stdnum_uscc.validate(c) == c for c in codes)
    assert len(set(codes)) == len(codes)


def test_each_organisation_code_has_its_gb_11714_check_character(sc: Scenario) -> None:
    # Characters 9-17 of a USCC are the organisation code, whose last character checks the first eight (GB 11714:
    # weights 3 7 9 10 5 8 4 2, letters count A=10 ... Z=35; 11 - sum mod 11, with 10 written X and 11 written 0).
    assert sc.market_maker is not None
    for e in [*sc.emitters, *sc.farms, sc.market_maker]:
        body, check = e.uscc[8:16], e.uscc[16]
        c9 = 11 - sum(int(c, 36) * w for c, w in zip(body, (3, 7, 9, 10, 5, 8, 4, 2), strict=True)) % 11
        assert check == {10: "X", 11: "0"}.get(c9, str(c9)), e.uscc


def test_each_enterprise_is_registered_in_its_city(sc: Scenario) -> None:
    for e in [*sc.emitters, *sc.farms, *[m for m in [sc.market_maker] if m]]:
        assert e.uscc[2:6] == CITY_CODES[e.city], (e.uscc, e.city)
    assert {name: code[:4] for name, code in sc.cities.items()} == CITY_CODES


def test_all_eleven_cities_and_seven_industries_and_150_emitters(sc: Scenario) -> None:
    assert len(sc.emitters) >= 150
    assert {e.city for e in sc.emitters} == set(CITY_CODES) == set(JIANGXI_CITIES)
    assert {e.sector for e in sc.emitters} == SECTORS == set(sc.sectors)
    for e in sc.emitters:
        assert (
            re.fullmatch(r"[A-T][0-9]{4}", e.industry_code)
            and e.industry_code in sc.sectors[e.sector]["industry_codes"]
        ), e
    # The seven brief's classes are each used.
    assert {"D4411", "C3110", "C3011", "C3071", "C3211", "C2511", "C2221"} <= {e.industry_code for e in sc.emitters}


def test_figures_are_whole_and_of_key_emitter_size(sc: Scenario) -> None:
    for e in sc.emitters:
        assert isinstance(e.emissions_t, int) and e.emissions_t >= 26_000, e  # the national threshold
        assert e.cea_pre_allocation_t == e.emissions_t * 70 // 100
        if e.sector == "power":
            assert e.energy_use_allocation_tce is None and set(e.permits_t) == {"SO2", "NOx"}
        else:
            assert e.energy_tce is not None and e.energy_tce >= 10_000  # a key energy user
        assert all(isinstance(t, int) and t > 0 for t in e.permits_t.values())
    # A 2x660 MW plant emits millions of tonnes; a 5,000 t/d clinker line about 1.2-1.4 Mt.
    coal = [e for e in sc.emitters if e.industry_code == "D4411" and e.capacity == 1320]
    assert coal and all(4_000_000 <= e.emissions_t <= 7_000_000 for e in coal)
    lines = [e for e in sc.emitters if e.industry_code == "C3011" and e.capacity == 5000]
    assert lines and all(1_200_000 <= e.emissions_t <= 1_400_000 for e in lines)
    assert {f.technology for f in sc.farms} == {"wind", "solar"}


def test_the_files_say_they_are_synthetic_and_illustrative() -> None:
    folder = Path(read_scenario.__code__.co_filename).with_name("scenarios") / "jiangxi"
    for name in ("emitters.yaml", "renewables.yaml", "scenario.yaml"):
        head = (folder / name).read_text(encoding="utf-8")[:3000]
        assert "SYNTHETIC" in head, name
    assert "ILLUSTRATIVE" in (folder / "emitters.yaml").read_text(encoding="utf-8")[:6000]


def test_the_files_are_consistent_and_the_check_catches_a_bad_row(sc: Scenario) -> None:
    assert problems(sc) == []
    first = sc.emitters[0]
    bad_check = first.uscc[:-1] + ("0" if first.uscc[-1] != "0" else "1")
    elsewhere = next(c for c in sc.cities if c != first.city)
    broken = dataclasses.replace(
        sc,
        emitters=[
            dataclasses.replace(first, uscc=bad_check),
            dataclasses.replace(sc.emitters[1], city=elsewhere if sc.emitters[1].city != elsewhere else first.city),
            dataclasses.replace(sc.emitters[2], uscc=sc.emitters[3].uscc),
            *sc.emitters[3:],
        ],
        staff=[p for p in sc.staff if p["role"] != "auditor"],
    )
    found = "\n".join(problems(broken))
    assert f"{bad_check}: not a valid" in found
    assert f"{sc.emitters[1].uscc}: division" in found
    assert f"{sc.emitters[3].uscc}: used 2 times" in found
    assert "no user for roles auditor" in found


def test_an_unknown_scenario_is_refused_by_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scenario", "atlantis"]) == 2
    assert "no scenario 'atlantis'; shipped: jiangxi" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- loading
@dataclasses.dataclass
class Load:
    url: str
    db: Database
    loaded: Loaded
    lines: list[str]
    keys: Path


@pytest.fixture(scope="module", params=BACKENDS)
async def load(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Load]:
    tmp = tmp_path_factory.mktemp("scenario")
    url = schema_database_url(request.param, tmp)
    keys = tmp / "var" / "scenario-jiangxi-keys.txt"
    loaded, lines = await seed_scenario("jiangxi", url, keys)
    assert loaded is not None, lines
    db = Database(url)
    try:
        yield Load(url, db, loaded, lines, keys)
    finally:
        await db.dispose()


async def _read(db: Database, fn: Any) -> Any:
    async def work(uow: UnitOfWork) -> Any:
        return await fn(uow.session)

    return await db.read(work)


async def test_afterwards_audit_reconcile_is_clean(load: Load) -> None:
    report = await reconcile_circulation(load.db)
    assert report.ledger_differences == ()
    assert not report.mismatched
    assert report.ok
    assert report.transfers > 0 and len(report.units) >= 7  # CEA, energy use, four permits, GECs


async def test_enterprises_in_the_database_are_those_of_the_files(load: Load, sc: Scenario) -> None:
    async def rows(ses: Any) -> list[tuple[str, str, str, bool]]:
        q = select(Enterprise.uscc, Enterprise.city, Enterprise.industry_code, Enterprise.is_key_emitter)
        return [tuple(r) for r in (await ses.execute(q)).all()]

    got = sorted(await _read(load.db, rows))
    want = sorted(
        [(e.uscc, e.city, e.industry_code, True) for e in sc.emitters]
        + [(f.uscc, f.city, f.industry_code, False) for f in sc.farms]
        + [(m.uscc, m.city, m.industry_code, False) for m in [sc.market_maker] if m]
    )
    assert got == want


async def test_every_holding_equals_the_files(load: Load, sc: Scenario) -> None:
    reg = RegistryService(load.db, SystemClock())
    regulator = load.loaded.who["regulator"][0]
    held: dict[str, Counter[str]] = {}
    for code, account_id in load.loaded.accounts.items():
        held[code] = Counter(
            {h.instrument.code: h.balance_base for h in await reg.list_holdings(regulator, account_id)}
        )
    year = sc.year
    for e in sc.emitters:
        want = Counter({f"CEA-NATIONAL-{year}": e.cea_pre_allocation_t})
        if e.energy_use_allocation_tce:
            want[f"EUR-JX-{year}"] = e.energy_use_allocation_tce * 1000  # kgce
        for pollutant, t in e.permits_t.items():
            want[f"EDP-{pollutant}-JX-{year}"] = t * 1000  # kg
        assert held[e.uscc] == want, e.uscc
    for f in sc.farms:
        month = sc.gec_months[0].replace("-", "")
        assert held[f.uscc] == Counter({f"GEC-{f.technology.upper()}-{month}-{f.generator}-T": f.annual_mwh // 12})
    assert sc.market_maker is not None and held[sc.market_maker.uscc] == Counter()  # it buys before it sells


async def test_deposits_budgets_markets_and_people_equal_the_files(load: Load, sc: Scenario) -> None:
    async def figures(ses: Any) -> dict[str, Any]:
        moves = (
            await ses.execute(
                select(FundMovement.status, func.count(), func.sum(FundMovement.amount_fen)).group_by(
                    FundMovement.status
                )
            )
        ).all()
        budgets = {b.programme: b.id for b in (await ses.execute(select(FinanceBudget))).scalars()}
        markets = (await ses.execute(select(func.count()).select_from(Market))).scalar_one()
        users = Counter((await ses.execute(select(Principal.role).where(Principal.kind == "user"))).scalars().all())
        banks = set((await ses.execute(select(Organisation.name).where(Organisation.kind == "bank"))).scalars())
        return {"moves": {s: (n, total) for s, n, total in moves}, "budgets": budgets, "markets": markets,
                "users": users, "banks": banks}  # fmt: skip

    got = await _read(load.db, figures)
    deposits = [e.deposit_yuan for e in sc.emitters if e.deposit_yuan > 0] + [sc.member_deposit["amount_yuan"]]
    deposits += [m.deposit_yuan for m in [sc.market_maker] if m]
    assert got["moves"] == {"confirmed": (len(deposits), sum(deposits) * 100)}
    assert got["markets"] == len(sc.markets)
    assert got["banks"] == set(sc.banks.values())
    assert got["users"] == Counter(p["role"] for p in sc.staff)
    assert set(got["users"]) == {r.value for r in Role}
    assert set(got["budgets"]) == {b["programme"] for b in sc.budgets}

    from finance import budgets as fb
    from server.services import build_services

    services = build_services(load.db, SystemClock())
    approver = load.loaded.who["finance_approver"][0]
    for b in sc.budgets:
        out = await fb.get_budget(services["finance"].ctx, approver, got["budgets"][b["programme"]])
        assert (out.appropriated_fen, out.available_fen) == (b["amount_yuan"] * 100, b["amount_yuan"] * 100)


async def test_keys_are_written_once_to_a_private_file(load: Load, sc: Scenario) -> None:
    assert stat.S_IMODE(os.stat(load.keys).st_mode) == 0o600
    lines = [line.split("\t") for line in load.keys.read_text(encoding="utf-8").splitlines() if line[:1] != "#"]
    emitter_keys = {row[2].split()[0] for row in lines if row[0] == "apikey" and row[1] == "emitter"}
    assert emitter_keys == {e.uscc for e in sc.emitters} | {f.uscc for f in sc.farms} | {sc.market_maker.uscc}
    assert {row[2] for row in lines if row[0] == "user"} == {p["username"] for p in sc.staff}
    assert all(row[4].startswith("gr_") for row in lines if row[0] == "apikey")
    # The summary names the file and shows no secret.
    assert str(load.keys) in load.lines[-1]
    secrets = {row[4] for row in lines}
    assert not any(s in line for s in secrets for line in load.lines)


async def test_loading_twice_is_refused_and_changes_nothing(load: Load, tmp_path: Path) -> None:
    async def count(ses: Any) -> int:
        return int((await ses.execute(select(func.count()).select_from(Enterprise))).scalar_one())

    before = await _read(load.db, count)
    again, lines = await seed_scenario("jiangxi", load.url, tmp_path / "other-keys.txt")
    assert again is None
    assert "database already has data; nothing loaded" in lines[0]
    assert await _read(load.db, count) == before
    assert not (tmp_path / "other-keys.txt").exists()
