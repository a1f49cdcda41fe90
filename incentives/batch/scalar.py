"""The scalar explain path over batch rows: the same output table built row by row with `evaluate_all`, for
the differential checks against the vector path and for samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date

import numpy as np
import pandas as pd

from incentives.batch.frames import PASSTHROUGH, BatchInputError, _as_frame, missing_cell
from incentives.domain.facts import FACTS, FactsError
from incentives.domain.params import ParameterSet
from incentives.domain.programmes import PROGRAMMES
from incentives.domain.rules import Evaluation, Programme, evaluate_all


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
        elif kind == "milli":
            # As given (decimal text, an integer, a Decimal): the scalar path parses it itself.
            values = [None if missing_cell(v) else int(v) if isinstance(v, np.integer) else v
                      for v in series.astype(object)]
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
