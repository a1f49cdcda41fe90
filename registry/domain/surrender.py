"""Surrender (清缴) of units against one compliance obligation: validate a request, or plan one.

Rules (domain.md §3–4; 碳排放权交易管理办法(试行) 2021):
- carbon obligations take allowances of eligible vintages (a set per period) and CCER offsets, the
  offsets capped at `floor(obligation × offset_cap_bps / 10000)` (5 % = 500 bps, Art. 29), counted over
  every surrender made against the obligation;
- energy-use obligations take energy-use rights; the obligation is verified energy use less the
  renewable electricity proven by retired green certificates (`energy_obligation`);
- discharge obligations take permits of the same pollutant;
- a surrender is accepted while the period is open: before the deadline (on time) or, where the scheme
  opens a correction window (责令改正), before its end (late); never after, and never once settled;
- planning picks holdings oldest vintage first (ties by asset id), offsets first up to what the
  enterprise asks for, so that the oldest, soonest-lapsing units are used up first.

Every failed condition is returned, with a stable code, in one `Rejected`; the service turns it into one
problem response. Times are timezone-aware instants passed in by the caller (the server clock).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from fractions import Fraction

from core.figures import quantity as quantity_text
from registry.domain.accounting import ElectricityBasis, ElectricityConversion
from registry.domain.exact import Rounding, bps_of, fraction_text, round_to_int, to_fraction
from registry.domain.violations import Rejected, Violation

DEFAULT_OFFSET_CAP_BPS = 500
"""CCER may cover at most 5 % of an obligation (碳排放权交易管理办法(试行) 2021 第二十九条)."""


class InstrumentKind(StrEnum):
    ALLOWANCE = "allowance"
    OFFSET = "offset"
    ENERGY_RIGHT = "energy_right"
    DISCHARGE_PERMIT = "discharge_permit"


class ObligationKind(StrEnum):
    CARBON = "carbon"
    ENERGY = "energy"
    DISCHARGE = "discharge"


ACCEPTED_KINDS: dict[ObligationKind, frozenset[InstrumentKind]] = {
    ObligationKind.CARBON: frozenset({InstrumentKind.ALLOWANCE, InstrumentKind.OFFSET}),
    ObligationKind.ENERGY: frozenset({InstrumentKind.ENERGY_RIGHT}),
    ObligationKind.DISCHARGE: frozenset({InstrumentKind.DISCHARGE_PERMIT}),
}


@dataclass(frozen=True, slots=True)
class Holding:
    """Units of one asset the enterprise can surrender now (available = balance − frozen − on order)."""

    asset_id: str
    kind: InstrumentKind
    vintage: int
    available: int
    pollutant: str | None = None


@dataclass(frozen=True, slots=True)
class Obligation:
    """A verified obligation in the base unit of its kind (tCO2e, kgce, kg of `pollutant`)."""

    kind: ObligationKind
    quantity: int
    pollutant: str | None = None


@dataclass(frozen=True, slots=True)
class SurrenderRules:
    """The period's surrender rules.

    `deadline` and `late_until` are exclusive instants: a surrender at `at` is on time iff
    `at < deadline`, late iff `deadline <= at < late_until`, refused (`period-closed`) otherwise.
    `eligible_offset_vintages` None means any offset vintage is eligible.
    """

    eligible_vintages: frozenset[int]
    deadline: datetime
    offset_cap_bps: int = DEFAULT_OFFSET_CAP_BPS
    eligible_offset_vintages: frozenset[int] | None = None
    late_until: datetime | None = None
    allow_over_surrender: bool = False

    def __post_init__(self) -> None:
        _require_aware("deadline", self.deadline)
        if self.late_until is not None:
            _require_aware("late_until", self.late_until)
            if self.late_until < self.deadline:
                raise ValueError("late_until must not be before the deadline")
        if not 0 <= self.offset_cap_bps <= 10_000:
            raise ValueError(f"offset cap must be 0..10000 bps, got {self.offset_cap_bps}")


def vintages(first: int, last: int) -> frozenset[int]:
    """The eligible vintages `first..last` inclusive, e.g. `vintages(2019, 2020)`."""
    if last < first:
        raise ValueError("last vintage before first")
    return frozenset(range(first, last + 1))


@dataclass(frozen=True, slots=True)
class SurrenderedSoFar:
    """What has already been surrendered against this obligation (all kinds, and offsets among them)."""

    total: int = 0
    offsets: int = 0


@dataclass(frozen=True, slots=True)
class SurrenderLine:
    """One line of a surrender request: so many units of one held asset."""

    asset_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class PlannedLine:
    asset_id: str
    kind: InstrumentKind
    vintage: int
    quantity: int
    pollutant: str | None = None


@dataclass(frozen=True, slots=True)
class SurrenderPlan:
    """An accepted surrender: the lines to post, and the obligation before and after it."""

    lines: tuple[PlannedLine, ...]
    quantity: int
    offsets: int
    outstanding_before: int
    outstanding_after: int
    offset_cap: int
    late: bool


def offset_cap(obligation_quantity: int, cap_bps: int = DEFAULT_OFFSET_CAP_BPS) -> int:
    """Most offsets usable against an obligation: `floor(obligation × bps / 10000)` (never above 5 %)."""
    return bps_of(obligation_quantity, cap_bps, Rounding.FLOOR)


def _require_aware(name: str, at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware instant")


def _period_violation(rules: SurrenderRules, at: datetime, period_closed: bool) -> tuple[Violation | None, bool]:
    """Return (`period-closed` violation or None, late flag)."""
    _require_aware("at", at)
    close = rules.late_until if rules.late_until is not None else rules.deadline
    if period_closed or at >= close:
        return (
            Violation(
                "period-closed",
                "at",
                "the surrender period is closed; the deadline has passed or the period has been settled",
                (
                    ("at", at.isoformat()),
                    ("deadline", rules.deadline.isoformat()),
                    ("closes", close.isoformat()),
                ),
            ),
            False,
        )
    return None, at >= rules.deadline


def _vintage_ok(rules: SurrenderRules, holding: Holding) -> bool:
    if holding.kind is InstrumentKind.OFFSET and rules.eligible_offset_vintages is not None:
        return holding.vintage in rules.eligible_offset_vintages
    if holding.kind is InstrumentKind.OFFSET:
        return True
    return holding.vintage in rules.eligible_vintages


def validate_surrender(
    obligation: Obligation,
    lines: Sequence[SurrenderLine],
    holdings: Sequence[Holding],
    rules: SurrenderRules,
    so_far: SurrenderedSoFar,
    *,
    at: datetime,
    period_closed: bool = False,
) -> SurrenderPlan | Rejected:
    """Check a surrender request against every rule; accept it whole or list every failed condition."""
    violations: list[Violation] = []
    period, late = _period_violation(rules, at, period_closed)
    if period is not None:
        violations.append(period)
    if not lines:
        violations.append(Violation("nothing-to-surrender", "lines", "the request has no lines"))

    by_id = {h.asset_id: h for h in holdings}
    requested: dict[str, int] = {}
    accepted = ACCEPTED_KINDS[obligation.kind]
    planned: list[PlannedLine] = []
    for i, line in enumerate(lines):
        field = f"lines[{i}]"
        if line.quantity <= 0:
            violations.append(
                Violation(
                    "quantity-not-positive",
                    f"{field}.quantity",
                    "quantity must be a positive integer of the base unit",
                    (("quantity", str(line.quantity)),),
                )
            )
            continue
        requested[line.asset_id] = requested.get(line.asset_id, 0) + line.quantity
        holding = by_id.get(line.asset_id)
        if holding is None:
            continue  # Reported below as insufficient-available with 0 available.
        if holding.kind not in accepted:
            violations.append(
                Violation(
                    "instrument-not-eligible",
                    f"{field}.asset_id",
                    f"{holding.kind.value} units cannot cover a {obligation.kind.value} obligation",
                    (("asset_id", holding.asset_id), ("kind", holding.kind.value)),
                )
            )
            continue
        if obligation.kind is ObligationKind.DISCHARGE and holding.pollutant != obligation.pollutant:
            violations.append(
                Violation(
                    "pollutant-mismatch",
                    f"{field}.asset_id",
                    f"permits for {holding.pollutant} cannot cover a {obligation.pollutant} obligation",
                    (("asset_id", holding.asset_id), ("pollutant", str(holding.pollutant))),
                )
            )
            continue
        if not _vintage_ok(rules, holding):
            eligible = (
                rules.eligible_offset_vintages
                if holding.kind is InstrumentKind.OFFSET and rules.eligible_offset_vintages is not None
                else rules.eligible_vintages
            )
            violations.append(
                Violation(
                    "vintage-not-eligible",
                    f"{field}.asset_id",
                    f"vintage {holding.vintage} is not eligible for this surrender; eligible: "
                    f"{', '.join(str(v) for v in sorted(eligible))}",
                    (("asset_id", holding.asset_id), ("vintage", str(holding.vintage))),
                )
            )
            continue
        planned.append(PlannedLine(holding.asset_id, holding.kind, holding.vintage, line.quantity, holding.pollutant))

    # Availability is checked per asset over all lines, so two lines of 60 against 100 available fail.
    for asset_id, quantity in requested.items():
        available = by_id[asset_id].available if asset_id in by_id else 0
        if quantity > available:
            violations.append(
                Violation(
                    "insufficient-available",
                    "lines",
                    f"{quantity_text(quantity)} units of {asset_id} requested "
                    f"but only {quantity_text(available)} available",
                    (("asset_id", asset_id), ("requested", str(quantity)), ("available", str(available))),
                )
            )

    total = sum(requested.values())
    offsets = sum(q for a, q in requested.items() if a in by_id and by_id[a].kind is InstrumentKind.OFFSET)
    cap = offset_cap(obligation.quantity, rules.offset_cap_bps)
    # Only a request that adds offsets can break the cap: if earlier offsets already exceed it (say the
    # obligation was corrected downwards), surrendering allowances must still be possible.
    if obligation.kind is ObligationKind.CARBON and offsets > 0 and so_far.offsets + offsets > cap:
        violations.append(
            Violation(
                "offset-cap-exceeded",
                "lines",
                f"offsets may cover at most {cap} of this obligation ({rules.offset_cap_bps} bps); "
                f"{so_far.offsets} already used, {offsets} requested",
                (("cap", str(cap)), ("already", str(so_far.offsets)), ("requested", str(offsets))),
            )
        )
    outstanding = max(0, obligation.quantity - so_far.total)
    if not rules.allow_over_surrender and total > outstanding:
        violations.append(
            Violation(
                "surrender-above-obligation",
                "lines",
                f"{quantity_text(total)} units requested but only {quantity_text(outstanding)} remain outstanding "
                "on this obligation",
                (("requested", str(total)), ("outstanding", str(outstanding))),
            )
        )
    if violations:
        return Rejected(tuple(violations))
    return SurrenderPlan(
        lines=tuple(planned),
        quantity=total,
        offsets=offsets,
        outstanding_before=outstanding,
        outstanding_after=max(0, outstanding - total),
        offset_cap=cap,
        late=late,
    )


def plan_surrender(
    obligation: Obligation,
    holdings: Sequence[Holding],
    rules: SurrenderRules,
    so_far: SurrenderedSoFar,
    *,
    at: datetime,
    period_closed: bool = False,
    offsets_wanted: int = 0,
) -> SurrenderPlan | Rejected:
    """Pick holdings to cover what is outstanding, oldest vintage first, and validate the result.

    Offsets are used only if asked for (`offsets_wanted`), up to the cap left; the rest comes from the
    obligation's own instrument kind. If the holdings do not cover everything the plan is partial and
    `outstanding_after` says what is still missing (a partial surrender is allowed and lowers the fine).
    """
    outstanding = max(0, obligation.quantity - so_far.total)
    if outstanding == 0:
        return Rejected((Violation("obligation-already-met", "obligation", "nothing is outstanding"),))
    accepted = ACCEPTED_KINDS[obligation.kind]
    usable = sorted(
        (
            h
            for h in holdings
            if h.kind in accepted
            and h.available > 0
            and _vintage_ok(rules, h)
            and (obligation.kind is not ObligationKind.DISCHARGE or h.pollutant == obligation.pollutant)
        ),
        key=lambda h: (h.vintage, h.asset_id),
    )
    lines: list[SurrenderLine] = []
    left = outstanding
    if obligation.kind is ObligationKind.CARBON and offsets_wanted > 0:
        offset_room = max(0, offset_cap(obligation.quantity, rules.offset_cap_bps) - so_far.offsets)
        offsets_left = min(offsets_wanted, offset_room, left)
        for h in usable:
            if offsets_left == 0:
                break
            if h.kind is InstrumentKind.OFFSET:
                take = min(h.available, offsets_left)
                lines.append(SurrenderLine(h.asset_id, take))
                offsets_left -= take
                left -= take
    for h in usable:
        if left == 0:
            break
        if h.kind is not InstrumentKind.OFFSET:
            take = min(h.available, left)
            lines.append(SurrenderLine(h.asset_id, take))
            left -= take
    if not lines:
        period, _ = _period_violation(rules, at, period_closed)
        found = [Violation("no-eligible-holdings", "holdings", "no eligible units are available to surrender")]
        return Rejected(tuple(found if period is None else [period, *found]))
    return validate_surrender(obligation, lines, holdings, rules, so_far, at=at, period_closed=period_closed)


# ---------------------------------------------------------------------------------------------------
# Energy-use obligation less green electricity proven by retired green certificates.


@dataclass(frozen=True, slots=True)
class EnergyObligation:
    """Energy-use rights to surrender: verified kgce less retired-GEC electricity, with the factor used."""

    verified_kgce: int
    gec_mwh_retired: int
    gec_mwh_counted: int
    conversion: ElectricityConversion
    deduction_exact: Fraction
    deduction_kgce: int
    obligation_kgce: int
    rounding: Rounding
    rounding_rule: str = "deduction = counted MWh × kgce/MWh rounded once; obligation = max(0, verified − deduction)"

    @property
    def explanation(self) -> str:
        return (
            f"{self.verified_kgce} kgce − {self.gec_mwh_counted} MWh × "
            f"{fraction_text(self.conversion.kgce_per_mwh, 4)} kgce/MWh ({self.conversion.basis.value}) "
            f"= {self.obligation_kgce} kgce"
        )


def energy_obligation(
    verified_kgce: int,
    verified_basis: ElectricityBasis,
    retired_gec_mwh: int,
    conversion: ElectricityConversion,
    *,
    electricity_consumed_mwh: int | None = None,
    rounding: Rounding = Rounding.HALF_UP,
) -> EnergyObligation | Rejected:
    """Verified energy use less renewable electricity proven by retired GECs (1 GEC = 1 MWh).

    The GEC electricity is converted with the same basis (当量值 or 等价值) as the verified figure, else the
    deduction would subtract apples from oranges; a mismatch is refused. Certificates beyond the
    electricity actually consumed (if given) are not counted: a certificate proves green use, it cannot
    create a deduction for electricity the enterprise never used.
    """
    violations: list[Violation] = []
    if verified_kgce < 0:
        violations.append(Violation("quantity-not-positive", "verified_kgce", "verified energy use cannot be negative"))
    if retired_gec_mwh < 0:
        violations.append(Violation("quantity-not-positive", "retired_gec_mwh", "retired GEC MWh cannot be negative"))
    if conversion.basis is not verified_basis:
        violations.append(
            Violation(
                "electricity-basis-mismatch",
                "conversion.basis",
                f"the verified figure uses the {verified_basis.value} basis but the GEC conversion uses "
                f"{conversion.basis.value}; both must use the same basis",
                (("verified_basis", verified_basis.value), ("conversion_basis", conversion.basis.value)),
            )
        )
    if violations:
        return Rejected(tuple(violations))
    counted = retired_gec_mwh if electricity_consumed_mwh is None else min(retired_gec_mwh, electricity_consumed_mwh)
    exact = counted * to_fraction(conversion.kgce_per_kwh) * 1000
    deduction = round_to_int(exact, rounding)
    return EnergyObligation(
        verified_kgce=verified_kgce,
        gec_mwh_retired=retired_gec_mwh,
        gec_mwh_counted=counted,
        conversion=conversion,
        deduction_exact=exact,
        deduction_kgce=deduction,
        obligation_kgce=max(0, verified_kgce - deduction),
        rounding=rounding,
    )
