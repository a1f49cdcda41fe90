"""The bank's, the public market's and the policy pages: a bank officer is refused without the enterprise's consent
and answered with it; the market shows its candlesticks; a parameter value published by one person and confirmed
by another applies from its effective day while the older value still answers for earlier days and for what was
known before the confirmation. Other roles get 403."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import openpyxl
import pytest

from core.identity import Identity, Role
from incentives import engine, publications
from tests.finance.kit import BASE as FIN
from tests.finance.kit import finance_world
from tests.web.conftest import browser_sign_in, form_post, make_user, screenshot, sign_in, submit

API = "/api/v1/incentives"
PARAM = "first_set.compensation_bp"  # 8000 bp since 2015 (财建〔2015〕19号)


@pytest.fixture(autouse=True)
def shipped_parameters_after() -> Iterator[None]:
    """A confirmed publication changes what this process answers; later tests start from the shipped set."""
    yield
    publications.reset()


def _xlsx(rows: list[list[Any]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def _sign_out_and_in(client: Any, username: str) -> None:
    await form_post(client, "/logout", "/policy", {})
    assert (await sign_in(client, username)).status_code == 303


async def test_a_value_published_by_one_person_and_confirmed_by_another_applies_from_its_day(web_env) -> None:
    env = web_env
    reviewer, bureau = await make_user(env, Role.FINANCE_REVIEWER)
    approver, _ = await make_user(env, Role.FINANCE_APPROVER, bureau)
    await sign_in(env.client, reviewer)
    page = await env.client.get(f"/policy?name={PARAM}")
    assert page.status_code == 200 and "发布新数值" in page.text and "财建〔2015〕19号" in page.text
    form = {"name": PARAM, "value": "7000", "valid_from": "2026-07-01", "valid_to": "", "document": "财建〔2026〕1号",
            "article": "第三条", "note": "", "official": "1"}  # fmt: skip
    bad = await form_post(env.client, "/policy/publications", f"/policy?name={PARAM}", {**form, "value": "70%"})
    assert bad.status_code == 422 and "basis points" in bad.text and 'value="70%"' in bad.text
    r = await form_post(env.client, "/policy/publications", f"/policy?name={PARAM}", form)
    assert r.status_code == 303, r.text
    mine = await env.client.get("/policy")
    assert "待确认的发布" in mine.text and "您发布的，须由另一人确认" in mine.text
    # Nothing changes before the second person confirms.
    assert engine.parameter_value(PARAM, dt.date(2026, 8, 1)) == 8000
    (pub,) = [p for p in await _list(env, "pending") if p["name"] == PARAM]
    # The publisher cannot confirm their own value, on the page or through the API.
    own = await form_post(env.client, f"/policy/publications/{pub['id']}/decision", "/policy",
                          {"decision": "confirm", "name": PARAM})  # fmt: skip
    assert own.status_code == 403 and "another person must confirm" in own.text

    await _sign_out_and_in(env.client, approver)
    r = await form_post(env.client, f"/policy/publications/{pub['id']}/decision", "/policy",
                        {"decision": "confirm", "name": PARAM})  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == f"/policy?name={PARAM}"
    today = env.clock.now().date()
    # From its effective day the new value; before it the old one; and as known before today, the old one too.
    assert engine.parameter_value(PARAM, dt.date(2026, 8, 1)) == 7000
    assert engine.parameter_value(PARAM, dt.date(2026, 6, 30)) == 8000
    assert engine.parameter_value(PARAM, dt.date(2026, 8, 1), today - dt.timedelta(days=1)) == 8000
    key = await env.key(Role.AUDITOR)
    h = (await env.get(f"{API}/parameters/{PARAM}/history?on=2026-08-01", key)).json()
    assert h["in_force"]["value"] == 7000 and len(h["entries"]) == 2
    before = (await env.get(f"{API}/parameters/{PARAM}/history?on=2026-08-01&known_on=2026-03-01", key)).json()
    assert before["in_force"]["value"] == 8000
    shown = await env.client.get(f"/policy?name={PARAM}&on=2026-08-01")
    assert "财建〔2026〕1号" in shown.text and "系统内发布" in shown.text and "<strong>7,000</strong>" in shown.text
    old = await env.client.get(f"/policy?name={PARAM}&on=2026-08-01&known_on=2026-03-01")
    assert "<strong>8,000</strong>" in old.text
    (done,) = [p for p in await _list(env, "confirmed") if p["id"] == pub["id"]]
    assert done["known_from"] == today.isoformat() and done["entry_id"] == f"{PARAM}@2026-07-01#{today}"
    # A second value overlapping it, confirmed the same day, is refused: the lookup could not choose.
    again = await env.post(f"{API}/parameters/{PARAM}/publications", await env.key(Role.REGULATOR),
                           {"value": 6000, "valid_from": "2026-09-01",
                            "citation": {"document": "财建〔2026〕2号", "article": "第一条"}})  # fmt: skip
    assert again.status_code == 201, again.text
    r = await env.post(f"{API}/parameter-publications/{again.json()['id']}/confirmation", key, {"decision": "confirm"})
    assert r.status_code == 403  # an auditor reads, never confirms
    # A decision that changes the law the engine applies is never assumed: no `decision`, no confirmation.
    for body in ({}, {"reason": "看过了"}):
        r = await env.post(f"{API}/parameter-publications/{again.json()['id']}/confirmation",
                           await env.key(Role.ENERGY_AUTHORITY), body)  # fmt: skip
        assert r.status_code == 422 and r.json()["field"] == "decision", r.text
    r = await form_post(env.client, f"/policy/publications/{again.json()['id']}/decision", "/policy", {"name": PARAM})
    assert r.status_code == 422 and "Confirm or reject." in r.text and "<code>decision</code>" in r.text
    assert [p["id"] for p in await _list(env, "pending")] == [again.json()["id"]]
    r = await env.post(f"{API}/parameter-publications/{again.json()['id']}/confirmation",
                       await env.key(Role.ENERGY_AUTHORITY), {"decision": "confirm"})  # fmt: skip
    assert r.status_code == 409 and "overlap" in r.json()["detail"]
    r = await env.post(f"{API}/parameter-publications/{again.json()['id']}/confirmation",
                       await env.key(Role.ENERGY_AUTHORITY), {"decision": "reject", "reason": "重复"})  # fmt: skip
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert engine.parameter_value(PARAM, dt.date(2026, 10, 1)) == 7000


async def _list(env: Any, status: str) -> list[dict[str, Any]]:
    r = await env.get(f"{API}/parameter-publications?status={status}", await env.key(Role.AUDITOR))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_catalogue_edition_by_excel_shows_every_bad_row_and_publishes_nothing_until_right(web_env) -> None:
    env = web_env
    user, _ = await make_user(env, Role.FINANCE_APPROVER)
    await sign_in(env.client, user)
    name = "catalogue.resource_util_vat"
    page = await env.client.get(f"/policy?name={name}")
    assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.text
    from tests.web.conftest import csrf_of

    fields = {"name": name, "edition": "资源综合利用产品和劳务增值税优惠目录（2026年版）", "valid_from": "2026-07-01",
              "document": "财政部 税务总局公告2026年第1号", "article": "附件", "official": "1",
              "_csrf_token": csrf_of(page.text)}  # fmt: skip
    bad = _xlsx([["code", "name", "refund_bp"], ["3.1", "废旧电池", 3000], ["3.1", "重复", 5000], ["", "无编码", 12.5]])
    upload = {"file": ("c.xlsx", bad, "application/octet-stream")}
    r = await env.client.post("/policy/publications/catalogue", data=fields, files=upload, follow_redirects=False)
    assert r.status_code == 422 and "already on row 2" in r.text and "The code is empty" in r.text
    assert "fraction" in r.text and not await _list(env, "pending")
    good = _xlsx([["code", "name", "refund_bp"], ["3.1", "废旧电池及其拆解物", 5000], ["3.2", "废矿物油", 9000]])
    upload = {"file": ("c.xlsx", good, "application/octet-stream")}
    r = await env.client.post("/policy/publications/catalogue", data=fields, files=upload, follow_redirects=False)
    assert r.status_code == 303, r.text
    (pub,) = await _list(env, "pending")
    assert pub["source"] == "excel" and pub["value"]["items"][1] == {
        "code": "3.2",
        "name": "废矿物油",
        "refund_bp": 9000,
    }
    shown = await env.client.get(f"/policy?name={name}")
    assert "（2026年版）" in shown.text and "您发布的，须由另一人确认" in shown.text


async def test_policy_pages_and_operations_are_refused_to_other_roles(web_env) -> None:
    env = web_env
    for role in (Role.EMITTER, Role.BANK, Role.VERIFIER):
        user, _ = await make_user(env, role)
        await sign_in(env.client, user)
        assert (await env.client.get("/policy", follow_redirects=False)).status_code == 403
        await form_post(env.client, "/logout", "/market", {})
    auditor, _ = await make_user(env, Role.AUDITOR)
    await sign_in(env.client, auditor)
    page = await env.client.get(f"/policy?name={PARAM}")
    assert page.status_code == 200 and "发布新数值" not in page.text  # an auditor reads only
    r = await form_post(env.client, "/policy/publications", f"/policy?name={PARAM}", {"name": PARAM, "value": "1"})
    assert r.status_code == 403
    body = {"value": 1, "valid_from": "2026-07-01", "citation": {"document": "x", "article": "y"}}
    for role in (Role.AUDITOR, Role.EMITTER, Role.BANK):
        assert (await env.post(f"{API}/parameters/{PARAM}/publications", await env.key(role), body)).status_code == 403
    assert (await env.get(f"{API}/parameter-publications", await env.key(Role.BANK))).status_code == 403
    r = await env.post(f"{API}/parameters/no.such/publications", await env.key(Role.REGULATOR), body)
    assert r.status_code == 404
    r = await env.post(f"{API}/parameters/{PARAM}/publications", await env.key(Role.REGULATOR), {**body, "value": True})
    assert r.status_code == 422 and r.json()["field"] == "value"
    # Signed out: the policy page asks for sign-in, the market does not.
    await form_post(env.client, "/logout", "/market", {})
    assert (await env.client.get("/policy", follow_redirects=False)).status_code in (302, 303)
    assert (await env.client.get("/market")).status_code == 200


async def test_a_bank_queries_only_its_own_history_and_other_roles_are_refused(web_env) -> None:
    env = web_env
    fw = await finance_world(env, 1)
    a = fw.ents[0]
    officer, _ = await make_user(env, Role.BANK, fw.bank_org)
    await sign_in(env.client, officer)
    r = await form_post(env.client, "/bank/queries", "/bank", {"uscc": a["uscc"], "purpose": "贷前审查"})
    assert r.status_code == 404 and "未授权本行查询" in r.text and a["name"] not in r.text
    consent = {"enterprise_id": a["id"], "bank_organisation_id": fw.bank_org, "purpose": "贷前审查"}
    assert (await env.post(f"{FIN}/consents", a["key"], consent)).status_code == 201
    r = await form_post(env.client, "/bank/queries", "/bank", {"uscc": a["uscc"], "purpose": "贷前审查"})
    assert r.status_code == 200 and "查询结果" in r.text and "/report.pdf" in r.text
    # Another bank's officer sees none of this bank's queries nor their reports.
    other_org = (await make_user(env, Role.BANK))[1]
    other, _ = await make_user(env, Role.BANK, other_org)
    qid = (await env.get(f"{FIN}/green-credit/queries", fw.bank)).json()[0]["id"]
    await form_post(env.client, "/logout", "/market", {})
    await sign_in(env.client, other)
    page = await env.client.get("/bank")
    assert page.status_code == 200 and f"/bank/queries/{qid}/report.pdf" not in page.text
    assert (await env.client.get(f"/bank/queries/{qid}/report.pdf")).status_code == 404
    await form_post(env.client, "/logout", "/market", {})
    reviewer, _ = await make_user(env, Role.FINANCE_REVIEWER)
    await sign_in(env.client, reviewer)
    assert (await env.client.get("/bank", follow_redirects=False)).status_code == 403


async def _identity(db: Any, username: str) -> Identity:
    from sqlalchemy import select

    from core.models import Principal

    async def work(uow: Any) -> Identity:
        p = (await uow.session.execute(select(Principal).where(Principal.username == username))).scalar_one()
        return Identity(principal_id=p.id, organisation_id=p.organisation_id, role=Role(p.role), label=username)

    return await db.read(work)  # type: ignore[no-any-return]


async def test_bank_market_and_policy_in_chromium(live, page) -> None:  # type: ignore[no-untyped-def]
    from core.db import Database
    from finance import consents
    from finance import schemas as fs
    from tests.trading.conftest import trading_world
    from tests.web.test_finance_pages import LiveEnv

    db = Database(live.app.state.db.url)
    env = LiveEnv(live, db)
    try:
        # The public market, nobody signed in: candlesticks with volume, depth and today's trades.
        tw = await trading_world(env, mode="continuous", units=1_000, issue=10_000, funds="1000000.00")
        start = live.clock.now()
        days = [("50.00", "50.60", "50.30"), ("50.80", "51.40", "51.10"), ("50.90", "50.40", "50.60")]
        for day, prices in enumerate(days):
            live.clock.set(start + dt.timedelta(days=day))
            for k, price in enumerate(prices):
                qty = str(40 + 20 * k)
                assert (await tw.order(0, {"side": "sell", "price": price, "quantity": qty})).status_code == 201
                assert (await tw.order(1, {"side": "buy", "price": price, "quantity": qty})).status_code == 201
        assert (await tw.order(0, {"side": "sell", "price": "50.80", "quantity": "30"})).status_code == 201
        assert (await tw.order(1, {"side": "buy", "price": "50.20", "quantity": "20"})).status_code == 201
        await page.goto(f"{live.base_url}/market?instrument={tw.instrument_id}")
        await page.wait_for_timeout(500)
        assert await page.evaluate("document.querySelector('canvas[data-chart]').dataset.drawn") == "1"
        assert await page.locator("td:has-text('50.80')").count() >= 1
        await screenshot(page, "market-chart")

        fw = await finance_world(env, 1)
        a = fw.ents[0]
        officer, _ = await make_user(db, Role.BANK, fw.bank_org, now=live.clock.now())
        emitter, _ = await make_user(db, Role.EMITTER, a["organisation_id"], now=live.clock.now())
        reviewer, bureau = await make_user(db, Role.FINANCE_REVIEWER, now=live.clock.now())
        approver, _ = await make_user(db, Role.FINANCE_APPROVER, bureau, now=live.clock.now())

        # A bank officer: refused without consent, answered with it (the consent seeded through the service).
        await browser_sign_in(page, live.base_url, officer)
        await page.fill("input[name=uscc]", a["uscc"])
        await page.fill("input[name=purpose]", "贷前审查")
        await submit(page, "button:has-text('查询')")
        assert await page.locator("text=未授权本行查询").count() == 1
        await screenshot(page, "bank-refused")
        who = await _identity(db, emitter)
        grant = fs.GrantConsent(enterprise_id=a["id"], bank_organisation_id=fw.bank_org, purpose="贷前审查")
        await live.acall(lambda st: consents.grant_consent(st.finance.ctx, who, grant))
        await page.fill("input[name=uscc]", a["uscc"])
        await page.fill("input[name=purpose]", "贷前审查")
        await submit(page, "button:has-text('查询')")
        assert await page.locator("text=查询结果").count() == 1
        async with page.expect_download() as download:
            await page.click("text=下载查询报告（PDF）")
        assert (await download.value).suggested_filename.endswith(".pdf")
        await screenshot(page, "bank-answer")
        await submit(page, "text=退出")

        # Policy: the reviewer publishes, the approver confirms; the old value stays in the history.
        await browser_sign_in(page, live.base_url, reviewer)
        await page.goto(f"{live.base_url}/policy")
        await screenshot(page, "policy-index")
        await page.goto(f"{live.base_url}/policy?name={PARAM}")
        await page.fill("input[name=value]", "7000")
        await page.fill("input[name=valid_from]", "2026-07-01")
        await page.fill("input[name=document]", "财建〔2026〕1号")
        await page.fill("input[name=article]", "第三条")
        await submit(page, "button:has-text('提交发布')")
        assert await page.locator("text=您发布的，须由另一人确认").count() >= 1
        await screenshot(page, "policy-pending")
        await submit(page, "text=退出")
        await browser_sign_in(page, live.base_url, approver)
        await page.goto(f"{live.base_url}/policy")
        await submit(page, "button:has-text('确认发布')")
        await page.fill("input[name=on]", "2026-08-01")
        await submit(page, "button:has-text('查看当日适用值')")
        assert await page.locator("strong:has-text('7,000')").count() == 1
        await screenshot(page, "policy-confirmed")
        await page.fill("input[name=known_on]", "2026-03-01")
        await submit(page, "button:has-text('查看当日适用值')")
        assert await page.locator("strong:has-text('8,000')").count() == 1
        catalogue = "catalogue.equipment"
        await page.goto(f"{live.base_url}/policy?name={catalogue}&lang=en")
        await page.click("summary >> nth=0")
        await screenshot(page, "policy-catalogue-en")
    finally:
        await env.client.aclose()
        await db.dispose()
