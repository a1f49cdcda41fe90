"""Vector twins of the tax programmes: the R&D super deduction, the equipment credit, resource
comprehensive utilisation (VAT refund and CIT revenue reduction), EMC and environmental projects, and the
high-tech enterprise rate. Each mirrors its programme module (`incentives.domain.programmes`) line by line with
the same integer rounding.
"""

from __future__ import annotations

import numpy as np

from incentives.batch.arith import I64, Arr, _bounded, anniversary_key, mdf, mdh, share_at_least, share_at_most
from incentives.batch.frames import Frame
from incentives.batch.params import Params
from incentives.batch.results import Result, _always, _fail_rows, _finish, _programme
from incentives.domain.arith import BP
from incentives.domain.programmes import emc, equipment, resource


def v_rd(f: Frame, p: Params, ev: Arr, problems: list[tuple[str, str]]) -> Result:
    prog = _programme("rd_super_deduction")
    core, other = f.i("rd_core_costs_fen"), f.i("rd_other_costs_fen")
    fcore, fother = f.i("rd_fiscal_funded_core_fen"), f.i("rd_fiscal_funded_other_fen")
    revenue, excluded = f.i("total_revenue_fen"), f.i("excluded_industry_revenue_fen")
    bad = np.zeros(f.n, dtype=bool)
    bad |= _fail_rows(problems, "rd_fiscal_funded_core_fen", ev & (fcore > core), "cannot exceed rd_core_costs_fen")
    bad |= _fail_rows(problems, "rd_fiscal_funded_other_fen", ev & (fother > other), "cannot exceed rd_other_costs_fen")
    bad |= _fail_rows(problems, "excluded_industry_revenue_fen", ev & (excluded > revenue),
                      "cannot exceed total_revenue_fen")
    ev = ev & ~bad
    share_bp, ok1 = p.num("rd.excluded_industry_share_bp", f.on_key)
    cit_bp, ok2 = p.num("cit.standard_rate_bp", f.on_key)
    cap_num, cap_den, ok3 = p.ratio("rd.other_costs_cap", f.on_key)
    extra_bp, ok4 = p.num("rd.extra_deduction_bp", f.on_key)
    amort_bp, ok5 = p.num("rd.intangible_amortisation_bp", f.on_key)
    ev = ev & ok1 & ok2 & ok3 & ok4 & ok5
    passed = share_at_most(excluded, revenue, share_bp)
    gates = {"industry_not_excluded": (_always(f.n), passed)}
    eligible = ev & passed
    e = eligible
    eligible_core = np.where(e, core - fcore, 0)
    eligible_other = np.where(e, other - fother, 0)
    cap = mdf(eligible_core, np.where(e, cap_num, 0), np.where(e, cap_den, 1))
    base = eligible_core + np.minimum(eligible_other, cap)
    extra = mdh(base, np.where(e, extra_bp, 0), BP) + mdh(np.where(e, f.i("rd_intangible_amortisation_fen"), 0),
                                                          np.where(e, amort_bp - BP, 0), BP)
    saving = mdh(extra, np.where(e, cit_bp, 0), BP)
    return _finish(prog, ev, gates, {"other_costs_cap_fen": cap, "deduction_base_fen": base,
                                     "extra_deduction_fen": extra, "tax_saving_fen": saving})


def v_equipment(f: Frame, p: Params, ev: Arr, problems: list[tuple[str, str]]) -> Result:
    prog = _programme("equipment_credit")
    n = f.n
    invoice, vat, ancillary = (f.i("equipment_invoice_fen"), f.i("equipment_deductible_vat_fen"),
                               f.i("equipment_ancillary_fen"))
    acquired, transferred = f.d("equipment_acquired_on"), f.d("equipment_transferred_on")
    bad = np.zeros(f.n, dtype=bool)
    bad |= _fail_rows(problems, "equipment_deductible_vat_fen + equipment_ancillary_fen",
                      ev & (vat + ancillary > invoice),
               "cannot exceed equipment_invoice_fen")
    bad |= _fail_rows(problems, "equipment_transferred_on", ev & (transferred > 0) & (transferred < acquired),
               "cannot be before equipment_acquired_on")
    ev = ev & ~bad
    rate_bp, ok1 = p.num("equipment.credit_rate_bp", f.on_key)
    carry_years, ok2 = p.num("equipment.carry_forward_years", f.on_key)
    claw_years, ok3 = p.num("equipment.clawback_years", f.on_key)
    if (ev & ok2 & ((carry_years < 1) | (carry_years > equipment.MAX_AGES))).any():
        raise ValueError(f"equipment.carry_forward_years must be 1..{equipment.MAX_AGES}")
    found, ok4, _ = p.catalogue("catalogue.equipment", np.where(ev, acquired, 0), f.s("equipment_catalogue_code"))
    ev = ev & ok1 & ok2 & ok3 & ok4
    _bounded(claw_years, 10_000)
    within = (transferred > 0) & (transferred < acquired + claw_years * 10_000)
    no_grant = ~f.b("equipment_fiscal_grant")
    gates = {"catalogue_listed": (_always(n), found), "no_fiscal_grant": (_always(n), no_grant),
             "not_transferred_within_window": (_always(n), ~within)}
    eligible = ev & found & no_grant & ~within
    investment = np.where(ev, invoice - vat - ancillary, 0)
    earns = eligible & (acquired // 10_000 == f.on_key // 10_000)
    generated = mdh(np.where(earns, investment, 0), np.where(earns, rate_bp, 0), BP)
    carried = [np.where(ev, f.i(f"credit_carry_age{age}_fen"), 0) for age in range(1, equipment.MAX_AGES + 1)]
    payable = np.where(ev, f.i("cit_payable_fen"), 0)
    remaining = payable.copy()
    left: dict[int, Arr] = {}
    expired = np.zeros(n, dtype=I64)
    for age in range(equipment.MAX_AGES, 0, -1):
        usable = age <= carry_years
        expired += np.where(usable, 0, carried[age - 1])
        use = np.where(usable, np.minimum(carried[age - 1], remaining), 0)
        remaining = remaining - use
        left[age] = np.where(usable, carried[age - 1] - use, 0)
    use_new = np.minimum(generated, remaining)
    remaining = remaining - use_new
    left[0] = generated - use_new
    used = payable - remaining
    for age in range(1, equipment.MAX_AGES + 1):
        expired += np.where(carry_years == age, left[age], 0)
    nxt = {age: np.where(age - 1 < carry_years, left[age - 1], 0) for age in range(1, equipment.MAX_AGES + 1)}
    carry = sum(nxt.values(), np.zeros(n, dtype=I64))
    clawback = np.where(within, f.i("equipment_credit_used_to_date_fen"), 0)
    outputs = {"investment_fen": investment, "credit_generated_fen": generated, "credit_used_fen": used,
               "credit_expired_fen": expired, "credit_carried_forward_fen": carry, "clawback_fen": clawback}
    outputs.update({f"carry_next_age{age}_fen": nxt[age] for age in nxt})
    return _finish(prog, ev, gates, outputs)


def v_ru_vat(f: Frame, p: Params, ev: Arr, problems: list[tuple[str, str]]) -> Result:
    prog = _programme(resource.VAT_CODE)
    n = f.n
    grade_col = f.s("tax_credit_grade")
    valid_grade = grade_col.table(lambda c: c.upper() in resource.GRADES, False, bool)
    bad = np.zeros(f.n, dtype=bool)
    bad |= _fail_rows(problems, "tax_credit_grade", ev & ~valid_grade, f"must be one of {', '.join(resource.GRADES)}")
    ev = ev & ~bad
    excluded, ok1 = p.member("ru_vat.excluded_credit_grades", f.on_key, grade_col, str.upper)
    lookback, ok2 = p.num("ru_vat.penalty_lookback_months", f.on_key)
    minor, ok3 = p.num("ru_vat.minor_penalty_max_fen", f.on_key)
    found, ok4, attrs = p.catalogue("catalogue.resource_util_vat", f.on_key, f.s("ru_vat_item_code"),
                                    attrs=[("refund_bp", 0)])
    ev = ev & ok1 & ok2 & ok3 & ok4
    penalty = f.d("env_penalty_on")
    on_month = (f.on_key // 10_000) * 12 + (f.on_key // 100 % 100) - 1
    pen_month = (penalty // 10_000) * 12 + (penalty // 100 % 100) - 1
    in_window = (penalty > 0) & (on_month - lookback < pen_month) & (pen_month <= on_month)
    fine = np.where(in_window, f.i("env_penalty_fen"), 0)
    no_penalty = fine <= minor
    gates = {"catalogue_listed": (_always(n), found), "credit_grade": (_always(n), ~excluded),
             "no_recent_penalty": (_always(n), no_penalty)}
    eligible = ev & found & ~excluded & no_penalty
    ratio = np.where(eligible, attrs["refund_bp"], 0)
    refund = mdh(np.where(eligible, f.i("ru_vat_payable_fen"), 0), ratio, BP)
    return _finish(prog, ev, gates, {"refund_ratio_bp": ratio, "vat_refund_fen": refund})


def v_ru_cit(f: Frame, p: Params, ev: Arr, problems: list[tuple[str, str]]) -> Result:
    prog = _programme(resource.CIT_CODE)
    n = f.n
    inclusion, ok1 = p.num("ru_cit.revenue_inclusion_bp", f.on_key)
    cit_bp, ok2 = p.num("cit.standard_rate_bp", f.on_key)
    found, ok3, attrs = p.catalogue("catalogue.resource_util_cit", f.on_key, f.s("ru_cit_item_code"),
                                    attrs=[("min_share_bp", 0)])
    ev = ev & ok1 & ok2 & ok3
    share_ok = f.i("ru_cit_resource_share_bp") >= attrs["min_share_bp"]
    meets = f.b("ru_cit_meets_standard")
    gates = {"catalogue_listed": (_always(n), found), "resource_share": (found, share_ok),
             "meets_standard": (_always(n), meets)}
    eligible = ev & found & share_ok & meets
    reduction = mdh(np.where(eligible, f.i("ru_cit_revenue_fen"), 0), np.where(eligible, BP - inclusion, 0), BP)
    saving = mdh(reduction, np.where(eligible, cit_bp, 0), BP)
    return _finish(prog, ev, gates, {"revenue_reduction_fen": reduction, "tax_saving_fen": saving})


def v_emc(f: Frame, p: Params, ev: Arr, problems: list[tuple[str, str]]) -> Result:
    prog = _programme(emc.CODE)
    n = f.n
    kind = f.s("emc_project_kind")
    valid_kind = kind.table(lambda c: c in emc.KINDS, False, bool)
    bad = np.zeros(f.n, dtype=bool)
    bad |= _fail_rows(problems, "emc_project_kind", ev & ~valid_kind, f"must be one of {', '.join(emc.KINDS)}")
    ev = ev & ~bad
    is_emc = kind.table(lambda c: c == "emc", False, bool)
    start, end, years = f.d("emc_sharing_starts_on"), f.d("emc_sharing_ends_on"), f.i("emc_contract_years")
    has_start, has_end = f.present["emc_sharing_starts_on"], f.present["emc_sharing_ends_on"]
    both = has_start & has_end
    before = both & (end < start)
    bad |= _fail_rows(problems, "emc_sharing_ends_on", ev & before, "cannot be before emc_sharing_starts_on")
    bad |= _fail_rows(problems, "emc_sharing_ends_on",
                      ev & both & ~before & (years > 0) & (end >= anniversary_key(start, years)),
                      "cannot be after the end of the contract (emc_contract_years) counted from emc_sharing_starts_on")
    bad |= _fail_rows(problems, "emc_sharing_starts_on", ev & is_emc & ~has_start, "is required for an emc project")
    bad |= _fail_rows(problems, "emc_sharing_ends_on", ev & is_emc & has_start & ~has_end & (years == 0),
                      "is required for an emc project unless emc_contract_years is given")
    ev = ev & ~bad
    # The sharing period's last year: the explicit end, or the day before the contract-term anniversary.
    derived_end = anniversary_key(start, years)
    end_year = np.where(has_end, end // 10_000, derived_end // 10_000 - (derived_end % 10_000 == 101))
    span = end // 10_000 - start // 10_000
    term = np.where(years > 0, years, span + (anniversary_key(start, span) <= end))
    cit_bp, ok1 = p.num("cit.standard_rate_bp", f.on_key)
    exempt, ok2 = p.num("emc.exempt_years", f.on_key)
    half, ok3 = p.num("emc.half_years", f.on_key)
    half_bp, ok4 = p.num("emc.half_relief_bp", f.on_key)
    max_term, ok5 = p.num("emc.max_contract_years", f.on_key)
    found, ok6, _ = p.catalogue("catalogue.environmental_projects", f.on_key, f.s("emc_catalogue_code"))
    ev = ev & ok1 & ok2 & ok3 & ok4 & (ok5 | ~is_emc) & (ok6 | is_emc)
    year = f.on_key // 10_000 - f.i("emc_first_revenue_year") + 1
    gates = {
        "contract_term": (is_emc, term <= max_term),
        "company_qualified": (is_emc, f.b("emc_company_qualified")),
        "catalogue_listed": (~is_emc, found),
        "relief_started": (_always(n), year >= 1),
        "within_relief_period": (_always(n), year <= exempt + half),
        "within_sharing_period": (is_emc, f.on_key // 10_000 <= end_year),
    }
    result = Result(prog, ev, gates, {})
    eligible = result.eligible
    share = np.where(year <= exempt, BP, half_bp)
    tax = mdh(np.where(eligible, f.i("emc_project_income_fen"), 0), np.where(eligible, cit_bp, 0), BP)
    relief = mdh(tax, np.where(eligible, share, 0), BP)
    applied = np.where(eligible, cit_bp - mdh(np.where(eligible, cit_bp, 0), np.where(eligible, share, 0), BP), cit_bp)
    return _finish(prog, ev, gates, {"project_year": year, "relief_share_bp": np.where(eligible, share, 0),
                                     "applied_rate_bp": applied, "tax_before_relief_fen": tax,
                                     "tax_saving_fen": relief})


def v_high_tech(f: Frame, p: Params, ev: Arr, problems: list[tuple[str, str]]) -> Result:
    prog = _programme("high_tech")
    n = f.n
    rd, rd_domestic = f.i("rd_expense_3y_fen"), f.i("rd_domestic_3y_fen")
    sales, hightech = f.i("sales_revenue_fen"), f.i("hightech_revenue_fen")
    staff, tech = f.i("staff_total"), f.i("tech_staff")
    revenue_3y = f.i("revenue_3y_fen")
    bad = np.zeros(f.n, dtype=bool)
    bad |= _fail_rows(problems, "rd_domestic_3y_fen", ev & (rd_domestic > rd), "cannot exceed rd_expense_3y_fen")
    bad |= _fail_rows(problems, "hightech_revenue_fen", ev & (hightech > sales), "cannot exceed sales_revenue_fen")
    bad |= _fail_rows(problems, "tech_staff", ev & (tech > staff), "cannot exceed staff_total")
    ev = ev & ~bad
    cit_bp, ok1 = p.num("cit.standard_rate_bp", f.on_key)
    hnte_bp, ok2 = p.num("hnte.rate_bp", f.on_key)
    small_max, ok3 = p.num("hnte.band_small_max_fen", f.on_key)
    medium_max, ok4 = p.num("hnte.band_medium_max_fen", f.on_key)
    small, ok5 = p.num("hnte.rd_intensity_small_bp", f.on_key)
    medium, ok6 = p.num("hnte.rd_intensity_medium_bp", f.on_key)
    large, ok7 = p.num("hnte.rd_intensity_large_bp", f.on_key)
    domestic_min, ok8 = p.num("hnte.domestic_rd_min_bp", f.on_key)
    hightech_min, ok9 = p.num("hnte.hightech_revenue_min_bp", f.on_key)
    staff_min, ok10 = p.num("hnte.tech_staff_min_bp", f.on_key)
    ev = ev & ok1 & ok2 & ok3 & ok4 & ok5 & ok6 & ok7 & ok8 & ok9 & ok10
    threshold = np.where(sales <= small_max, small, np.where(sales <= medium_max, medium, large))
    always = _always(n)
    gates = {
        "rd_intensity": (always, share_at_least(rd, revenue_3y, threshold)),
        "domestic_rd_share": (always, share_at_least(rd_domestic, rd, domestic_min)),
        "hightech_revenue_share": (always, share_at_least(hightech, sales, hightech_min)),
        "tech_staff_share": (always, share_at_least(tech, staff, staff_min)),
        "core_ip": (always, f.b("owns_core_ip")),
        "no_major_incident": (always, ~f.b("major_incident_in_year")),
    }
    eligible = Result(prog, ev, gates, {}).eligible
    base = np.where(eligible, np.maximum(0, f.i("taxable_income_fen") - f.i("income_relieved_elsewhere_fen")), 0)
    saving = mdh(base, np.where(eligible, cit_bp - hnte_bp, 0), BP)
    return _finish(prog, ev, gates, {"rd_intensity_threshold_bp": threshold,
                                     "cit_rate_bp": np.where(eligible, hnte_bp, cit_bp),
                                     "income_at_hnte_rate_fen": base, "tax_saving_fen": saving})
