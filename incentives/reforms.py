"""Reform simulation as a unit of work: the cost difference, per programme and per programme and city, of
changing given parameters over a population (records, a seeded synthetic population, or the latest stored
evaluations), recorded as a run.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from sqlalchemy import select

from core import figures
from core.db import UnitOfWork
from core.errors import InvalidInput
from core.identity import Identity
from incentives import engine
from incentives import schemas as s
from incentives._common import BY_CODE, _in_thread, _record_run, _sha256, batch_problem, reform_problem
from incentives.batch import BatchInputError, synthetic_population
from incentives.batch_input import frame_from_records
from incentives.context import IncentivesContext
from incentives.domain.facts import FACTS
from incentives.domain.params import ParameterError
from incentives.models import IncentiveEvaluation


async def simulate_reform(ctx: IncentivesContext, who: Identity, req: s.SimulateReform) -> dict[str, object]:
    """The cost difference, per programme and per programme and city, of changing the given parameters,
    over a population (records, a seeded synthetic population, or the latest stored evaluations)."""
    ps = engine.parameters()
    unknown = [name for name in req.overrides if name not in ps.names()]
    if unknown:
        raise reform_problem([f"{n}: not a parameter; listParameters lists them" for n in unknown],
                             field=f"overrides.{unknown[0]}")
    pop = req.population
    given = [pop.records is not None, pop.synthetic_rows is not None, pop.stored_evaluations]
    if sum(given) != 1:
        raise InvalidInput("population", "Give exactly one of records, synthetic_rows or stored_evaluations.")
    if pop.records is not None:
        fmt, records = "json", pop.records
        frame = await _in_thread(lambda: frame_from_records(records))
        digest = _sha256(msgspec.json.encode(pop.records))
    elif pop.synthetic_rows is not None:
        fmt, rows_n, seed = "synthetic", pop.synthetic_rows, pop.synthetic_seed
        frame = await _in_thread(lambda: synthetic_population(rows_n, seed, ps))
        digest = _sha256(f"synthetic:{rows_n}:{seed}".encode())
    else:
        fmt = "evaluations"
        stored = await _stored_population(ctx)
        frame = await _in_thread(lambda: frame_from_records(stored))
        digest = _sha256(msgspec.json.encode(stored))
    if len(frame) == 0:
        raise InvalidInput("population", "The population is empty; there is nothing to price.")
    if "on" not in frame.columns and req.on is None:
        raise InvalidInput("on", "Give `on` (the evaluation day) or an `on` value in every record.")
    overrides = dict(req.overrides)

    def run() -> dict[str, object]:
        try:
            report = engine.simulate_reform(overrides, frame, label=req.label, on=req.on,
                                            valid_from=req.valid_from)
        except ParameterError as exc:
            raise reform_problem(list(exc.problems)) from None
        except BatchInputError as exc:
            raise batch_problem(exc) from None
        return report.to_dict()

    report = await _in_thread(run)
    for table in ("by_programme", "by_programme_city"):
        rows = report[table]
        assert isinstance(rows, list)
        for row in rows:
            for key in ("baseline_fen", "reform_fen", "difference_fen"):
                row[key.replace("_fen", "_yuan")] = figures.yuan_plain(int(row[key]))
            code = row["programme"]
            row["label_zh"], row["label_en"] = BY_CODE[code].name_zh, BY_CODE[code].name_en
    run_id = await _record_run(ctx, who, "reform", int(report["rows"]),  # type: ignore[call-overload]
                               fmt, digest, req.on, None,
                               {"label": req.label, "overrides": report["overrides"],
                                "by_programme": report["by_programme"]})
    return {"run_id": run_id, "population": fmt, **report}


async def _stored_population(ctx: IncentivesContext) -> list[Any]:
    """The latest stored evaluation of every enterprise, as batch records (facts, day, city)."""

    async def work(uow: UnitOfWork) -> list[IncentiveEvaluation]:
        q = (select(IncentiveEvaluation).where(IncentiveEvaluation.enterprise_id.is_not(None))  # type: ignore[union-attr]
             .order_by(IncentiveEvaluation.id.desc()).limit(s.MAX_BATCH_ROWS * 4))  # type: ignore[union-attr]
        return list((await uow.session.execute(q)).scalars())

    seen: set[int] = set()
    records: list[Any] = []
    for ev in await ctx.db.read(work):
        assert ev.enterprise_id is not None
        if ev.enterprise_id in seen or len(records) >= s.MAX_BATCH_ROWS:
            continue
        seen.add(ev.enterprise_id)
        facts = json.loads(ev.facts_json)
        record = {k: v for k, v in facts.items() if k in FACTS}
        record |= {"on": ev.evaluated_on.isoformat(), "enterprise_id": str(ev.enterprise_id),
                   "city": ev.city or None}
        try:
            records.append(msgspec.convert(record, s.BatchRecord))
        except msgspec.ValidationError:
            # Facts are checked before an evaluation is stored; a row that still does not fit (written by
            # an older version) is left out rather than failing the whole simulation.
            continue
    return records
