"""Reports by JSON lines or by CSV / Excel upload: every bad row reported at once with its row number and nothing
imported (reliability.md row 31); verifiers verify or correct; every version is kept; the verified figure is
the obligation."""

from __future__ import annotations

import io

import openpyxl

from tests.helpers import make_uscc
from tests.registry.compliance.kit import BASE, carbon_lines, carbon_world, count, enterprise

HEADER = "uscc,year,line_type,item,quantity,unit\n"


def csv_body(rows: list[str]) -> bytes:
    return (HEADER + "\n".join(rows) + "\n").encode()


async def upload_csv(env, cw, key: str, body: bytes):  # type: ignore[no-untyped-def]
    headers = {**env.h(key), "Content-Type": "text/csv"}
    return await env.client.post(f"{BASE}/periods/{cw.pid}/reports/upload", content=body, headers=headers)


async def test_every_bad_row_is_reported_with_its_row_number_and_nothing_is_imported(env) -> None:
    cw = await carbon_world(env)
    ent = await enterprise(env, cw.reg)
    code = ent["uscc"]
    bad_code = code[:-1] + ("0" if code[-1] != "0" else "1")
    body = csv_body([
        f"{code},2025,fuel,raw_coal,120000,t",          # row 2: good
        f"{code},2025,fuel,raw_coal,12O.5,t",           # row 3: letter O in a number
        f"{code},2025,fuel,peat,10,t",                  # row 4: unknown fuel
        f"{code},2025,fuel,diesel,-5,t",                # row 5: negative activity
        f"{bad_code},2025,electricity,purchased,9,MWh",  # row 6: bad check character
        f"{code},2024,heat,purchased,1,GJ",             # row 7: another year
        f"{code},2025,process,clinker,1.23456,t",       # row 8: more decimals than allowed
        f"{code},2025,electricity,purchased,5,kg",      # row 9: unit of another dimension
    ])
    r = await upload_csv(env, cw, cw.reg.key, body)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"] == "/problems/report-rows-invalid" and problem["field"] == "file"
    found = {(e["row"], e["code"]) for e in problem["errors"]}
    assert found == {(3, "not-a-number"), (4, "unknown-fuel"), (5, "negative-quantity"), (6, "invalid-uscc"),
                     (7, "year-mismatch"), (8, "too-many-decimals"), (9, "unit-mismatch")}
    assert "3, 4, 5, 6, 7, 8, 9" in problem["detail"]
    assert await count(env, "SELECT count(*) FROM compliance_report") == 0
    assert await count(env, "SELECT count(*) FROM compliance_report_version") == 0
    assert await count(env, "SELECT count(*) FROM compliance_obligation") == 0


async def test_an_emitter_may_not_upload_rows_of_another_enterprise(env) -> None:
    cw = await carbon_world(env)
    a = await enterprise(env, cw.reg, "甲")
    b = await enterprise(env, cw.reg, "乙")
    r = await upload_csv(env, cw, a["key"], csv_body([f"{a['uscc']},2025,fuel,raw_coal,1,t",
                                                      f"{b['uscc']},2025,fuel,raw_coal,1,t"]))
    assert r.status_code == 422 and [(e["row"], e["code"]) for e in r.json()["errors"]] == [(3, "uscc-mismatch")]
    assert await count(env, "SELECT count(*) FROM compliance_report") == 0


async def test_an_authority_uploads_many_enterprises_in_one_file_all_or_nothing(env) -> None:
    cw = await carbon_world(env)
    a = await enterprise(env, cw.reg, "甲")
    b = await enterprise(env, cw.reg, "乙")
    unknown = make_uscc(999_999_990)
    r = await upload_csv(env, cw, cw.reg.key, csv_body([f"{a['uscc']},2025,fuel,raw_coal,1,t",
                                                        f"{unknown},2025,fuel,raw_coal,1,t"]))
    assert r.status_code == 422 and [(e["row"], e["code"]) for e in r.json()["errors"]] == [(3, "unknown-enterprise")]
    assert await count(env, "SELECT count(*) FROM compliance_report") == 0
    r = await upload_csv(env, cw, cw.reg.key, csv_body([
        f"{a['uscc']},2025,fuel,raw_coal,120000,t", f"{a['uscc']},2025,electricity,,95000,MWh",
        f"{b['uscc']},2025,process,clinker,1000000,t"]))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["imported_rows"] == 3
    figures = {x["enterprise_id"]: x["versions"][-1]["totals"]["tco2e"] for x in out["reports"]}
    # 120,000 t raw coal → 228,035.861856; 95,000 MWh × 0.5366 → 50,977; clinker 1,000,000 t × 0.538 → 538,000.
    assert figures == {a["id"]: 279_013, b["id"]: 538_000}
    assert out["reports"][0]["versions"][-1]["source"] == "csv"


async def test_excel_upload_by_multipart_is_parsed_from_the_first_sheet(env) -> None:
    cw = await carbon_world(env)
    ent = await enterprise(env, cw.reg)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["uscc", "year", "line_type", "item", "quantity", "unit"])
    ws.append([ent["uscc"], 2025, "electricity", "purchased", 1, "MWh"])
    ws.append([ent["uscc"], 2025, "electricity", "", 1000, "kWh"])
    buf = io.BytesIO()
    wb.save(buf)
    r = await env.client.post(
        f"{BASE}/periods/{cw.pid}/reports/upload", headers=env.h(ent["key"]),
        files={"file": ("report.xlsx", buf.getvalue(),
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")},
    )
    assert r.status_code == 201, r.text
    version = r.json()["reports"][0]["versions"][-1]
    # 2 × 0.5366 = 1.0732, rounded once at the end: 1 t (never 2 from rounding each line).
    assert version["source"] == "xlsx" and version["totals"]["tco2e"] == 1


async def test_json_lines_with_bad_fields_are_all_listed(env) -> None:
    cw = await carbon_world(env)
    ent = await enterprise(env, cw.reg)
    r = await env.post(f"{BASE}/periods/{cw.pid}/reports", ent["key"], {"lines": [
        {"line_type": "fuel", "item": "peat", "quantity": "10", "unit": "t"},
        {"line_type": "fuel", "item": "raw_coal", "quantity": "-5", "unit": "t"},
        {"line_type": "fuel", "item": "raw_coal", "quantity": "1e3", "unit": "t"},
        {"line_type": "steam", "item": "x", "quantity": "1", "unit": "t"},
    ]})
    assert r.status_code == 422 and r.json()["type"] == "/problems/report-rows-invalid", r.text
    assert [(e["line"], e["code"]) for e in r.json()["errors"]] == [
        (0, "unknown-fuel"), (1, "negative-quantity"), (2, "not-a-number"), (3, "unknown-line-type")]
    r = await env.post(f"{BASE}/periods/{cw.pid}/reports", ent["key"],
                       {"lines": carbon_lines(10), "status": "verified"})
    assert r.status_code == 422  # a server-owned field in the body
    assert await count(env, "SELECT count(*) FROM compliance_report") == 0


async def test_a_wrong_content_type_on_the_upload_route_is_415(env) -> None:
    cw = await carbon_world(env)
    headers = {**env.h(cw.reg.key), "Content-Type": "application/pdf"}
    r = await env.client.post(f"{BASE}/periods/{cw.pid}/reports/upload", content=b"%PDF", headers=headers)
    assert r.status_code == 415


async def test_a_verifier_correction_is_a_new_version_and_becomes_the_obligation(env) -> None:
    cw = await carbon_world(env)
    ent = await enterprise(env, cw.reg)
    r = await env.post(f"{BASE}/periods/{cw.pid}/reports", ent["key"], {"lines": carbon_lines(1000)})
    rep = r.json()
    r = await env.post(f"{BASE}/periods/{cw.pid}/reports", ent["key"], {"lines": carbon_lines(1100)})
    assert r.status_code == 201 and r.json()["current_version"] == 2
    # The verifier read version 1; the enterprise has submitted version 2 since.
    r = await env.post(f"{BASE}/reports/{rep['id']}/verification", cw.verifier, {"decision": "verify", "version": 1})
    assert r.status_code == 409 and r.json()["field"] == "version"
    r = await env.post(f"{BASE}/reports/{rep['id']}/verification", ent["key"], {"decision": "verify", "version": 2})
    assert r.status_code == 403  # an emitter does not verify its own report
    r = await env.post(f"{BASE}/reports/{rep['id']}/verification", cw.verifier,
                       {"decision": "correct", "version": 2, "lines": carbon_lines(1150), "note": "现场核查调整"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert [v["source"] for v in out["versions"]] == ["api", "api", "verifier"]
    assert [v["totals"]["tco2e"] for v in out["versions"]] == [1000, 1100, 1150]
    assert out["verified_version"] == 3 and out["verified_figure"]["tco2e"] == 1150
    assert await count(env, "SELECT verified_quantity FROM compliance_obligation") == 1150
    # Another enterprise cannot read it; the verifier and the authority can.
    other = await enterprise(env, cw.reg, "其他")
    assert (await env.get(f"{BASE}/reports/{rep['id']}", other["key"])).status_code == 404
    assert (await env.get(f"{BASE}/reports/{rep['id']}", cw.verifier)).status_code == 200


async def test_discharge_reports_make_one_obligation_per_pollutant(env) -> None:
    from core.identity import Role
    from tests.registry.compliance.kit import authority

    reg = await authority(env, Role.REGULATOR)
    verifier = await env.key(Role.VERIFIER)
    r = await env.post(f"{BASE}/schemes", reg.key, {"code": "JX-EDP", "name": "江西省排污权", "kind": "discharge"})
    assert r.status_code == 201, r.text
    r = await env.post(f"{BASE}/periods", reg.key, {"scheme_id": r.json()["id"], "year": 2025, "region": "JX"})
    period = r.json()
    ent = await enterprise(env, reg)
    r = await env.post(f"{BASE}/periods/{period['id']}/reports", ent["key"], {"lines": [
        {"pollutant": "SO2", "quantity": "12.5", "unit": "t"}, {"pollutant": "NOx", "quantity": "800", "unit": "kg"},
        {"pollutant": "SO2", "quantity": "500", "unit": "kg"}]})
    assert r.status_code == 201, r.text
    assert r.json()["versions"][0]["totals"]["kg"] == {"NOx": 800, "SO2": 13_000}
    r = await env.post(f"{BASE}/reports/{r.json()['id']}/verification", verifier, {"decision": "verify", "version": 1})
    assert r.status_code == 200
    assert await count(env, "SELECT count(*) FROM compliance_obligation WHERE verified_quantity IS NOT NULL") == 2
