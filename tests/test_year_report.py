"""The year's report (server/yearreport): a small 2025 built through the API (an allocation, continuous trades on two
days, verified reports, surrenders, a settlement with a fine, first-set claims paid out of a 2025 budget and one
still committed), the report written, and every file checked against figures this test computes from the API's
own answers (not from the report's queries): CSV (BOM, documented header, rows), Parquet (schema, values), the page
and the PDF (the figures as printed), the routes (served, redirected, 404 for traversal and unknown years).

The rendered PDF pages (pdftoppm) and a Chromium screenshot of the page go to var/artefacts/ to be looked at.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
import os
import shutil
import subprocess
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pypdf import PdfReader

from core import figures
from core.identity import Role
from finance.service import SIGNING_KEY_ENV
from server.yearreport import write_year_report
from server.yearreport.queries import load_year
from tests.finance.kit import FS_FACTS
from tests.helpers import documented_csv_header
from tests.registry.compliance.kit import (
    BASE,
    allocate_table,
    at,
    carbon_lines,
    carbon_world,
    enterprise,
    report,
    results,
    settle,
    surrender,
)

FIN = "/api/v1/finance"
ARTEFACTS = Path(__file__).resolve().parents[1] / "var" / "artefacts"
YEAR = 2025


def half_up(numerator: int, denominator: int) -> int:
    q, r = divmod(numerator, denominator)
    return q + (1 if 2 * r >= denominator else 0)


async def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


async def build_year(env: Any) -> dict[str, Any]:
    """The year 2025 through the API; returns the keys and ids the checks need."""
    env.clock.set(at("2025-03-03", 9))
    cw = await carbon_world(env, year=YEAR, overrides={"pre_allocation": "2025-02-01", "allocation": "2025-02-15"})
    a = await enterprise(env, cw.reg, "南昌示范水泥", "南昌", "C3011")
    b = await enterprise(env, cw.reg, "九江示范电厂", "九江", "D4411")
    c = await enterprise(env, cw.reg, "赣州示范电厂", "赣州", "D4411")
    await allocate_table(
        cw, [{"enterprise_id": e["id"], "quantity": q} for e, q in ((a, "1000"), (b, "800"), (c, "500"))]
    )

    # The market, a settlement bank, funds for the buyer.
    await ok(
        await env.post(
            "/api/v1/markets", cw.reg.key, {"instrument_id": cw.cea, "mode": "continuous", "reference_price": "80.00"}
        ),
        201,
    )
    from tests.finance.kit import org

    bank_org = await org(env, "中国银行江西省分行", "bank")
    bank = await env.key(Role.BANK, bank_org)
    r = await ok(await env.post("/api/v1/funds/deposits", c["key"], {"amount": "100000.00", "reference": "t"}), 201)
    await ok(await env.post(f"/api/v1/funds/movements/{r['id']}/decision", bank, {"decision": "confirm"}))

    async def trade(price: str, quantity: str) -> None:
        order = {"instrument_id": cw.cea, "quantity": quantity, "price": price}
        await ok(
            await env.post("/api/v1/orders", b["key"], {**order, "account_id": b["account_id"], "side": "sell"}), 201
        )
        got = await ok(
            await env.post("/api/v1/orders", c["key"], {**order, "account_id": c["account_id"], "side": "buy"}), 201
        )
        assert got["status"] == "filled", got

    env.clock.set(at("2025-03-03", 10))
    await trade("80.00", "100")
    await trade("81.00", "50")

    # First-set claims paid from the 2025 budget: two disbursed, one approved and still committed.
    bureau = await org(env, "江西省财政厅", "finance")
    reviewer, reviewer2 = await env.key(Role.FINANCE_REVIEWER, bureau), await env.key(Role.FINANCE_REVIEWER, bureau)
    approver = await env.key(Role.FINANCE_APPROVER, bureau)
    auditor = await env.key(Role.AUDITOR, name="江西省审计厅")
    budget = await ok(
        await env.post(f"{FIN}/budgets", approver, {"programme": "first_set_insurance", "fiscal_year": YEAR}), 201
    )
    await ok(await env.post(f"{FIN}/budgets/{budget['id']}/appropriations", approver, {"amount_yuan": "10000000"}), 201)
    claims = []
    for ent, project in ((a, "P-1"), (b, "P-2"), (c, "P-3")):
        body = {
            "enterprise_id": ent["id"],
            "programme": "first_set_insurance",
            "project_ref": project,
            "period": str(YEAR),
            "facts": dict(FS_FACTS),
            "payee_bank": "中国银行南昌分行",
            "payee_account_no": "6217000000000001",
        }
        claim = await ok(await env.post(f"{FIN}/claims", ent["key"], body), 201)
        await ok(await env.post(f"{FIN}/claims/{claim['id']}/formal-check", reviewer, {"passed": True}))
        await ok(await env.post(f"{FIN}/claims/{claim['id']}/review", reviewer2, {}))
        await ok(await env.post(f"{FIN}/claims/{claim['id']}/approval", approver, {}))
        claims.append(claim["id"])

    env.clock.set(at("2025-03-04", 10))
    await trade("82.50", "30")

    env.clock.set(at("2025-03-11", 10))
    for claim_id in claims[:2]:
        await ok(await env.post(f"{FIN}/claims/{claim_id}/finalisation", reviewer, {}))
    await ok(await env.post(f"{FIN}/disbursements", approver, {"claim_ids": claims[:2]}), 201)

    # Reports, surrenders (the seller falls short), the reference price, the settlement after the deadline.
    env.clock.set(at("2026-03-02", 10))
    for ent, emitted in ((a, 900), (b, 700), (c, 600)):
        await report(cw, ent, carbon_lines(emitted))
    for ent, quantity in ((a, 900), (b, 620), (c, 600)):
        assert (await surrender(cw, ent, quantity)).status_code == 201
    await ok(await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "98.00"}))
    env.clock.set(at("2027-01-01", 1))
    await ok(await settle(cw))
    return {"cw": cw, "ents": [a, b, c], "budget": budget["id"], "claims": claims, "auditor": auditor}


async def expected_trades(env: Any, key: str, instrument_id: int) -> list[dict[str, Any]]:
    page = await ok(await env.get(f"/api/v1/markets/{instrument_id}/trades?limit=500", key))
    return sorted(page["items"], key=lambda t: t["id"])


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    raw = path.read_bytes()
    assert raw.startswith("\ufeff".encode()) and not raw.startswith(("\ufeff" * 2).encode()), path
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))
    return list(reader.fieldnames or []), list(reader)


def pdf_text(path: Path) -> str:
    return "".join(page.extract_text() or "" for page in PdfReader(path).pages).replace("\n", "").replace(" ", "")


async def test_the_years_report_states_what_the_database_holds_in_every_file(env, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(SIGNING_KEY_ENV, str(tmp_path / "keys" / "signing-key.pem"))
    w = await build_year(env)
    cw, auditor = w["cw"], w["auditor"]
    out = tmp_path / "reports" / str(YEAR)
    files = await write_year_report(env.db, YEAR, out, clock=env.clock)
    names = {p.name for p in files}
    assert names == {"index.html", "report.pdf", "schema.md"} | {
        f"{s}.{x}" for s in ("trades", "market-daily", "compliance", "subsidies") for x in ("csv", "parquet")
    }

    # --- the market: trades and days, against the API's trade feed
    trades = await expected_trades(env, cw.reg.key, cw.cea)
    assert [(t["price_fen"], t["quantity_base"]) for t in trades] == [(8000, 100), (8100, 50), (8250, 30)]
    header, rows = read_csv(out / "trades.csv")
    assert header == documented_csv_header("trades.csv")
    assert "buyer_account_id" not in header and not any("account" in h for h in header)
    assert [(int(r["trade_id"]), r["trade_date"], int(r["price_fen"]), r["quantity"], r["venue"]) for r in rows] == [
        (t["id"], t["trade_date"], t["price_fen"], t["quantity"], t["venue"]) for t in trades
    ]
    assert all(r["turnover_fen"] == str(t["price_fen"] * t["quantity_base"]) for r, t in zip(rows, trades, strict=True))
    by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in trades:
        by_day[t["trade_date"]].append(t)
    expected_days = {
        day: {
            "close_fen": half_up(
                sum(t["price_fen"] * t["quantity_base"] for t in ts), sum(t["quantity_base"] for t in ts)
            ),
            "volume": sum(t["quantity_base"] for t in ts),
            "count": len(ts),
            "high": max(t["price_fen"] for t in ts),
        }
        for day, ts in by_day.items()
    }
    assert expected_days["2025-03-03"]["close_fen"] == 8033  # (8000×100 + 8100×50) / 150 = 8033.33
    header, days = read_csv(out / "market-daily.csv")
    assert header == documented_csv_header("market-daily.csv")
    assert {
        r["trade_date"]: {
            "close_fen": int(r["close_fen"]),
            "volume": int(r["volume"]),
            "count": int(r["trade_count"]),
            "high": int(r["high_fen"]),
        }
        for r in days
    } == expected_days
    assert all(r["vwap_fen"] == r["close_fen"] for r in days)  # only continuous trades: the close is the VWAP

    # --- compliance and fines, against the results API
    page = await results(cw)
    api_rows = {i["uscc"]: i for i in page["items"]}
    header, comp = read_csv(out / "compliance.csv")
    assert header == documented_csv_header("compliance.csv")
    got = {r["uscc"]: r for r in comp}
    assert set(got) == set(api_rows) and len(got) == 3
    for uscc, i in api_rows.items():
        r = got[uscc]
        assert (r["city"], r["industry"], r["status"], r["timeliness"]) == (
            i["city"],
            i["industry"],
            i["status"],
            i["timeliness"],
        )
        assert (int(r["verified"]), int(r["surrendered"]), int(r["shortfall"]), int(r["fine_fen"])) == (
            i["obligation"],
            i["surrendered"],
            i["shortfall"],
            i["fine_fen"],
        )
    short = api_rows[w["ents"][1]["uscc"]]
    assert short["status"] == "B" and short["shortfall"] == 80 and short["fine_fen"] > 0
    fine_total = sum(i["fine_fen"] for i in page["items"])
    # The report's totals by city are the registry's own (the compliance report's), late included.
    data = await load_year(env.db, YEAR, env.clock.now())
    fields = ("enterprises", "compliant", "shortfall_count", "not_reported", "late", "obligation", "surrendered",
              "shortfall", "fine_fen")  # fmt: skip
    assert [(g.key, *(getattr(g, f) for f in fields)) for g in data.by_city] == [
        (t["key"], *(t[f] for f in fields)) for t in page["totals_by_city"]
    ]
    assert sum(g.late for g in data.by_city) == sum(i["timeliness"] == "late" for i in page["items"]) == 1

    # --- subsidies and the budget, against the claims and budget APIs
    paid = [await ok(await env.get(f"{FIN}/claims/{cid}", auditor)) for cid in w["claims"][:2]]
    committed = await ok(await env.get(f"{FIN}/claims/{w['claims'][2]}", auditor))
    assert [c["state"] for c in paid] == ["disbursed", "disbursed"] and committed["state"] == "in_notice"
    city_of = {e["id"]: e["city"] for e in w["ents"]}
    header, subs = read_csv(out / "subsidies.csv")
    assert header == documented_csv_header("subsidies.csv")
    assert sorted((r["programme"], r["city"], int(r["claims"]), int(r["disbursed_fen"])) for r in subs) == sorted(
        ("first_set_insurance", city_of[c["enterprise_id"]], 1, c["amount_fen"]) for c in paid
    )
    budget = await ok(await env.get(f"{FIN}/budgets/{w['budget']}", auditor))
    assert budget["committed_fen"] == committed["amount_fen"] > 0
    assert budget["disbursed_fen"] == sum(c["amount_fen"] for c in paid) > 0

    # --- Parquet: the schema, and the same values as the CSV
    table = pq.read_table(out / "trades.parquet")
    assert table.schema.field("price_fen").type == pa.int64()
    assert table.schema.field("quantity").type == pa.decimal128(24, 3)
    assert table.schema.field("trade_date").type == pa.date32()
    assert table.schema.field("quantity").metadata[b"unit"] == b"display unit (column `unit`)"
    assert table.column_names == documented_csv_header("trades.csv")
    assert table.column("quantity").to_pylist() == [Decimal(t["quantity"]) for t in trades]
    assert table.column("trade_date").to_pylist() == [dt.date.fromisoformat(t["trade_date"]) for t in trades]
    comp_table = pq.read_table(out / "compliance.parquet")
    assert comp_table.schema.field("fine_fen").type == pa.int64()
    assert comp_table.schema.field("report_late").type == pa.bool_()
    assert sum(comp_table.column("fine_fen").to_pylist()) == fine_total
    subs_table = pq.read_table(out / "subsidies.parquet")
    assert sum(subs_table.column("net_fen").to_pylist()) == budget["disbursed_fen"]
    schema_md = (out / "schema.md").read_text(encoding="utf-8")
    for name in ("trades", "market-daily", "compliance", "subsidies"):
        for column in pq.read_schema(out / f"{name}.parquet").names:
            assert f"| `{column}` |" in schema_md, (name, column)

    # --- the holders, against the holdings API
    balances = []
    for e in w["ents"]:
        hs = await ok(await env.get(f"/api/v1/accounts/{e['account_id']}/holdings", e["key"]))
        balances.append((sum(h["balance_base"] for h in hs if h["instrument"]["kind"] == "cea"), e["name"]))
    ranked = sorted((b for b in balances if b[0] > 0), key=lambda t: -t[0])

    # --- the page: figures as written by core.figures, no script, nothing fetched from elsewhere
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "<script" not in html and "https://" not in html and "http://" not in html
    assert html.count("<svg") >= 4
    for text in (
        figures.yuan(expected_days["2025-03-03"]["close_fen"]),
        figures.yuan(fine_total),
        figures.yuan(budget["appropriated_fen"]),
        figures.yuan(budget["committed_fen"]),
        figures.yuan(budget["disbursed_fen"]),
        figures.yuan(budget["available_fen"]),
        figures.yuan(sum(t["price_fen"] * t["quantity_base"] for t in trades)),
        *(f"{figures.quantity(b)} tCO2e" for b, _ in ranked),
        *(name for _, name in ranked),
    ):
        assert text in html, text
    assert html.index(ranked[0][1]) < html.index(ranked[-1][1])  # largest first

    # --- the PDF: the same figures, extracted as text
    txt = pdf_text(out / "report.pdf")
    assert f"江西省环境权益市场{YEAR}年度报告" in txt
    for text in (
        figures.yuan(expected_days["2025-03-03"]["close_fen"]),
        figures.yuan(fine_total, unit=True).replace(" ", ""),
        figures.yuan(budget["committed_fen"]),
        figures.yuan(budget["disbursed_fen"]),
        figures.yuan(budget["available_fen"]),
        short["uscc"],
        *(f"{figures.quantity(b)}tCO2e" for b, _ in ranked),
    ):
        assert text in txt, text
    await look_at(out)

    # --- the routes: public, the report's own files only
    env.app.state.reports_dir = tmp_path / "reports"
    (out / "secret.txt").write_text("not a report file")
    client = env.client
    r = await client.get(f"/reports/{YEAR}/")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8", r.text
    assert r.text == html
    # The policy allows the page's one style sheet by its hash, and nothing else: no script, no other origin.
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    policy = r.headers["content-security-policy"]
    assert f"style-src 'sha256-{digest}'" in policy and "default-src 'none'" in policy and "script-src" not in policy
    r = await client.get(f"/reports/{YEAR}", follow_redirects=False)
    assert r.status_code == 308 and r.headers["location"] == f"/reports/{YEAR}/"
    r = await client.get(f"/reports/{YEAR}/report.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF")
    r = await client.get(f"/reports/{YEAR}/trades.csv")
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.content == (out / "trades.csv").read_bytes()
    r = await client.get(f"/reports/{YEAR}/compliance.parquet")
    assert r.status_code == 200 and r.content == (out / "compliance.parquet").read_bytes()
    for bad in (
        f"/reports/{YEAR}/secret.txt",
        f"/reports/{YEAR}/..%2F..%2F..%2Fpyproject.toml",
        f"/reports/{YEAR}/%2E%2E",
        f"/reports/{YEAR}/..",
        f"/reports/{YEAR}/..%5Csecret.txt",
        "/reports/2024/",
        "/reports/1/",
    ):
        r = await client.get(bad, headers={"Accept": "text/html"})
        assert r.status_code == 404, (bad, r.status_code)
        assert "not a report file" not in r.text and "[project]" not in r.text
    r = await client.get("/reports/2024/", headers={"Accept": "text/html"})
    assert r.headers["content-type"].startswith("text/html")


async def look_at(out: Path) -> None:
    """The PDF's pages as PNGs and the page as a Chromium screenshot, in var/artefacts/, to be looked at. In Chromium
    the page must render its charts with no error and fetch nothing."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "report.pdf", ARTEFACTS / "year-report.pdf")
    if shutil.which("pdftoppm"):
        subprocess.run(
            ["pdftoppm", "-png", "-r", "60", str(out / "report.pdf"), str(ARTEFACTS / "year-report-page")], check=True
        )
    chromium = os.environ.get("GREENRIGHTS_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        return
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 900}, locale="zh-CN")
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on("request", lambda r: problems.append(r.url) if not r.url.startswith("file://") else None)
            await page.goto((out / "index.html").as_uri())
            boxes = [await svg.bounding_box() for svg in await page.query_selector_all("svg")]
            assert boxes and all(b is not None and b["width"] > 500 and b["height"] > 50 for b in boxes), boxes
            await page.screenshot(path=str(ARTEFACTS / "year-report-page.png"), full_page=True)
            assert problems == [], problems
        finally:
            await browser.close()


@pytest.mark.parametrize("year", [1999, 2201])
async def test_a_year_out_of_range_is_refused(env, tmp_path, year) -> None:
    with pytest.raises(ValueError, match="year must be between"):
        await write_year_report(env.db, year, tmp_path)
