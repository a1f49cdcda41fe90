"""What the compliance use cases share: the mapping of schemes to the authorities, instruments and obligations of
the pure rules, the problems a list of violations answers, and the dated parameters and calendars of a period
(the factors, conversions and pollutants of its year, its surrender deadline and the reference-price month).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from core.clock import business_date
from core.errors import CATALOGUE, AppError
from core.identity import Role
from core.workdays import is_working_day
from registry.compliance.context import ComplianceContext
from registry.compliance.models import CompliancePeriod, ComplianceScheme
from registry.domain import accounting as acc
from registry.domain import calendar as cal
from registry.domain import surrender as sur
from registry.domain.exact import in_force
from registry.domain.factor_defaults import DEFAULT_FUELS, DEFAULT_PROCESSES, HEAT_FACTORS
from registry.domain.instruments import Kind
from registry.domain.violations import Violation

SYSTEM_ACTOR = "system:scheduler"
SCHEME_KINDS = ("carbon", "energy", "discharge", "green_power")
AUTHORITY_BY_KIND = {
    "carbon": Role.REGULATOR,
    "discharge": Role.REGULATOR,
    "energy": Role.ENERGY_AUTHORITY,
    "green_power": Role.ENERGY_AUTHORITY,
}
OBLIGATION_KIND = {
    "carbon": sur.ObligationKind.CARBON,
    "energy": sur.ObligationKind.ENERGY,
    "discharge": sur.ObligationKind.DISCHARGE,
    # A green-power quota is settled by the same unit rule as energy use: quota − certificates retired.
    "green_power": sur.ObligationKind.ENERGY,
}
ALLOCATION_KIND = {"carbon": Kind.CEA, "energy": Kind.ENERGY_USE, "discharge": Kind.DISCHARGE}
DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)


def problem(v: Violation, default_field: str = "lines") -> dict[str, Any]:
    slug = v.code if v.code in CATALOGUE else "invalid-input"
    return {
        "type": f"/problems/{slug}",
        "code": v.code,
        "field": v.field or default_field,
        "detail": v.message,
        **v.detail_dict(),
    }


def raise_violations(violations: Sequence[Violation], *, field_map: dict[str, str] | None = None) -> None:
    """Raise the first violation as the problem, listing every one in `errors` (the user fixes all at once)."""
    if not violations:
        return
    first = violations[0]
    slug = first.code if first.code in CATALOGUE else "invalid-input"
    fm = field_map or {}
    errors = [{**problem(v), "field": fm.get(v.code, v.field)} for v in violations]
    raise AppError(slug, first.message, field=fm.get(first.code, first.field), extra={"errors": errors})


def dump_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _date_after(day: dt.date) -> dt.datetime:
    return cal.deadline_instant(day)


# ================================================================== parameters and calendars
def param(ctx: ComplianceContext, name: str, on: dt.date | None = None) -> Any:
    return ctx.params.value(name, on or business_date(ctx.clock.now()))


def calendar_of(scheme: ComplianceScheme, period: CompliancePeriod) -> cal.PeriodCalendar:
    template = cal.template_from_dict(json.loads(scheme.template))
    overrides = {cal.EventKind(k): dt.date.fromisoformat(v) for k, v in json.loads(period.overrides).items()}
    kinds = {r.kind for r in template.rules}
    # A correction window (责令改正) moves the settlement after it, unless the authority set the date itself.
    if (
        period.late_until is not None
        and cal.EventKind.SETTLEMENT in kinds
        and cal.EventKind.SETTLEMENT not in overrides
    ):
        overrides[cal.EventKind.SETTLEMENT] = period.late_until + dt.timedelta(days=1)
    return cal.build_calendar(template, period.year, is_working_day=is_working_day, overrides=overrides)


def deadlines_of(scheme: ComplianceScheme, period: CompliancePeriod) -> tuple[dt.datetime, dt.datetime]:
    """(deadline, close): surrenders are on time before the first, accepted (late) before the second."""
    deadline = calendar_of(scheme, period).event(cal.EventKind.SURRENDER_DEADLINE).due_before
    close = _date_after(period.late_until) if period.late_until is not None else deadline
    return deadline, close


def carbon_factors_of(ctx: ComplianceContext, year: int) -> acc.CarbonFactors:
    day = dt.date(year, 1, 1)
    grid = ctx.params.entry("grid_tco2_per_mwh", day)
    heat = in_force(HEAT_FACTORS, day)
    return acc.CarbonFactors(
        fuels=DEFAULT_FUELS,
        processes=DEFAULT_PROCESSES,
        grid_tco2_per_mwh=Decimal(str(grid.value)),
        heat_tco2_per_gj=heat.value,
        version=f"compliance-{year}",
        citation=f"{grid.citation}; {heat.citation}",
    )


def electricity_of(ctx: ComplianceContext, year: int) -> acc.ElectricityConversion:
    entry = ctx.params.entry("energy_electricity", dt.date(year, 1, 1))
    basis = acc.ElectricityBasis(entry.value["basis"])
    factor = Decimal(str(entry.value["kgce_per_kwh"])) if basis is acc.ElectricityBasis.EQUIVALENT else None
    return acc.electricity_conversion(basis, factor, entry.citation)


def pollutants_of(ctx: ComplianceContext, year: int) -> frozenset[str]:
    return frozenset(ctx.params.value("pollutants", dt.date(year, 1, 1)))


def reference_month_of(ctx: ComplianceContext, scheme: ComplianceScheme, period: CompliancePeriod) -> tuple[int, int]:
    day = calendar_of(scheme, period).event(cal.EventKind.SURRENDER_DEADLINE).business_date
    index = day.year * 12 + day.month - 1 - int(param(ctx, "reference_price_month_offset", day))
    return index // 12, index % 12 + 1
