"""Every document the registry issues verifies (issue 15 item 4): an account statement's and a compliance report's
verification code is on record the moment the PDF is made, `/verify/{code}` answers it without a login (JSON for
programs, a page for a person who opened the QR code), and a later statement of the same account supersedes the
earlier one, which still verifies as issued."""

from __future__ import annotations

import datetime as dt
import re

from tests.finance.kit import pdf_text
from tests.helpers import allocate, world
from tests.registry.compliance.kit import BASE, at, carbon_lines, carbon_world, enterprise, report, settle, surrender

CODE = re.compile(r"[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}")
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _code(pdf: bytes) -> str:
    text = pdf_text(pdf)
    found = CODE.findall(text)
    assert found, text[-400:]
    assert f"/verify/{found[0]}" in text.replace("\n", "")  # the QR code's address is printed beside it
    return found[0]


async def test_a_statement_verifies_and_a_later_one_supersedes_it(env) -> None:
    w = await world(env, n_enterprises=1, issue=5000)
    a = w.enterprises[0]
    await allocate(env, w, a["account_id"], 1234)
    first = _code((await env.get(f"/api/v1/accounts/{a['account_id']}/statement.pdf", a["key"])).content)
    v = (await env.client.get(f"/verify/{first}")).json()  # no Authorization header
    assert (v["valid"], v["type"], v["title"], v["superseded"]) == (True, "account_statement", "账户对账单", False)
    assert v["enterprise_name"] == "企业0" and v["issued_by"] == "江西省环境权益登记簿"
    assert v["details"]["facts"]["碳排放配额 CEA-NATIONAL-2025 余额"] == "1,234 tCO2e"

    env.clock.advance(dt.timedelta(seconds=60))
    await allocate(env, w, a["account_id"], 100)
    second = _code((await env.get(f"/api/v1/accounts/{a['account_id']}/statement.pdf", a["key"])).content)
    assert second != first
    v = (await env.client.get(f"/verify/{first}")).json()
    assert (v["superseded"], v["superseded_by"]) == (True, second)
    assert v["details"]["facts"]["碳排放配额 CEA-NATIONAL-2025 余额"] == "1,234 tCO2e"  # still what it said
    page = await env.client.get(f"/verify/{first}", headers=HTML)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "已有更新版本" in page.text and f"/verify/{second}" in page.text
    now = (await env.client.get(f"/verify/{second}", headers=HTML)).text
    assert "最新版本" in now and "1,334 tCO2e" in now


async def test_a_compliance_report_verifies_and_the_same_report_keeps_its_code(env) -> None:
    cw = await carbon_world(env, overrides={"allocation": "2026-02-15", "pre_allocation": "2026-02-01"})
    a = await enterprise(env, cw.reg, "南昌水泥", "南昌", "C3011")
    r = await env.post(f"{BASE}/periods/{cw.pid}/allocation-tables", cw.reg.key, {
        "kind": "allocation", "instrument_id": cw.cea, "lines": [{"enterprise_id": a["id"], "quantity": "1200"}]})
    assert r.status_code == 201, r.text
    r = await env.post(f"{BASE}/allocation-tables/{r.json()['id']}/approval", cw.reg.key2, {"decision": "approve"})
    assert r.status_code == 200, r.text
    await report(cw, a, carbon_lines(1000))
    assert (await surrender(cw, a, 1000)).status_code == 201
    r = await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "98.00"})
    assert r.status_code == 200, r.text
    env.clock.set(at("2027-01-01", 1))
    assert (await settle(cw)).status_code == 200
    r = await env.get(f"{BASE}/periods/{cw.pid}/report.pdf", cw.reg.key)
    assert r.status_code == 200, r.text
    code = _code(r.content)
    v = (await env.client.get(f"/verify/{code}")).json()
    assert (v["type"], v["superseded"]) == ("compliance_report", False)
    assert v["details"]["facts"]["纳入企业"] == "1"
    again = _code((await env.get(f"{BASE}/periods/{cw.pid}/report.pdf", cw.reg.key)).content)
    assert again == code  # the same settled period is the same document


async def test_an_unknown_code_is_a_404(env) -> None:
    r = await env.client.get("/verify/AAAA-AAAA-AAAA-AAAA")
    assert r.status_code == 404 and r.json()["field"] == "code"
