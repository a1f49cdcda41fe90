"""Stored determinations: record one inside the caller's unit of work or in its own, read one back (rebuilt
from its canonical JSON and re-hashed, so `verified` says whether it is intact), and find one by its digest
(the verification code of a decision letter).

Who may see what: an emitter evaluates and reads only its own enterprise (a foreign id answers 404 like a
missing one); regulators, the energy authority, finance staff and auditors any. Banks are not served here:
the finance context answers them after the enterprise's consent (it calls `get_determination(None, id)` as a
trusted caller and does its own consent check).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from core import figures
from core.db import UnitOfWork
from core.errors import NotFound
from core.identity import Identity, Role
from incentives import schemas as s
from incentives._common import BY_CODE, READ_ANY, _dumps, _sha256
from incentives.context import IncentivesContext
from incentives.domain.facts import fact_json
from incentives.domain.rules import Determination, show
from incentives.models import IncentiveDetermination, IncentiveEvaluation


async def get_determination(ctx: IncentivesContext, who: Identity | None,
                            determination_id: int) -> s.DeterminationOut:
    """A stored determination. `who=None` is a trusted in-process caller (the finance context, which checks
    a bank's consent itself); an emitter sees only its own enterprise's, others with read-any roles all."""

    async def work(uow: UnitOfWork) -> IncentiveDetermination:
        row = await uow.session.get(IncentiveDetermination, determination_id)
        if row is None or not _may_see(who, row):
            raise NotFound("determination")
        return row

    return determination_out(await ctx.db.read(work))


async def determination_by_digest(ctx: IncentivesContext, digest: str) -> s.DeterminationOut | None:
    """The stored determination with this digest (the verification code of a decision letter), or None.
    Trusted callers only (the finance context's /verify/{code})."""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        return None

    async def work(uow: UnitOfWork) -> IncentiveDetermination | None:
        q = (select(IncentiveDetermination)
             .where(IncentiveDetermination.digest == digest)  # type: ignore[arg-type]
             .order_by(IncentiveDetermination.id).limit(1))  # type: ignore[arg-type]
        return (await uow.session.execute(q)).scalar_one_or_none()

    row = await ctx.db.read(work)
    return None if row is None else determination_out(row)


async def record_determination(ctx: IncentivesContext, uow: UnitOfWork, who: Identity, determination: Determination,
                               *, enterprise_id: int | None = None, enterprise_organisation_id: int | None = None,
                               project_ref: str = "") -> tuple[int, str]:
    """Store a determination inside the caller's unit of work (finance stores the recomputed determination
    of a claim in the same transaction as the claim's step); returns (id, digest)."""
    now = ctx.clock.now()
    inputs = {k: fact_json(k, v) for k, v in determination.inputs}
    ev = IncentiveEvaluation(
        enterprise_id=enterprise_id, enterprise_organisation_id=enterprise_organisation_id,
        project_ref=project_ref, evaluated_on=determination.on, known_on=determination.known_on,
        facts_json=_dumps(inputs), requested_by=who.principal_id, requested_role=who.role.value,
        organisation_id=who.organisation_id, created_at=now,
    )
    uow.session.add(ev)
    await uow.session.flush()
    assert ev.id is not None
    row = determination_row(determination, ev.id, enterprise_id, enterprise_organisation_id, project_ref,
                            who.principal_id, now)
    uow.session.add(row)
    await uow.session.flush()
    assert row.id is not None
    uow.audit(who.actor, "incentives.record", "incentives_determination", str(row.id),
              {"programme": row.programme, "digest": row.digest, "enterprise_id": enterprise_id})
    return row.id, row.digest


async def store_determination(ctx: IncentivesContext, who: Identity, determination: Determination, *,
                              enterprise_id: int | None = None, project_ref: str = "") -> s.DeterminationOut:
    """Store a determination in its own unit of work (the enterprise is looked up, and scoped, first)."""
    enterprise_org = None
    if enterprise_id is not None:
        enterprise_org = (await ctx.registry.get_enterprise(who, enterprise_id)).organisation_id

    async def work(uow: UnitOfWork) -> IncentiveDetermination:
        row_id, _ = await record_determination(
            ctx, uow, who, determination, enterprise_id=enterprise_id, enterprise_organisation_id=enterprise_org,
            project_ref=project_ref)
        row = await uow.session.get(IncentiveDetermination, row_id)
        assert row is not None
        return row

    return determination_out(await ctx.db.run(work))


def determination_row(d: Determination, evaluation_id: int, enterprise_id: int | None, enterprise_org: int | None,
                      project_ref: str, principal_id: int, now: dt.datetime) -> IncentiveDetermination:
    """The stored row of a determination of the given evaluation (canonical JSON and its digest)."""
    record = d.to_dict()
    return IncentiveDetermination(
        evaluation_id=evaluation_id, programme=d.programme, enterprise_id=enterprise_id,
        enterprise_organisation_id=enterprise_org, project_ref=project_ref, evaluated_on=d.on,
        known_on=d.known_on, eligible=d.eligible, stacked_out_by=d.stacked_out_by, headline=d.headline,
        headline_fen=d.headline_fen if d.eligible else 0, rule_pack_version=d.rule_pack_version,
        parameter_versions_json=_dumps([p.id for p in d.parameters]),
        inputs_json=_dumps(record["inputs"]), outputs_json=_dumps(record["outputs"]),
        trace_json=d.to_json(), digest=d.digest(), created_by=principal_id, created_at=now,
    )


def _may_see(who: Identity | None, row: IncentiveDetermination) -> bool:
    if who is None or who.role in READ_ANY:
        return True
    return who.role == Role.EMITTER and row.enterprise_organisation_id == who.organisation_id


def _citation(c: Mapping[str, Any]) -> s.CitationOut:
    return s.CitationOut(document=str(c["document"]), article=str(c["article"]))


def gate_out(g: Mapping[str, Any]) -> s.GateOut:
    """A gate of a stored determination as people read it: measured and threshold in words, with its unit."""
    unit = str(g["unit"])
    return s.GateOut(
        code=g["code"], label_zh=g["label_zh"], label_en=g["label_en"],
        measured=g["measured"], measured_text=show(g["measured"], unit),
        comparator=g["comparator"], threshold=g["threshold"], threshold_text=show(g["threshold"], unit),
        unit=unit, passed=g["passed"], citation=_citation(g["citation"]),
        remedy_en=g["remedy_en"], remedy_zh=g["remedy_zh"], remedy_target=g["remedy_target"],
    )


def determination_out(row: IncentiveDetermination) -> s.DeterminationOut:
    """The API shape of a stored determination, rebuilt from its stored canonical JSON (and re-hashed)."""
    assert row.id is not None
    record: dict[str, Any] = json.loads(row.trace_json)
    programme = BY_CODE[row.programme]
    labels = {o.name: o for o in programme.outputs}
    # The canonical JSON sorts keys; answers list outputs in the programme's own order.
    outputs: dict[str, int] = {o.name: record["outputs"][o.name] for o in programme.outputs}
    amounts = [
        s.AmountOut(name=name, label_zh=labels[name].label_zh, label_en=labels[name].label_en, fen=value,
                    yuan=figures.yuan_plain(value))
        for name, value in outputs.items() if name.endswith("_fen")
    ]
    gates = [gate_out(g) for g in record["gates"]]
    seen: dict[tuple[str, str], None] = {}
    for c in [*record["citations"], *(g["citation"] for g in record["gates"]),
              *(st["citation"] for st in record["steps"] if st.get("citation")),
              *(p["citation"] for p in record["parameters"])]:
        seen.setdefault((str(c["document"]), str(c["article"])))
    return s.DeterminationOut(
        id=row.id, digest=row.digest, verified=_sha256(row.trace_json.encode("utf-8")) == row.digest,
        evaluation_id=row.evaluation_id, programme=row.programme, label_zh=programme.name_zh,
        label_en=programme.name_en, headline_kind=programme.headline_kind, eligible=row.eligible,
        stacked_out_by=row.stacked_out_by, headline=row.headline, headline_fen=row.headline_fen,
        headline_yuan=figures.yuan_plain(row.headline_fen), amounts=amounts, outputs=outputs, gates=gates,
        failed_gates=[g for g in gates if not g.passed],
        articles=[s.CitationOut(document=d, article=a) for d, a in seen],
        rule_pack_version=row.rule_pack_version, parameter_versions=json.loads(row.parameter_versions_json),
        on=row.evaluated_on, known_on=row.known_on, enterprise_id=row.enterprise_id, project_ref=row.project_ref,
        created_by=f"principal:{row.created_by}", created_at=row.created_at, record=record,
    )
