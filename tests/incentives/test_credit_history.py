"""The equipment credit's carry-forward history: an approved determination becomes the enterprise's credit
position for its tax year, and the next year's evaluation fills the brought-forward credits from it (the
caller can still give other figures, with a reason)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.identity import Role
from tests.conftest import BACKENDS, Env, make_env, schema_database_url
from tests.helpers import enterprise

BASE = "/api/v1/incentives"
# Invoice 1,130,000 incl. 130,000 VAT: investment 1,000,000, credit 100,000 earned in 2024.
EQUIPMENT = {"equipment_catalogue_code": "ES-01", "equipment_acquired_on": "2024-05-01",
             "equipment_invoice_yuan": "1130000", "equipment_deductible_vat_yuan": "130000"}


@pytest.fixture(scope="module", params=BACKENDS)
async def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    e, client = await make_env(schema_database_url(request.param, tmp_path_factory.mktemp("credit")), build=False)
    try:
        yield e
    finally:
        await client.__aexit__(None, None, None)
        await e.db.dispose()


async def evaluate(env: Env, key: str, ent: dict[str, Any], on: str, cit_yuan: str, **extra: Any) -> Any:
    facts = {**EQUIPMENT, "cit_payable_yuan": cit_yuan, **extra.pop("facts", {})}
    return await env.client.post(f"{BASE}/eligibility", json={
        "enterprise_id": ent["id"], "on": on, "programmes": ["equipment_credit"], "facts": facts, **extra},
        headers=env.h(key))


def credit_facts(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["fact"]: f for f in body["registry_facts"] if f["source"].startswith("incentives.credit_history")}


def equipment(body: dict[str, Any]) -> dict[str, Any]:
    return next(d for d in body["determinations"] if d["programme"] == "equipment_credit")


async def approve(env: Env, key: str, determination_id: int, note: str = "") -> Any:
    return await env.client.post(f"{BASE}/determinations/{determination_id}/credit-position",
                                 json={"note": note}, headers=env.h(key))


async def test_next_years_evaluation_fills_the_carry_forward_from_the_approved_position(env: Env) -> None:
    reg, reviewer = await env.key(Role.REGULATOR), await env.key(Role.FINANCE_REVIEWER)
    ent = await enterprise(env, reg, "江西节能设备用户有限公司")
    r = await evaluate(env, ent["key"], ent, "2024-12-31", "60000")
    assert r.status_code == 201, r.text
    d2024 = equipment(r.json())
    assert d2024["outputs"]["credit_used_fen"] == 6_000_000
    assert d2024["outputs"]["carry_next_age1_fen"] == 4_000_000

    # Nothing is filled before a position is approved.
    r = await evaluate(env, ent["key"], ent, "2025-12-31", "30000")
    assert r.status_code == 201 and credit_facts(r.json()) == {}
    assert equipment(r.json())["outputs"]["credit_used_fen"] == 0

    # The emitter cannot approve its own position; finance staff can.
    assert (await approve(env, ent["key"], d2024["id"])).status_code == 403
    r = await approve(env, reviewer, d2024["id"], "2024年度汇算清缴申报一致")
    assert r.status_code == 201, r.text
    pos = r.json()
    assert pos["tax_year"] == 2024 and pos["determination_id"] == d2024["id"]
    assert [c["fen"] for c in pos["carry_forward"]] == [4_000_000, 0, 0, 0, 0]
    assert pos["carry_forward"][0]["yuan"] == "40000.00" and not pos["superseded"]
    r = await approve(env, reviewer, d2024["id"])
    assert r.status_code == 409 and r.json()["type"] == "/problems/duplicate"

    # 2025: the 40,000 brought forward absorbs this year's 30,000 of tax; 10,000 is carried on, a year older.
    r = await evaluate(env, ent["key"], ent, "2025-12-31", "30000")
    assert r.status_code == 201, r.text
    body = r.json()
    filled = credit_facts(body)
    assert filled["credit_carry_age1_fen"]["value"] == 4_000_000
    assert filled["credit_carry_age1_fen"]["source"] == f"incentives.credit_history:2024#{d2024['id']}"
    assert filled["credit_carry_age1_fen"]["caller_value"] is None
    out = equipment(body)["outputs"]
    assert out["credit_used_fen"] == 3_000_000 and out["carry_next_age2_fen"] == 1_000_000
    assert equipment(body)["record"]["inputs"]["credit_carry_age1_fen"] == 4_000_000

    # The same figure typed by the caller is fine; a different one needs a reason.
    r = await evaluate(env, ent["key"], ent, "2025-12-31", "30000", facts={"credit_carry_age1_yuan": "40000"})
    assert r.status_code == 201, r.text
    r = await evaluate(env, ent["key"], ent, "2025-12-31", "30000", facts={"credit_carry_age1_yuan": "50000"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "facts.credit_carry_age1_fen" and "override_reason" in r.json()["detail"]
    r = await evaluate(env, ent["key"], ent, "2025-12-31", "30000", facts={"credit_carry_age1_yuan": "50000"},
                       override_reason="税务机关2025年6月更正2024年度抵免额")
    assert r.status_code == 201, r.text
    body = r.json()
    filled = credit_facts(body)
    assert filled["credit_carry_age1_fen"]["caller_value"] == 5_000_000
    assert filled["credit_carry_age1_fen"]["override_reason"] == "税务机关2025年6月更正2024年度抵免额"
    assert equipment(body)["record"]["inputs"]["credit_carry_age1_fen"] == 5_000_000

    # Two years on, the 2024 position says nothing about 2025's use: nothing is filled.
    r = await evaluate(env, ent["key"], ent, "2026-12-31", "30000")
    assert r.status_code == 201 and credit_facts(r.json()) == {}


async def test_a_later_approval_supersedes_and_the_history_is_scoped(env: Env) -> None:
    reg, approver = await env.key(Role.REGULATOR), await env.key(Role.FINANCE_APPROVER)
    ent, other = await enterprise(env, reg), await enterprise(env, reg)
    first = equipment((await evaluate(env, ent["key"], ent, "2024-12-31", "60000")).json())
    second = equipment((await evaluate(env, ent["key"], ent, "2024-12-31", "100000")).json())
    assert second["outputs"]["carry_next_age1_fen"] == 0
    assert (await approve(env, approver, first["id"])).status_code == 201
    assert (await approve(env, approver, second["id"], "更正：2024年度应纳税额为100000元")).status_code == 201
    r = await env.get(f"{BASE}/enterprises/{ent['id']}/credit-positions", ent["key"])
    assert r.status_code == 200, r.text
    listed = r.json()
    assert [(p["determination_id"], p["superseded"]) for p in listed] == [(second["id"], False), (first["id"], True)]
    # The newest approval of 2024 is the one 2025 starts from.
    r = await evaluate(env, ent["key"], ent, "2025-06-30", "30000")
    filled = credit_facts(r.json())
    assert filled["credit_carry_age1_fen"]["value"] == 0
    # Another enterprise's history is not visible to this emitter.
    assert (await env.get(f"{BASE}/enterprises/{ent['id']}/credit-positions", other["key"])).status_code == 404
    assert (await env.get(f"{BASE}/enterprises/{ent['id']}/credit-positions", reg)).status_code == 200


async def test_only_another_persons_equipment_determination_of_an_enterprise_is_approved(env: Env) -> None:
    reg, reviewer = await env.key(Role.REGULATOR), await env.key(Role.FINANCE_REVIEWER)
    ent = await enterprise(env, reg)
    # A finance reviewer's own evaluation needs a second person.
    own = equipment((await evaluate(env, reviewer, ent, "2024-12-31", "60000")).json())
    r = await approve(env, reviewer, own["id"])
    assert r.status_code == 403 and r.json()["type"] == "/problems/four-eyes-required"
    # Another programme's determination holds no credit position.
    r = await env.client.post(f"{BASE}/eligibility", json={
        "enterprise_id": ent["id"], "on": "2024-12-31", "programmes": ["rd_super_deduction"],
        "facts": {"total_revenue_fen": 10, "rd_core_costs_fen": 1}}, headers=env.h(ent["key"]))
    rd = r.json()["determinations"][0]
    r = await approve(env, reviewer, rd["id"])
    assert r.status_code == 422 and r.json()["field"] == "determination_id"
    # Without an enterprise, a determination belongs to no history.
    r = await env.client.post(f"{BASE}/eligibility", json={
        "on": "2024-12-31", "programmes": ["equipment_credit"],
        "facts": {**EQUIPMENT, "cit_payable_yuan": "1"}}, headers=env.h(reg))
    r = await approve(env, reviewer, equipment(r.json())["id"])
    assert r.status_code == 422 and r.json()["field"] == "determination_id"
    assert (await approve(env, reviewer, 2_000_000_000)).status_code == 404
    r = await env.get(f"{BASE}/enterprises/{ent['id']}/credit-positions", reg)
    assert r.json() == []
