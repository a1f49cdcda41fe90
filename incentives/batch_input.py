"""Batch input: a strict CSV reader and the JSON records, both to the DataFrame the vector path
(`incentives.batch`) takes. Every cell is converted exactly (integers never rounded, yuan at most 2
decimals) and every bad column is reported at once as a batch-input-invalid problem.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from core.errors import AppError
from core.quantity import parse_money_fen
from core.schema import YEAR_MAX, YEAR_MIN
from incentives import schemas as s
from incentives._common import batch_problem
from incentives.batch import PASSTHROUGH
from incentives.domain.facts import FACTS

INT_KINDS = s.INT_KINDS
_INT_TEXT = r"-?[0-9]{1,19}"
_YUAN_TEXT = r"(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,2})?"
_DATE_TEXT = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_BOOL_TEXT = {"true": True, "false": False, "True": True, "False": False, "TRUE": True, "FALSE": False,
              "1": True, "0": False}


def _problem_rows(mask: np.ndarray[Any, Any]) -> list[int]:
    return [int(i) + 1 for i in np.flatnonzero(mask)[:5]]


def _only_chars(series: pd.Series, pattern: str) -> bool:
    """Whether every present cell consists of the given characters: one regex over the joined column (a
    per-cell regex costs seconds on 100,000 rows), so the exact per-cell check runs only to name bad rows."""
    present = series.dropna().to_numpy(dtype=object)
    return re.fullmatch(f"[{pattern}]*", "".join(present)) is not None


def _bad_rows(series: pd.Series, regex: str) -> list[int]:
    ok = series.isna() | series.str.fullmatch(regex)
    return _problem_rows(~ok.to_numpy(dtype=bool))


# The passthrough text columns and their longest value, as the JSON records bound them (schemas.BatchRecord);
# the fact columns are bounded by the vector path (incentives.batch.frames), as the scalar path bounds them.
PASSTHROUGH_TEXT_MAX = {"enterprise_id": s.ENTERPRISE_TEXT_MAX, "city": s.CITY_MAX}


def _passthrough(name: str, series: pd.Series, problems: list[str]) -> pd.Series | None:
    """The passthrough columns of a CSV: `enterprise_id` and `city` texts of bounded length, `year` a year."""
    if name == "year":
        if not (_only_chars(series, "0-9") and (series.isna() | series.str.len().le(4)).all()):
            problems.append(f"year: rows {_bad_rows(series, '[0-9]{4}')} are not years (four digits)")
            return None
        years = series.astype("Int64")
        bad = (years.notna() & ((years < YEAR_MIN) | (years > YEAR_MAX))).to_numpy(dtype=bool)
        if bad.any():
            problems.append(f"year: rows {_problem_rows(bad)} are not years between {YEAR_MIN} and {YEAR_MAX}")
            return None
        return years
    longest = PASSTHROUGH_TEXT_MAX[name]
    too_long = series.str.len().gt(longest).to_numpy(dtype=bool)  # a blank cell (NaN) is never longer
    if too_long.any():
        problems.append(f"{name}: rows {_problem_rows(too_long)} are longer than {longest} characters")
        return None
    return series


def _convert_column(name: str, series: pd.Series, problems: list[str]) -> pd.Series | None:
    """A text column of a CSV to the dtype of its fact (None: the column is empty and is dropped)."""
    present = series.notna().to_numpy()
    if not present.any():
        return None
    if name in PASSTHROUGH:
        return _passthrough(name, series, problems)
    if name in s.YUAN_ALIASES:
        ok = series.isna() | series.str.fullmatch(_YUAN_TEXT)
        if not ok.all():
            problems.append(f"{name}: rows {_problem_rows(~ok.to_numpy(dtype=bool))} are not yuan amounts with "
                            "at most 2 decimals (plain digits, no sign or separators)")
            return None
        parts = series.str.split(".", n=1, expand=True)
        whole = parts[0].astype("Int64")
        cents = parts[1].fillna("").str.ljust(2, "0") if 1 in parts.columns else pd.Series("00", index=series.index)
        return whole * 100 + cents.where(present, None).astype("Int64")
    kind = "date" if name == "on" else FACTS[name].kind
    if kind in INT_KINDS:
        # Digits and a minus sign only: "1.0", "1e3", "+1" and blanks are refused, never rounded or trimmed.
        converted: pd.Series | None = None
        if _only_chars(series, "0-9-"):
            try:
                converted = series.astype("Int64")
            except (ValueError, TypeError, OverflowError):
                converted = None
        if converted is None:
            problems.append(f"{name}: rows {_bad_rows(series, _INT_TEXT)} are not whole numbers "
                            f"(integers of {FACTS[name].unit}; never rounded)")
        return converted
    if kind == "bool":
        ok = series.isna() | series.isin(list(_BOOL_TEXT))
        if not ok.all():
            problems.append(f"{name}: rows {_problem_rows(~ok.to_numpy(dtype=bool))} are not true/false")
            return None
        return series.map(_BOOL_TEXT).astype("boolean")
    if kind == "date":
        try:
            if not _only_chars(series, "0-9-"):
                raise ValueError(name)
            return pd.to_datetime(series, format="%Y-%m-%d")
        except (ValueError, TypeError):
            problems.append(f"{name}: rows {_bad_rows(series, _DATE_TEXT)} are not dates (YYYY-MM-DD)")
            return None
    return series


def _merge_yuan(frame: pd.DataFrame, problems: list[str]) -> pd.DataFrame:
    """Yuan alias columns become their fen facts (a row may not give both)."""
    for alias, name in s.YUAN_ALIASES.items():
        if alias not in frame.columns:
            continue
        fen = frame.pop(alias)
        if name in frame.columns:
            both = (fen.notna() & frame[name].notna()).to_numpy()
            if both.any():
                problems.append(f"{alias}: rows {_problem_rows(both)} also give {name}; give one of the two")
                continue
            frame[name] = frame[name].fillna(fen)
        else:
            frame[name] = fen
    return frame


def frame_from_csv(body: bytes) -> pd.DataFrame:
    """The batch frame of a CSV body: a header of known column names, then one enterprise-year per line.

    Every cell is read as text and converted exactly: integers must be plain integers ("1.0" is refused),
    booleans true/false (or 1/0), dates YYYY-MM-DD, yuan columns at most 2 decimals.
    """
    text = body.decode("utf-8-sig", errors="strict") if body else ""
    header = text.split("\n", 1)[0].strip().strip("\r")
    if not header:
        raise batch_problem(["body: send a CSV with a header line naming the columns"])
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])
    except (ValueError, pd.errors.ParserError) as exc:
        raise batch_problem([f"body: the CSV could not be read: {exc}"]) from None
    unknown = [c for c in frame.columns if c not in s.BATCH_COLUMNS]
    if unknown:
        raise batch_problem([f"{c}: not a known column; GET /api/v1/incentives/facts lists them" for c in unknown])
    if len(frame) > s.MAX_BATCH_ROWS:
        raise batch_problem([f"body: at most {s.MAX_BATCH_ROWS} rows per batch (got {len(frame)})"])
    problems: list[str] = []
    columns: dict[str, pd.Series] = {}
    for name in frame.columns:
        converted = _convert_column(name, frame[name], problems)
        if converted is not None:
            columns[name] = converted
    if problems:
        raise batch_problem(problems)
    out = pd.DataFrame(columns, index=frame.index)
    out = _merge_yuan(out, problems)
    if problems:
        raise batch_problem(problems)
    return out


def frame_from_records(records: Sequence[Any]) -> pd.DataFrame:
    """The batch frame of decoded JSON records (`schemas.BatchRecord`, already strictly typed)."""
    names = s.BATCH_COLUMNS
    if not records:
        return pd.DataFrame({name: pd.Series([], dtype=object) for name in ("on",)})
    columns_raw = list(zip(*(msgspec.structs.astuple(r) for r in records), strict=True))
    columns: dict[str, Any] = {}
    problems: list[str] = []
    for name, values in zip(names, columns_raw, strict=True):
        if all(v is None for v in values):
            continue
        if name in s.YUAN_ALIASES:
            fen: list[int | None] = []
            for row, v in enumerate(values):
                try:
                    fen.append(None if v is None else parse_money_fen(v, field=name, allow_zero=True))
                except AppError as exc:
                    problems.append(f"{name}: row {row + 1}: {exc.detail}")
                    break
            columns[name] = pd.array(fen, dtype="Int64")
            continue
        kind = "date" if name == "on" else ("int" if name == "year" else (FACTS[name].kind if name in FACTS else "str"))
        if name == "enterprise_id":
            columns[name] = pd.array([None if v is None else str(v) for v in values], dtype=object)
        elif kind in INT_KINDS:
            columns[name] = pd.array(values, dtype="Int64")
        elif kind == "milli":
            # Decimal text or integers, exactly as decoded; the vector path parses them to thousandths.
            columns[name] = pd.Series(values, dtype=object).to_numpy()
        elif kind == "bool":
            columns[name] = pd.array(values, dtype="boolean")
        elif kind == "date":
            columns[name] = pd.to_datetime(pd.Series(values, dtype=object).map(
                lambda v: v.isoformat() if isinstance(v, dt.date) else None), format="%Y-%m-%d")
        else:
            columns[name] = pd.Categorical(values)
    if problems:
        raise batch_problem(problems)
    frame = pd.DataFrame(columns)
    frame = _merge_yuan(frame, problems)
    if problems:
        raise batch_problem(problems)
    return frame
