"""What-if: price a reform (changed parameter values) over a population of enterprise-years.

A reform is a mapping of parameter names to new values (plain JSON values are accepted: integers, lists,
`{"numerator": n, "denominator": d}`, catalogue mappings), applied from `valid_from` (default: always) as a
hypothetical entry published after every real one. Both the baseline and the reform run on the vector path
over the same population, and the report gives per programme, and per programme and city, the headline
amount before and after, the difference, and the number of eligible rows. Headline amounts of different
kinds (tax expenditure, subsidy, refund, green credit volume, central bank relending) are reported side by
side, never summed together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from incentives.batch import _as_frame, evaluate_batch
from incentives.domain.params import ParameterSet, Value, value_to_json
from incentives.domain.programmes import PROGRAMMES
from incentives.parameters import parse_value

UNKNOWN_CITY = "(unknown)"


@dataclass(frozen=True)
class ReformReport:
    """The cost difference of a reform, per programme and per programme and city (amounts in fen)."""

    label: str
    overrides: dict[str, object]
    valid_from: date | None
    rows: int
    by_programme: pd.DataFrame
    by_programme_city: pd.DataFrame

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: integers stay integers (fen), one record per table row."""
        return {
            "label": self.label,
            "overrides": self.overrides,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "rows": self.rows,
            "by_programme": _records(self.by_programme),
            "by_programme_city": _records(self.by_programme_city),
        }


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _records(table: pd.DataFrame) -> list[dict[str, object]]:
    return [{str(k): _plain(v) for k, v in row.items()} for row in table.to_dict(orient="records")]


def reform_values(params: ParameterSet, overrides: Mapping[str, object]) -> dict[str, Value]:
    """The reform's plain values converted to each parameter's kind (ParameterError if one does not fit)."""
    return {name: parse_value(params.history(name)[0].kind, raw, where=f"override {name}")
            for name, raw in overrides.items()}


def reform_parameters(params: ParameterSet, overrides: Mapping[str, object], *, label: str,
                      valid_from: date | None = None, valid_to: date | None = None) -> ParameterSet:
    """The parameter set with the reform's values; plain values are converted to each parameter's kind."""
    return params.with_overrides(reform_values(params, overrides), label=label, valid_from=valid_from,
                                 valid_to=valid_to)


def _amounts(table: pd.DataFrame, cities: pd.Series) -> pd.DataFrame:
    """Long table: programme, city, headline amount (not stacked out, evaluated rows) and eligible flag."""
    parts = []
    for programme in PROGRAMMES:
        code = programme.code
        counted = table[f"{code}.evaluated"] & ~table[f"{code}.stacked_out"]
        parts.append(pd.DataFrame({
            "programme": code,
            "headline": programme.headline,
            "headline_kind": programme.headline_kind,
            "city": cities.to_numpy(),
            "amount_fen": table[f"{code}.{programme.headline}"].where(counted, 0).to_numpy(),
            "eligible": (table[f"{code}.eligible"] & ~table[f"{code}.stacked_out"]).to_numpy(),
        }))
    return pd.concat(parts, ignore_index=True)


def _summary(baseline: pd.DataFrame, reform: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    def grouped(long: pd.DataFrame, suffix: str) -> pd.DataFrame:
        out = long.groupby(keys, sort=False, observed=True).agg(
            amount_fen=("amount_fen", "sum"), eligible=("eligible", "sum"))
        return out.rename(columns={"amount_fen": f"{suffix}_fen", "eligible": f"{suffix}_eligible"})

    merged = grouped(baseline, "baseline").join(grouped(reform, "reform"), how="outer").fillna(0)
    merged = merged.astype("int64").reset_index()
    merged["difference_fen"] = merged["reform_fen"] - merged["baseline_fen"]
    merged["eligible_difference"] = merged["reform_eligible"] - merged["baseline_eligible"]
    # Programmes in their canonical order (then city), so reports read the same way every time.
    order = {p.code: i for i, p in enumerate(PROGRAMMES)}
    merged["_order"] = merged["programme"].map(order)
    by = ["_order", "city"] if "city" in keys else ["_order"]
    return merged.sort_values(by, kind="stable").drop(columns="_order").reset_index(drop=True)


def simulate_reform(overrides: Mapping[str, object],
                    population: pd.DataFrame | str | Path | Iterable[Mapping[str, Any]],
                    params: ParameterSet, *, label: str = "reform", on: date | None = None,
                    known_on: date | None = None, valid_from: date | None = None,
                    valid_to: date | None = None) -> ReformReport:
    """Evaluate the population under the current parameters and under the reform; report the differences."""
    frame = _as_frame(population)
    reformed = reform_parameters(params, overrides, label=label, valid_from=valid_from, valid_to=valid_to)
    base_table = evaluate_batch(frame, params, on=on, known_on=known_on)
    # The reform's entries are published after every real entry: it is priced "as known now".
    reform_table = evaluate_batch(frame, reformed, on=on, known_on=None)
    if "city" in frame.columns:
        cities = frame["city"].astype(object).where(frame["city"].notna(), UNKNOWN_CITY).astype(str)
    else:
        cities = pd.Series([UNKNOWN_CITY] * len(frame), index=frame.index)
    base_long, reform_long = _amounts(base_table, cities), _amounts(reform_table, cities)
    by_programme = _summary(base_long, reform_long, ["programme", "headline", "headline_kind"])
    by_city = _summary(base_long, reform_long, ["programme", "headline", "headline_kind", "city"])
    return ReformReport(
        label=label,
        overrides={name: value_to_json(value) for name, value in reform_values(params, overrides).items()},
        valid_from=valid_from,
        rows=len(frame),
        by_programme=by_programme,
        by_programme_city=by_city,
    )
