"""Every compliance route bounds its ids like the registry's (1 to `core.schema.MAX_ID`): a larger id, or one below
1, answers a 4xx problem naming the field, never 500 (schemathesis found 99999999999999999 answering 500)."""

from __future__ import annotations

import pytest

from core.schema import MAX_ID
from tests.registry.compliance.kit import BASE, authority

ROUTES = [
    "/periods/{id}",
    "/periods/{id}/calendar",
    "/periods/{id}/reports",
    "/reports/{id}",
    "/allocation-tables/{id}",
    "/periods/{id}/notices",
    "/periods/{id}/results",
    "/periods/{id}/results.csv",
    "/enterprises/{id}/status",
    "/periods/{id}/report.pdf",
]


@pytest.mark.parametrize("route", ROUTES)
async def test_a_huge_or_zero_id_is_a_clear_4xx(env, route: str) -> None:
    reg = await authority(env)
    for bad in ("99999999999999999999", "99999999999999999", "0"):
        r = await env.get(BASE + route.format(id=bad), reg.key)
        assert 400 <= r.status_code < 500, (route, bad, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["field"].endswith("_id"), r.text
    r = await env.get(BASE + route.format(id=str(MAX_ID)), reg.key)
    assert r.status_code == 404, (route, r.text)  # the largest id is a valid one that does not exist
