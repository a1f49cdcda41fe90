"""The registry's facts in an evaluation are those the registry showed on the evaluation's day: an enterprise
short at its 2024 surrender deadline that surrendered the rest late, in 2025, is short on 2024-12-31 and not
today; the knowledge day, when given, is the day asked of the registry."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.registry.compliance.kit import (
    BASE,
    at,
    by_enterprise,
    carbon_lines,
    carbon_world,
    enterprise,
    report,
    results,
    settle,
    surrender,
)

GREEN = {"loan_approved_on": "2024-06-01", "green_activity": "wind_power", "loan_principal_yuan": "1000000.00",
         "industrial_structure_class": "permitted"}


async def test_an_evaluation_dated_in_the_past_sees_the_shortfall_the_registry_showed_then(env) -> None:
    env.clock.set(at("2024-03-01"))
    cw = await carbon_world(env, year=2023, overrides={"pre_allocation": "2024-02-01", "allocation": "2024-02-15"})
    r = await env.get(f"{BASE}/periods/{cw.pid}/calendar", cw.reg.key)
    assert {e["kind"]: e["business_date"] for e in r.json()["events"]}["surrender_deadline"] == "2024-12-31"
    ent = await enterprise(env, cw.reg)
    await env.post("/api/v1/allocations", cw.reg.key,
                   {"to_account_id": ent["account_id"], "instrument_id": cw.cea, "quantity": "1000"})
    await report(cw, ent, carbon_lines(1_000))
    assert (await surrender(cw, ent, 600)).status_code == 201  # 400 t short at the deadline
    r = await env.post(f"{BASE}/periods/{cw.pid}/calendar", cw.reg.key,
                       {"late_until": "2025-03-31", "note": "责令限期改正通知", "legal_basis": "赣环气候〔2025〕3号"})
    assert r.status_code == 200, r.text
    env.clock.set(at("2025-02-10"))
    assert (await surrender(cw, ent, 400)).status_code == 201  # late, in the correction window
    env.clock.set(at("2025-04-01", 0))
    await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "100.00"})
    assert (await settle(cw)).status_code == 200
    row = by_enterprise(await results(cw))[ent["id"]]
    assert (row["shortfall_at_deadline"], row["shortfall"]) == (400, 0)
    env.clock.set(at("2026-03-02"))  # today

    async def shortfall(**when: Any) -> dict[str, Any]:
        r = await env.client.post("/api/v1/incentives/eligibility", json={
            "enterprise_id": ent["id"], "facts": GREEN, "programmes": ["green_loan"], **when},
            headers=env.h(ent["key"]))
        assert r.status_code == 201, r.text
        [fact] = [f for f in r.json()["registry_facts"] if f["fact"] == "carbon_open_shortfall_t"]
        return {"value": fact["value"], "as_of": fact["as_of"],
                "failed": r.json()["determinations"][0]["record"]["failed_gates"]}

    assert await shortfall(on="2024-12-31") == {"value": 400, "as_of": "2024-12-31", "failed": ["carbon_compliant"]}
    assert await shortfall(on="2024-12-30") == {"value": 0, "as_of": "2024-12-30", "failed": []}  # not yet due
    assert await shortfall(on="2025-01-31") == {"value": 400, "as_of": "2025-01-31", "failed": ["carbon_compliant"]}
    assert await shortfall(on="2025-02-10") == {"value": 0, "as_of": "2025-02-10", "failed": []}  # surrendered late
    assert await shortfall() == {"value": 0, "as_of": "2026-03-02", "failed": []}  # today
    # Known on 2025-01-15: the registry as it stood then, whatever the later evaluation day.
    assert (await shortfall(on="2025-06-30", known_on="2025-01-15"))["value"] == 400
    # A day ahead of today asks today's registry.
    assert (await shortfall(on="2027-01-01"))["as_of"] == "2026-03-02"

    # The compliance service answers the same directly; without as_of it is today's status, unchanged.
    compliance = env.app.state.compliance
    past = await compliance.compliance_status(ent["id"], as_of=dt.date(2024, 12, 31))
    assert past["carbon_open_shortfall_t"] == 400 and past["open_shortfall"] is True
    assert past["carbon_periods"][0]["period_code"] == cw.code and past["carbon_periods"][0]["settled"] is False
    now = await compliance.compliance_status(ent["id"])
    assert now["carbon_open_shortfall_t"] == 0 and "as_of" not in now
    assert (await compliance.compliance_status(ent["id"], as_of=dt.date(2025, 4, 2)))["carbon_periods"][0][
        "settled"] is True
