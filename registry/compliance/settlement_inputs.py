"""What a settlement runs with: the reference price (the trading context's monthly average, else the regulator's
entered price), k and the dated penalties fixed when the real settlement starts and stored on its run, and the
facts of each batch of obligations (verified figures, surrenders on time and late, retired certificates, the
provincial reserve) that the pure `registry.domain.settlement.settle()` decides from.
"""

from __future__ import annotations

import datetime as dt
import inspect
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import business_date
from core.db import UnitOfWork
from core.errors import AppError
from core.identity import Identity
from core.models import LedgerAccount
from registry.compliance._common import OBLIGATION_KIND, deadlines_of, problem, reference_month_of
from registry.compliance.context import ComplianceContext
from registry.compliance.models import (
    CompliancePeriod,
    ComplianceReport,
    ComplianceScheme,
    Obligation,
    ReportVersion,
    SettlementRun,
)
from registry.compliance.queries import load_period, require_authority
from registry.compliance.surrender import energy_obligation, retired_gec_mwh
from registry.domain.instruments import Kind
from registry.domain.settlement import (
    CarbonPenalty,
    ObligationFacts,
    SettlementParams,
    SurrenderFact,
    UnitPenalty,
    validate_params,
)
from registry.domain.violations import ComplianceParameterError, Rejected
from registry.models import Enterprise, Instrument, RegistryAccount, RegistryTransaction


async def market_price_fen(trading: object, year: int, month: int) -> int | None:
    """The trading context's monthly average CEA price in fen, if it offers one (duck-typed: registry may not
    import trading). None when the method is missing, fails or gives anything but a positive int."""
    fn = getattr(trading, "monthly_average_price_fen", None)
    if fn is None:
        return None
    try:
        value = fn(kind="cea", year=year, month=month)
        if inspect.isawaitable(value):
            value = await value
    except Exception:  # The fallback (the regulator's price) exists exactly for a market that cannot answer.
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


@dataclass
class SettleContext:
    """What one settlement of a period runs with, fixed when the real settlement starts (a resumed run reads it
    back from its run row): the period and scheme, the penalties, the deadline and close, the price and k."""

    period: CompliancePeriod
    scheme: ComplianceScheme
    params: SettlementParams
    deadline: dt.datetime
    close: dt.datetime
    price_fen: int | None
    price_source: str
    k: int


async def settle_context(
    uow: UnitOfWork,
    ctx: ComplianceContext,
    period_id: int,
    market_price: int | None,
    market_source: str,
    who: Identity | None,
) -> tuple[SettleContext, SettlementRun | None]:
    ses = uow.session
    period, scheme = await load_period(ses, period_id)
    if who is not None:
        require_authority(who, scheme)
    run = (await ses.execute(select(SettlementRun).where(SettlementRun.period_id == period.id))).scalar_one_or_none()
    deadline, close = deadlines_of(scheme, period)
    if run is not None:
        # A resumed (or repeated) settlement keeps the parameters it started with.
        stored = json.loads(run.params)
        return SettleContext(
            period,
            scheme,
            params_from_json(stored),
            deadline,
            close,
            run.reference_price_fen,
            run.price_source,
            int(stored.get("k", 0)),
        ), run
    day = business_date(deadline)

    def entry(name: str) -> Any:
        try:
            return ctx.params.entry(name, day)
        except KeyError as exc:
            raise AppError(
                "compliance-parameter-invalid",
                f"No value of {name} applies on {day.isoformat()}; add a dated entry to the parameters.",
                field=name,
            ) from exc

    price: int | None = None
    source = ""
    k = 0
    carbon = energy = None
    discharge: dict[str, UnitPenalty] = {}
    if scheme.kind == "carbon":
        k = period.multiplier_k or int(entry("carbon_penalty_multiplier_k").value)
        year, month = reference_month_of(ctx, scheme, period)
        if market_price is not None and market_price > 0:
            price, source = market_price, market_source or f"trading: CEA monthly average {year}-{month:02d}"
        elif period.reference_price_fen is not None:
            price = period.reference_price_fen
            source = f"regulator: {period.reference_price_note or 'entered price'} (for {year}-{month:02d})"
        has_obligations = (
            await ses.execute(select(Obligation.id).where(Obligation.period_id == period.id).limit(1))
        ).first() is not None
        if price is None and has_obligations:
            raise AppError(
                "reference-price-missing",
                f"No average CEA price for {year}-{month:02d} from the market and none entered for {period.code}; "
                "set it with setReferencePrice before settling.",
                field="reference_price_fen",
            )
        carbon = CarbonPenalty(price or 1, k, int(entry("carbon_deduction_bps").value))
    elif scheme.kind == "energy":
        v = entry("energy_penalty").value
        energy = UnitPenalty(int(v["fine_fen_per_unit"]), int(v["deduction_bps"]), entry("energy_penalty").citation)
    elif scheme.kind == "green_power":
        v = entry("green_power_penalty").value
        energy = UnitPenalty(
            int(v["fine_fen_per_unit"]),
            int(v["deduction_bps"]),
            entry("green_power_penalty").citation,
        )
    else:
        table = entry("discharge_penalty").value
        citation = entry("discharge_penalty").citation
        discharge = {
            p: UnitPenalty(int(v["fine_fen_per_unit"]), int(v["deduction_bps"]), citation) for p, v in table.items()
        }
    params = SettlementParams(
        carbon=carbon,
        energy=energy,
        discharge=discharge,
        not_reported_fine_fen=int(entry("not_reported_fine_fen").value),
    )
    try:
        validate_params(params)
    except ComplianceParameterError as exc:
        raise AppError(
            "compliance-parameter-invalid",
            str(exc),
            field="parameters",
            extra={"errors": [problem(v) for v in exc.violations]},
        ) from exc
    return SettleContext(period, scheme, params, deadline, close, price, source, k), None


def params_to_json(p: SettlementParams, k: int) -> dict[str, Any]:
    return {
        "k": k,
        "carbon": None
        if p.carbon is None
        else {
            "reference_price_fen": p.carbon.reference_price_fen,
            "multiplier_k": p.carbon.multiplier_k,
            "deduction_bps": p.carbon.deduction_bps,
            "citation": p.carbon.citation,
        },
        "energy": None
        if p.energy is None
        else {
            "fine_fen_per_unit": p.energy.fine_fen_per_unit,
            "deduction_bps": p.energy.deduction_bps,
            "citation": p.energy.citation,
        },
        "discharge": {
            k_: {"fine_fen_per_unit": v.fine_fen_per_unit, "deduction_bps": v.deduction_bps, "citation": v.citation}
            for k_, v in p.discharge.items()
        },
        "not_reported_fine_fen": p.not_reported_fine_fen,
    }


def params_from_json(d: dict[str, Any]) -> SettlementParams:
    c, e = d.get("carbon"), d.get("energy")
    return SettlementParams(
        carbon=None
        if c is None
        else CarbonPenalty(c["reference_price_fen"], c["multiplier_k"], c["deduction_bps"], c["citation"]),
        energy=None if e is None else UnitPenalty(e["fine_fen_per_unit"], e["deduction_bps"], e["citation"]),
        discharge={
            k: UnitPenalty(v["fine_fen_per_unit"], v["deduction_bps"], v["citation"])
            for k, v in d.get("discharge", {}).items()
        },
        not_reported_fine_fen=d.get("not_reported_fine_fen", 0),
    )


async def reserve_holdings(
    ctx: ComplianceContext, ses: AsyncSession, sctx: SettleContext
) -> list[tuple[Instrument, RegistryAccount, int]]:
    """Eligible allowances in the provincial reserve, oldest vintage first, with what is available of each."""
    reserve = await ctx.registry._system_account(ses, "reserve")
    vintages = json.loads(sctx.period.eligible_vintages)
    rows = (
        await ses.execute(
            select(Instrument, LedgerAccount)
            .join(LedgerAccount, LedgerAccount.asset_id == Instrument.asset_id)
            .where(
                Instrument.kind == Kind.CEA.value,
                Instrument.scheme == sctx.scheme.cea_scheme,
                Instrument.vintage.in_(vintages),  # type: ignore[union-attr]
                LedgerAccount.owner_kind == "registry",
                LedgerAccount.owner_id == reserve.id,
            )
            .order_by(Instrument.vintage, Instrument.id)
        )
    ).all()
    return [
        (inst, reserve, la.credits_posted - la.debits_posted - la.debits_pending)
        for inst, la in rows
        if la.credits_posted - la.debits_posted - la.debits_pending > 0
    ]


async def load_facts(
    ctx: ComplianceContext, ses: AsyncSession, sctx: SettleContext, obs: Sequence[Obligation]
) -> tuple[list[ObligationFacts], dict[int, Enterprise], dict[int, dict[str, Any]]]:
    """Everything `settle()` needs about a batch of obligations, loaded with a handful of set queries."""
    ent_ids = sorted({o.enterprise_id for o in obs})
    ents = {
        e.id or 0: e
        for e in (await ses.execute(select(Enterprise).where(Enterprise.id.in_(ent_ids)))).scalars()  # type: ignore[attr-defined]
    }
    org_to_ent = {e.organisation_id: e.id or 0 for e in ents.values()}
    # The batch's accounts first, then their transactions by the (from_account_id, id) index: each batch reads
    # only its own rows, so the job stays linear however many transactions the period has.
    acc_to_ent = {
        acc_id: org_to_ent[org]
        for acc_id, org in (
            await ses.execute(
                select(RegistryAccount.id, RegistryAccount.organisation_id).where(
                    RegistryAccount.organisation_id.in_(list(org_to_ent))  # type: ignore[attr-defined]
                )
            )
        ).all()
    }
    kind = sctx.scheme.kind
    surrenders: dict[tuple[int, str], list[SurrenderFact]] = defaultdict(list)
    if kind == "green_power":
        rows = (
            await ses.execute(
                select(
                    RegistryTransaction.id,
                    RegistryTransaction.quantity,
                    RegistryTransaction.completed_at,
                    RegistryTransaction.from_account_id,
                    RegistryTransaction.status,
                )
                .join(Instrument, Instrument.id == RegistryTransaction.instrument_id)
                .where(
                    RegistryTransaction.from_account_id.in_(list(acc_to_ent)),  # type: ignore[union-attr]
                    RegistryTransaction.code == "retirement",
                    Instrument.kind == Kind.GEC.value,
                    Instrument.production_month.like(f"{sctx.period.year}-%"),  # type: ignore[union-attr]
                )
            )
        ).all()
        for _, qty, at, acc_id, status in sorted(rows):
            if status == "completed":
                surrenders[(acc_to_ent[acc_id], "")].append(SurrenderFact(qty, at))
    else:
        rows = (
            await ses.execute(
                select(
                    RegistryTransaction.id,
                    RegistryTransaction.quantity,
                    RegistryTransaction.completed_at,
                    Instrument.kind,
                    Instrument.pollutant,
                    RegistryTransaction.from_account_id,
                    RegistryTransaction.status,
                )
                .join(Instrument, Instrument.id == RegistryTransaction.instrument_id)
                .where(
                    # Only conditions the (from_account_id, id) index serves, plus cheap row filters: the
                    # status is checked below, because SQLite would otherwise pick the status index and scan
                    # every completed transaction of the registry for each batch.
                    RegistryTransaction.from_account_id.in_(list(acc_to_ent)),  # type: ignore[union-attr]
                    RegistryTransaction.period == sctx.period.code,
                    RegistryTransaction.code == "surrender",
                )
            )
        ).all()
        for _, qty, at, inst_kind, pollutant, acc_id, status in sorted(rows):
            if status != "completed":
                continue
            key = (acc_to_ent[acc_id], (pollutant or "") if kind == "discharge" else "")
            surrenders[key].append(SurrenderFact(qty, at, offset=inst_kind == Kind.CCER.value))
    late: dict[int, bool] = dict(
        (
            await ses.execute(
                select(ComplianceReport.enterprise_id, ComplianceReport.late).where(
                    ComplianceReport.period_id == sctx.period.id,
                    ComplianceReport.enterprise_id.in_(ent_ids),  # type: ignore[attr-defined]
                )
            )
        ).all()
    )
    extra: dict[int, dict[str, Any]] = {}
    energy_totals: dict[int, dict[str, Any]] = {}
    retired: dict[int, int] = {}
    if kind == "energy":
        version_ids = [o.report_version_id for o in obs if o.report_version_id is not None]
        energy_totals = {
            v.id or 0: json.loads(v.totals)
            for v in (await ses.execute(select(ReportVersion).where(ReportVersion.id.in_(version_ids)))).scalars()  # type: ignore[attr-defined]
        }
        retired = await retired_gec_mwh(ses, sctx.period.year, list(org_to_ent), sctx.close)
    facts = []
    obligation_kind = OBLIGATION_KIND[kind]
    for ob in obs:
        ent = ents[ob.enterprise_id]
        detail: dict[str, Any] = {}
        if late.get(ob.enterprise_id):
            detail["report_late"] = True
        verified = ob.verified_quantity
        if kind == "energy" and verified is not None:
            energy = await energy_obligation(
                ctx,
                ses,
                sctx.period,
                ob,
                ent.organisation_id,
                sctx.close,
                retired=retired.get(ent.organisation_id, 0),
                totals=energy_totals.get(ob.report_version_id or 0, {}),
            )
            if not isinstance(energy, Rejected):
                verified = energy.obligation_kgce
                detail["energy"] = {
                    "verified_kgce": energy.verified_kgce,
                    "gec_mwh_retired": energy.gec_mwh_retired,
                    "gec_mwh_counted": energy.gec_mwh_counted,
                    "deduction_kgce": energy.deduction_kgce,
                    "obligation_kgce": energy.obligation_kgce,
                    "explanation": energy.explanation,
                }
        extra[ob.id or 0] = detail
        facts.append(
            ObligationFacts(
                obligation_id=str(ob.id),
                enterprise_id=str(ent.id),
                city=ent.city,
                industry=ent.industry_code,
                kind=obligation_kind,
                verified_quantity=verified,
                surrenders=tuple(surrenders.get((ent.id or 0, ob.pollutant), ())),
                pollutant=ob.pollutant or None,
                forced_surrender_ordered=ob.forced_surrender_ordered if kind == "carbon" else 0,
            )
        )
    return facts, ents, extra
