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

Modules: `frames` (input columns, checks and readers), `arith` (int64 rounding), `params` (parameters per
row), `results` (a programme's result over all rows), the vector twins of the programmes (`programmes_tax`,
`programmes_first_set`, `green_loan`), `vector` (the entry point, stacking and the output table), `scalar`
(the same table on the scalar explain path) and `population` (a seeded synthetic population). This package
re-exports the names other modules import, so `from incentives.batch import ...` keeps working.
"""

from __future__ import annotations

from incentives.batch.arith import I64, INT64_MAX, mdf, mdh, share_at_least, share_at_most
from incentives.batch.frames import (
    PASSTHROUGH,
    BatchInputError,
    Frame,
    StrCol,
    _as_frame,
    column_docs,
    prepare,
    read_population,
    records_frame,
)
from incentives.batch.params import Params
from incentives.batch.population import CITIES, synthetic_population
from incentives.batch.results import Result
from incentives.batch.scalar import evaluation_row, scalar_frame, scalar_records
from incentives.batch.vector import VECTOR, evaluate_batch

__all__ = [
    "CITIES", "I64", "INT64_MAX", "PASSTHROUGH", "VECTOR", "BatchInputError", "Frame", "Params", "Result",
    "StrCol", "_as_frame", "column_docs", "evaluate_batch", "evaluation_row", "mdf", "mdh", "prepare",
    "read_population", "records_frame", "scalar_frame", "scalar_records", "share_at_least", "share_at_most",
    "synthetic_population",
]
