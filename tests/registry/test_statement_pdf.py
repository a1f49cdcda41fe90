"""downloadAccountStatement returns a real PDF whose extracted text shows the holder and holdings in Chinese."""

from __future__ import annotations

import io

from pypdf import PdfReader

from tests.helpers import allocate, world


async def test_statement_pdf_shows_chinese_holder_and_balance(env) -> None:
    w = await world(env, n_enterprises=1, issue=5000)
    a = w.enterprises[0]
    await allocate(env, w, a["account_id"], 1234)
    r = await env.get(f"/api/v1/accounts/{a['account_id']}/statement.pdf", a["key"])
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/pdf")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(r.content)).pages)
    assert "账户对账单" in text
    assert "企业0" in text
    assert "碳排放配额" in text
    assert "1,234" in text
    assert "CEA-NATIONAL-2025" in text


async def test_statement_of_another_organisation_is_404(env) -> None:
    w = await world(env, n_enterprises=2, issue=10)
    a, b = w.enterprises
    r = await env.get(f"/api/v1/accounts/{b['account_id']}/statement.pdf", a["key"])
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
