"""Vector twins of the green-finance programmes: green loans (catalogue, energy benchmarks, restricted
classes, major violations, carbon compliance) and the carbon emission reduction support tool, mirroring
`incentives.domain.programmes.green` line by line.
"""

from __future__ import annotations

import numpy as np

from incentives.batch.arith import I64, Arr, _bounded, mdh
from incentives.batch.frames import Frame
from incentives.batch.params import Params
from incentives.batch.results import Result, _always, _fail_rows, _finish, _programme
from incentives.domain.arith import BP, MILLI
from incentives.domain.programmes import green


def v_green_loan(f: Frame, p: Params, ev: Arr, problems: list[tuple[str, str]]) -> Result:
    prog = _programme(green.GL_CODE)
    n = f.n
    klass = f.s("industrial_structure_class")
    product = f.s("benchmark_product")
    names = set(p.params.names())
    valid_class = klass.table(lambda c: c in green.CLASSES, False, bool)
    known_product = product.table(lambda c: c == "" or f"benchmark.{c}.baseline" in names, True, bool)
    has_product = product.table(lambda c: c != "", False, bool)
    bad = np.zeros(f.n, dtype=bool)
    bad |= _fail_rows(problems, "industrial_structure_class", ev & ~valid_class,
                      f"must be one of {', '.join(green.CLASSES)}")
    bad |= _fail_rows(problems, "benchmark_product", ev & ~known_product, "has no energy benchmark")
    bad |= _fail_rows(problems, "energy_intensity", ev & has_product & ~f.present["energy_intensity"],
               "is required when benchmark_product is given")
    ev = ev & ~bad
    restricted, ok1 = p.member("green_loan.restricted_classes", f.on_key, klass)
    lookback, ok2 = p.num("green_loan.violation_lookback_years", f.on_key)
    found, ok3, attrs = p.catalogue("catalogue.green", np.where(ev, f.d("loan_approved_on"), 0), f.s("green_activity"),
                                    key="activity", attrs=[("requires_benchmark", False)])
    ev = ev & ok1 & ok2 & ok3
    intensity = f.i("energy_intensity")  # thousandths of the benchmark's unit, as on the scalar path
    baseline = np.zeros(n, dtype=I64)
    advanced = np.zeros(n, dtype=I64)
    bench_ok = np.ones(n, dtype=bool)
    for code, name in enumerate(product.categories):
        if not name or f"benchmark.{name}.baseline" not in names:
            continue
        rows = (product.codes == code) & ev
        if not rows.any():
            continue
        base_values, ok_b = p.num(f"benchmark.{name}.baseline", f.on_key)
        adv_values, ok_a = p.num(f"benchmark.{name}.advanced", f.on_key)
        # Benchmarks to thousandths, as green.benchmark_milli does on the scalar path.
        _bounded(base_values, MILLI)
        _bounded(adv_values, MILLI)
        baseline[rows] = base_values[rows] * MILLI
        advanced[rows] = adv_values[rows] * MILLI
        bench_ok[rows] = (ok_b & ok_a)[rows]
    ev = ev & bench_ok
    requires = found & attrs["requires_benchmark"]
    violation = f.d("last_major_env_violation_on")
    _bounded(lookback, 10_000)
    within = (violation > 0) & (f.on_key - lookback * 10_000 < violation) & (violation <= f.on_key)
    gates = {
        "catalogue_listed": (_always(n), found),
        "energy_baseline": (has_product, intensity <= baseline),
        "energy_advanced": (requires, has_product & (intensity <= advanced)),
        "not_restricted": (_always(n), ~restricted),
        "no_major_violation": (_always(n), ~within),
        "carbon_compliant": (_always(n), f.i("carbon_open_shortfall_t") <= 0),
    }
    eligible = Result(prog, ev, gates, {}).eligible
    return _finish(prog, ev, gates, {
        "eligible_principal_fen": np.where(eligible, f.i("loan_principal_fen"), 0),
        "co2_reduction_t": f.i("baseline_emissions_t") - f.i("project_emissions_t"),
    })


def v_carbon_tool(f: Frame, p: Params, ev: Arr, problems: list[tuple[str, str]]) -> Result:
    prog = _programme(green.CT_CODE)
    n = f.n
    share, ok1 = p.num("carbon_tool.relending_share_bp", f.on_key)
    rate, ok2 = p.num("carbon_tool.rate_bp", f.on_key)
    in_field, ok3 = p.member("carbon_tool.fields", f.on_key, f.s("carbon_tool_field"))
    ev = ev & ok1 & ok2 & ok3
    reduction = f.i("baseline_emissions_t") - f.i("project_emissions_t")
    method = f.s("co2_method").table(lambda c: c != "", False, bool)
    gates = {"field_supported": (_always(n), in_field), "lender_eligible": (_always(n), f.b("lender_eligible")),
             "co2_reduction_positive": (_always(n), reduction > 0), "co2_method_disclosed": (_always(n), method)}
    eligible = Result(prog, ev, gates, {}).eligible
    relending = mdh(np.where(eligible, f.i("loan_principal_fen"), 0), np.where(eligible, share, 0), BP)
    interest = mdh(relending, np.where(eligible, rate, 0), BP)
    return _finish(prog, ev, gates, {"relending_fen": relending, "relending_rate_bp": rate,
                                     "annual_interest_fen": interest})
