"""Freezes follow the instrument's authority: the energy authority cannot freeze allowances, and no authority can
release a freeze another placed (found by a user: the energy authority froze CEA and lifted the regulator's freeze)."""

from __future__ import annotations

from core.identity import Role
from tests.helpers import allocate, holding, world


async def test_only_the_kinds_authority_freezes_and_only_the_freezer_releases(env) -> None:
    w = await world(env, n_enterprises=1, issue=100)
    [ent] = w.enterprises
    await allocate(env, w, ent["account_id"], 50)
    energy = await env.key(Role.ENERGY_AUTHORITY, name="江西省能源局")
    body = {
        "account_id": ent["account_id"],
        "instrument_id": w.instrument_id,
        "quantity": "10",
        "legal_basis": "administrative",
        "authority": "江西省能源局",
        "reference": "赣能〔2026〕1号",
    }
    r = await env.post("/api/v1/freezes", energy, body)
    assert r.status_code == 403, r.text
    r = await env.post("/api/v1/freezes", w.regulator, {**body, "authority": "江西省生态环境厅"})
    assert r.status_code == 201, r.text
    freeze = r.json()["id"]
    r = await env.post(f"/api/v1/freezes/{freeze}/release", energy, {"reason": "x"})
    assert r.status_code in (403, 404), r.text
    h = await holding(env, ent["key"], ent["account_id"], w.instrument_id)
    assert h is not None and h["available_base"] == 40
    r = await env.post(f"/api/v1/freezes/{freeze}/release", w.regulator2, {"reason": "解除冻结"})
    assert r.status_code == 200, r.text
    h = await holding(env, ent["key"], ent["account_id"], w.instrument_id)
    assert h is not None and h["available_base"] == 50
