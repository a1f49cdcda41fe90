"""Compliance settlement at the deadline: status, shortfall, forced surrender, fine and deduction.

A pure function over facts (`settle`) that the bulk settlement job calls per batch. Per obligation:
- status `A` compliant, `B` shortfall, `C` not reported (no verified report), and `on_time` / `late`;
- surrendered = own surrenders (on time and late) + forced surrender, capped at the obligation;
  shortfall = obligation − surrendered (never negative; an over-surrender is recorded as `excess`);
- forced surrender from the provincial reserve where the regulator ordered it (the 2023 MEE notice lets
  the registry surrender on behalf of at-risk units), limited by the order, the gap and the reserve left,
  recorded as `forced_quantity` and as `reserve_repayment` owed back;
- carbon fine (碳排放权交易暂行条例, 国务院令第775号, 第二十四条): `shortfall at the deadline × average CEA
  price of the month before the deadline (fen) × k`, k an integer 5..10 set by the authority; the
  shortfall left after the correction window is deducted from the next allocation (拒不改正的 … 核减);
- energy-use and discharge shortfalls: a fine per unit and a deduction ratio, dated parameters per scheme.

Why two shortfalls: Art. 24 fines what was missing when the deadline passed, and deducts what is still
missing after the order to correct. Late surrenders (made in a correction window) therefore reduce the
deduction but not the fine. Without late surrenders the two are equal, and the fine is exactly
`shortfall × price × k`. The worked case reproduces: 865,300 吨 × 98.00 元/吨 × 5 = 423,997,000.00 元
(42,399,700,000 fen).

Deadlines are exclusive instants (`at < deadline` is on time); see `calendar.py`. Linear in the number
of obligations and surrenders; no sorting except in `totals_by`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from core import figures
from registry.domain.exact import Rounding, bps_of, div_round
from registry.domain.surrender import ObligationKind
from registry.domain.violations import ComplianceParameterError, Violation

CARBON_FINE_CITATION = "碳排放权交易管理暂行条例（国务院令第775号）第二十四条"
K_MIN = 5
K_MAX = 10


class Status(StrEnum):
    COMPLIANT = "A"
    SHORTFALL = "B"
    NOT_REPORTED = "C"


class Timeliness(StrEnum):
    ON_TIME = "on_time"
    LATE = "late"


@dataclass(frozen=True, slots=True)
class SurrenderFact:
    """A posted surrender against the obligation: quantity and the server instant it was posted."""

    quantity: int
    at: datetime
    offset: bool = False


@dataclass(frozen=True, slots=True)
class ObligationFacts:
    """What the registry knows about one obligation when settling.

    `verified_quantity` None means no verified report (status C). `forced_surrender_ordered` is the
    quantity the regulator ordered surrendered from the provincial reserve (carbon only).
    """

    obligation_id: str
    enterprise_id: str
    city: str
    industry: str
    kind: ObligationKind
    verified_quantity: int | None
    surrenders: tuple[SurrenderFact, ...] = ()
    pollutant: str | None = None
    forced_surrender_ordered: int = 0


@dataclass(frozen=True, slots=True)
class CarbonPenalty:
    """Art. 24 parameters: the reference price (fen per tCO2e) the scheduler passes in, and k."""

    reference_price_fen: int
    multiplier_k: int
    deduction_bps: int = 10_000
    citation: str = CARBON_FINE_CITATION


@dataclass(frozen=True, slots=True)
class UnitPenalty:
    """Energy-use or discharge shortfall consequences: fine per unit and deduction ratio. [configurable]"""

    fine_fen_per_unit: int
    deduction_bps: int
    citation: str


@dataclass(frozen=True, slots=True)
class SettlementParams:
    """Penalty parameters of the scheme and period being settled.

    `reserve_available` is what the provincial reserve can still give for forced surrenders (None means
    no limit); it is consumed in input order, so the job passes obligations in a stable order and, when
    resuming, the reserve left now. `not_reported_fine_fen` is the fine for status C set by the
    authority (条例 Art. 21 gives a range; default 0 records none here).
    """

    carbon: CarbonPenalty | None = None
    energy: UnitPenalty | None = None
    discharge: Mapping[str, UnitPenalty] = field(default_factory=lambda: MappingProxyType({}))
    reserve_available: int | None = None
    not_reported_fine_fen: int = 0


@dataclass(frozen=True, slots=True)
class SettlementResult:
    """The settled outcome of one obligation, with every number used, ready to store and explain."""

    obligation_id: str
    enterprise_id: str
    city: str
    industry: str
    kind: ObligationKind
    pollutant: str | None
    status: Status
    timeliness: Timeliness
    obligation: int | None
    surrendered_on_time: int
    surrendered_late: int
    forced_quantity: int
    surrendered: int
    excess: int
    shortfall_at_deadline: int
    shortfall: int
    fine_fen: int
    fine_formula: str
    next_allocation_deduction: int
    reserve_repayment: int
    citation: str


def validate_params(params: SettlementParams, kinds: Iterable[tuple[ObligationKind, str | None]] = ()) -> None:
    """Raise `ComplianceParameterError` listing every invalid or missing parameter for these kinds."""
    bad: list[Violation] = []
    if params.carbon is not None:
        k = params.carbon.multiplier_k
        if isinstance(k, bool) or not isinstance(k, int) or not K_MIN <= k <= K_MAX:
            bad.append(
                Violation(
                    "penalty-multiplier-out-of-range",
                    "carbon.multiplier_k",
                    f"k must be an integer from {K_MIN} to {K_MAX} ({CARBON_FINE_CITATION})",
                    (("multiplier_k", str(k)),),
                )
            )
        if params.carbon.reference_price_fen <= 0:
            bad.append(
                Violation(
                    "reference-price-invalid",
                    "carbon.reference_price_fen",
                    "the reference price must be a positive number of fen per tCO2e",
                    (("reference_price_fen", str(params.carbon.reference_price_fen)),),
                )
            )
        if params.carbon.deduction_bps < 0:
            bad.append(Violation("deduction-ratio-invalid", "carbon.deduction_bps", "must be >= 0"))
    unit_penalties = [
        ("energy", params.energy),
        *((f"discharge.{p}", u) for p, u in params.discharge.items()),
    ]
    for name, penalty in unit_penalties:
        if penalty is None:
            continue
        if penalty.fine_fen_per_unit < 0:
            bad.append(Violation("fine-rate-invalid", f"{name}.fine_fen_per_unit", "must be >= 0"))
        if penalty.deduction_bps < 0:
            bad.append(Violation("deduction-ratio-invalid", f"{name}.deduction_bps", "must be >= 0"))
    if params.reserve_available is not None and params.reserve_available < 0:
        bad.append(Violation("reserve-invalid", "reserve_available", "must be >= 0"))
    if params.not_reported_fine_fen < 0:
        bad.append(Violation("fine-rate-invalid", "not_reported_fine_fen", "must be >= 0"))
    for kind, pollutant in sorted(set(kinds), key=lambda kp: (kp[0].value, kp[1] or "")):
        if kind is ObligationKind.CARBON and params.carbon is None:
            bad.append(Violation("penalty-missing", "carbon", "carbon obligations need carbon penalty parameters"))
        elif kind is ObligationKind.ENERGY and params.energy is None:
            bad.append(Violation("penalty-missing", "energy", "energy obligations need energy penalty parameters"))
        elif kind is ObligationKind.DISCHARGE and (pollutant or "") not in params.discharge:
            bad.append(Violation("penalty-missing", f"discharge.{pollutant}", f"no penalty parameters for {pollutant}"))
    if bad:
        raise ComplianceParameterError(bad)


def _require_aware(name: str, at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware instant")


def settle(
    obligations: Sequence[ObligationFacts],
    params: SettlementParams,
    deadline: datetime,
) -> list[SettlementResult]:
    """Settle every obligation; results are in input order, one per obligation.

    Raises `ComplianceParameterError` (every problem listed) before settling anything if a parameter is
    invalid or missing, and `ValueError` for naive instants or negative quantities in the facts.
    """
    _require_aware("deadline", deadline)
    validate_params(params, {(o.kind, o.pollutant) for o in obligations})
    reserve_left = params.reserve_available
    results: list[SettlementResult] = []
    append = results.append
    for facts in obligations:
        on_time = 0
        late = 0
        for s in facts.surrenders:
            if s.quantity <= 0:
                raise ValueError(f"obligation {facts.obligation_id}: surrender quantity must be positive")
            try:
                before_deadline = s.at < deadline
            except TypeError:
                # Comparing a naive with an aware datetime raises; that is the check, without a call per row.
                raise ValueError(
                    f"obligation {facts.obligation_id}: surrender.at must be a timezone-aware instant"
                ) from None
            if before_deadline:
                on_time += s.quantity
            else:
                late += s.quantity
        if facts.forced_surrender_ordered < 0:
            raise ValueError(f"obligation {facts.obligation_id}: forced surrender order must be >= 0")
        if facts.forced_surrender_ordered and facts.kind is not ObligationKind.CARBON:
            raise ValueError(f"obligation {facts.obligation_id}: forced surrender exists for carbon only")

        if facts.verified_quantity is None:
            append(_not_reported(facts, params, on_time, late))
            continue
        obligation = facts.verified_quantity
        if obligation < 0:
            raise ValueError(f"obligation {facts.obligation_id}: verified quantity must be >= 0")

        own = on_time + late
        gap = max(0, obligation - own)
        forced = min(facts.forced_surrender_ordered, gap)
        if reserve_left is not None:
            forced = min(forced, reserve_left)
            reserve_left -= forced
        surrendered = min(obligation, own + forced)
        shortfall = obligation - surrendered
        shortfall_at_deadline = obligation - min(obligation, on_time + forced)

        fine_fen, formula, deduction, citation = _consequences(facts, params, shortfall_at_deadline, shortfall)
        append(
            SettlementResult(
                obligation_id=facts.obligation_id,
                enterprise_id=facts.enterprise_id,
                city=facts.city,
                industry=facts.industry,
                kind=facts.kind,
                pollutant=facts.pollutant,
                status=Status.COMPLIANT if shortfall == 0 else Status.SHORTFALL,
                timeliness=Timeliness.ON_TIME if shortfall_at_deadline == 0 else Timeliness.LATE,
                obligation=obligation,
                surrendered_on_time=on_time,
                surrendered_late=late,
                forced_quantity=forced,
                surrendered=surrendered,
                excess=max(0, own + forced - obligation),
                shortfall_at_deadline=shortfall_at_deadline,
                shortfall=shortfall,
                fine_fen=fine_fen,
                fine_formula=formula,
                next_allocation_deduction=deduction,
                reserve_repayment=forced,
                citation=citation,
            )
        )
    return results


def _consequences(
    facts: ObligationFacts, params: SettlementParams, shortfall_at_deadline: int, shortfall: int
) -> tuple[int, str, int, str]:
    """Fine (fen), its formula, the next-allocation deduction and the citation for one obligation."""
    if facts.kind is ObligationKind.CARBON:
        carbon = params.carbon
        assert carbon is not None  # validate_params guarantees it.
        fine = shortfall_at_deadline * carbon.reference_price_fen * carbon.multiplier_k
        formula = (
            f"{figures.quantity(shortfall_at_deadline)} 吨 × {figures.yuan(carbon.reference_price_fen)} 元/吨"
            f" × {carbon.multiplier_k}"
        )
        return fine, formula, bps_of(shortfall, carbon.deduction_bps, Rounding.HALF_UP), carbon.citation
    penalty = params.energy if facts.kind is ObligationKind.ENERGY else params.discharge[facts.pollutant or ""]
    assert penalty is not None  # validate_params guarantees it.
    unit = "千克标准煤" if facts.kind is ObligationKind.ENERGY else f"千克 {facts.pollutant}"
    fine = shortfall_at_deadline * penalty.fine_fen_per_unit
    formula = f"{figures.quantity(shortfall_at_deadline)} {unit} × {figures.yuan(penalty.fine_fen_per_unit)} 元/{unit}"
    return fine, formula, bps_of(shortfall, penalty.deduction_bps, Rounding.HALF_UP), penalty.citation


def _not_reported(facts: ObligationFacts, params: SettlementParams, on_time: int, late: int) -> SettlementResult:
    # Without a verified figure there is no obligation to measure a shortfall against: the authority
    # estimates the emissions (测算) and that estimate becomes the obligation in a later settlement.
    return SettlementResult(
        obligation_id=facts.obligation_id,
        enterprise_id=facts.enterprise_id,
        city=facts.city,
        industry=facts.industry,
        kind=facts.kind,
        pollutant=facts.pollutant,
        status=Status.NOT_REPORTED,
        timeliness=Timeliness.LATE,
        obligation=None,
        surrendered_on_time=on_time,
        surrendered_late=late,
        forced_quantity=0,
        surrendered=on_time + late,
        excess=0,
        shortfall_at_deadline=0,
        shortfall=0,
        fine_fen=params.not_reported_fine_fen,
        fine_formula=f"未报告：{figures.yuan(params.not_reported_fine_fen)} 元",
        next_allocation_deduction=0,
        reserve_repayment=0,
        citation="碳排放权交易管理暂行条例（国务院令第775号）第二十一条",
    )


def reference_price_fen(turnover_fen: int, volume: int) -> int:
    """Average price of a month's trades in fen per unit: turnover / volume, rounded half up once."""
    if volume <= 0 or turnover_fen < 0:
        raise ValueError("a reference price needs a positive volume and a non-negative turnover")
    return div_round(turnover_fen, volume, Rounding.HALF_UP)


@dataclass(frozen=True, slots=True)
class GroupTotal:
    """Totals of one city or industry for one obligation kind (units differ by kind, so never mixed)."""

    dimension: str
    key: str
    kind: ObligationKind
    pollutant: str | None
    enterprises: int
    compliant: int
    shortfall_count: int
    not_reported: int
    late: int
    obligation: int
    surrendered: int
    shortfall: int
    forced: int
    fine_fen: int
    next_allocation_deduction: int


def totals_by(results: Iterable[SettlementResult], dimension: Literal["city", "industry"]) -> list[GroupTotal]:
    """Aggregate results by city or industry (and kind, pollutant), sorted by kind, pollutant, key."""
    acc: dict[tuple[str, str, str], list[int]] = {}
    seen: dict[tuple[str, str, str], set[str]] = {}
    meta: dict[tuple[str, str, str], tuple[ObligationKind, str | None]] = {}
    for r in results:
        key = (r.kind.value, r.pollutant or "", r.city if dimension == "city" else r.industry)
        row = acc.get(key)
        if row is None:
            row = acc[key] = [0] * 10
            seen[key] = set()
            meta[key] = (r.kind, r.pollutant)
        seen[key].add(r.enterprise_id)
        row[0] += r.status is Status.COMPLIANT
        row[1] += r.status is Status.SHORTFALL
        row[2] += r.status is Status.NOT_REPORTED
        row[3] += r.timeliness is Timeliness.LATE
        row[4] += r.obligation or 0
        row[5] += r.surrendered
        row[6] += r.shortfall
        row[7] += r.forced_quantity
        row[8] += r.fine_fen
        row[9] += r.next_allocation_deduction
    out: list[GroupTotal] = []
    for key in sorted(acc):
        row = acc[key]
        kind, pollutant = meta[key]
        out.append(GroupTotal(dimension, key[2], kind, pollutant, len(seen[key]), *row))
    return out
