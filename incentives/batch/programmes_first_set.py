"""Vector twins of the first-of-a-kind programmes: first-set equipment insurance compensation, the Jiangxi
first-set reward and first-batch new materials insurance compensation, mirroring
`incentives.domain.programmes.first_set` line by line.
"""

from __future__ import annotations

import numpy as np

from incentives.batch.arith import I64, Arr, anniversary_key, mdh
from incentives.batch.frames import Frame, StrCol
from incentives.batch.params import Params
from incentives.batch.results import Result, _always, _fail_rows, _finish, _programme
from incentives.domain.arith import BP
from incentives.domain.programmes import first_set


def _premium_base(f: Frame, p: Params, prefix: str, insured: Arr, rate: Arr, eligible: Arr) -> tuple[Arr, Arr]:
    cap, ok = p.num(f"{prefix}.premium_rate_cap_bp", f.on_key)
    return mdh(np.where(eligible, insured, 0), np.where(eligible, np.minimum(rate, cap), 0), BP), ok


def policy_years(first_insured: Arr, on_key: Arr) -> Arr:
    """The policy year containing each evaluation day (0 before the first-insurance day), as
    `first_set.policy_year`."""
    years = on_key // 10_000 - first_insured // 10_000
    result: Arr = np.where(on_key < first_insured, 0,
                           years + (anniversary_key(first_insured, years) <= on_key)).astype(I64)
    return result


def compensated_table(col: StrCol) -> tuple[Arr, Arr]:
    """(per-category validity, table[category, year] = year listed) of `fs_compensated_policy_years`."""
    size = first_set.MAX_LISTED_POLICY_YEAR + 1
    table = np.zeros((len(col.categories) + 1, size), dtype=bool)
    valid = np.ones(len(col.categories) + 1, dtype=bool)
    for index, text in enumerate(col.categories):
        years, problem = first_set.parse_policy_years(text)
        valid[index] = problem is None
        table[index, sorted(years)] = True
    return valid[col.codes], table


def v_first_set(f: Frame, p: Params, ev: Arr, problems: list[tuple[str, str]]) -> Result:
    prog = _programme(first_set.FS_CODE)
    n = f.n
    year = policy_years(f.d("fs_first_insured_on"), f.on_key)
    col = f.s("fs_compensated_policy_years")
    valid, table = compensated_table(col)
    claimed = f.i("fs_policy_year")
    bad = _fail_rows(problems, "fs_compensated_policy_years", ev & ~valid,
                     f"must list policy years 1..{first_set.MAX_LISTED_POLICY_YEAR} separated by ';'")
    bad |= _fail_rows(problems, "fs_policy_year", ev & f.present["fs_policy_year"] & (claimed != year),
                      "is not the policy year derived from fs_first_insured_on and the evaluation day")
    ev = ev & ~bad
    inside = (year >= 0) & (year < table.shape[1])
    compensated = inside & table[col.codes, np.clip(year, 0, table.shape[1] - 1)]
    regimes, regime_index, ok1 = p.text("first_set.regime", f.on_key)
    bad = [i for i, r in enumerate(regimes) if r not in first_set.REGIMES]
    if (ev & np.isin(regime_index, bad)).any():
        raise ValueError(f"first_set.regime must be one of {first_set.REGIMES}")
    is_2025 = np.asarray([*[r == "2025" for r in regimes], False], dtype=bool)[regime_index]
    share, ok2 = p.num("first_set.compensation_bp", f.on_key)
    _, ok3 = p.num("first_set.premium_rate_cap_bp", f.on_key)
    max_years, ok4 = p.num("first_set.max_policy_years", f.on_key)
    found, ok5, _ = p.catalogue("catalogue.first_set", np.where(ev, f.d("fs_first_insured_on"), 0),
                                f.s("fs_catalogue_code"))
    ev = ev & ok1 & ok2 & ok3 & ok4 & ok5
    gates = {"catalogue_listed": (_always(n), found), "policy_year": (_always(n), year <= max_years),
             "policy_year_started": (_always(n), year >= 1),
             "policy_year_not_compensated": (_always(n), ~compensated)}
    eligible = Result(prog, ev, gates, {}).eligible
    capped, _ = _premium_base(f, p, "first_set", f.i("fs_insured_value_fen"), f.i("fs_premium_rate_bp"), eligible)
    base = np.where(is_2025, np.minimum(capped, np.where(eligible, f.i("fs_premium_paid_fen"), 0)), capped)
    compensation = mdh(base, np.where(eligible, share, 0), BP)
    return _finish(prog, ev, gates, {"premium_base_fen": base, "compensation_fen": compensation,
                                     "policy_year": year})


def v_jx(f: Frame, p: Params, ev: Arr, problems: list[tuple[str, str]]) -> Result:
    prog = _programme(first_set.JX_CODE)
    n = f.n
    rate, ok1 = p.num("jx_first_set.reward_rate_bp", f.on_key)
    item_cap, ok2 = p.num("jx_first_set.item_cap_fen", f.on_key)
    producer_cap, ok3 = p.num("jx_first_set.producer_cap_fen", f.on_key)
    exclusive, ok4 = p.contains("stacking.jx_first_set_reward.excludes", f.on_key, first_set.FS_CODE)
    ev = ev & ok1 & ok2 & ok3 & ok4
    awarded = f.i("jx_producer_awarded_fen")
    compensated = f.b("fs_insurance_compensated")
    gates = {"recognised": (_always(n), f.b("jx_recognised")),
             "producer_cap_remaining": (_always(n), awarded < producer_cap),
             "exclusive_with_insurance": (_always(n), ~(exclusive & compensated))}
    eligible = Result(prog, ev, gates, {}).eligible
    before = mdh(np.where(eligible, f.i("jx_item_sales_fen"), 0), np.where(eligible, rate, 0), BP)
    reward = np.where(eligible, np.minimum(np.minimum(before, item_cap), producer_cap - awarded), 0)
    return _finish(prog, ev, gates, {"reward_before_caps_fen": before, "reward_fen": reward})


def v_first_batch(f: Frame, p: Params, ev: Arr, problems: list[tuple[str, str]]) -> Result:
    prog = _programme(first_set.FB_CODE)
    n = f.n
    share, ok1 = p.num("first_batch.compensation_bp", f.on_key)
    minimum, ok2 = p.num("first_batch.min_contract_fen", f.on_key)
    _, ok3 = p.num("first_batch.premium_rate_cap_bp", f.on_key)
    found, ok4, _ = p.catalogue("catalogue.first_batch", np.where(ev, f.d("fb_contract_on"), 0),
                                f.s("fb_catalogue_code"))
    ev = ev & ok1 & ok2 & ok3 & ok4
    always = _always(n)
    gates = {
        "catalogue_listed": (always, found),
        "end_user_purchase": (always, f.b("fb_buyer_is_end_user")),
        "not_related_party": (always, ~f.b("fb_related_party")),
        "not_via_trader": (always, ~f.b("fb_via_trader")),
        "contract_minimum": (always, f.i("fb_contract_fen") >= minimum),
        "not_in_compensated_first_set": (always, ~f.b("fb_used_in_compensated_first_set")),
    }
    eligible = Result(prog, ev, gates, {}).eligible
    base, _ = _premium_base(f, p, "first_batch", f.i("fb_insured_value_fen"), f.i("fb_premium_rate_bp"), eligible)
    compensation = mdh(base, np.where(eligible, share, 0), BP)
    return _finish(prog, ev, gates, {"premium_base_fen": base, "compensation_fen": compensation})
