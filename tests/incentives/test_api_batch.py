"""evaluateBatch and simulateReform through the API: CSV and JSON in, a table out (JSON or CSV), the same
answers as the scalar explain path, strict parsing of every cell, 100,000 enterprises in one request, and a
reform's cost difference per programme and city."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import time
from typing import Any

import msgspec
import pandas as pd
from litestar.testing import AsyncTestClient

from core.clock import FixedClock
from core.identity import Role, create_api_key, create_organisation
from core.settings import Settings
from incentives import engine
from incentives.api import BATCH_MAX_BODY_BYTES
from incentives.batch import scalar_records, synthetic_population
from incentives.domain.programmes import PROGRAMMES
from server.app import create_app
from server.migrate import create_schema
from tests.conftest import START
from tests.helpers import DOCS, documented_csv_header, enterprise
from tests.incentives.test_api import env  # noqa: F401  (the module-scoped app and database)

BASE = "/api/v1/incentives"
RD = {"total_revenue_fen": 10_000_000_000, "rd_core_costs_fen": 720_000_000, "rd_other_costs_fen": 90_000_000}


def _json_facts(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in record.items() if v is not None}


def _table(body: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(body["rows"], columns=body["columns"])


async def test_scalar_and_batch_paths_agree_through_the_api(env) -> None:  # noqa: F811
    key = await env.key(Role.FINANCE_REVIEWER)
    population = synthetic_population(24, seed=7, params=engine.parameters())
    records = scalar_records(population)
    # Batch, JSON records in.
    r = await env.client.post(f"{BASE}/batch", json={"records": [_json_facts(x) for x in records]},
                              headers=env.h(key))
    assert r.status_code == 200, r.text
    table = _table(r.json())
    assert r.json()["row_count"] == len(records)
    # Batch, CSV in and CSV out.
    r = await env.client.post(f"{BASE}/batch?format=csv", content=population.to_csv(index=False).encode(),
                              headers={**env.h(key), "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    csv_table = pd.read_csv(io.BytesIO(r.content), dtype={"enterprise_id": str}, keep_default_na=False)
    # The CSV answer carries the passthrough columns (enterprise_id, city) the JSON records did not have.
    assert [c for c in csv_table.columns if "." in c] == list(table.columns)
    assert csv_table["enterprise_id"].tolist() == population["enterprise_id"].astype(str).tolist()
    # Scalar: one evaluateEligibility per row; every programme must agree to the fen with both tables.
    for i, record in enumerate(records):
        facts = _json_facts(record)
        day = facts.pop("on")
        r = await env.client.post(f"{BASE}/eligibility", json={"on": day, "facts": facts}, headers=env.h(key))
        assert r.status_code == 201, r.text
        dets = {d["programme"]: d for d in r.json()["determinations"]}
        for p in PROGRAMMES:
            d = dets.get(p.code)
            for t in (table, csv_table):
                row = t.iloc[i]
                assert bool(row[f"{p.code}.evaluated"]) == (d is not None), (i, p.code)
                if d is None:
                    continue
                assert bool(row[f"{p.code}.eligible"]) == d["eligible"], (i, p.code)
                failed = row[f"{p.code}.failed_gates"]
                assert (failed if isinstance(failed, str) else "") == ";".join(g["code"] for g in d["failed_gates"])
                assert bool(row[f"{p.code}.stacked_out"]) == bool(d["stacked_out_by"])
                for name, value in d["outputs"].items():
                    assert int(row[f"{p.code}.{name}"]) == value, (i, p.code, name)


async def test_batch_takes_yuan_columns_and_answers_a_summary(env) -> None:  # noqa: F811
    key = await env.key(Role.REGULATOR)
    csv = ("enterprise_id,city,on,total_revenue_yuan,rd_core_costs_yuan,rd_other_costs_fen\n"
           "A,南昌,2024-12-31,100000000.00,7200000,90000000\n"
           "B,赣州,2024-12-31,100000000,7200000.5,\n")
    r = await env.client.post(f"{BASE}/batch?programmes=rd_super_deduction", content=csv.encode(),
                              headers={**env.h(key), "Content-Type": "text/csv; charset=utf-8"})
    assert r.status_code == 200, r.text
    body = r.json()
    table = _table(body)
    assert list(table["rd_super_deduction.extra_deduction_fen"]) == [800_000_000, 720_000_050]
    assert [c for c in table.columns if "." in c and not c.startswith("rd_super_deduction.")] == []
    [summary] = body["summary"]
    assert summary["eligible"] == 2 and summary["headline_fen"] == 200_000_000 + 180_000_013
    assert summary["headline_yuan"] == "3800000.13" and summary["label_zh"] == "研发费用加计扣除"
    assert int(r.headers["X-Batch-Run-Id"]) == body["run_id"]
    # Accept: text/csv picks CSV too.
    r = await env.client.post(f"{BASE}/batch", content=csv.encode(),
                              headers={**env.h(key), "Content-Type": "text/csv", "Accept": "text/csv"})
    assert r.status_code == 200 and r.text.startswith("enterprise_id,city,")
    everything = r.text.splitlines()[0].split(",")
    # The documented header (docs/incentives.md): the example with ?programmes=rd_super_deduction&format=csv.
    r = await env.client.post(f"{BASE}/batch?programmes=rd_super_deduction&format=csv", content=csv.encode(),
                              headers={**env.h(key), "Content-Type": "text/csv"})  # fmt: skip
    assert r.status_code == 200 and r.text.splitlines()[0].split(",") == documented_csv_header("evaluateBatch.csv")
    # Every programme's output columns are the outputs its section lists, in that order.
    doc = (DOCS / "incentives.md").read_text(encoding="utf-8")
    for p in PROGRAMMES:
        section = doc.split(f"### `{p.code}`", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
        outputs = section.split("Outputs:", 1)[1].split(".\n", 1)[0]
        outputs = re.sub(r"`([a-z_]+)(\d)([a-z_]*)` … `\1(\d)\3`",  # `age1_fen` … `age5_fen`: each one
                         lambda m: ", ".join(f"`{m[1]}{i}{m[3]}`" for i in range(int(m[2]), int(m[4]) + 1)), outputs)
        listed = re.findall(r"`([a-z0-9_]+)`", outputs)
        columns = [c.split(".", 1)[1] for c in everything if c.startswith(f"{p.code}.")]
        assert columns[:4] == ["evaluated", "eligible", "failed_gates", "stacked_out"], p.code
        assert columns[4:] == listed, (p.code, columns[4:], listed)


async def test_batch_cells_are_parsed_strictly_and_problems_name_the_column(env) -> None:  # noqa: F811
    key = await env.key(Role.AUDITOR)

    async def csv(text: str) -> Any:
        return await env.client.post(f"{BASE}/batch", content=text.encode(),
                                     headers={**env.h(key), "Content-Type": "text/csv"})

    head = "on,total_revenue_fen,rd_core_costs_fen\n"
    r = await csv(head + "2024-12-31,100,1.0\n")
    assert r.status_code == 422 and r.json()["field"] == "rd_core_costs_fen"
    assert "rows [1]" in r.json()["detail"]
    r = await csv("on,total_revenue_fen,rd_core_cost_fen\n2024-12-31,100,1\n")
    assert r.status_code == 422 and r.json()["field"] == "rd_core_cost_fen"
    r = await csv("on,total_revenue_fen,total_revenue_yuan,rd_core_costs_fen\n2024-12-31,100,1,1\n")
    assert r.status_code == 422 and r.json()["field"] == "total_revenue_yuan"
    r = await csv("on,total_revenue_yuan,rd_core_costs_fen\n2024-12-31,1.234,1\n")
    assert r.status_code == 422 and r.json()["field"] == "total_revenue_yuan"
    r = await csv("on,total_revenue_fen,rd_core_costs_fen,owns_core_ip\n2024-12-31,1,1,yes\n")
    assert r.status_code == 422 and r.json()["field"] == "owns_core_ip"
    r = await csv("on,total_revenue_fen,rd_core_costs_fen\n31/12/2024,1,1\n")
    assert r.status_code == 422 and r.json()["field"] == "on"
    r = await csv("on,total_revenue_fen,rd_core_costs_fen\n2024-12-31,-5,1\n")  # the engine's range check
    assert r.status_code == 422 and r.json()["type"] == "/problems/batch-input-invalid"
    assert r.json()["field"] == "total_revenue_fen"
    # The energy intensity takes exact decimal text; anything else is refused with the column named.
    green = ("on,loan_approved_on,green_activity,loan_principal_fen,benchmark_product,industrial_structure_class,"
             "energy_intensity\n2025-10-02,2025-10-01,industrial_energy_retrofit,100,cement_clinker,permitted,")
    r = await env.client.post(f"{BASE}/batch?programmes=green_loan", content=(green + "99.5\n").encode(),
                              headers={**env.h(key), "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert _table(r.json())["green_loan.eligible"].tolist() == [True]
    r = await env.client.post(f"{BASE}/batch?programmes=green_loan", content=(green + "100.001\n").encode(),
                              headers={**env.h(key), "Content-Type": "text/csv"})
    assert _table(r.json())["green_loan.failed_gates"].tolist() == ["energy_advanced"]
    r = await csv(green + "99.5.1\n")
    assert r.status_code == 422 and r.json()["field"] == "energy_intensity"
    r = await env.client.post(f"{BASE}/batch", json={"on": "2025-10-02", "records": [{
        "loan_approved_on": "2025-10-01", "green_activity": "wind_power", "loan_principal_fen": 100,
        "benchmark_product": "cement_clinker", "industrial_structure_class": "permitted",
        "energy_intensity": 99.5}]}, headers=env.h(key))
    assert r.status_code == 422 and "energy_intensity" in r.json()["field"]
    # JSON records are decoded strictly: a float is never an integer fact.
    r = await env.client.post(f"{BASE}/batch", json={"on": "2024-12-31", "records": [{**RD,
                                                     "rd_core_costs_fen": 1.5}]}, headers=env.h(key))
    assert r.status_code == 422 and "rd_core_costs_fen" in r.json()["field"]
    r = await env.client.post(f"{BASE}/batch", json={"on": "2024-12-31", "records": [{"nope": 1}]},
                              headers=env.h(key))
    assert r.status_code == 422 and "nope" in r.json()["detail"]
    r = await env.client.post(f"{BASE}/batch", json={"records": [RD], "programmes": ["x"]}, headers=env.h(key))
    assert r.status_code == 422 and r.json()["field"] == "programmes"
    r = await env.client.post(f"{BASE}/batch", files={"f": ("a.csv", b"on\n2024-12-31\n")}, headers=env.h(key))
    assert r.status_code == 415
    r = await csv("")
    assert r.status_code == 422 and r.json()["type"] == "/problems/batch-input-invalid"


async def test_a_batch_up_to_the_default_body_limit_is_answered(env) -> None:  # noqa: F811
    key = await env.key(Role.FINANCE_APPROVER)
    population = synthetic_population(1_600, seed=11)
    body = population.to_csv(index=False).encode()
    assert 900_000 < len(body) <= Settings().max_body_bytes
    r = await env.client.post(f"{BASE}/batch", content=body, headers={**env.h(key), "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    table = _table(r.json())
    expected = engine.evaluate_batch(population)
    assert len(table) == 1_600
    for p in PROGRAMMES:
        column = f"{p.code}.{p.headline}"
        assert table[column].tolist() == expected[column].tolist(), column


async def test_a_batch_of_100000_enterprises_through_the_api(tmp_path) -> None:
    """One request of 100,000 synthetic enterprise-years (~57 MB of CSV) answers the same table as the vector
    path. The edge's body limit is the operator's `max_body_bytes` (raised here to the batch route's own
    limit) until core/http.py honours the route's `opt["max_body_bytes"]`."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'batch.db'}"
    create_schema(url)
    clock = FixedClock(START)
    app = create_app(Settings(database_url=url, scheduler_embedded=False, max_body_bytes=BATCH_MAX_BODY_BYTES),
                     clock)

    async def make_key(uow: Any) -> str:
        org = await create_organisation(uow.session, "财政厅", "finance_reviewer", clock.now())
        return (await create_api_key(uow.session, organisation_id=org.id or 0, role=Role.FINANCE_REVIEWER,
                                     label="t", now=clock.now()))[1]

    key = await app.state.db.run(make_key)
    population = synthetic_population(100_000, seed=20260601, params=engine.parameters())
    body = population.to_csv(index=False).encode()
    started = time.perf_counter()
    async with AsyncTestClient(app=app) as client:
        r = await client.post(f"{BASE}/batch", content=body, timeout=120,
                              headers={"Authorization": f"Bearer {key}", "Content-Type": "text/csv"})
    elapsed = time.perf_counter() - started
    assert r.status_code == 200, r.text[:500]
    answer = msgspec.json.decode(r.content)
    table = pd.DataFrame(answer["rows"], columns=answer["columns"])
    assert len(table) == 100_000 and answer["row_count"] == 100_000
    expected = engine.evaluate_batch(population)
    for p in PROGRAMMES:
        for column in (f"{p.code}.eligible", f"{p.code}.{p.headline}"):
            assert table[column].tolist() == expected[column].tolist(), column
    assert elapsed < 45, elapsed
    await app.state.db.dispose()


async def test_a_reform_shows_its_cost_difference_per_programme_and_city(env) -> None:  # noqa: F811
    key = await env.key(Role.ENERGY_AUTHORITY)
    records = [{**RD, "on": "2024-12-31", "city": "南昌"}, {**RD, "on": "2024-12-31", "city": "九江"},
               {**RD, "on": "2024-12-31", "city": "九江"}]
    r = await env.client.post(f"{BASE}/reforms", json={
        "overrides": {"rd.extra_deduction_bp": 12000}, "label": "120 %", "population": {"records": records}},
        headers=env.h(key))
    assert r.status_code == 200, r.text
    body = r.json()
    rd = next(row for row in body["by_programme"] if row["programme"] == "rd_super_deduction")
    # Extra deduction 8,000,000 → 9,600,000 per enterprise; tax saving at 25 %: 2,000,000 → 2,400,000.
    assert (rd["baseline_fen"], rd["reform_fen"], rd["difference_fen"]) == (600_000_000, 720_000_000, 120_000_000)
    assert rd["difference_yuan"] == "1200000.00" and rd["label_zh"] == "研发费用加计扣除"
    by_city = {(row["programme"], row["city"]): row for row in body["by_programme_city"]}
    assert by_city[("rd_super_deduction", "九江")]["difference_fen"] == 80_000_000
    assert by_city[("rd_super_deduction", "南昌")]["difference_fen"] == 40_000_000
    assert body["overrides"] == {"rd.extra_deduction_bp": 12000} and body["rows"] == 3

    # A seeded synthetic population, and the latest stored evaluation of every evaluated enterprise.
    r = await env.client.post(f"{BASE}/reforms", json={
        "overrides": {"first_set.compensation_bp": 9000},
        "population": {"synthetic_rows": 2000, "synthetic_seed": 3}}, headers=env.h(key))
    assert r.status_code == 200, r.text
    fs = next(row for row in r.json()["by_programme"] if row["programme"] == "first_set_insurance")
    assert fs["difference_fen"] > 0 and r.json()["rows"] == 2000
    ent = await enterprise(env, await env.key(Role.REGULATOR))
    r = await env.client.post(f"{BASE}/eligibility", json={
        "enterprise_id": ent["id"], "on": "2024-12-31", "facts": RD}, headers=env.h(ent["key"]))
    assert r.status_code == 201, r.text
    r = await env.client.post(f"{BASE}/reforms", json={
        "overrides": {"rd.extra_deduction_bp": 12000}, "population": {"stored_evaluations": True}},
        headers=env.h(key))
    assert r.status_code == 200, r.text
    rd = next(row for row in r.json()["by_programme"] if row["programme"] == "rd_super_deduction")
    assert rd["difference_fen"] >= 40_000_000 and r.json()["population"] == "evaluations"

    # Problems: an unknown parameter, a value of the wrong kind, two population sources.
    r = await env.client.post(f"{BASE}/reforms", json={
        "overrides": {"rd.nope": 1}, "on": "2024-12-31", "population": {"records": [RD]}}, headers=env.h(key))
    assert r.status_code == 422 and r.json()["field"] == "overrides.rd.nope"
    r = await env.client.post(f"{BASE}/reforms", json={
        "overrides": {"rd.extra_deduction_bp": 1.2}, "on": "2024-12-31", "population": {"records": [RD]}},
        headers=env.h(key))
    assert r.status_code == 422 and r.json()["type"] == "/problems/reform-invalid"
    r = await env.client.post(f"{BASE}/reforms", json={
        "overrides": {"rd.extra_deduction_bp": 12000}, "on": "2024-12-31",
        "population": {"records": [RD], "synthetic_rows": 5}}, headers=env.h(key))
    assert r.status_code == 422 and r.json()["field"] == "population"
    assert json.loads(r.text)["status"] == 422
