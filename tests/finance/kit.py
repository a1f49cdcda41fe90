"""Builders for finance scenarios through the API: the finance bureau (two reviewers, two approvers), a bank,
an auditor, enterprises with emitter keys, a funded budget, and first-set claims moved to a given state."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

from pypdf import PdfReader

from core.db import UnitOfWork
from core.identity import Role, create_organisation
from tests.helpers import enterprise

BASE = "/api/v1/finance"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))

# The worked example of domain.md section 6: insured 50,000,000 at 4 % → premium capped at 3 % = 1,500,000 →
# compensation 80 % = 1,200,000 yuan (2025 regime: also at most the premium paid, 2,000,000). The policy year is
# derived from the first-insurance day: a policy first insured on 2024-06-01 is in its year 2 on the test clock's
# 2026-03-02 (year 3 from 2026-06-01), within the 3 years compensated.
FS_FACTS: dict[str, Any] = {
    "fs_catalogue_code": "FS2019-01",
    "fs_first_insured_on": "2024-06-01",
    "fs_insured_value_fen": 50_000_000_00,
    "fs_premium_rate_bp": 400,
    "fs_premium_paid_fen": 2_000_000_00,
}
FS_AMOUNT_FEN = 1_200_000_00


def at(day: str, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), SHANGHAI)


async def org(env: Any, name: str, kind: str) -> int:
    async def work(uow: UnitOfWork) -> int:
        return (await create_organisation(uow.session, name, kind, env.clock.now())).id or 0

    return await env.db.run(work)  # type: ignore[no-any-return]


@dataclass
class FW:
    """A finance world."""

    env: Any
    regulator: str
    reviewer: str
    reviewer2: str
    approver: str
    approver2: str
    auditor: str
    bank: str
    bank_org: int
    ents: list[dict[str, Any]]


async def finance_world(env: Any, n_enterprises: int = 2) -> FW:
    reg_org = await org(env, "江西省生态环境厅", "regulator")
    regulator = await env.key(Role.REGULATOR, reg_org)
    bureau = await org(env, "江西省财政厅", "finance")
    bank_org = await org(env, "中国银行江西省分行", "bank")
    ents = [await enterprise(env, regulator, f"南昌装备{i}") for i in range(n_enterprises)]
    return FW(
        env=env,
        regulator=regulator,
        reviewer=await env.key(Role.FINANCE_REVIEWER, bureau),
        reviewer2=await env.key(Role.FINANCE_REVIEWER, bureau),
        approver=await env.key(Role.FINANCE_APPROVER, bureau),
        approver2=await env.key(Role.FINANCE_APPROVER, bureau),
        auditor=await env.key(Role.AUDITOR, name="江西省审计厅"),
        bank=await env.key(Role.BANK, bank_org),
        bank_org=bank_org,
        ents=ents,
    )


async def budget(fw: FW, amount_yuan: str, programme: str = "first_set_insurance", year: int = 2026) -> dict[str, Any]:
    r = await fw.env.post(f"{BASE}/budgets", fw.approver, {"programme": programme, "fiscal_year": year})
    assert r.status_code == 201, r.text
    b = r.json()
    r = await fw.env.post(f"{BASE}/budgets/{b['id']}/appropriations", fw.approver, {"amount_yuan": amount_yuan})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def claim_body(ent: dict[str, Any], project: str = "P-1", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "enterprise_id": ent["id"],
        "programme": "first_set_insurance",
        "project_ref": project,
        "period": "2025",
        "facts": dict(FS_FACTS),
        "payee_bank": "中国银行南昌分行",
        "payee_account_no": "6217 0000 0000 0001",
    }
    body.update(over)
    return body


async def submit(fw: FW, ent: dict[str, Any], project: str = "P-1", **over: Any) -> dict[str, Any]:
    r = await fw.env.post(f"{BASE}/claims", ent["key"], claim_body(ent, project, **over))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def act(fw: FW, key: str, claim_id: int, step: str, body: dict[str, Any] | None = None, status: int = 200) -> Any:
    r = await fw.env.post(f"{BASE}/claims/{claim_id}/{step}", key, body if body is not None else {})
    assert r.status_code == status, (step, r.status_code, r.text)
    return r.json()


async def to_reviewed(fw: FW, ent: dict[str, Any], project: str = "P-1") -> dict[str, Any]:
    c = await submit(fw, ent, project)
    await act(fw, fw.reviewer, c["id"], "formal-check", {"passed": True})
    return await act(fw, fw.reviewer2, c["id"], "review", {})  # type: ignore[no-any-return]


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


async def get_claim(fw: FW, claim_id: int, key: str | None = None) -> dict[str, Any]:
    r = await fw.env.get(f"{BASE}/claims/{claim_id}", key or fw.auditor)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]
