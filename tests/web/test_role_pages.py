"""The regulator's, an enterprise's, a bank's and the public's pages: each does its job through the same services as
the API, other roles get 403, and an enterprise's staff never see another enterprise's data (404)."""

from __future__ import annotations

from typing import Any

from core.identity import Role
from tests.finance.kit import BASE as FIN
from tests.finance.kit import finance_world
from tests.registry.compliance.kit import at, carbon_lines, carbon_world, enterprise, report
from tests.web.conftest import browser_sign_in, form_post, make_user, screenshot, sign_in, submit


async def test_the_regulator_approves_as_the_second_person_and_settles_from_the_dashboard(web_env) -> None:
    env = web_env
    cw = await carbon_world(env, overrides={"allocation": "2026-02-15", "pre_allocation": "2026-02-01"})
    a = await enterprise(env, cw.reg, "南昌水泥", "南昌", "C3011")
    b = await enterprise(env, cw.reg, "九江电厂", "九江", "D4411")
    await report(cw, a, carbon_lines(1000))
    await report(cw, b, carbon_lines(900))
    r = await env.post("/api/v1/issuances", cw.reg.key, {"kind": "cea", "scheme": "national", "vintage": 2025,
                                                       "quantity": "500"})  # fmt: skip
    assert r.status_code == 201, r.text
    tx = r.json()
    r = await env.post(f"/api/v1/compliance/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "98.00"})
    assert r.status_code == 200, r.text
    env.clock.set(at("2027-01-01", 1))  # past the surrender deadline: the period can be settled
    user, _ = await make_user(env, Role.REGULATOR, cw.reg.org)
    assert (await sign_in(env.client, user)).headers["location"] == "/compliance"
    page = await env.client.get(f"/compliance?period={cw.pid}")
    assert page.status_code == 200 and f'action="/compliance/approvals/{tx["id"]}"' in page.text
    assert "尚未结算" in page.text
    r = await form_post(env.client, f"/compliance/approvals/{tx['id']}", "/compliance", {"decision": "approve"})
    assert r.status_code == 303
    done = await env.get(f"/api/v1/transactions/{tx['id']}", cw.reg.key)
    assert done.json()["status"] == "completed"
    dry = await form_post(env.client, f"/compliance/periods/{cw.pid}/settlement", "/compliance", {"mode": "dry"})
    assert dry.status_code == 200 and "试算结果" in dry.text and "dry_run" in dry.text
    assert "尚未结算" in (await env.client.get(f"/compliance?period={cw.pid}")).text  # the dry run posted nothing
    run = await form_post(env.client, f"/compliance/periods/{cw.pid}/settlement", "/compliance", {"mode": "run"})
    assert run.status_code == 200 and "结算结果" in run.text
    after = await env.client.get(f"/compliance?period={cw.pid}")
    assert "尚未结算" not in after.text and "南昌水泥" in after.text and "C 未足额清缴" in after.text
    # The enterprise search and an enterprise's page.
    found = await env.client.get("/enterprises?city=九江")
    assert "九江电厂" in found.text and "南昌水泥" not in found.text
    detail = await env.client.get(f"/enterprises/{a['id']}")
    assert detail.status_code == 200 and "存在未履约缺口" in detail.text


async def test_an_enterprise_sees_its_own_accounts_and_consents_only(web_env) -> None:
    env = web_env
    fw = await finance_world(env, 2)
    a, b = fw.ents
    user_a, _ = await make_user(env, Role.EMITTER, a["organisation_id"])
    assert (await sign_in(env.client, user_a)).headers["location"] == "/enterprise"
    home = await env.client.get("/enterprise")
    assert home.status_code == 200 and a["name"] in home.text and b["name"] not in home.text
    own = await env.client.get(f"/enterprise/accounts/{a['account_id']}/statement.pdf")
    assert own.status_code == 200 and own.content[:5] == b"%PDF-"
    other = await env.client.get(f"/enterprise/accounts/{b['account_id']}/statement.pdf")
    assert other.status_code == 404
    r = await form_post(env.client, "/enterprise/consents", "/enterprise",
                        {"bank_organisation_id": str(fw.bank_org), "purpose": "项目贷款审批"})  # fmt: skip
    assert r.status_code == 303
    consents = (await env.get(f"{FIN}/consents", a["key"])).json()
    assert [c["bank_organisation_id"] for c in consents if c["active"]] == [fw.bank_org]
    assert (await env.client.get("/compliance", follow_redirects=False)).status_code == 403
    assert (await env.client.get("/finance/claims", follow_redirects=False)).status_code == 403
    assert (await env.client.get(f"/enterprises/{b['id']}", follow_redirects=False)).status_code == 403
    # Revoking from the page ends the consent.
    page = await env.client.get("/enterprise")
    cid = consents[0]["id"]
    assert f"/enterprise/consents/{cid}/revoke" in page.text
    r = await form_post(env.client, f"/enterprise/consents/{cid}/revoke", "/enterprise", {})
    assert r.status_code == 303
    assert not [c for c in (await env.get(f"{FIN}/consents", a["key"])).json() if c["active"]]


async def test_a_bank_is_refused_without_consent_and_answered_with_it(web_env) -> None:
    env = web_env
    fw = await finance_world(env, 1)
    a = fw.ents[0]
    officer, _ = await make_user(env, Role.BANK, fw.bank_org)
    assert (await sign_in(env.client, officer)).headers["location"] == "/bank"
    r = await form_post(env.client, "/bank/queries", "/bank", {"uscc": a["uscc"], "purpose": "贷前审查"})
    assert r.status_code == 404 and "未授权本行查询" in r.text
    consent = {"enterprise_id": a["id"], "bank_organisation_id": fw.bank_org, "purpose": "贷前审查"}
    r = await env.post(f"{FIN}/consents", a["key"], consent)
    assert r.status_code == 201, r.text
    r = await form_post(env.client, "/bank/queries", "/bank", {"uscc": a["uscc"], "purpose": "贷前审查"})
    assert r.status_code == 200 and a["name"] in r.text and "查询结果" in r.text
    queries = (await env.get(f"{FIN}/green-credit/queries", fw.bank)).json()
    assert queries and queries[0]["has_report"]
    pdf = await env.client.get(f"/bank/queries/{queries[0]['id']}/report.pdf")
    assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-"
    assert (await env.client.get("/enterprise", follow_redirects=False)).status_code == 403


async def test_the_market_page_is_public(web_env) -> None:
    from tests.trading.conftest import trading_world

    tw = await trading_world(web_env, mode="continuous", units=1_000, issue=10_000, funds="100000.00")
    assert (await tw.order(0, {"side": "sell", "price": "50.00", "quantity": "100"})).status_code == 201
    assert (await tw.order(1, {"side": "buy", "price": "50.00", "quantity": "40"})).status_code == 201
    page = await web_env.client.get(f"/market?instrument={tw.instrument_id}")
    assert page.status_code == 200 and "data-chart" in page.text and "candlestick" in page.text
    assert "50.00" in page.text and "60" in page.text  # the trade and the 60 left on the book


async def test_every_role_in_chromium(live, page) -> None:  # type: ignore[no-untyped-def]
    from core.db import Database
    from tests.web.test_finance_pages import LiveEnv

    db = Database(live.app.state.db.url)
    env = LiveEnv(live, db)
    try:
        fw = await finance_world(env, 2)
        a = fw.ents[0]
        reg_org = await _org_of_kind(env, "regulator")
        assert (await env.post("/api/v1/accounts", fw.regulator, {"type": "allocation"})).status_code == 201
        r = await env.post("/api/v1/issuances", fw.regulator, {"kind": "cea", "scheme": "national", "vintage": 2025,
                                                             "quantity": "5000"})  # fmt: skip
        assert r.status_code == 201, r.text
        regulator, _ = await make_user(db, Role.REGULATOR, reg_org, now=live.clock.now())
        emitter, _ = await make_user(db, Role.EMITTER, a["organisation_id"], now=live.clock.now())
        officer, _ = await make_user(db, Role.BANK, fw.bank_org, now=live.clock.now())

        await browser_sign_in(page, live.base_url, regulator)
        await screenshot(page, "compliance-dashboard")
        await submit(page, "text=复核通过")
        assert (await env.get(f"/api/v1/transactions/{r.json()['id']}", fw.regulator)).json()["status"] == "completed"
        await page.goto(f"{live.base_url}/enterprises")
        await screenshot(page, "enterprises-search")
        await submit(page, "text=退出")

        await browser_sign_in(page, live.base_url, emitter)
        await page.select_option("select[name=bank_organisation_id]", str(fw.bank_org))
        await page.fill("input[name=purpose]", "项目贷款审批")
        await submit(page, "text=授予授权")
        assert await page.locator("text=撤回").count() >= 1
        await screenshot(page, "enterprise-home")
        await submit(page, "text=退出")

        await browser_sign_in(page, live.base_url, officer)
        await page.fill("input[name=uscc]", a["uscc"])
        await page.fill("input[name=purpose]", "贷前审查")
        await submit(page, "button:has-text('查询')")
        assert await page.locator("text=查询结果").count() == 1
        await screenshot(page, "bank-answer")
        await page.goto(f"{live.base_url}/market?lang=en")
        await screenshot(page, "market-en")
    finally:
        await env.client.aclose()
        await db.dispose()


async def _org_of_kind(env: Any, kind: str) -> int:
    from sqlalchemy import select

    from core.models import Organisation

    async def work(uow: Any) -> int:
        q = select(Organisation.id).where(Organisation.kind == kind).order_by(Organisation.id)
        return int((await uow.session.execute(q)).scalars().first())

    return await env.db.read(work)


async def test_the_policy_page_shows_dated_parameters_with_their_basis(web_env) -> None:
    user, _ = await make_user(web_env, Role.FINANCE_REVIEWER)
    await sign_in(web_env.client, user)
    index = await web_env.client.get("/policy")
    assert index.status_code == 200 and "发改产业〔2021〕1609号" in index.text
    one = await web_env.client.get("/policy?name=benchmark.bf_ironmaking.advanced&on=2024-06-01")
    assert one.status_code == 200 and "361" in one.text and "2024-06-01 适用" in one.text
    bad = await web_env.client.get("/policy?name=benchmark.bf_ironmaking.advanced&on=June")
    assert bad.status_code == 422 and "on" in bad.text
    emitter, _ = await make_user(web_env, Role.EMITTER)
    await form_post(web_env.client, "/logout", "/policy", {})
    await sign_in(web_env.client, emitter)
    assert (await web_env.client.get("/policy", follow_redirects=False)).status_code == 403


async def test_the_market_chart_in_chromium(live, page) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from core.db import Database
    from tests.trading.conftest import trading_world
    from tests.web.test_finance_pages import LiveEnv

    db = Database(live.app.state.db.url)
    env = LiveEnv(live, db)
    try:
        tw = await trading_world(env, mode="continuous", units=1_000, issue=10_000, funds="1000000.00")
        start = live.clock.now()
        days = [("50.00", "50.60", "50.30"), ("50.80", "51.40", "51.10"), ("50.90", "50.40", "50.60")]
        for day, prices in enumerate(days):
            live.clock.set(start + dt.timedelta(days=day))
            for k, price in enumerate(prices):  # three trades a day: open, high or low, close
                qty = str(40 + 20 * k)
                assert (await tw.order(0, {"side": "sell", "price": price, "quantity": qty})).status_code == 201
                assert (await tw.order(1, {"side": "buy", "price": price, "quantity": qty})).status_code == 201
        await page.goto(f"{live.base_url}/market?instrument={tw.instrument_id}")
        await page.wait_for_timeout(400)  # the chart draws after the scripts load
        assert await page.locator("canvas[data-chart]").count() == 1
        assert await page.evaluate("document.querySelector('canvas[data-chart]').dataset.drawn") == "1"
        await screenshot(page, "market-chart")
    finally:
        await env.client.aclose()
        await db.dispose()


async def test_an_excel_report_with_one_bad_row_shows_that_rows_error_and_imports_nothing(web_env) -> None:
    import io

    import openpyxl

    env = web_env
    cw = await carbon_world(env)
    ent = await enterprise(env, cw.reg, "南昌水泥", "南昌", "C3011")
    user, _ = await make_user(env, Role.EMITTER, ent["organisation_id"])
    await sign_in(env.client, user)

    def workbook(rows: list[list[Any]]) -> bytes:
        wb = openpyxl.Workbook()
        ws = wb.active
        ws.append(["uscc", "year", "line_type", "item", "quantity", "unit"])
        for row in rows:
            ws.append(row)
        buf = io.BytesIO()
        wb.save(buf)
        return buf.getvalue()

    home = await env.client.get("/enterprise")
    from tests.web.conftest import csrf_of

    token = csrf_of(home.text)
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    bad = workbook([[ent["uscc"], 2025, "electricity", "purchased", 1, "MWh"],
                    [ent["uscc"], 2025, "electricity", "purchased", "一千", "MWh"]])  # fmt: skip
    r = await env.client.post(
        "/enterprise/reports",
        data={"_csrf_token": token, "period_id": str(cw.pid)},
        files={"file": ("report.xlsx", bad, xlsx)},
    )
    assert r.status_code == 422 and "<td>3</td>" in r.text and "quantity" in r.text  # row 3 of the sheet
    assert (await env.get(f"/api/v1/compliance/periods/{cw.pid}/reports", cw.reg.key)).json() == []
    good = workbook([[ent["uscc"], 2025, "electricity", "purchased", 1000, "MWh"]])
    r = await env.client.post(
        "/enterprise/reports",
        data={"_csrf_token": token, "period_id": str(cw.pid)},
        files={"file": ("report.xlsx", good, xlsx)},
    )
    assert r.status_code == 200 and "已导入 1 行" in r.text
    no_token = await env.client.post("/enterprise/reports", data={"period_id": str(cw.pid)},
                                     files={"file": ("report.xlsx", good, xlsx)})  # fmt: skip
    assert no_token.status_code == 403


async def test_a_verifier_verifies_a_submitted_report_from_the_queue(web_env) -> None:
    env = web_env
    cw = await carbon_world(env)
    ent = await enterprise(env, cw.reg, "南昌水泥", "南昌", "C3011")
    rep = await report(cw, ent, carbon_lines(1000), verify=False)
    verifier_org = await _org_of_principal(env, cw.verifier)
    user, _ = await make_user(env, Role.VERIFIER, verifier_org)
    await sign_in(env.client, user)
    page = await env.client.get(f"/compliance?period={cw.pid}")
    assert f"/compliance/reports/{rep['id']}/verification" in page.text
    r = await form_post(env.client, f"/compliance/reports/{rep['id']}/verification", f"/compliance?period={cw.pid}",
                        {"version": str(rep["current_version"]), "period_id": str(cw.pid)})  # fmt: skip
    assert r.status_code == 303
    got = await env.get(f"/api/v1/compliance/reports/{rep['id']}", cw.reg.key)
    assert got.json()["status"] == "verified"


async def _org_of_principal(env: Any, key: str) -> int:
    from sqlalchemy import select

    from core.models import Principal

    prefix = key.split("_", 2)[1]

    async def work(uow: Any) -> int:
        q = select(Principal.organisation_id).where(Principal.key_prefix == prefix)
        return int((await uow.session.execute(q)).scalar_one())

    return await env.db.read(work)


async def test_the_eligibility_self_check_shows_every_failed_gate(web_env) -> None:
    env = web_env
    fw = await finance_world(env, 1)
    a = fw.ents[0]
    user, _ = await make_user(env, Role.EMITTER, a["organisation_id"])
    await sign_in(env.client, user)
    form = await env.client.get("/enterprise/eligibility?programme=first_set_insurance")
    assert form.status_code == 200 and "fs_policy_year" in form.text
    # First insured 2022-06-01: policy year 4 on the clock's 2026-03-02 (the optional fs_policy_year agrees).
    facts = {"fact.fs_catalogue_code": "FS2019-01", "fact.fs_first_insured_on": "2022-06-01",
             "fact.fs_policy_year": "4", "fact.fs_insured_value_fen": "50,000,000",
             "fact.fs_premium_rate_bp": "400", "fact.fs_premium_paid_fen": "2000000"}  # fmt: skip
    r = await form_post(env.client, "/enterprise/eligibility", "/enterprise/eligibility",
                        {"programme": "first_set_insurance", **facts})  # fmt: skip
    assert r.status_code == 200 and "不符合" in r.text and "财建〔2015〕19号" in r.text
    bad = await form_post(env.client, "/enterprise/eligibility", "/enterprise/eligibility",
                          {"programme": "first_set_insurance", **facts, "fact.fs_policy_year": "four"})  # fmt: skip
    assert bad.status_code == 422 and "facts.fs_policy_year" in bad.text


async def test_an_enterprise_submits_a_claim_from_its_self_check(web_env) -> None:
    env = web_env
    fw = await finance_world(env, 1)
    a = fw.ents[0]
    user, _ = await make_user(env, Role.EMITTER, a["organisation_id"])
    await sign_in(env.client, user)
    # First insured 2024-06-01: policy year 2 on the clock's 2026-03-02, derived (fs_policy_year left empty).
    facts = {"fact.fs_catalogue_code": "FS2019-01", "fact.fs_first_insured_on": "2024-06-01",
             "fact.fs_policy_year": "", "fact.fs_insured_value_fen": "50,000,000",
             "fact.fs_premium_rate_bp": "400", "fact.fs_premium_paid_fen": "2000000"}  # fmt: skip
    checked = await form_post(env.client, "/enterprise/eligibility", "/enterprise/eligibility",
                              {"programme": "first_set_insurance", **facts})  # fmt: skip
    assert checked.status_code == 200 and 'action="/enterprise/claims"' in checked.text
    claim = {"programme": "first_set_insurance", **facts, "project_ref": "P-WEB", "period": "2025",
             "payee_bank": "中国银行南昌分行", "payee_account_no": "6217 0000 0000 0001"}  # fmt: skip
    r = await form_post(env.client, "/enterprise/claims", "/enterprise/eligibility", claim)
    assert r.status_code == 303, r.text
    mine = (await env.get(f"{FIN}/claims", a["key"])).json()["items"]
    assert [(c["project_ref"], c["state"]) for c in mine] == [("P-WEB", "submitted")]
    assert mine[0]["facts"]["fs_insured_value_fen"] == 50_000_000_00  # yuan typed, fen stored exactly
    home = await env.client.get("/enterprise")
    assert mine[0]["claim_no"] in home.text
    again = await form_post(env.client, "/enterprise/claims", "/enterprise/eligibility", claim)
    assert again.status_code == 409  # one claim per enterprise, programme, project and period


async def test_the_self_check_in_chromium(live, page) -> None:  # type: ignore[no-untyped-def]
    from core.db import Database
    from tests.web.test_finance_pages import LiveEnv

    db = Database(live.app.state.db.url)
    env = LiveEnv(live, db)
    try:
        fw = await finance_world(env, 1)
        emitter, _ = await make_user(db, Role.EMITTER, fw.ents[0]["organisation_id"], now=live.clock.now())
        await browser_sign_in(page, live.base_url, emitter)
        await page.goto(f"{live.base_url}/enterprise/eligibility?programme=first_set_insurance")
        for name, value in (("fs_catalogue_code", "FS2019-01"), ("fs_first_insured_on", "2022-06-01"),
                            ("fs_policy_year", "4"), ("fs_insured_value_fen", "50,000,000"),
                            ("fs_premium_rate_bp", "400"), ("fs_premium_paid_fen", "2,000,000")):  # fmt: skip
            await page.fill(f"input[name='fact.{name}']", value)
        await submit(page, "button:has-text('自查')")
        assert await page.locator("span.badge.bad").count() >= 1
        await screenshot(page, "enterprise-eligibility")
    finally:
        await env.client.aclose()
        await db.dispose()
