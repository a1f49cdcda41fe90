"""The carbon compliance cycle of the simulated year, through the API: the scheme and its period with the dates of
the authority's notice (laid on the simulated working days), obligations, annual reports (JSON, and Excel uploads of
which a few are refused for a bad row and sent again corrected), verification (a few corrected by the verifier), the
allocation table after verification (the rest of each enterprise's allocation on top of the pre-allocation the
load gave; proposed by one regulator key, approved by the other), surrender at the deadline (most in full, a few
short), the reference price, and the settlement that the scheduler runs when the sandbox clock passes the
deadline."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from greenrights.client import ApiError
from server.simulate.common import Enterprise, Run, yuan

# 2 × 44/12 of the default factors: raw coal 20.908 GJ/t × 0.02637 tC/GJ × 0.94 oxidised × 44/12 ≈ 1.9003 tCO2/t
# (registry/domain/factor_defaults.py); the report states coal in whole tonnes and the server computes the figure.
COAL_T_PER_TCO2 = 1 / 1.9003
CLINKER_TCO2_PER_T = 0.538
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEADER = ["uscc", "year", "line_type", "item", "quantity", "unit"]


async def open_period(run: Run) -> None:
    """The national carbon scheme and its period for the year, every date on a simulated day: pre-allocation and
    allocation at the start, reports due in month 3, verification in month 6, the allocation table in month 7,
    the surrender deadline on month 12's day; then every emitter's obligation."""
    d = run.days
    reg = run.regulator
    schemes = await reg.call("listSchemes")
    scheme = next((s for s in schemes if s.code == "CN-CEA"), None)
    if scheme is None:
        scheme = await reg.call(
            "createScheme",
            {"code": "CN-CEA", "name": "全国碳排放权交易市场", "kind": "carbon", "cea_scheme": "national"},
        )
    run.scheme = scheme
    overrides = {
        "pre_allocation": run.start.isoformat(),
        "allocation": d[6].isoformat(),
        "true_up": d[6].isoformat(),
        "report_due": d[2].isoformat(),
        "verification_due": d[5].isoformat(),
        "surrender_deadline": d[11].isoformat(),
    }
    run.period = await reg.call(
        "createPeriod",
        {"scheme_id": scheme.id, "year": run.year, "overrides": overrides, "eligible_vintages": [run.year]},
    )
    ids = [e.enterprise_id for e in run.enterprises]
    await reg.call("registerObligations", {"enterprise_ids": ids}, period_id=run.period.id)
    run.counts["obligations"] = len(ids)


def report_lines(run: Run, e: Enterprise, tco2: int) -> list[dict[str, str]]:
    """Activity data that the national method turns into about `tco2` t: cement's process emissions from clinker,
    the rest from raw coal."""
    lines = []
    if e.sector == "cement":
        clinker = round(tco2 * 0.55 / CLINKER_TCO2_PER_T)
        lines.append({"line_type": "process", "item": "clinker", "quantity": str(clinker), "unit": "t"})
        tco2 -= round(clinker * CLINKER_TCO2_PER_T)
    coal = max(1, round(tco2 * COAL_T_PER_TCO2))
    lines.append({"line_type": "fuel", "item": "raw_coal", "quantity": str(coal), "unit": "t"})
    return lines


def workbook(rows: list[list[str]]) -> bytes:
    """An Excel file (xlsx) with the report layout's header and `rows`, every cell text."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "排放报告"
    ws.append(HEADER)
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


async def submit_reports(run: Run) -> None:
    """Every emitter reports its year. About a quarter upload an Excel file; two of those first send a file with a
    bad row (an unknown fuel code), which is refused whole, then the corrected file."""
    pid, rng = run.period.id, run.rng
    excel = {e.uscc for e in run.enterprises if rng.random() < 0.25}
    if not excel:
        excel = {run.enterprises[0].uscc}
    wrong_first = set(sorted(excel)[:2])
    for e in run.enterprises:
        lines = report_lines(run, e, e.emissions_t)
        client = run.client(e)
        if e.uscc not in excel:
            await client.call("submitReport", {"lines": lines, "enterprise_id": e.enterprise_id}, period_id=pid)
            run.counts["reports_json"] += 1
            continue
        rows = [[e.uscc, str(run.year), x["line_type"], x["item"], x["quantity"], x["unit"]] for x in lines]
        if e.uscc in wrong_first:
            bad = [*rows, [e.uscc, str(run.year), "fuel", "煤", "120", "t"]]  # no such fuel code
            try:
                await client.call(
                    "uploadReports", files={"file": ("排放报告.xlsx", workbook(bad), XLSX)}, period_id=pid
                )
                run.notes.append(f"report upload with a bad row was accepted for {e.uscc}")
            except ApiError as exc:
                run.counts[f"reports_refused:{exc.slug}"] += 1
        await client.call("uploadReports", files={"file": ("排放报告.xlsx", workbook(rows), XLSX)}, period_id=pid)
        run.counts["reports_excel"] += 1


async def verify_reports(run: Run) -> None:
    """The verification body verifies every report; for about one in ten it corrects the coal by a few percent (a
    new version, verified)."""
    verifier = run.world.authority("verifier")
    by_id = {e.enterprise_id: e for e in run.enterprises}
    reports = sorted(await verifier.call("listReports", period_id=run.period.id), key=lambda r: r.enterprise_id)
    for r in reports:
        e = by_id.get(r.enterprise_id)
        if e is None:
            continue
        if run.rng.random() < 0.1:
            bump = run.rng.choice((-3, -2, 2, 3, 4))
            lines = report_lines(run, e, e.emissions_t * (100 + bump) // 100)
            body = {"decision": "correct", "version": r.current_version, "lines": lines, "note": "核查调整燃煤消耗量"}
            out = await verifier.call("verifyReport", body, report_id=r.id)
            run.counts["reports_corrected"] += 1
        else:
            out = await verifier.call(
                "verifyReport", {"decision": "verify", "version": r.current_version}, report_id=r.id
            )
        e.verified_t = int(out.verified_figure["tco2e"])
        run.counts["reports_verified"] += 1


async def issue_for_allocation(run: Run, extra: int) -> None:
    """The regulator issues what the allocation table will post and the auction will sell into its allocation
    account (proposed by one key, approved by the other)."""
    code = next(c for c, i in run.instruments.items() if i.kind == "cea")
    need = sum(e.final_allocation_t - e.pre_allocation_t for e in run.enterprises) + extra
    tx = await run.regulator.call(
        "issueUnits", {"kind": "cea", "scheme": "national", "vintage": run.year, "quantity": str(need)}
    )
    await run.regulator2.call("approveTransfer", {"decision": "approve"}, transaction_id=tx.id)
    run.counts["issued_after_load"] += need
    assert run.instruments[code].id == tx.instrument_id


async def allocation_table(run: Run) -> None:
    """After verification: the rest of each enterprise's allocation, as a table one regulator uploads and the other
    approves (the uploader's own approval is refused: four-eyes)."""
    code = next(c for c, i in run.instruments.items() if i.kind == "cea")
    lines = [
        {"enterprise_id": e.enterprise_id, "quantity": str(e.final_allocation_t - e.pre_allocation_t)}
        for e in run.enterprises
    ]
    body = {
        "kind": "allocation",
        "instrument_id": run.instruments[code].id,
        "lines": lines,
        "note": f"{run.year} 年度配额核定：核定总量减去已发放的预分配",
    }
    table = await run.regulator.call("uploadAllocationTable", body, period_id=run.period.id)
    try:
        await run.regulator.call("approveAllocationTable", {"decision": "approve"}, table_id=table.id)
    except ApiError as exc:
        run.counts[f"table_refused:{exc.slug}"] += 1
    out = await run.regulator2.call("approveAllocationTable", {"decision": "approve"}, table_id=table.id)
    for _ in range(60):
        if out.status == "posted":
            break
        await asyncio.sleep(0.5)
        out = await run.regulator.call("getAllocationTable", table_id=table.id)
    if out.status != "posted":
        raise SystemExit(f"the allocation table stayed {out.status}")
    for e in run.enterprises:
        e.allocation_posted = True
    run.counts["allocation_lines"] = len(out.lines)


async def surrender(run: Run) -> None:
    """At the deadline each emitter surrenders what it owes from what it holds; the laggards only 90 %."""
    code = next(c for c, i in run.instruments.items() if i.kind == "cea")
    inst_id = run.instruments[code].id
    from server.simulate.agents import holding

    for e in run.enterprises:
        owed = e.verified_t or 0
        _, avail = await holding(run, e, code)
        q = min(avail, owed * 9 // 10 if e.laggard else owed)
        if q <= 0:
            run.counts["surrender_none"] += 1
            continue
        body = {"account_id": e.account_id, "instrument_id": inst_id, "quantity": str(q), "period": run.period.code}
        await run.client(e).call("surrenderUnits", body)
        run.counts["surrenders"] += 1
        run.counts["surrender_full" if q >= owed else "surrender_short"] += 1


async def reference_price(run: Run, vwap_fen: int) -> None:
    """The regulator's reference price for fines (the month before the deadline has no market data in the sandbox's
    calendar): the year's volume-weighted listed price."""
    body = {"price_yuan": yuan(vwap_fen), "note": "模拟年度挂牌协议成交量加权均价"}
    await run.regulator.call("setReferencePrice", body, period_id=run.period.id)


async def await_settlement(run: Run, period: Any, who: Any, timeout_s: float = 180.0) -> Any:
    """The scheduler settles the period once the clock has passed the deadline; wait for it (a period not settled
    in time is settled by hand, the same job)."""
    waited = 0.0
    while waited < timeout_s:
        period = await who.call("getPeriod", period_id=period.id)
        if period.status == "settled":
            run.counts["settled_by_scheduler"] += 1
            return period
        await asyncio.sleep(0.5)
        waited += 0.5
    out = await who.call("settlePeriod", {}, period_id=period.id)
    run.notes.append(f"{period.code}: not settled by the scheduler in {timeout_s:.0f} s; settled by hand: {out.status}")
    return await who.call("getPeriod", period_id=period.id)


async def results(run: Run) -> list[Any]:
    """Every result of the year's periods (carbon, and energy use when there is one)."""
    items: list[Any] = []
    for period in (p for p in (run.period, run.energy_period) if p is not None):
        got: list[Any] = []
        while True:  # offset pages of at most 1,000
            query = {"limit": 1000, "offset": len(got)}
            page = await run.regulator.call("listComplianceResults", period_id=period.id, query=query)
            got += list(page.items)
            if not page.items or len(got) >= page.total:
                break
        items += got
    return items
