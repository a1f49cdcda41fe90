"""The vector path's entry point: every programme's vector twin over the prepared rows, stacking with the same
order and tie rule as the scalar path, and the output table (see the package doc for its columns).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from incentives.batch.arith import I64, Arr
from incentives.batch.frames import PASSTHROUGH, BatchInputError, Frame, _as_frame, prepare
from incentives.batch.green_loan import v_carbon_tool, v_green_loan
from incentives.batch.params import Params
from incentives.batch.programmes_first_set import v_first_batch, v_first_set, v_jx
from incentives.batch.programmes_tax import v_emc, v_equipment, v_high_tech, v_rd, v_ru_cit, v_ru_vat
from incentives.batch.results import Result
from incentives.domain.params import ParameterSet
from incentives.domain.programmes import PROGRAMMES, emc, first_set, green, resource
from incentives.domain.rules import RELIEVED_INCOME

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
    # As evaluate_all: income a §88 project relieves is not relieved again; in a row where a relieving
    # programme was evaluated, its figure replaces the caller's.
    seen = np.zeros(prepared.n, dtype=bool)
    relieved = np.zeros(prepared.n, dtype=I64)
    caller = prepared.i(RELIEVED_INCOME)
    for programme in PROGRAMMES:
        ev = prepared.required(programme)
        if RELIEVED_INCOME in programme.facts:
            prepared.ints[RELIEVED_INCOME] = np.where(seen, relieved, caller)
        result = VECTOR[programme.code](prepared, p, ev, problems)
        results.append(result)
        if programme.relieves_income is not None:
            relieved = relieved + np.where(result.eligible, prepared.i(programme.relieves_income), 0)
            seen |= result.evaluated
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
