"""Builders for compliance scenarios through the API: an authority with two keys (four-eyes), a verifier, a
scheme and period, enterprises with holding accounts, allocation tables, verified reports and surrenders."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from core.db import UnitOfWork
from core.identity import Role, create_organisation
from tests.helpers import make_uscc

CLINKER = Fraction(538, 1000)
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
BASE = "/api/v1/compliance"


def clinker_for(target_t: int) -> str:
    """A clinker quantity (4 decimals) whose process emissions (× 0.538) round half up to exactly `target_t`."""
    q = Fraction(math.ceil(Fraction(target_t) / CLINKER * 10_000), 10_000)
    assert round(q * CLINKER) == target_t and abs(q * CLINKER - target_t) < Fraction(1, 2)
    return str(Decimal(q.numerator) / Decimal(q.denominator))


def carbon_lines(target_t: int) -> list[dict[str, str]]:
    return [{"line_type": "process", "item": "clinker", "quantity": clinker_for(target_t), "unit": "t"}]


def at(day: str, hour: int = 10) -> dt.datetime:
    """A Shanghai wall-clock instant, for moving the test clock."""
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), SHANGHAI)


@dataclass
class Authority:
    key: str
    key2: str
    org: int
    allocation_account: int


@dataclass
class CW:
    """A compliance world: the env, the authority, a verifier, the period and its instruments."""

    env: Any
    reg: Authority
    verifier: str
    scheme: dict[str, Any]
    period: dict[str, Any]
    cea: int
    instruments: dict[str, int] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return int(self.period["id"])

    @property
    def code(self) -> str:
        return str(self.period["code"])


async def authority(env: Any, role: Role = Role.REGULATOR, name: str = "江西省生态环境厅") -> Authority:
    async def org(uow: UnitOfWork) -> int:
        return (await create_organisation(uow.session, name, role.value, env.clock.now())).id or 0

    org_id = await env.db.run(org)
    k1, k2 = await env.key(role, org_id), await env.key(role, org_id)
    r = await env.post("/api/v1/accounts", k1, {"type": "allocation"})
    assert r.status_code == 201, r.text
    return Authority(k1, k2, org_id, r.json()["id"])


async def issue(env: Any, a: Authority, body: dict[str, Any]) -> int:
    """Issue units (four-eyes approved by the authority's second key); returns the instrument id."""
    r = await env.post("/api/v1/issuances", a.key, body)
    assert r.status_code == 201, r.text
    tx = r.json()
    r = await env.post(f"/api/v1/transactions/{tx['id']}/approval", a.key2, {"decision": "approve"})
    assert r.status_code == 200, r.text
    return int(tx["instrument_id"])


async def enterprise(env: Any, a: Authority, name: str = "测试企业", city: str = "南昌",
                     industry: str = "C3011") -> dict[str, Any]:
    r = await env.post("/api/v1/enterprises", a.key, {"uscc": make_uscc(), "name": name, "city": city,
                                                      "industry_code": industry, "is_key_emitter": True})
    assert r.status_code == 201, r.text
    ent = r.json()
    r = await env.post("/api/v1/accounts", a.key, {"type": "holding", "enterprise_id": ent["id"]})
    assert r.status_code == 201, r.text
    ent["account_id"] = r.json()["id"]
    ent["key"] = await env.key(Role.EMITTER, ent["organisation_id"])
    return ent


async def carbon_world(
    env: Any,
    *,
    year: int = 2025,
    overrides: dict[str, str] | None = None,
    issue_quantity: int = 10_000_000,
    vintages: list[int] | None = None,
    extra: dict[str, Any] | None = None,
    scheme_code: str = "CN-CEA",
) -> CW:
    """A national carbon scheme and period; allocation dates in the past unless `overrides` says otherwise."""
    reg = await authority(env)
    verifier = await env.key(Role.VERIFIER, name="江西省核查中心")
    cea = await issue(env, reg, {"kind": "cea", "scheme": "national", "vintage": year, "quantity": str(issue_quantity)})
    r = await env.post(f"{BASE}/schemes", reg.key, {"code": scheme_code, "name": "全国碳排放权交易", "kind": "carbon",
                                                    "cea_scheme": "national"})
    assert r.status_code == 201, r.text
    scheme = r.json()
    body: dict[str, Any] = {
        "scheme_id": scheme["id"], "year": year,
        "overrides": overrides if overrides is not None else {"pre_allocation": "2026-02-01",
                                                              "allocation": "2026-02-15"},
        **(extra or {}),
    }
    if vintages is not None:
        body["eligible_vintages"] = vintages
    r = await env.post(f"{BASE}/periods", reg.key, body)
    assert r.status_code == 201, r.text
    return CW(env, reg, verifier, scheme, r.json(), cea)


async def allocate_table(cw: CW, lines: list[dict[str, Any]], *, kind: str = "allocation",
                         instrument: int | None = None, approve: bool = True) -> dict[str, Any]:
    env = cw.env
    r = await env.post(f"{BASE}/periods/{cw.pid}/allocation-tables", cw.reg.key,
                       {"kind": kind, "instrument_id": instrument or cw.cea, "lines": lines})
    assert r.status_code == 201, r.text
    table = r.json()
    if approve:
        r = await env.post(f"{BASE}/allocation-tables/{table['id']}/approval", cw.reg.key2, {"decision": "approve"})
        assert r.status_code == 200, r.text
        table = r.json()
    return table  # type: ignore[no-any-return]


async def report(cw: CW, ent: dict[str, Any], lines: list[dict[str, Any]], *, verify: bool = True) -> dict[str, Any]:
    env = cw.env
    r = await env.post(f"{BASE}/periods/{cw.pid}/reports", ent["key"], {"lines": lines})
    assert r.status_code == 201, r.text
    rep = r.json()
    if verify:
        r = await env.post(f"{BASE}/reports/{rep['id']}/verification", cw.verifier,
                           {"decision": "verify", "version": rep["current_version"]})
        assert r.status_code == 200, r.text
        rep = r.json()
    return rep  # type: ignore[no-any-return]


async def surrender(cw: CW, ent: dict[str, Any], quantity: int | str, instrument: int | None = None,
                    period: str | None = None) -> Any:
    return await cw.env.post("/api/v1/surrenders", ent["key"], {
        "account_id": ent["account_id"], "instrument_id": instrument or cw.cea, "quantity": str(quantity),
        "period": period or cw.code})


async def settle(cw: CW, *, dry_run: bool = False, key: str | None = None) -> Any:
    q = "?dry_run=true" if dry_run else ""
    return await cw.env.post(f"{BASE}/periods/{cw.pid}/settlement{q}", key or cw.reg.key, {})


async def results(cw: CW) -> dict[str, Any]:
    r = await cw.env.get(f"{BASE}/periods/{cw.pid}/results?limit=1000", cw.reg.key)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def by_enterprise(page: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {item["enterprise_id"]: item for item in page["items"]}


async def count(env: Any, sql: str, **params: Any) -> int:
    from sqlalchemy import text

    async def work(uow: UnitOfWork) -> int:
        return int((await uow.session.execute(text(sql), params)).scalar_one())

    return await env.db.read(work)  # type: ignore[no-any-return]


async def audited_settlements(env: Any) -> list[int]:
    """The obligation ids listed by every `compliance.settle` audit entry (one entry per batch), in chain order."""
    import json

    from sqlalchemy import text

    async def work(uow: UnitOfWork) -> list[int]:
        rows = await uow.session.execute(
            text("SELECT data FROM audit_entry WHERE action = 'compliance.settle' ORDER BY seq")
        )
        return [item[0] for (data,) in rows for item in json.loads(data)["results"]]

    return await env.db.read(work)  # type: ignore[no-any-return]
