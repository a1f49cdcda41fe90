"""Eligibility of one enterprise or project: every programme (or the ones named) explained gate by gate,
with the facts the registry owns filled in, and each determination stored in one unit of work; and the pure
evaluation of one programme that finance recomputes a claim with.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import msgspec

from core import figures
from core.clock import business_date
from core.db import UnitOfWork
from core.errors import AppError, InvalidInput
from core.identity import Identity, Role
from incentives import credit_history, engine, publications
from incentives import schemas as s
from incentives._common import BY_CODE, READ_ANY, _dumps, _wanted, facts_problem, not_in_force_problem
from incentives.context import IncentivesContext
from incentives.determinations import determination_out, determination_row
from incentives.domain.facts import FactsError, missing
from incentives.domain.params import NotInForce
from incentives.domain.programmes import equipment
from incentives.facts_input import _named, parse_facts
from incentives.models import IncentiveDetermination, IncentiveEvaluation


def evaluate(programme_code: str, facts: dict[str, Any], on: dt.date, known_on: dt.date | None = None) -> Any:
    """One programme's determination (pure: the rules engine over the given facts). Finance calls this to
    recompute a claim's determination at review; it raises engine errors for bad facts."""
    return engine.evaluate(programme_code, facts, on, known_on=known_on)


async def evaluate_eligibility(ctx: IncentivesContext, who: Identity,
                               req: s.EvaluateEligibility) -> s.EligibilityOut:
    """Every programme (or the ones named) for one enterprise or project, explained gate by gate; each
    determination is stored and answered with its id and digest."""
    if who.role not in READ_ANY and who.role != Role.EMITTER:
        raise AppError("forbidden", "Your role may not evaluate eligibility.")
    await publications.refresh(ctx)  # values another process confirmed since apply here too
    on = req.on or business_date(ctx.clock.now())
    wanted = _wanted(req.programmes)
    facts, aliases = parse_facts(req.facts)
    enterprise: s.EnterpriseFacts | None = None
    enterprise_org: int | None = None
    registry_facts: list[s.RegistryFact] = []
    if req.enterprise_id is None and who.role == Role.EMITTER:
        raise InvalidInput("enterprise_id", "An emitter evaluates its own enterprise: give its enterprise_id.")
    if req.enterprise_id is not None:
        # The registry scopes the lookup: an emitter asking for another enterprise gets 404.
        ent = await ctx.registry.get_enterprise(who, req.enterprise_id)
        enterprise = s.EnterpriseFacts(
            id=ent.id, uscc=ent.uscc, name=ent.name, city=ent.city, industry_code=ent.industry_code,
            is_key_emitter=ent.is_key_emitter, is_sme=ent.is_sme, is_high_tech=ent.is_high_tech)
        enterprise_org = ent.organisation_id
        registry_facts = await _registry_facts(ctx, ent.id, facts,
                                               registry_day(on, req.known_on, business_date(ctx.clock.now())))
        if wanted is None or equipment.CODE in wanted:
            position = await credit_history.position_before(ctx, ent.id, on.year)
            if position is not None:
                registry_facts += credit_history.fill_carry_forward(position, facts, req.override_reason)

    try:
        evaluation = engine.evaluate_all(facts, on, known_on=req.known_on)
    except FactsError as exc:
        raise facts_problem(_named(exc.problems, aliases)) from None
    skipped = dict(evaluation.skipped)
    if wanted is not None:
        _require_evaluated(wanted, skipped, facts, aliases, on, req.known_on)
    dets = [d for d in evaluation.determinations if wanted is None or d.programme in wanted]
    if not dets:
        reasons = [(code, reason) for code, reason in skipped.items()]
        raise AppError(
            "facts-invalid",
            "No programme could be evaluated with these facts: "
            + "; ".join(f"{c}: {r}" for c, r in reasons),
            field="facts",
            extra={"problems": [{"field": f"programmes.{c}", "message": r} for c, r in reasons]},
        )

    async def work(uow: UnitOfWork) -> tuple[IncentiveEvaluation, list[IncentiveDetermination]]:
        now = ctx.clock.now()
        ev = IncentiveEvaluation(
            enterprise_id=req.enterprise_id, enterprise_organisation_id=enterprise_org,
            project_ref=req.project_ref, evaluated_on=on, known_on=req.known_on,
            city=enterprise.city if enterprise else "",
            facts_json=_dumps(facts),
            registry_facts_json=_dumps({f.fact: msgspec.to_builtins(f) for f in registry_facts}),
            skipped_json=_dumps({c: r for c, r in skipped.items() if wanted is None or c in wanted}),
            requested_by=who.principal_id, requested_role=who.role.value, organisation_id=who.organisation_id,
            created_at=now,
        )
        uow.session.add(ev)
        await uow.session.flush()
        assert ev.id is not None
        rows = [determination_row(d, ev.id, req.enterprise_id, enterprise_org, req.project_ref, who.principal_id, now)
                for d in dets]
        uow.session.add_all(rows)
        await uow.session.flush()
        uow.audit(who.actor, "incentives.evaluate", "incentives_evaluation", str(ev.id), {
            "enterprise_id": req.enterprise_id, "on": on.isoformat(),
            **({"override_reason": req.override_reason} if any(f.override_reason for f in registry_facts) else {}),
            "determinations": {r.programme: {"id": r.id, "digest": r.digest} for r in rows},
        })
        return ev, rows

    ev, rows = await ctx.db.run(work)
    assert ev.id is not None
    outs = [determination_out(r) for r in rows]
    totals: dict[str, int] = {}
    for d in outs:
        if d.eligible and not d.stacked_out_by:
            totals[d.headline_kind] = totals.get(d.headline_kind, 0) + d.headline_fen
    not_evaluated = [
        s.NotEvaluated(programme=c, label_zh=BY_CODE[c].name_zh, label_en=BY_CODE[c].name_en, reason=r)
        for c, r in skipped.items() if wanted is None or c in wanted
    ]
    return s.EligibilityOut(
        evaluation_id=ev.id, on=on, known_on=req.known_on, enterprise=enterprise,
        registry_facts=registry_facts,
        qualifies=[d.programme for d in outs if d.eligible and not d.stacked_out_by],
        not_qualified=[d.programme for d in outs if not d.eligible],
        stacked_out=[d.programme for d in outs if d.eligible and d.stacked_out_by],
        not_evaluated=not_evaluated,
        totals=[s.KindTotal(kind=k, fen=v, yuan=figures.yuan_plain(v)) for k, v in totals.items()],
        determinations=outs,
    )


def _require_evaluated(wanted: set[str], skipped: Mapping[str, str], facts: Mapping[str, object],
                       aliases: Mapping[str, str], on: dt.date, known_on: dt.date | None) -> None:
    """A programme the caller named must be evaluated: its missing facts or its parameter gap is a 422."""
    problems: list[tuple[str, str]] = []
    for code in sorted(wanted & set(skipped)):
        lacking = missing(BY_CODE[code].required_facts, facts)
        if lacking:
            problems.extend(_named([(name, "is missing") for name in lacking], aliases))
            continue
        try:
            engine.evaluate(code, facts, on, known_on=known_on)
        except NotInForce as exc:
            raise not_in_force_problem(exc) from None
    if problems:
        raise facts_problem(problems)


def registry_day(on: dt.date, known_on: dt.date | None, today: dt.date) -> dt.date:
    """The day whose registry records an evaluation uses: `min(on, known_on, today)`.

    An evaluation on a past day must see what the registry showed on that day, not today's state; with a
    knowledge day the registry as it stood then (what was known), even if `on` is later; and never a day after
    today, since the registry cannot show the future (an evaluation dated ahead uses today's records)."""
    return min(on, known_on or on, today)


async def _registry_facts(ctx: IncentivesContext, enterprise_id: int, facts: dict[str, object],
                          day: dt.date) -> list[s.RegistryFact]:
    """Facts the registry owns, filled in (and preferred over the caller's): today the carbon compliance
    status as the registry showed it at the end of `day` (see `registry_day`), when the compliance service
    offers it."""
    status_of = getattr(ctx.compliance, "compliance_status", None)
    if status_of is None:
        return []
    status = await status_of(enterprise_id, as_of=day)
    if not isinstance(status, Mapping):
        return []
    if "carbon_open_shortfall_t" in status:
        value = int(status["carbon_open_shortfall_t"])
    elif status.get("open_shortfall") is False:
        value = 0
    else:
        # Only a flag that some shortfall is open: the caller's tonnes (if any) stand.
        return []
    caller = facts.get("carbon_open_shortfall_t")
    facts["carbon_open_shortfall_t"] = value
    return [s.RegistryFact(fact="carbon_open_shortfall_t", value=value, source="registry.compliance",
                           caller_value=caller if caller is not None and caller != value else None, as_of=day)]
