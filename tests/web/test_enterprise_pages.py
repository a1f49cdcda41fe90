"""A key emitter's pages (/enterprise): holdings with serial ranges, transactions a page at a time, the statement PDF,
obligations with their deadlines, surrender, report submission (form and Excel upload with row errors), the
eligibility self-check, consents for banks. Another enterprise's data answers 404; other roles get 403."""

from __future__ import annotations

import io
import re
from typing import Any

import openpyxl

from core.identity import Role
from tests.finance.kit import org
from tests.registry.compliance.kit import CW, carbon_lines, carbon_world, enterprise, report
from tests.web.conftest import browser_sign_in, csrf_of, form_post, make_user, screenshot, sign_in, submit

BASE = "/api/v1/compliance"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def workbook(rows: list[list[Any]]) -> bytes:
    """An Excel report in the upload's layout: uscc, year, line_type, item, quantity, unit."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["uscc", "year", "line_type", "item", "quantity", "unit"])
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


async def allocate(cw: CW, ent: dict[str, Any], quantity: int) -> None:
    """Allocate allowances to an enterprise through the authority's four-eyes allocation table."""
    env = cw.env
    r = await env.post(f"{BASE}/periods/{cw.pid}/allocation-tables", cw.reg.key, {
        "kind": "allocation", "instrument_id": cw.cea,
        "lines": [{"enterprise_id": ent["id"], "quantity": str(quantity)}]})  # fmt: skip
    assert r.status_code == 201, r.text
    r = await env.post(f"{BASE}/allocation-tables/{r.json()['id']}/approval", cw.reg.key2, {"decision": "approve"})
    assert r.status_code == 200 and r.json()["status"] == "posted", r.text


async def test_an_emitter_never_sees_another_enterprises_data_and_other_roles_are_refused(web_env) -> None:
    env = web_env
    cw = await carbon_world(env)
    x = await enterprise(env, cw.reg, "南昌水泥", "南昌", "C3011")
    y = await enterprise(env, cw.reg, "九江电厂", "九江", "D4411")
    await allocate(cw, y, 500)
    user_x, _ = await make_user(env, Role.EMITTER, x["organisation_id"])
    assert (await sign_in(env.client, user_x)).headers["location"] == "/enterprise"
    home = await env.client.get("/enterprise")
    assert home.status_code == 200 and "南昌水泥" in home.text and "九江电厂" not in home.text
    assert f"/enterprise/accounts/{y['account_id']}/" not in home.text
    assert (await env.client.get(f"/enterprise/accounts/{x['account_id']}/statement.pdf")).status_code == 200
    assert (await env.client.get(f"/enterprise/accounts/{x['account_id']}/transactions")).status_code == 200
    for path in (f"/enterprise/accounts/{y['account_id']}/statement.pdf",
                 f"/enterprise/accounts/{y['account_id']}/transactions"):  # fmt: skip
        r = await env.client.get(path)
        assert r.status_code == 404, path
    # Surrendering from Y's account through the page is refused as the API refuses it: no such account for X.
    r = await form_post(env.client, "/enterprise/surrenders", "/enterprise", {
        "account_id": str(y["account_id"]), "instrument_id": str(cw.cea), "quantity": "1", "period": cw.code,
        "form_key": "abc123"})  # fmt: skip
    assert r.status_code == 404
    held = (await env.get(f"/api/v1/accounts/{y['account_id']}/holdings", y["key"])).json()
    assert held[0]["balance"] == "500"
    # The obligations read behind the page: X's own answers, Y's is 404 for X (the API operation too).
    assert (await env.get(f"{BASE}/enterprises/{x['id']}/obligations", x["key"])).status_code == 200
    assert (await env.get(f"{BASE}/enterprises/{y['id']}/obligations", x["key"])).status_code == 404
    # A regulator (or a bank) gets 403 on every enterprise page.
    for role, org_id in ((Role.REGULATOR, cw.reg.org), (Role.BANK, None)):
        user, _ = await make_user(env, role, org_id)
        await sign_in(env.client, user)
        for path in ("/enterprise", "/enterprise/eligibility", f"/enterprise/accounts/{x['account_id']}/statement.pdf",
                     f"/enterprise/accounts/{x['account_id']}/transactions"):  # fmt: skip
            r = await env.client.get(path, follow_redirects=False)
            assert r.status_code == 403, (role, path)


async def test_obligations_deadlines_and_a_surrender_from_the_page(web_env) -> None:
    env = web_env
    cw = await carbon_world(env)
    a = await enterprise(env, cw.reg, "南昌水泥", "南昌", "C3011")
    await allocate(cw, a, 1200)
    await report(cw, a, carbon_lines(1000))
    user, _ = await make_user(env, Role.EMITTER, a["organisation_id"])
    await sign_in(env.client, user)
    home = await env.client.get("/enterprise")
    assert home.status_code == 200
    assert "2026-12-31" in home.text and "1,000" in home.text and "已核查" in home.text  # deadline, owed, report
    assert "CEA-NATIONAL-2025-" in home.text  # the serial ranges of the holding
    body = {"account_id": str(a["account_id"]), "instrument_id": str(cw.cea), "quantity": "400", "period": cw.code,
            "form_key": "k1"}  # fmt: skip
    r = await form_post(env.client, "/enterprise/surrenders", "/enterprise", body)
    assert r.status_code == 303 and r.headers["location"].startswith("/enterprise?done=surrender")
    again = await form_post(env.client, "/enterprise/surrenders", "/enterprise", body)  # the same form sent twice
    assert again.status_code == 303
    held = (await env.get(f"/api/v1/accounts/{a['account_id']}/holdings", a["key"])).json()
    assert held[0]["balance"] == "800"  # surrendered once
    (ob,) = (await env.get(f"{BASE}/enterprises/{a['id']}/obligations", a["key"])).json()
    assert (ob["obligation"], ob["surrendered"], ob["remaining"]) == (1000, 400, 600)
    assert ob["surrender_deadline"] == "2026-12-31"
    page = await env.client.get("/enterprise")
    # The events section: the allocation and the surrender, newest first, as listEvents has them.
    events = page.text.split('id="events"', 1)[1]
    assert events.index("surrender.recorded") < events.index("allocation.posted")
    assert "quantity=400" in events
    assert "清缴已提交" in (await env.client.get("/enterprise?done=surrender")).text
    assert ">600<" in page.text.replace("<strong>", "").replace("</strong>", "")
    # More than is owed: refused with the rule's reason on the page, nothing moves.
    over = await form_post(env.client, "/enterprise/surrenders", "/enterprise", {**body, "quantity": "700",
                                                                                   "form_key": "k2"})  # fmt: skip
    assert over.status_code in (409, 422) and 'role="alert"' in over.text
    held = (await env.get(f"/api/v1/accounts/{a['account_id']}/holdings", a["key"])).json()
    assert held[0]["balance"] == "800"
    # The transactions page: the allocation and the surrender, newest first.
    txs = await env.client.get(f"/enterprise/accounts/{a['account_id']}/transactions")
    assert txs.status_code == 200 and txs.text.index("清缴") < txs.text.index("分配")


async def test_a_report_typed_in_the_form_is_submitted_and_a_bad_line_is_explained(web_env) -> None:
    env = web_env
    cw = await carbon_world(env)
    a = await enterprise(env, cw.reg, "南昌水泥", "南昌", "C3011")
    user, _ = await make_user(env, Role.EMITTER, a["organisation_id"])
    await sign_in(env.client, user)
    line = carbon_lines(1000)[0]
    bad = await form_post(env.client, "/enterprise/reports/form", "/enterprise", {
        "period_id": str(cw.pid), "line0.line_type": "process", "line0.item": "clinker", "line0.quantity": "一千",
        "line0.unit": "t"})  # fmt: skip
    assert bad.status_code == 422 and 'role="alert"' in bad.text and 'value="一千"' in bad.text  # the form is kept
    assert (await env.get(f"{BASE}/periods/{cw.pid}/reports", a["key"])).json() == []
    ok = await form_post(env.client, "/enterprise/reports/form", "/enterprise", {
        "period_id": str(cw.pid), "line0.line_type": line["line_type"], "line0.item": line["item"],
        "line0.quantity": str(line["quantity"]), "line0.unit": line["unit"], "note": "网页填报"})  # fmt: skip
    assert ok.status_code == 303, ok.text
    (rep,) = (await env.get(f"{BASE}/periods/{cw.pid}/reports", a["key"])).json()
    assert rep["status"] == "submitted" and rep["versions"][0]["note"] == "网页填报"
    home = await env.client.get("/enterprise")
    assert "已报送待核查" in home.text and "待核查" in home.text  # the obligation awaits verification


async def test_an_emitters_journey_in_chromium(live, page) -> None:  # type: ignore[no-untyped-def]
    from core.db import Database
    from tests.web.test_finance_pages import LiveEnv

    db = Database(live.app.state.db.url)
    env = LiveEnv(live, db)
    try:
        cw = await carbon_world(env)
        a = await enterprise(env, cw.reg, "南昌示范水泥有限公司", "南昌", "C3011")
        await allocate(cw, a, 1200)
        await org(env, "中国银行江西省分行", "bank")
        emitter, _ = await make_user(db, Role.EMITTER, a["organisation_id"], now=live.clock.now())
        await browser_sign_in(page, live.base_url, emitter)
        assert page.url.endswith("/enterprise")
        # Holdings with their serial ranges.
        await page.wait_for_selector("text=CEA-NATIONAL-2025")
        assert await page.locator("code:has-text('CEA-NATIONAL-2025-')").count() >= 2
        await screenshot(page, "enterprise-home")
        # The statement PDF downloads.
        async with page.expect_download() as dl:
            await page.click(f"a[href='/enterprise/accounts/{a['account_id']}/statement.pdf']")
        path = await (await dl.value).path()
        with open(path, "rb") as f:
            assert f.read(5) == b"%PDF-"
        # An Excel report with one bad row: that row's error on the page, nothing imported.
        xlsx = workbook([[a["uscc"], 2025, "process", "clinker", 1000, "t"],
                         [a["uscc"], 2025, "process", "clinker", "一千", "t"]])  # fmt: skip
        await page.set_input_files("input[name=file]", files=[{"name": "report.xlsx", "mimeType": XLSX,
                                                               "buffer": xlsx}])  # fmt: skip
        await submit(page, "button:has-text('上传报送')")
        await page.wait_for_selector("#row-errors")
        row = page.locator("#row-errors tbody tr")
        assert await row.count() == 1
        assert (await row.locator("td").first.inner_text()).strip() == "3"  # row 3 of the sheet (after the header)
        assert "quantity" in await row.inner_text()
        await page.locator("#reports").scroll_into_view_if_needed()
        await screenshot(page, "enterprise-report-errors")
        assert (await env.get(f"{BASE}/periods/{cw.pid}/reports", a["key"])).json() == []
        # The eligibility self-check shows a failed gate with its citation and the change that would pass.
        await page.goto(f"{live.base_url}/enterprise/eligibility?programme=first_set_insurance")
        for name, value in (("fs_catalogue_code", "FS2019-01"), ("fs_first_insured_on", "2022-06-01"),
                            ("fs_policy_year", "4"), ("fs_insured_value_fen", "50,000,000"),
                            ("fs_premium_rate_bp", "400"), ("fs_premium_paid_fen", "2,000,000")):  # fmt: skip
            await page.fill(f"input[name='fact.{name}']", value)
        await submit(page, "button:has-text('自查')")
        failed = page.locator("tr:has(span.badge.bad)")
        assert await failed.count() >= 1
        assert "财建〔2015〕19号" in await page.content()
        await screenshot(page, "enterprise-eligibility")
        # A consent to the bank: granted, listed with its revoke button.
        await page.goto(f"{live.base_url}/enterprise#consents")
        await page.fill("input[name=purpose]", "项目贷款审批")
        await submit(page, "button:has-text('授予授权')")
        assert await page.locator("text=授权已生效").count() == 1
        assert await page.locator("#consents ~ table button:has-text('撤回')").count() == 1
        await page.locator("#consents").scroll_into_view_if_needed()
        await screenshot(page, "enterprise-consents")
        consents = (await env.get("/api/v1/finance/consents", a["key"])).json()
        assert [c["purpose"] for c in consents if c["active"]] == ["项目贷款审批"]
        # The transactions page of the account.
        await page.goto(f"{live.base_url}/enterprise/accounts/{a['account_id']}/transactions")
        assert await page.locator("td:has-text('分配')").count() >= 1
        await screenshot(page, "enterprise-transactions")
        # English.
        await page.goto(f"{live.base_url}/enterprise?lang=en")
        assert await page.locator("h2:has-text('Obligations and deadlines')").count() == 1
    finally:
        await env.client.aclose()
        await db.dispose()


async def test_the_emitter_home_has_no_stray_keys(web_env) -> None:
    """Every text of the page comes from the catalogue in both languages (no raw key shows)."""
    env = web_env
    cw = await carbon_world(env)
    a = await enterprise(env, cw.reg, "南昌水泥", "南昌", "C3011")
    await allocate(cw, a, 100)
    user, _ = await make_user(env, Role.EMITTER, a["organisation_id"])
    await sign_in(env.client, user)
    for lang in ("zh", "en"):
        text = (await env.client.get(f"/enterprise?lang={lang}")).text
        assert not re.search(r"(?<![\w/.-])(ent|tx|comp|finance|bank)\.[a-z_]+\b(?![\w.-]*\.pdf)", text), lang
    assert csrf_of(text)
