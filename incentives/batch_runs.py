"""Batch evaluation as a unit of work: a CSV body or JSON records through the vector path, one output row per
input row with a per-programme summary, and the run (who, when, input hash, summary) recorded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import numpy as np
import pandas as pd

from core import figures
from core.clock import business_date
from core.errors import AppError, InvalidInput
from core.identity import Identity
from incentives import engine
from incentives import schemas as s
from incentives._common import _in_thread, _msgspec_field, _record_run, _sha256, _wanted, batch_problem
from incentives.batch import BatchInputError
from incentives.batch_input import frame_from_csv, frame_from_records
from incentives.context import IncentivesContext
from incentives.domain.programmes import PROGRAMMES


async def evaluate_batch(ctx: IncentivesContext, who: Identity, *, body: bytes, content_type: str,
                         on: dt.date | None = None, known_on: dt.date | None = None,
                         programmes: Sequence[str] | None = None) -> BatchResult:
    """The vector path over a CSV body (`text/csv`) or JSON records: one output row per input row, with a
    per-programme summary; the run (who, when, input hash, summary) is recorded."""
    wanted = _wanted(programmes)
    if content_type not in {"text/csv", "application/json"} and not content_type.endswith("+json"):
        raise AppError("unsupported-media-type", "Send the batch as text/csv or as application/json records.")
    if content_type == "text/csv":
        fmt = "csv"
        frame = await _in_thread(lambda: frame_from_csv(body))
    else:
        fmt = "json"
        try:
            req = msgspec.json.decode(body, type=s.EvaluateBatch, strict=True)
        except msgspec.ValidationError as exc:
            raise InvalidInput(_msgspec_field(str(exc)), str(exc)) from None
        except msgspec.DecodeError as exc:
            raise AppError("malformed-body", f"The body is not well-formed JSON: {exc}.") from None
        on = on or req.on
        known_on = known_on or req.known_on
        wanted = wanted or _wanted(req.programmes)
        records = req.records
        frame = await _in_thread(lambda: frame_from_records(records))
    if "on" not in frame.columns and on is None:
        on = business_date(ctx.clock.now())

    def run() -> pd.DataFrame:
        try:
            return engine.evaluate_batch(frame, on=on, known_on=known_on)
        except BatchInputError as exc:
            raise batch_problem(exc) from None

    table = await _in_thread(run)
    if wanted is not None:
        keep = [c for c in table.columns if "." not in c or c.split(".", 1)[0] in wanted]
        table = table[keep]
    summary = _headline_summary(table)
    run_id = await _record_run(ctx, who, "batch", len(table), fmt, _sha256(body), on, known_on, summary)
    return BatchResult(run_id=run_id, on=on, known_on=known_on, table=table, summary=summary)


def _headline_summary(table: pd.DataFrame) -> list[dict[str, object]]:
    """Per programme: rows evaluated, eligible (after stacking), stacked out, and the headline total."""
    summary: list[dict[str, object]] = []
    for p in PROGRAMMES:
        if f"{p.code}.evaluated" not in table.columns:
            continue
        evaluated = table[f"{p.code}.evaluated"].to_numpy(dtype=bool)
        eligible = table[f"{p.code}.eligible"].to_numpy(dtype=bool)
        stacked = table[f"{p.code}.stacked_out"].to_numpy(dtype=bool)
        counted = evaluated & eligible & ~stacked
        total = int(table[f"{p.code}.{p.headline}"].to_numpy(dtype=np.int64)[counted].sum(dtype=object))
        summary.append({
            "programme": p.code, "label_zh": p.name_zh, "label_en": p.name_en,
            "headline": p.headline, "headline_kind": p.headline_kind,
            "evaluated": int(evaluated.sum()), "eligible": int(counted.sum()),
            "stacked_out": int((evaluated & eligible & stacked).sum()),
            "headline_fen": total, "headline_yuan": figures.yuan_plain(total) if p.headline.endswith("_fen") else None,
        })
    return summary


@dataclass(frozen=True)
class BatchResult:
    """The output table of a batch (one row per input row) with its per-programme summary."""

    run_id: int
    on: dt.date | None
    known_on: dt.date | None
    table: pd.DataFrame
    summary: list[dict[str, object]]

    def to_csv(self) -> bytes:
        text: str = self.table.to_csv(index=False)
        return text.encode("utf-8")

    def to_json(self) -> bytes:
        """Compact JSON: the column names once, then one array per row (integers stay integers)."""
        cols = []
        for name in self.table.columns:
            series = self.table[name]
            if series.dtype in (np.dtype(bool), np.dtype(np.int64)):
                cols.append(series.tolist())
            else:
                cols.append(series.astype(object).where(series.notna(), None).tolist())
        rows = [list(row) for row in zip(*cols, strict=True)] if cols else []
        return msgspec.json.encode({
            "run_id": self.run_id,
            "on": self.on,
            "known_on": self.known_on,
            "row_count": len(self.table),
            "summary": self.summary,
            "columns": [str(c) for c in self.table.columns],
            "rows": rows,
        })
