"""Input of the vector path: a DataFrame, a CSV file or a list of fact dicts, checked and converted to
prepared fact columns (integers, booleans, texts as category codes, dates as yyyymmdd keys) with their presence
masks and defaults applied. Every malformed column or row is reported at once in a BatchInputError.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from incentives.batch.arith import I64, Arr
from incentives.domain.arith import MILLI, MILLI_TEXT_MAX, parse_milli
from incentives.domain.facts import FACTS, INT_LIMITS, MILLI_LIMIT, FactSpec
from incentives.domain.rules import Programme

PASSTHROUGH = ("enterprise_id", "city", "year")


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
    low, high = INT_LIMITS[spec.kind]
    bad_rows = present & ((values < low) | (values > high))
    if bad_rows.any():
        problems.append(f"{spec.name}: rows {np.flatnonzero(bad_rows)[:5].tolist()} are outside {low}..{high}")
    return values, present


def missing_cell(value: object) -> bool:
    """A missing cell of an object column: None, pd.NA or a NaN float (what pandas puts in a gap)."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _milli_column(series: pd.Series, spec: FactSpec, problems: list[str]) -> tuple[Arr, Arr]:
    """A decimal fact column as exact thousandths: integers, or text / Decimal cells ("99.5") parsed exactly as
    the scalar path does; a float column is refused (its values were rounded to binary already)."""
    dtype = series.dtype
    n = len(series)
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_float_dtype(dtype):
        problems.append(f"{spec.name}: must be exact decimals, as text such as \"99.5\" or integers (got {dtype}); "
                        "floats are never rounded")
        return np.zeros(n, dtype=I64), np.zeros(n, dtype=bool)
    if pd.api.types.is_integer_dtype(dtype):
        present = series.notna().to_numpy()
        whole = series.to_numpy(dtype=I64, na_value=0) if not present.all() else series.to_numpy(dtype=I64)
        low, high = -(MILLI_LIMIT // MILLI), MILLI_LIMIT // MILLI
        bad_rows = present & ((whole < low) | (whole > high))
        if bad_rows.any():
            problems.append(f"{spec.name}: rows {np.flatnonzero(bad_rows)[:5].tolist()} are outside {low}..{high}")
            return np.zeros(n, dtype=I64), np.zeros(n, dtype=bool)
        return np.where(present, whole * MILLI, 0).astype(I64), present
    cells = series.astype(object).to_numpy()
    present = np.asarray([not missing_cell(v) for v in cells], dtype=bool)
    parsed: dict[object, int | None] = {}
    values = np.zeros(n, dtype=I64)
    bad = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(present):
        cell = cells[i]
        key = (type(cell), cell)
        if key not in parsed:
            raw = int(cell) if isinstance(cell, np.integer) else cell
            try:
                milli = parse_milli(raw)
                parsed[key] = milli if -MILLI_LIMIT <= milli <= MILLI_LIMIT else None
            except ValueError:
                parsed[key] = None
        value = parsed[key]
        if value is None:
            bad[i] = True
        else:
            values[i] = value
    if bad.any():
        problems.append(f"{spec.name}: rows {series.index[bad][:5].tolist()} are not exact decimals with at most 3 "
                        f"decimals and {MILLI_TEXT_MAX} characters (text such as \"99.5\" or integers; floats "
                        "are never rounded)")
        return np.zeros(n, dtype=I64), np.zeros(n, dtype=bool)
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
    too_long = np.asarray([len(c) > spec.text_max for c in categories], dtype=bool)
    if too_long.any():
        rows = np.flatnonzero(present & too_long[np.where(present, codes, 0)])[:5].tolist()
        problems.append(f"{spec.name}: rows {rows} are longer than {spec.text_max} characters")
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
        elif spec.kind == "milli":
            if column is None:
                values, present = np.zeros(n, dtype=I64), np.zeros(n, dtype=bool)
            else:
                values, present = _milli_column(column, spec, problems)
            prepared.ints[name] = values
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
        elif kind == "milli":
            # The values as given (exact text, ints or Decimals, checked by prepare): taken from the records,
            # since the inferred column would turn ints with gaps into floats.
            frame[name] = pd.Series([r.get(name) for r in records], index=frame.index, dtype=object)
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
        elif spec.kind in ("str", "milli"):
            # Plain text, never inferred: codes such as "3.10" must not become numbers, nor decimals floats.
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
