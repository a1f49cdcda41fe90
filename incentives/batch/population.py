"""A seeded synthetic population of enterprise-years, for the differential tests, the benchmark and what-if
demonstrations: amounts around every threshold, days around every parameter change, a few facts missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.figures import decimal_plain
from incentives.batch.arith import I64, Arr
from incentives.batch.programmes_first_set import policy_years
from incentives.domain.arith import BP, MILLI, MILLI_DECIMALS
from incentives.domain.facts import FACTS
from incentives.domain.params import ParameterSet
from incentives.domain.programmes import emc, green

CITIES = ("南昌", "九江", "景德镇", "萍乡", "新余", "鹰潭", "赣州", "吉安", "宜春", "抚州", "上饶")


def _keys(days: Arr) -> Arr:
    """yyyymmdd keys of datetime64[D] values."""
    stamps = pd.DatetimeIndex(days)
    result: Arr = (stamps.year * 10_000 + stamps.month * 100 + stamps.day).to_numpy(dtype=I64)
    return result


def synthetic_population(rows: int, seed: int, params: ParameterSet | None = None,
                         missing_share: float = 0.03) -> pd.DataFrame:
    """`rows` random enterprise-years (seeded) that exercise every gate, threshold and parameter change.

    Amounts are drawn around the thresholds (exactly at them, one unit either side, and spread), the
    evaluation days cluster on the days parameters change (the day before and the day of) when `params` is
    given, and a small share of required facts is missing so that "not evaluated" is exercised too.
    """
    rng = np.random.default_rng(seed)
    n = rows

    def log_uniform(low: float, high: float) -> Arr:
        return np.floor(10 ** rng.uniform(low, high, n)).astype(I64)

    def pick(options: Sequence[Any]) -> Arr:
        return np.asarray(options, dtype=object)[rng.integers(0, len(options), n)]

    def chance(p: float) -> Arr:
        return rng.random(n) < p

    def near(threshold: Arr | int, spread: Arr) -> Arr:
        """Exactly at, one below, one above, or spread around a threshold."""
        kind = rng.integers(0, 4, n)
        offset = np.where(kind == 0, 0, np.where(kind == 1, -1, np.where(kind == 2, 1, 0)))
        spread_value = (np.asarray(threshold) + (rng.uniform(-0.5, 0.5, n) * spread).astype(I64))
        return np.where(kind == 3, spread_value, np.asarray(threshold) + offset)

    def days(start: str, end: str) -> Arr:
        lo, hi = np.datetime64(start, "D"), np.datetime64(end, "D")
        return lo + rng.integers(0, int((hi - lo).astype(int)) + 1, n).astype("timedelta64[D]")

    def share(values: Arr, low: float, high: float) -> Arr:
        return np.floor(values * rng.uniform(low, high, n)).astype(I64)

    on = days("2015-01-01", "2026-12-31")
    if params is not None:
        changes = sorted({d for name in params.names() for d in params.change_days(name) if d.year >= 2015})
        if changes:
            chosen = np.asarray([np.datetime64(d.isoformat(), "D") for d in changes])[rng.integers(0, len(changes), n)]
            chosen = chosen - rng.integers(0, 2, n).astype("timedelta64[D]")
            on = np.where(chance(0.25), chosen, on)
    on_year = on.astype("datetime64[Y]").astype(int) + 1970
    columns: dict[str, Any] = {
        "enterprise_id": [f"E{i:08d}" for i in range(n)],
        "city": pick(CITIES),
        "on": on,
    }
    # R&D super deduction.
    revenue = log_uniform(7, 12)
    excluded = np.where(chance(0.3), share(revenue, 0.3, 0.7), 0)
    excluded = np.where(chance(0.05), revenue // 2 + rng.integers(0, 2, n), excluded)
    excluded = np.minimum(excluded, revenue)
    core = share(revenue, 0.0, 0.1)
    other = share(core, 0.0, 0.2)
    columns |= {
        "total_revenue_fen": revenue, "excluded_industry_revenue_fen": excluded,
        "rd_core_costs_fen": core, "rd_other_costs_fen": other,
        "rd_fiscal_funded_core_fen": np.where(chance(0.2), share(core, 0, 0.3), 0),
        "rd_fiscal_funded_other_fen": np.where(chance(0.2), share(other, 0, 0.3), 0),
        "rd_intangible_amortisation_fen": np.where(chance(0.3), log_uniform(4, 9), 0),
    }
    # Equipment credit.
    invoice = log_uniform(5, 9)
    vat = np.where(chance(0.7), invoice * 13 // 113, 0)
    acquired = np.where(chance(0.2), days("2017-09-25", "2017-10-05"), on - rng.integers(0, 400, n).astype(
        "timedelta64[D]"))
    transferred = acquired + rng.integers(0, 8 * 366, n).astype("timedelta64[D]")
    columns |= {
        "equipment_catalogue_code": pick(("ES-01", "WS-01", "EP-02", "EP-03", "XX-99")),
        "equipment_acquired_on": acquired,
        "equipment_invoice_fen": invoice,
        "equipment_deductible_vat_fen": vat,
        "equipment_ancillary_fen": np.where(chance(0.3), share(invoice - vat, 0, 0.1), 0),
        "equipment_fiscal_grant": chance(0.1),
        "equipment_transferred_on": np.where(chance(0.2), transferred, np.datetime64("NaT")),
        "equipment_credit_used_to_date_fen": np.where(chance(0.3), log_uniform(3, 7), 0),
        "cit_payable_fen": log_uniform(4, 9),
        **{f"credit_carry_age{age}_fen": np.where(chance(0.3), log_uniform(3, 7), 0) for age in range(1, 6)},
    }
    # Resource comprehensive utilisation.
    minor = 10_000_000
    columns |= {
        "ru_vat_item_code": pick(("3.1", "3.10", "5.2", "4.1", "2.15", "9.99")),
        "ru_vat_payable_fen": log_uniform(4, 9),
        "tax_credit_grade": pick(("A", "B", "M", "C", "D", "a", " b ")),
        "env_penalty_on": np.where(chance(0.3), on - rng.integers(0, 400, n).astype("timedelta64[D]"),
                                   np.datetime64("NaT")),
        "env_penalty_fen": np.where(chance(0.5), near(minor, np.full(n, minor)), log_uniform(3, 8)).clip(0),
        "ru_cit_item_code": pick(("1.1", "1.2", "3.1", "9.9")),
        "ru_cit_revenue_fen": log_uniform(5, 10),
        "ru_cit_resource_share_bp": np.where(chance(0.5), near(pick((7000, 10000)).astype(I64), np.full(n, 4000)),
                                             rng.integers(0, 10_001, n)).clip(0, BP),
        "ru_cit_meets_standard": chance(0.9),
    }
    # EMC and environmental projects: the sharing period starts in the first revenue year and ends on an
    # explicit day within the contract term (0-8 years on), or the day before the term's anniversary.
    first_revenue = on_year - rng.integers(-1, 9, n)
    contract_years = near(20, np.full(n, 20)).clip(0)
    sharing_start = ((first_revenue - 1970).astype("datetime64[Y]").astype("datetime64[D]")
                     + rng.integers(0, 365, n).astype("timedelta64[D]"))
    sharing_end = sharing_start + rng.integers(0, 8 * 366, n).astype("timedelta64[D]")
    sharing_end = np.minimum(sharing_end, sharing_start + (np.maximum(contract_years, 1) * 365 - 1).astype(
        "timedelta64[D]"))
    columns |= {
        "emc_project_kind": pick(emc.KINDS),
        "emc_catalogue_code": pick(("1.1", "2.3", "4.1", "7.7")),
        "emc_first_revenue_year": first_revenue,
        "emc_project_income_fen": log_uniform(5, 10),
        "emc_contract_years": contract_years,
        "emc_company_qualified": chance(0.8),
        "emc_sharing_starts_on": sharing_start,
        "emc_sharing_ends_on": np.where(chance(0.6), sharing_end, np.datetime64("NaT")),
    }
    # High-tech enterprise.
    sales = np.where(chance(0.2), pick((5_000_000_000, 5_000_000_001, 20_000_000_000, 20_000_000_001)).astype(I64),
                     log_uniform(8, 11))
    revenue_3y = share(sales, 2.0, 3.0) + 1
    rd_3y = share(revenue_3y, 0.02, 0.07)
    rd_3y = np.where(chance(0.2), -((-revenue_3y * pick((300, 400, 500, 600)).astype(I64)) // BP) - rng.integers(
        0, 2, n), rd_3y).clip(0)
    staff = rng.integers(1, 5000, n)
    columns |= {
        "sales_revenue_fen": sales, "revenue_3y_fen": revenue_3y, "rd_expense_3y_fen": rd_3y,
        "rd_domestic_3y_fen": share(rd_3y, 0.5, 1.0),
        "hightech_revenue_fen": share(sales, 0.4, 1.0),
        "tech_staff": np.minimum(np.where(chance(0.2), -((-staff * 1000) // BP), share(staff, 0.05, 0.35)), staff),
        "staff_total": staff,
        "owns_core_ip": chance(0.85),
        "major_incident_in_year": chance(0.05),
        "taxable_income_fen": log_uniform(5, 10),
    }
    # First set, Jiangxi reward and first batch.
    insured = log_uniform(6, 10)
    rate = rng.integers(50, 600, n)
    producer_cap = 500_000_000
    # First insured: spread over the catalogue editions, within five years before the claim, on an
    # anniversary of the claim day (or the day after it), or on a 29 February.
    first_insured = np.where(chance(0.4), days("2019-06-01", "2026-06-30"),
                             on - rng.integers(-30, 5 * 366, n).astype("timedelta64[D]"))
    back = rng.integers(0, 5, n)
    edge = chance(0.2)
    stamps = pd.DatetimeIndex(on)
    for years in range(5):
        rows_k = edge & (back == years)
        shifted = (stamps[rows_k] - pd.DateOffset(years=years)).to_numpy().astype("datetime64[D]")
        first_insured[rows_k] = shifted + rng.integers(0, 2, int(rows_k.sum())).astype("timedelta64[D]")
    leap_days = pick([np.datetime64(d, "D") for d in ("2020-02-29", "2024-02-29")]).astype("datetime64[D]")
    first_insured = np.where(chance(0.03), leap_days, first_insured)
    derived = policy_years(_keys(first_insured), _keys(on))
    columns |= {
        "fs_catalogue_code": pick(("FS2019-01", "FS2019-02", "FS2024-01", "FS2024-03", "FS-BAD")),
        "fs_first_insured_on": first_insured,
        "fs_policy_year": np.where(chance(0.5), derived, -1),
        "fs_compensated_policy_years": pick(("", "", "", "1", "2", "1;2", "1;2;3", "3", " 2 ; 3 ")),
        "fs_insured_value_fen": insured,
        "fs_premium_rate_bp": rate,
        "fs_premium_paid_fen": share(insured * rate // BP, 0.5, 1.0),
        "jx_recognised": chance(0.8),
        "jx_item_sales_fen": log_uniform(6, 10),
        "jx_producer_awarded_fen": np.where(chance(0.5), near(producer_cap, np.full(n, producer_cap)),
                                            0).clip(0),
        "fs_insurance_compensated": chance(0.3),
        "fb_catalogue_code": pick(("FB2019-01", "FB2019-02", "FB2024-01", "FB2024-05", "FB-BAD")),
        "fb_contract_on": days("2019-06-01", "2026-06-30"),
        "fb_contract_fen": np.where(chance(0.5), near(500_000_000, np.full(n, 500_000_000)),
                                    log_uniform(7, 10)).clip(0),
        "fb_buyer_is_end_user": chance(0.85),
        "fb_related_party": chance(0.1),
        "fb_via_trader": chance(0.1),
        "fb_used_in_compensated_first_set": chance(0.1),
        "fb_insured_value_fen": log_uniform(6, 10),
        "fb_premium_rate_bp": rng.integers(50, 600, n),
    }
    # Green loans and the carbon tool.
    product = pick(("", "cement_clinker", "bf_ironmaking", "bof_steelmaking", "electrolytic_aluminium"))
    levels = {"cement_clinker": (100, 117), "bf_ironmaking": (361, 435), "bof_steelmaking": (-30, -10),
              "electrolytic_aluminium": (13000, 13350)}
    level = np.zeros(n, dtype=I64)
    for name, (advanced, baseline) in levels.items():
        rows_p = product == name
        level[rows_p] = np.where(chance(0.5), advanced, baseline)[rows_p]
    baseline_t = rng.integers(0, 1_000_000, n)
    approved = np.where(chance(0.3), pick([np.datetime64(d, "D") for d in (
        "2021-06-30", "2021-07-01", "2024-02-29", "2024-03-01", "2025-09-30", "2025-10-01")]).astype("datetime64[D]"),
        days("2019-03-01", "2026-12-31"))
    columns |= {
        "loan_approved_on": approved,
        "green_activity": pick(("wind_power", "solar_pv", "industrial_energy_retrofit", "coal_clean_utilisation",
                                "green_hydrogen", "casino")),
        "loan_principal_fen": log_uniform(6, 11),
        "benchmark_product": product,
        # Exact decimals as text, in thousandths around the benchmarks (at, 0.001 either side, or ±20 units).
        "energy_intensity": np.asarray(
            [decimal_plain(int(v), MILLI_DECIMALS) for v in near(level * MILLI, np.full(n, 40 * MILLI))], dtype=object
        ),
        "industrial_structure_class": pick(green.CLASSES),
        "last_major_env_violation_on": np.where(chance(0.2), on - rng.integers(0, 5 * 366, n).astype(
            "timedelta64[D]"), np.datetime64("NaT")),
        "carbon_open_shortfall_t": np.where(chance(0.2), rng.integers(0, 1000, n), 0),
        "baseline_emissions_t": baseline_t,
        "project_emissions_t": (baseline_t - rng.integers(-1000, 100_000, n)).clip(0),
        "co2_method": pick(("", "CCER CMS-002-V01", "GB/T 32150-2015")),
        "carbon_tool_field": pick(("clean_energy", "energy_saving_environmental", "carbon_reduction_technology",
                                   "shipping")),
        "lender_eligible": chance(0.9),
    }
    frame = pd.DataFrame(columns)
    for name in frame.columns:
        spec = FACTS.get(name)
        kind = spec.kind if spec else None
        if kind in ("fen", "count", "bp", "year", "int"):
            frame[name] = frame[name].astype("Int64")
            if name == "fs_policy_year":  # sent on about half the rows (it must then equal the derived year)
                frame.loc[frame[name] < 0, name] = None
        elif kind == "bool":
            frame[name] = frame[name].astype("boolean")
        elif kind == "str" or name == "city":
            frame[name] = frame[name].astype("category")
        elif kind == "date" or name == "on":
            frame[name] = pd.to_datetime(frame[name]).astype("datetime64[s]")
    # Drop a few required facts so that "not evaluated" rows exist on both paths.
    for name in ("total_revenue_fen", "equipment_acquired_on", "tax_credit_grade", "ru_cit_revenue_fen",
                 "emc_first_revenue_year",
                 "staff_total", "fs_first_insured_on", "jx_recognised", "fb_contract_fen", "loan_approved_on",
                 "lender_eligible"):
        frame.loc[chance(missing_share), name] = None
    return frame
