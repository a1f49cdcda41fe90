"""One null-byte check at the edge: U+0000 anywhere in a path, query, JSON or form body is a 422 naming the field,
before any route runs (PostgreSQL cannot store the character, and nothing else should either)."""

from __future__ import annotations

from sqlalchemy import func, select

from core.db import UnitOfWork
from core.identity import Role
from finance.models import FinanceClaim
from tests.helpers import enterprise


def assert_refused(r, field: str) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["type"] == "/problems/invalid-input" and body["field"] == field, body
    assert "U+0000" in body["detail"]


async def test_null_bytes_in_queries_and_bodies_are_refused_naming_the_field(env) -> None:  # type: ignore[no-untyped-def]
    reg = await env.key(Role.REGULATOR)
    reviewer = await env.key(Role.FINANCE_REVIEWER)
    assert_refused(await env.client.get("/api/v1/scheduler/runs", params={"job": "settle\x00"}, headers=env.h(reg)),
                   "job")
    for name in ("programme", "city"):
        r = await env.client.get("/api/v1/finance/claims", params={name: "a\x00b"}, headers=env.h(reviewer))
        assert_refused(r, name)
    # Without signing in: the username of a token request.
    r = await env.client.post("/api/v1/auth/token", json={"username": "admin\x00", "password": "x"})
    assert_refused(r, "username")

    ent = await enterprise(env, reg)
    claim = {"enterprise_id": ent["id"], "programme": "first_set_insurance", "project_ref": "P-1\x00",
             "period": "2024", "facts": {}, "payee_bank": "中国银行", "payee_account_no": "6217000000000000"}
    r = await env.client.post("/api/v1/finance/claims", json=claim,
                              headers={**env.h(ent["key"]), "Idempotency-Key": "nul-1"})
    assert_refused(r, "project_ref")
    claim = {**claim, "project_ref": "P-1", "facts": {"fs_catalogue_code": "FS2019-01\x00"}}
    r = await env.client.post("/api/v1/finance/claims", json=claim,
                              headers={**env.h(ent["key"]), "Idempotency-Key": "nul-2"})
    assert_refused(r, "facts.fs_catalogue_code")
    nested = {"facts": {"x": [{"ok": "fine"}, {"bad": "\x00"}]}}
    r = await env.client.post("/api/v1/incentives/eligibility", json=nested, headers=env.h(reg))
    assert_refused(r, "facts.x[1].bad")

    # Nothing was stored.
    async def claims(uow: UnitOfWork) -> int:
        return int((await uow.session.execute(select(func.count()).select_from(FinanceClaim))).scalar_one())

    assert await env.db.read(claims) == 0


async def test_a_page_form_with_a_null_byte_is_refused_and_an_escaped_text_passes(env) -> None:  # type: ignore[no-untyped-def]
    r = await env.client.post("/login", content=b"username=a%00b&password=x",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_refused(r, "username")
    # A literal backslash-u text is not a null byte.
    reg = await env.key(Role.REGULATOR)
    r = await env.client.get("/api/v1/finance/claims", params={"city": "\\u0000"},
                             headers=env.h(await env.key(Role.FINANCE_REVIEWER)))
    assert r.status_code == 200, r.text
    r = await env.client.post("/api/v1/incentives/eligibility", json={"facts": {"co2_method": "\\u0000"}},
                              headers=env.h(reg))
    assert r.status_code != 422 or r.json()["field"] != "facts.co2_method"
