"""Batch evaluation of many enterprise-years on the vector path (pandas/numpy, integer fen throughout).

Input: a DataFrame (or a CSV file, or a list of dicts) with one row per enterprise-year. Its columns are the
fact keys of `incentives.domain.facts` (`rd_core_costs_fen`, `loan_approved_on`, ...; see `column_docs()`),
plus `on` (the evaluation day of the row; or pass `on=` for all rows) and optionally `enterprise_id`,
`city` and `year`, which are copied to the output. Integer facts must be integer columns (numpy int64 or
pandas Int64): a float column is refused, never rounded. Booleans are bool/boolean, texts are strings or
categoricals, dates are datetime64 or ISO text. A missing value (NA) means the fact is absent: a programme
is evaluated on a row only when all its required facts are present and its parameters are in force on the
row's day, exactly as `evaluate_all` decides on the scalar path.

Output: one row per input row with, for every programme P, the columns `P.evaluated`, `P.eligible`,
`P.failed_gates` (gate codes joined by ';', in the programme's gate order), `P.stacked_out` and one
`P.<output>` int64 column per named output.

The formulas mirror the programme modules line by line with the same integer rounding
(`incentives.domain.arith`): half up for benefits, down for caps. `scalar_frame` runs the scalar explain
path over the same rows and builds the same table; the tests require the two to be identical to the fen.
Parameters are resolved per distinct day through the same ParameterSet, so both paths read the same entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from incentives.domain.arith import BP, MAX_FEN
from incentives.domain.facts import FACTS, FactsError, FactSpec
from incentives.domain.params import Catalogue, NotInForce, ParameterSet, Ratio
from incentives.domain.programmes import PROGRAMMES, emc, equipment, first_set, green, resource
from incentives.domain.rules import Evaluation, Programme, evaluate_all

PASSTHROUGH = ("enterprise_id", "city", "year")
INT64_MAX = 2**63 - 1
I64 = np.int64

Arr = np.ndarray[Any, Any]


class BatchInputError(ValueError):
    """The batch input is malformed; lists the problems (column, first offending rows, message)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


def column_docs() -> list[dict[str, object]]:
    """The documented input columns: every fact key with kind, unit, meaning and default, plus `on`."""
    docs: list[dict[str, object]] = [
        {"name": "on", "kind": "date", "unit": "", "required": True,
         "description": "evaluation day of the row (or pass on= to evaluate_batch)", "default": None},
        {"name": "enterprise_id", "kind": "str", "unit": "", "required": False,
         "description": "unified social credit code (copied to the output)", "default": None},
        {"name": "city", "kind": "str", "unit": "", "required": False,
         "description": "city (copied to the output; what-if reports group by it)", "default": None},
    ]
    docs.extend(spec.to_dict() for spec in FACTS.values())
    return docs


# ---------------------------------------------------------------------------------------------------------
# Integer arithmetic on int64 columns: the same formulas as incentives.domain.arith.


def _max_abs(value: Arr | int) -> int:
    if isinstance(value, np.ndarray):
        return int(np.max(np.abs(value))) if value.size else 0
    return abs(int(value))


def _bounded(*factors: Arr | int) -> None:
    """Refuse a product that could overflow int64 (the scalar path has no limit, so it would differ)."""
    bound = 2
    for factor in factors:
        bound *= max(_max_abs(factor), 1)
    if bound > INT64_MAX:
        raise OverflowError("a product of batch operands would exceed int64; check the magnitudes given")


def _nonneg(*values: Arr | int) -> None:
    for value in values:
        low = (int(np.min(value)) if value.size else 0) if isinstance(value, np.ndarray) else int(value)
        if low < 0:
            raise ValueError("amount and numerator must be >= 0")


def mdh(amount: Arr, numerator: Arr | int, denominator: Arr | int) -> Arr:
    """amount × numerator / denominator, half up (benefits)."""
    _nonneg(amount, numerator)
    _bounded(amount, numerator)
    return (2 * amount * numerator + denominator) // (2 * np.asarray(denominator, dtype=I64))


def mdf(amount: Arr, numerator: Arr | int, denominator: Arr | int) -> Arr:
    """amount × numerator / denominator, rounded down (caps)."""
    _nonneg(amount, numerator)
    _bounded(amount, numerator)
    return (amount * numerator) // np.asarray(denominator, dtype=I64)


def share_at_least(numerator: Arr, denominator: Arr, threshold_bp: Arr) -> Arr:
    """numerator / denominator >= threshold_bp / 10000, by cross-multiplying (0 when the denominator is 0)."""
    _bounded(numerator, BP)
    _bounded(threshold_bp, denominator)
    return (denominator > 0) & (numerator * BP >= threshold_bp * denominator)


def share_at_most(numerator: Arr, denominator: Arr, threshold_bp: Arr) -> Arr:
    """numerator / denominator <= threshold_bp / 10000 (true when the denominator is 0: no share at all)."""
    _bounded(numerator, BP)
    _bounded(threshold_bp, denominator)
    result: Arr = (denominator == 0) | (numerator * BP <= threshold_bp * denominator)
    return result


# ---------------------------------------------------------------------------------------------------------
# Input preparation.


@dataclass
class StrCol:
    """A text column as category codes (-1 = missing) and stripped categories: lookups cost one take."""

    codes: Arr
    categories: list[str]

    def table(self, fn: Callable[[str], Any], missing: Any, dtype: Any) -> Arr:
        """Evaluate `fn` once per category; index by code (the last slot answers for missing)."""
        return self.take([fn(c) for c in self.categories], missing, dtype)

    def take(self, per_category: list[Any], missing: Any, dtype: Any) -> Arr:
        """Per-row values from one value per category (and `missing` for rows without a value)."""
        return np.asarray([*per_category, missing], dtype=dtype)[self.codes]


@dataclass
class Frame:
    """Prepared fact columns of a batch (defaults applied) with their presence masks."""

    n: int
    on_key: Arr
    ints: dict[str, Arr] = field(default_factory=dict)
    bools: dict[str, Arr] = field(default_factory=dict)
    strs: dict[str, StrCol] = field(default_factory=dict)
    dates: dict[str, Arr] = field(default_factory=dict)
    present: dict[str, Arr] = field(default_factory=dict)

    def i(self, name: str) -> Arr:
        return self.ints[name]

    def b(self, name: str) -> Arr:
        return self.bools[name]

    def s(self, name: str) -> StrCol:
        return self.strs[name]

    def d(self, name: str) -> Arr:
        return self.dates[name]

    def required(self, programme: Programme) -> Arr:
        mask = np.ones(self.n, dtype=bool)
        for name in programme.required_facts:
            mask &= self.present[name]
        return mask


def _date_keys(series: pd.Series, name: str) -> tuple[Arr, Arr]:
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        try:
            series = pd.to_datetime(series, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise BatchInputError([f"{name}: must be dates (YYYY-MM-DD): {exc}"]) from None
    present = series.notna().to_numpy()
    keys = (series.dt.year * 10_000 + series.dt.month * 100 + series.dt.day).fillna(0).to_numpy(dtype=I64)
    return keys, present


def _limits(spec: FactSpec) -> tuple[int, int]:
    return {
        "fen": (0, MAX_FEN), "count": (0, 10**12), "bp": (0, BP), "year": (1900, 2200), "int": (-(10**12), 10**12),
    }[spec.kind]


def _int_column(series: pd.Series, spec: FactSpec, problems: list[str]) -> tuple[Arr, Arr]:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_float_dtype(dtype):
        problems.append(f"{spec.name}: must be an integer column of {spec.unit or spec.kind} (got {dtype}); "
                        "floats are never rounded")
        return np.zeros(len(series), dtype=I64), np.zeros(len(series), dtype=bool)
    if dtype is np.dtype(object):
        bad = series.map(lambda v: not (v is None or v is pd.NA or (isinstance(v, (int, np.integer))
                                                                    and not isinstance(v, (bool, np.bool_)))))
        if bad.any():
            problems.append(f"{spec.name}: rows {series.index[bad.to_numpy()][:5].tolist()} are not whole numbers")
            return np.zeros(len(series), dtype=I64), np.zeros(len(series), dtype=bool)
        series = series.astype("Int64")
    present = series.notna().to_numpy()
    values = series.to_numpy(dtype=I64, na_value=0) if present.size and not present.all() else series.to_numpy(
        dtype=I64)
    low, high = _limits(spec)
    bad_rows = present & ((values < low) | (values > high))
    if bad_rows.any():
        problems.append(f"{spec.name}: rows {np.flatnonzero(bad_rows)[:5].tolist()} are outside {low}..{high}")
    return values, present


def _bool_column(series: pd.Series, spec: FactSpec, problems: list[str]) -> tuple[Arr, Arr]:
    if pd.api.types.is_bool_dtype(series.dtype):
        present = series.notna().to_numpy()
        return series.fillna(False).to_numpy(dtype=bool), present
    if series.dtype == object:
        ok = series.map(lambda v: v is None or v is pd.NA or isinstance(v, (bool, np.bool_)))
        if not ok.all():
            problems.append(f"{spec.name}: rows {series.index[~ok.to_numpy()][:5].tolist()} are not true/false")
            return np.zeros(len(series), dtype=bool), np.zeros(len(series), dtype=bool)
        present = series.notna().to_numpy()
        return series.fillna(False).to_numpy(dtype=bool), present
    problems.append(f"{spec.name}: must be a boolean column (got {series.dtype})")
    return np.zeros(len(series), dtype=bool), np.zeros(len(series), dtype=bool)


def _str_column(series: pd.Series, spec: FactSpec, problems: list[str]) -> tuple[StrCol, Arr]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        cat = series.array
        assert isinstance(cat, pd.Categorical)
    else:
        cat = pd.Categorical(series)
    categories = list(cat.categories)
    if not all(isinstance(c, str) for c in categories):
        problems.append(f"{spec.name}: must be text")
        categories = [str(c) for c in categories]
    codes = np.asarray(cat.codes, dtype=I64)
    present = codes >= 0
    return StrCol(codes=codes, categories=[c.strip() for c in categories]), present


def prepare(frame: pd.DataFrame, on: date | None = None) -> Frame:
    """Check and convert the fact columns of `frame`; raises BatchInputError listing every problem."""
    n = len(frame)
    problems: list[str] = []
    if "on" in frame.columns:
        on_key, on_present = _date_keys(frame["on"], "on")
        if not on_present.all():
            problems.append("on: every row needs an evaluation day")
    elif on is not None:
        on_key = np.full(n, on.year * 10_000 + on.month * 100 + on.day, dtype=I64)
    else:
        raise BatchInputError(["on: give an 'on' column or pass on="])
    prepared = Frame(n=n, on_key=on_key)
    for name, spec in FACTS.items():
        column = frame[name] if name in frame.columns else None
        if spec.kind == "str":
            if column is None:
                col, present = StrCol(np.full(n, -1, dtype=I64), []), np.zeros(n, dtype=bool)
            else:
                col, present = _str_column(column, spec, problems)
            prepared.strs[name] = col
        elif spec.kind == "bool":
            if column is None:
                values, present = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
            else:
                values, present = _bool_column(column, spec, problems)
            if not spec.required:
                values = np.where(present, values, bool(spec.default))
            prepared.bools[name] = values
        elif spec.kind == "date":
            if column is None:
                keys, present = np.zeros(n, dtype=I64), np.zeros(n, dtype=bool)
            else:
                keys, present = _date_keys(column, name)
            prepared.dates[name] = keys
        else:
            if column is None:
                values, present = np.zeros(n, dtype=I64), np.zeros(n, dtype=bool)
            else:
                values, present = _int_column(column, spec, problems)
            if not spec.required and isinstance(spec.default, int):
                values = np.where(present, values, spec.default)
            prepared.ints[name] = values
        prepared.present[name] = present
    if problems:
        raise BatchInputError(problems)
    return prepared


# ---------------------------------------------------------------------------------------------------------
# Parameters per row: resolved once per distinct day through the same ParameterSet as the scalar path.


class Params:
    """Parameter values as columns, with a mask of rows where the parameter is in force.

    A parameter's value (as known on `known_on`) is constant between the days its entries start or end, so
    each parameter is resolved once per such segment through the same ParameterSet as the scalar path, and
    rows find their segment by binary search on the yyyymmdd keys.
    """

    def __init__(self, params: ParameterSet, known_on: date | None) -> None:
        self.params = params
        self.known_on = known_on
        self._segments: dict[str, tuple[Arr, list[Any], Arr]] = {}
        # Most lookups share one day column; its distinct days are found once (the cache keeps the array
        # itself, so its id cannot be reused while cached) and each parameter is searched on those only.
        self._distinct: dict[int, tuple[Arr, Arr, Arr]] = {}

    def _segment_table(self, name: str) -> tuple[Arr, list[Any], Arr]:
        """(segment start keys, distinct values, value index per segment; -1 where nothing is in force)."""
        hit = self._segments.get(name)
        if hit is not None:
            return hit
        history = [e for e in self.params.history(name) if e.known_on(self.known_on)]
        starts = sorted({e.valid_from for e in history} | {e.valid_to for e in history if e.valid_to})
        values: list[Any] = []
        ids: dict[str, int] = {}
        index: list[int] = []
        for day in starts:
            try:
                entry = self.params.entry(name, day, self.known_on)
            except NotInForce:
                index.append(-1)
                continue
            if entry.id not in ids:
                ids[entry.id] = len(values)
                values.append(entry.value)
            index.append(ids[entry.id])
        keys = np.asarray([d.year * 10_000 + d.month * 100 + d.day for d in starts], dtype=I64)
        hit = (keys, values, np.asarray([*index, -1], dtype=I64))
        self._segments[name] = hit
        return hit

    def _per_day(self, name: str, keys: Arr) -> tuple[list[Any], Arr, Arr]:
        """(distinct values, value index per row (-1: not in force), in-force mask)."""
        starts, values, index = self._segment_table(name)
        hit = self._distinct.get(id(keys))
        if hit is None or hit[0] is not keys:
            uniq, inverse = np.unique(keys, return_inverse=True)
            hit = (keys, uniq, inverse)
            self._distinct[id(keys)] = hit
        _, uniq, inverse = hit
        segment = np.searchsorted(starts, uniq, side="right") - 1
        per_day = np.where(uniq > 0, index[segment], -1)  # segment -1 (before the first start) picks the -1
        row_index = per_day[inverse]
        return values, row_index, row_index >= 0

    def num(self, name: str, keys: Arr) -> tuple[Arr, Arr]:
        values, row_index, ok = self._per_day(name, keys)
        return np.asarray([*[v if isinstance(v, int) else 0 for v in values], 0], dtype=I64)[row_index], ok

    def ratio(self, name: str, keys: Arr) -> tuple[Arr, Arr, Arr]:
        values, row_index, ok = self._per_day(name, keys)
        nums = np.asarray([*[v.numerator for v in values if isinstance(v, Ratio)], 0], dtype=I64)[row_index]
        dens = np.asarray([*[v.denominator for v in values if isinstance(v, Ratio)], 1], dtype=I64)[row_index]
        return nums, dens, ok

    def text(self, name: str, keys: Arr) -> tuple[list[Any], Arr, Arr]:
        """(distinct values, value index per row, ok): for a str parameter compared by the caller."""
        return self._per_day(name, keys)

    def member(self, name: str, keys: Arr, column: StrCol, transform: Callable[[str], str] = str) -> tuple[Arr, Arr]:
        """Whether each row's text is in the str_list parameter in force on the row's day."""
        values, row_index, ok = self._per_day(name, keys)
        result = np.zeros(len(keys), dtype=bool)
        for index, listed in enumerate(values):
            rows = row_index == index
            table = column.take([transform(c) in listed for c in column.categories], False, bool)
            result[rows] = table[rows]
        return result, ok

    def contains(self, name: str, keys: Arr, item: str) -> tuple[Arr, Arr]:
        """Whether the str_list parameter in force on each row's day contains `item`."""
        values, row_index, ok = self._per_day(name, keys)
        return np.asarray([*[item in v for v in values], False], dtype=bool)[row_index], ok

    def catalogue(self, name: str, keys: Arr, column: StrCol, *, key: str = "code",
                  attrs: Sequence[tuple[str, Any]] = ()) -> tuple[Arr, Arr, dict[str, Arr]]:
        """(found, ok, attribute columns) of each row's text in the edition in force on the row's key day."""
        values, row_index, ok = self._per_day(name, keys)
        n = len(keys)
        found = np.zeros(n, dtype=bool)
        out = {a: np.full(n, default, dtype=type(default)) for a, default in attrs}
        for index, catalogue in enumerate(values):
            assert isinstance(catalogue, Catalogue)
            rows = row_index == index
            lookup = {(item.code if key == "code" else item.get(key)): item for item in catalogue.items}
            found[rows] = column.take([c in lookup for c in column.categories], False, bool)[rows]
            for a, default in attrs:
                per_category = [lookup[c].get(a, default) if c in lookup else default for c in column.categories]
                out[a][rows] = column.take(per_category, default, type(default))[rows]
        return found, ok, out


# ---------------------------------------------------------------------------------------------------------
# Programme results on the vector path.


@dataclass
class Result:
    """One programme over all rows: evaluated mask, gate results in gate order, outputs."""

    programme: Programme
    evaluated: Arr
    gates: dict[str, tuple[Arr, Arr]]  # code -> (recorded, passed)
    outputs: dict[str, Arr]

    @property
    def eligible(self) -> Arr:
        ok = self.evaluated.copy()
        for recorded, passed in self.gates.values():
            ok &= ~recorded | passed
        return ok

    def failed_mask(self) -> Arr:
        mask = np.zeros(len(self.evaluated), dtype=I64)
        for bit, code in enumerate(self.programme.gate_codes):
            if code in self.gates:
                recorded, passed = self.gates[code]
                mask |= (self.evaluated & recorded & ~passed).astype(I64) << bit
        return mask


def _always(n: int) -> Arr:
    return np.ones(n, dtype=bool)


def _fail_rows(problems: list[tuple[str, str]], name: str, rows: Arr, message: str) -> Arr:
    """Record malformed rows; the caller leaves them out of the arithmetic and the batch is refused at the end."""
    if rows.any():
        problems.append((name, f"{message} (rows {np.flatnonzero(rows)[:5].tolist()})"))
    return rows


def _finish(programme: Programme, evaluated: Arr, gates: dict[str, tuple[Arr, Arr]],
            outputs: dict[str, Arr]) -> Result:
    """The programme's result; a row not evaluated has every output 0, as in the scalar table."""
    result = Result(programme, evaluated, gates, {})
    for spec in programme.outputs:
        result.outputs[spec.name] = np.where(evaluated, outputs[spec.name], 0).astype(I64, copy=False)
    return result


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
    cit_bp, ok1 = p.num("cit.standard_rate_bp", f.on_key)
    exempt, ok2 = p.num("emc.exempt_years", f.on_key)
    half, ok3 = p.num("emc.half_years", f.on_key)
    half_bp, ok4 = p.num("emc.half_relief_bp", f.on_key)
    max_term, ok5 = p.num("emc.max_contract_years", f.on_key)
    found, ok6, _ = p.catalogue("catalogue.environmental_projects", f.on_key, f.s("emc_catalogue_code"))
    ev = ev & ok1 & ok2 & ok3 & ok4 & (ok5 | ~is_emc) & (ok6 | is_emc)
    year = f.on_key // 10_000 - f.i("emc_first_revenue_year") + 1
    gates = {
        "contract_term": (is_emc, f.i("emc_contract_years") <= max_term),
        "company_qualified": (is_emc, f.b("emc_company_qualified")),
        "catalogue_listed": (~is_emc, found),
        "relief_started": (_always(n), year >= 1),
        "within_relief_period": (_always(n), year <= exempt + half),
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
    saving = mdh(np.where(eligible, f.i("taxable_income_fen"), 0), np.where(eligible, cit_bp - hnte_bp, 0), BP)
    return _finish(prog, ev, gates, {"rd_intensity_threshold_bp": threshold,
                                     "cit_rate_bp": np.where(eligible, hnte_bp, cit_bp), "tax_saving_fen": saving})


def _premium_base(f: Frame, p: Params, prefix: str, insured: Arr, rate: Arr, eligible: Arr) -> tuple[Arr, Arr]:
    cap, ok = p.num(f"{prefix}.premium_rate_cap_bp", f.on_key)
    return mdh(np.where(eligible, insured, 0), np.where(eligible, np.minimum(rate, cap), 0), BP), ok


def v_first_set(f: Frame, p: Params, ev: Arr, problems: list[tuple[str, str]]) -> Result:
    prog = _programme(first_set.FS_CODE)
    n = f.n
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
    year = f.i("fs_policy_year")
    gates = {"catalogue_listed": (_always(n), found), "policy_year": (_always(n), year <= max_years),
             "policy_year_started": (_always(n), year >= 1)}
    eligible = Result(prog, ev, gates, {}).eligible
    capped, _ = _premium_base(f, p, "first_set", f.i("fs_insured_value_fen"), f.i("fs_premium_rate_bp"), eligible)
    base = np.where(is_2025, np.minimum(capped, np.where(eligible, f.i("fs_premium_paid_fen"), 0)), capped)
    compensation = mdh(base, np.where(eligible, share, 0), BP)
    return _finish(prog, ev, gates, {"premium_base_fen": base, "compensation_fen": compensation})


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
    intensity = f.i("energy_intensity")
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
        baseline[rows] = base_values[rows]
        advanced[rows] = adv_values[rows]
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


VECTOR: dict[str, Callable[[Frame, Params, Arr, list[tuple[str, str]]], Result]] = {
    "rd_super_deduction": v_rd,
    "equipment_credit": v_equipment,
    resource.VAT_CODE: v_ru_vat,
    resource.CIT_CODE: v_ru_cit,
    emc.CODE: v_emc,
    "high_tech": v_high_tech,
    first_set.FS_CODE: v_first_set,
    first_set.JX_CODE: v_jx,
    first_set.FB_CODE: v_first_batch,
    green.GL_CODE: v_green_loan,
    green.CT_CODE: v_carbon_tool,
}
assert tuple(VECTOR) == tuple(p.code for p in PROGRAMMES), "every programme needs its vector twin, in order"


def _programme(code: str) -> Programme:
    for programme in PROGRAMMES:
        if programme.code == code:
            return programme
    raise KeyError(code)


# ---------------------------------------------------------------------------------------------------------
# Stacking on the vector path (same order and tie rule as incentives.domain.rules.stack).


def _stack(results: Sequence[Result], p: Params, on_key: Arr) -> list[Arr]:
    n = len(on_key)
    stacked = [np.zeros(n, dtype=bool) for _ in results]
    codes = [r.programme.code for r in results]
    active: dict[tuple[int, int], Arr] = {}
    for i, r in enumerate(results):
        name = r.programme.excludes_parameter
        if name is None:
            continue
        for j, code in enumerate(codes):
            if j == i:
                continue
            contains, _ = p.contains(name, on_key, code)
            pair = (min(i, j), max(i, j))
            active[pair] = active.get(pair, np.zeros(n, dtype=bool)) | contains
    eligible = [r.eligible for r in results]
    heads = [r.outputs[r.programme.headline] for r in results]
    for (i, j) in sorted(active):
        both = active[(i, j)] & eligible[i] & eligible[j] & ~stacked[i] & ~stacked[j]
        a_wins = heads[i] >= heads[j]
        stacked[j] |= both & a_wins
        stacked[i] |= both & ~a_wins
    return stacked


# ---------------------------------------------------------------------------------------------------------
# Public entry points.


def _as_frame(data: pd.DataFrame | str | Path | Iterable[Mapping[str, object]]) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, (str, Path)):
        return read_population(Path(data))
    return records_frame(list(data))


def records_frame(records: Sequence[Mapping[str, object]]) -> pd.DataFrame:
    """A batch frame from plain fact dicts, with the column dtypes the vector path expects."""
    frame = pd.DataFrame.from_records(list(records))
    for name in frame.columns:
        spec = FACTS.get(name)
        kind = spec.kind if spec else ("date" if name == "on" else None)
        if kind in ("fen", "count", "bp", "year", "int"):
            frame[name] = frame[name].astype("Int64")
        elif kind == "bool":
            frame[name] = frame[name].astype("boolean")
        elif kind == "date":
            frame[name] = pd.to_datetime(frame[name].map(lambda v: v.isoformat() if isinstance(v, date) else v),
                                         format="ISO8601")
        elif kind == "str":
            frame[name] = frame[name].astype("category")
    return frame


def read_population(path: Path) -> pd.DataFrame:
    """Read a CSV of enterprise-years with the dtypes of the fact specs (integers stay integers)."""
    dtypes: dict[str, Any] = {}
    dates: list[str] = ["on"]
    for name, spec in FACTS.items():
        if spec.kind in ("fen", "count", "bp", "year", "int"):
            dtypes[name] = "Int64"
        elif spec.kind == "bool":
            dtypes[name] = "boolean"
        elif spec.kind == "str":
            # Plain text, never inferred: codes such as "3.10" must not become numbers.
            dtypes[name] = "str"
        else:
            dates.append(name)
    for name in PASSTHROUGH:
        dtypes.setdefault(name, "str")
    frame = pd.read_csv(path, dtype=dtypes)
    for name in dates:
        if name in frame.columns:
            frame[name] = pd.to_datetime(frame[name], format="ISO8601")
    return frame


def evaluate_batch(data: pd.DataFrame | str | Path | Iterable[Mapping[str, object]], params: ParameterSet, *,
                   on: date | None = None, known_on: date | None = None,
                   programmes: Sequence[str] | None = None) -> pd.DataFrame:
    """Evaluate every programme over every row on the vector path; see the module doc for the columns.

    Raises BatchInputError (FactsError's batch twin) listing malformed rows, like `evaluate_all` would.
    """
    frame = _as_frame(data)
    prepared = prepare(frame, on)
    p = Params(params, known_on)
    problems: list[tuple[str, str]] = []
    results = []
    for programme in PROGRAMMES:
        ev = prepared.required(programme)
        results.append(VECTOR[programme.code](prepared, p, ev, problems))
    if problems:
        raise BatchInputError([f"{name}: {message}" for name, message in problems])
    stacked = _stack(results, p, prepared.on_key)
    columns: dict[str, Any] = {}
    wanted = set(programmes) if programmes else None
    for result, so in zip(results, stacked, strict=True):
        code = result.programme.code
        if wanted is not None and code not in wanted:
            continue
        columns[f"{code}.evaluated"] = result.evaluated
        columns[f"{code}.eligible"] = result.eligible
        columns[f"{code}.failed_gates"] = _decode(result.failed_mask(), result.programme.gate_codes)
        columns[f"{code}.stacked_out"] = so
        for name, values in result.outputs.items():
            columns[f"{code}.{name}"] = values
    # copy=False keeps one block per column: consolidating ~90 fresh columns would copy them all again.
    table = pd.DataFrame(columns, index=frame.index, copy=False)
    passthrough = [name for name in PASSTHROUGH if name in frame.columns]
    return pd.concat([frame[passthrough], table], axis=1) if passthrough else table


def _decode(mask: Arr, codes: Sequence[str]) -> Arr:
    """Failed-gate bit masks as 'code;code' texts (a table of every combination: programmes have few gates)."""
    texts = [";".join(code for bit, code in enumerate(codes) if (m >> bit) & 1) for m in range(1 << len(codes))]
    return np.asarray(texts, dtype=object)[mask]


def scalar_records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """The rows of a batch frame as plain fact dicts (None for NA), as the scalar path takes them."""
    records: list[dict[str, object]] = []
    columns = [c for c in frame.columns if c in FACTS or c == "on"]
    converted: dict[str, list[object]] = {}
    for name in columns:
        series = frame[name]
        kind = "date" if name == "on" else FACTS[name].kind
        if kind == "date":
            values = [None if pd.isna(v) else v.date() for v in series]
        elif kind == "bool":
            values = [None if v is pd.NA or v is None else bool(v) for v in series.astype(object)]
        elif kind == "str":
            values = [None if not isinstance(v, str) else v for v in series.astype(object)]
        else:
            values = [None if v is pd.NA or v is None else int(v) for v in series.astype(object)]
        converted[name] = values
    for i in range(len(frame)):
        records.append({name: converted[name][i] for name in columns})
    return records


def evaluation_row(evaluation: Evaluation, programmes: Sequence[Programme] = PROGRAMMES) -> dict[str, object]:
    """One scalar Evaluation as a row of the batch output table (same columns and meanings)."""
    row: dict[str, object] = {}
    for programme in programmes:
        d = evaluation.get(programme.code)
        code = programme.code
        row[f"{code}.evaluated"] = d is not None
        row[f"{code}.eligible"] = bool(d and d.eligible)
        row[f"{code}.failed_gates"] = ";".join(d.failed_gates) if d else ""
        row[f"{code}.stacked_out"] = bool(d and d.stacked_out_by)
        for spec in programme.outputs:
            row[f"{code}.{spec.name}"] = d.output(spec.name) if d else 0
    return row


def scalar_frame(data: pd.DataFrame | Iterable[Mapping[str, object]], params: ParameterSet, *,
                 on: date | None = None, known_on: date | None = None) -> pd.DataFrame:
    """The batch output table computed row by row on the scalar explain path (for checks and samples)."""
    frame = _as_frame(data)
    rows = []
    for record in scalar_records(frame):
        day = record.pop("on", None) or on
        if not isinstance(day, date):
            raise BatchInputError(["on: give an 'on' column or pass on="])
        try:
            rows.append(evaluation_row(evaluate_all(PROGRAMMES, record, params, day, known_on)))
        except FactsError as exc:
            raise BatchInputError([f"{k}: {m}" for k, m in exc.problems]) from None
    table = pd.DataFrame(rows, index=frame.index)
    passthrough = [name for name in PASSTHROUGH if name in frame.columns]
    return pd.concat([frame[passthrough], table], axis=1) if passthrough else table


# ---------------------------------------------------------------------------------------------------------
# A seeded synthetic population, for the differential tests, the benchmark and what-if demonstrations.

CITIES = ("南昌", "九江", "景德镇", "萍乡", "新余", "鹰潭", "赣州", "吉安", "宜春", "抚州", "上饶")


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
    # EMC and environmental projects.
    columns |= {
        "emc_project_kind": pick(emc.KINDS),
        "emc_catalogue_code": pick(("1.1", "2.3", "4.1", "7.7")),
        "emc_first_revenue_year": on_year - rng.integers(-1, 9, n),
        "emc_project_income_fen": log_uniform(5, 10),
        "emc_contract_years": near(20, np.full(n, 20)).clip(0),
        "emc_company_qualified": chance(0.8),
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
    columns |= {
        "fs_catalogue_code": pick(("FS2019-01", "FS2019-02", "FS2024-01", "FS2024-03", "FS-BAD")),
        "fs_first_insured_on": days("2019-06-01", "2026-06-30"),
        "fs_policy_year": rng.integers(0, 5, n),
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
        "energy_intensity": near(level, np.full(n, 40)),
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
        elif kind == "bool":
            frame[name] = frame[name].astype("boolean")
        elif kind == "str" or name == "city":
            frame[name] = frame[name].astype("category")
        elif kind == "date" or name == "on":
            frame[name] = pd.to_datetime(frame[name]).astype("datetime64[s]")
    # Drop a few required facts so that "not evaluated" rows exist on both paths.
    for name in ("total_revenue_fen", "equipment_acquired_on", "tax_credit_grade", "ru_cit_revenue_fen",
                 "emc_first_revenue_year",
                 "staff_total", "fs_policy_year", "jx_recognised", "fb_contract_fen", "loan_approved_on",
                 "lender_eligible"):
        frame.loc[chance(missing_share), name] = None
    return frame
