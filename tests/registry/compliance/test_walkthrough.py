"""The newcomer's path through a whole carbon period by the API (docs/compliance.md): create the period,
allocate with four-eyes, submit and verify reports, surrender, settle (dry run, then for real), download the
PDF and the CSV; a second settlement changes nothing."""

from __future__ import annotations

import csv
import io

from pypdf import PdfReader

from core import ledger
from core.audit import link_and_verify
from tests.helpers import documented_csv_header
from tests.registry.compliance.kit import (
    BASE,
    at,
    by_enterprise,
    carbon_lines,
    carbon_world,
    count,
    enterprise,
    report,
    results,
    settle,
    surrender,
)


async def test_a_whole_carbon_period_runs_through_the_api_and_settles_once(env) -> None:
    cw = await carbon_world(env, overrides={"allocation": "2026-02-15", "pre_allocation": "2026-02-01"})
    r = await env.get(f"{BASE}/periods/{cw.pid}/calendar", cw.reg.key)
    assert r.status_code == 200, r.text
    events = {e["kind"]: e for e in r.json()["events"]}
    assert events["surrender_deadline"]["business_date"] == "2026-12-31"
    assert events["surrender_deadline"]["due_before"] == "2027-01-01T00:00:00+08:00"  # exclusive end of the day
    assert events["settlement"]["job"] == "settlement" and events["allocation"]["overridden"] is True
    # 2026-03-31 is a Tuesday (working day): the report deadline does not move.
    assert events["report_due"]["business_date"] == "2026-03-31"

    a = await enterprise(env, cw.reg, "南昌水泥", "南昌", "C3011")
    b = await enterprise(env, cw.reg, "九江电厂", "九江", "D4411")
    r = await env.post(f"{BASE}/periods/{cw.pid}/allocation-tables", cw.reg.key, {
        "kind": "allocation", "instrument_id": cw.cea,
        "lines": [{"enterprise_id": a["id"], "quantity": "1200"},
                  {"enterprise_id": b["id"], "benchmark_lines": [
                      {"label": "供电", "benchmark": "0.8177", "output": "1000", "corrections": ["0.99", "1.008"]}]}]})
    assert r.status_code == 201, r.text
    table = r.json()
    assert table["status"] == "awaiting_approval"
    # 816.0 × ... = 0.8177 × 1000 × 0.99 × 1.008 = 815.9992 → 816 (rounded once).
    assert [x["quantity"] for x in table["lines"]] == [1200, 816]
    r = await env.post(f"{BASE}/allocation-tables/{table['id']}/approval", cw.reg.key, {"decision": "approve"})
    assert r.status_code == 403 and r.json()["type"] == "/problems/four-eyes-required"
    r = await env.post(f"{BASE}/allocation-tables/{table['id']}/approval", cw.reg.key2, {"decision": "approve"})
    assert r.status_code == 200 and r.json()["status"] == "posted", r.text

    await report(cw, a, carbon_lines(1000))
    await report(cw, b, carbon_lines(900))
    assert (await surrender(cw, a, 1000)).status_code == 201
    assert (await surrender(cw, b, 500)).status_code == 201

    # No market price for November 2026 and none entered: the settlement is refused until the regulator sets one.
    r = await settle(cw, dry_run=True)
    assert r.status_code == 409 and r.json()["type"] == "/problems/reference-price-missing", r.text
    r = await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "98.00"})
    assert r.status_code == 200, r.text
    # Settling before the deadline is refused; a dry run is not.
    r = await settle(cw)
    assert r.status_code == 409 and r.json()["type"] == "/problems/invalid-state", r.text
    env.clock.set(at("2027-01-01", 1))
    r = await settle(cw, dry_run=True)
    assert r.status_code == 200, r.text
    dry = r.json()
    assert dry["status"] == "dry_run" and dry["obligations"] == 2 and dry["total_fine_fen"] == 400 * 9800 * 5
    assert await count(env, "SELECT count(*) FROM compliance_settlement") == 0

    r = await settle(cw)
    assert r.status_code == 200, r.text
    real = r.json()
    assert (real["status"], real["settled_now"], real["compliant"], real["shortfall_count"]) == ("settled", 2, 1, 1)
    assert real["total_fine_fen"] == dry["total_fine_fen"] and real["reference_price_fen"] == 9800
    page = await results(cw)
    rows = by_enterprise(page)
    assert rows[a["id"]]["status"] == "A" and rows[b["id"]]["status"] == "B"
    assert rows[b["id"]]["shortfall"] == 400 and rows[b["id"]]["fine_yuan"] == "196000.00"
    assert {t["key"]: t["fine_fen"] for t in page["totals_by_city"]} == {"九江": 19_600_000, "南昌": 0}

    audit_before = await count(env, "SELECT count(*) FROM audit_entry")
    transfers_before = await count(env, "SELECT count(*) FROM ledger_transfer")
    r = await settle(cw)
    assert r.status_code == 200 and r.json()["status"] == "already_settled", r.text
    assert r.json()["total_fine_fen"] == real["total_fine_fen"]
    assert await count(env, "SELECT count(*) FROM audit_entry") == audit_before
    assert await count(env, "SELECT count(*) FROM ledger_transfer") == transfers_before
    assert await count(env, "SELECT count(*) FROM compliance_settlement") == 2
    # Settled: surrenders are refused by the server clock and the closed period.
    r = await surrender(cw, b, 1)
    assert r.status_code == 409 and r.json()["type"] == "/problems/period-closed", r.text

    r = await env.get(f"{BASE}/periods/{cw.pid}/report.pdf", cw.reg.key)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(r.content)).pages)
    assert "碳排放配额清缴履约情况报告" in text and "九江电厂" in text and "196,000.00" in text
    r = await env.get(f"{BASE}/periods/{cw.pid}/results.csv", cw.reg.key)
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == 2 and list(rows[0]) == documented_csv_header("results.csv")  # docs/compliance.md
    assert {row["report_late"] for row in rows} <= {"true", "false"}  # not Python's False
    assert all("," not in row["fine_yuan"] and "." in row["fine_yuan"] for row in rows)  # a plain number

    r = await env.get(f"{BASE}/enterprises/{b['id']}/status", b["key"])
    assert r.status_code == 200, r.text
    status = r.json()
    assert status["open_shortfall"] is True and status["carbon_open_shortfall_t"] == 400
    r = await env.get(f"{BASE}/enterprises/{b['id']}/status", a["key"])
    assert r.status_code == 404  # another enterprise's status is not visible, like a missing one

    async def checks(uow):  # type: ignore[no-untyped-def]
        return await ledger.check_invariants(uow.session)

    assert await env.db.read(checks) == []
    assert (await link_and_verify(env.db))[0]
