"""listEnterprises: search by name, USCC, city and industry; sort; page; an emitter sees only its own enterprise."""

from __future__ import annotations

from core.identity import Role
from tests.helpers import make_uscc

BASE = "/api/v1/enterprises"


async def test_search_sort_page_and_scope(env) -> None:
    reg = await env.key(Role.REGULATOR)
    made = []
    for name, city, industry in (
        ("南昌电厂", "南昌", "D4411"),
        ("九江水泥", "九江", "C3011"),
        ("南昌水泥100%", "南昌", "C3011"),
    ):
        r = await env.post(BASE, reg, {"uscc": make_uscc(), "name": name, "city": city, "industry_code": industry})
        assert r.status_code == 201, r.text
        made.append(r.json())
    names = lambda r: [e["name"] for e in r.json()["items"]]  # noqa: E731
    assert names(await env.get(f"{BASE}?city=南昌&sort=name", reg)) == sorted(["南昌电厂", "南昌水泥100%"])
    assert names(await env.get(f"{BASE}?industry=C30&sort=-id", reg)) == ["南昌水泥100%", "九江水泥"]
    assert names(await env.get(f"{BASE}?name=100%25", reg)) == ["南昌水泥100%"]  # % is a character, not a wildcard
    assert names(await env.get(f"{BASE}?name=%25", reg)) == ["南昌水泥100%"]
    assert names(await env.get(f"{BASE}?uscc={made[0]['uscc'].lower()}", reg)) == ["南昌电厂"]
    first = (await env.get(f"{BASE}?limit=2&sort=id", reg)).json()
    assert len(first["items"]) == 2 and first["next_offset"] == 2
    rest = (await env.get(f"{BASE}?limit=2&offset=2&sort=id", reg)).json()
    assert [e["id"] for e in rest["items"]] == [made[2]["id"]] and rest["next_offset"] is None
    r = await env.get(f"{BASE}?sort=uscc", reg)
    assert r.status_code in (400, 422)
    emitter = await env.key(Role.EMITTER, made[1]["organisation_id"])
    assert names(await env.get(BASE, emitter)) == ["九江水泥"]
