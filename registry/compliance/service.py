"""Compliance units of work: schemes and periods, reports and verification, allocation tables, the surrender
rules, settlement at the deadline, published results and the calendar the scheduler fires.

Guarantees:
- One public method is one transaction (`Database.run`), except `settle_period`, which commits one batch of
  obligations per transaction so that a crash loses at most one batch and a rerun resumes where it stopped.
- Every movement of units goes through the registry's ledger path (`RegistryService._move` with a registry
  transaction whose `request_key` is unique): allocations, true-up reversals, forced surrenders and reserve
  funding happen exactly once, however often they are retried.
- Settlement results are unique per (period, enterprise, obligation); a second settlement changes nothing.
  The price, k and penalties are fixed when the real settlement starts, so a resumed run uses the same ones.
- The rules themselves are the pure functions of `registry.domain` (accounting, allocation, surrender,
  settlement, calendar); this module loads facts, calls them and stores what they decide.
- Surrender checks run inside the registry's surrender transaction through `RegistryService.surrender_policy`,
  judged by the server clock (a client's timestamp is never read).
"""

from __future__ import annotations

import csv
import datetime as dt
import inspect
import io
import json
import os
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import and_, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.capitals import format_fen
from core.clock import Clock, business_date
from core.db import Database, UnitOfWork
from core.errors import CATALOGUE, AppError, Conflict, Forbidden, InvalidInput, NotFound
from core.identity import Identity, Role
from core.models import LedgerAccount, Organisation
from core.parameters import DatedParameters
from core.quantity import parse_amount, parse_money_fen, parse_quantity
from core.text import clean_text
from core.workdays import is_working_day
from registry import reports_import
from registry.compliance import schemas as s
from registry.compliance.models import (
    AllocationDeduction,
    AllocationLine,
    AllocationTable,
    ComplianceNotice,
    CompliancePeriod,
    ComplianceReport,
    ComplianceScheme,
    Obligation,
    ReportVersion,
    SettlementResultRow,
    SettlementRun,
)
from registry.domain import accounting as acc
from registry.domain import allocation as alloc
from registry.domain import calendar as cal
from registry.domain import surrender as sur
from registry.domain.exact import fraction_text, in_force
from registry.domain.factor_defaults import DEFAULT_ENERGY_COEFFICIENTS, DEFAULT_FUELS, DEFAULT_PROCESSES, HEAT_FACTORS
from registry.domain.instruments import KIND_RULES, Kind
from registry.domain.settlement import (
    CarbonPenalty,
    ObligationFacts,
    SettlementParams,
    SettlementResult,
    Status,
    SurrenderFact,
    Timeliness,
    UnitPenalty,
    settle,
    totals_by,
    validate_params,
)
from registry.domain.violations import ComplianceParameterError, Rejected, Violation
from registry.models import Enterprise, Instrument, RegistryAccount, RegistryTransaction
from registry.service import RegistryService

PARAMS = DatedParameters.load(Path(__file__).with_name("parameters.yaml"))
SYSTEM_ACTOR = "system:scheduler"
SCHEME_KINDS = ("carbon", "energy", "discharge", "green_power")
AUTHORITY_BY_KIND = {
    "carbon": Role.REGULATOR,
    "discharge": Role.REGULATOR,
    "energy": Role.ENERGY_AUTHORITY,
    "green_power": Role.ENERGY_AUTHORITY,
}
# The registry instrument kinds that can cover each scheme's obligation, as the pure surrender rules name them.
INSTRUMENT_KIND = {
    Kind.CEA: sur.InstrumentKind.ALLOWANCE,
    Kind.CCER: sur.InstrumentKind.OFFSET,
    Kind.ENERGY_USE: sur.InstrumentKind.ENERGY_RIGHT,
    Kind.DISCHARGE: sur.InstrumentKind.DISCHARGE_PERMIT,
}
OBLIGATION_KIND = {
    "carbon": sur.ObligationKind.CARBON,
    "energy": sur.ObligationKind.ENERGY,
    "discharge": sur.ObligationKind.DISCHARGE,
    # A green-power quota is settled by the same unit rule as energy use: quota − certificates retired.
    "green_power": sur.ObligationKind.ENERGY,
}
ALLOCATION_KIND = {"carbon": Kind.CEA, "energy": Kind.ENERGY_USE, "discharge": Kind.DISCHARGE}
# Which calendar event a table of each kind waits for (the first one the template has).
TABLE_EVENTS = {
    "pre_allocation": (cal.EventKind.PRE_ALLOCATION, cal.EventKind.ALLOCATION),
    "allocation": (cal.EventKind.ALLOCATION,),
    "true_up": (cal.EventKind.TRUE_UP, cal.EventKind.ALLOCATION),
}
EVENT_JOBS = {
    cal.EventKind.PRE_ALLOCATION: "allocation",
    cal.EventKind.ALLOCATION: "allocation",
    cal.EventKind.TRUE_UP: "allocation",
    cal.EventKind.REPORT_DUE: "report_reminders",
    cal.EventKind.VERIFICATION_DUE: "verification_deadline",
    cal.EventKind.SETTLEMENT: "settlement",
}
_SCHEME_CODE = re.compile(r"[A-Z][A-Z0-9-]{1,10}", re.ASCII)
_PERIOD_CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{1,15}", re.ASCII)
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)
RESULTS_IN_ANSWER_MAX = 1000
FAULT_ENV = "GREENRIGHTS_FAULT"


@dataclass(frozen=True)
class ScheduledEvent:
    """One calendar event the scheduler fires: `job` for `period_key` at the aware instant `at`."""

    job: str
    period_key: str
    at: dt.datetime
    event: str
    period_id: int


@dataclass
class _SettleContext:
    period: CompliancePeriod
    scheme: ComplianceScheme
    params: SettlementParams
    deadline: dt.datetime
    close: dt.datetime
    price_fen: int | None
    price_source: str
    k: int


def fault_point(name: str) -> None:
    """A named crash point for the crash tests (reliability.md, "Crash"): `GREENRIGHTS_FAULT=<name>` makes the
    process stop here (`<name>` blocks so a test can kill it; `exit:<name>` exits at once without cleanup)."""
    fault = os.environ.get(FAULT_ENV, "")
    if fault == name:
        # Blocking on purpose: the whole process must stand still, committed work behind it, until killed.
        time.sleep(float(os.environ.get("GREENRIGHTS_FAULT_SLEEP_S", "3600")))
    elif fault == f"exit:{name}":
        os._exit(70)


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


def _problem(v: Violation, default_field: str = "lines") -> dict[str, Any]:
    slug = v.code if v.code in CATALOGUE else "invalid-input"
    return {
        "type": f"/problems/{slug}",
        "code": v.code,
        "field": v.field or default_field,
        "detail": v.message,
        **v.detail_dict(),
    }


_SURRENDER_FIELDS = {
    "period-closed": "period",
    "insufficient-available": "quantity",
    "offset-cap-exceeded": "quantity",
    "surrender-above-obligation": "quantity",
    "quantity-not-positive": "quantity",
}


def _raise_violations(violations: Sequence[Violation], *, field_map: dict[str, str] | None = None) -> None:
    """Raise the first violation as the problem, listing every one in `errors` (the user fixes all at once)."""
    if not violations:
        return
    first = violations[0]
    slug = first.code if first.code in CATALOGUE else "invalid-input"
    fm = field_map or {}
    errors = [{**_problem(v), "field": fm.get(v.code, v.field)} for v in violations]
    raise AppError(slug, first.message, field=fm.get(first.code, first.field), extra={"errors": errors})


def _decimal(text: object, field: str) -> Decimal:
    if not isinstance(text, str) or not _DECIMAL.fullmatch(text):
        raise InvalidInput(field, 'Give an exact decimal as a string such as "0.8177" (no exponent or spaces).')
    return Decimal(text)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _date_after(day: dt.date) -> dt.datetime:
    return cal.deadline_instant(day)


@dataclass
class ComplianceService:
    db: Database
    clock: Clock
    registry: RegistryService
    params: DatedParameters = field(default_factory=lambda: PARAMS)
    # None: the dated `settlement_batch_size`; tests and the bench set their own.
    batch_size: int | None = None

    def __post_init__(self) -> None:
        self.registry.surrender_policy = self._check_surrender

    # ================================================================== parameters and calendars
    def _param(self, name: str, on: dt.date | None = None) -> Any:
        return self.params.value(name, on or business_date(self.clock.now()))

    def _default_template(self, kind: str, cea_scheme: str | None) -> dict[str, Any]:
        if kind == "carbon" and cea_scheme != "provincial":
            return _template_to_dict(cal.NATIONAL_CARBON_TEMPLATE)
        name = {
            "carbon": "calendar_provincial_carbon",
            "energy": "calendar_energy",
            "discharge": "calendar_discharge",
            "green_power": "calendar_green_power",
        }[kind]
        return dict(self._param(name))

    @staticmethod
    def _calendar(scheme: ComplianceScheme, period: CompliancePeriod) -> cal.PeriodCalendar:
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

    def _deadline(self, scheme: ComplianceScheme, period: CompliancePeriod) -> tuple[dt.datetime, dt.datetime]:
        """(deadline, close): surrenders are on time before the first, accepted (late) before the second."""
        deadline = self._calendar(scheme, period).event(cal.EventKind.SURRENDER_DEADLINE).due_before
        close = _date_after(period.late_until) if period.late_until is not None else deadline
        return deadline, close

    def _carbon_factors(self, year: int) -> acc.CarbonFactors:
        day = dt.date(year, 1, 1)
        grid = self.params.entry("grid_tco2_per_mwh", day)
        heat = in_force(HEAT_FACTORS, day)
        return acc.CarbonFactors(
            fuels=DEFAULT_FUELS,
            processes=DEFAULT_PROCESSES,
            grid_tco2_per_mwh=Decimal(str(grid.value)),
            heat_tco2_per_gj=heat.value,
            version=f"compliance-{year}",
            citation=f"{grid.citation}; {heat.citation}",
        )

    def _electricity(self, year: int) -> acc.ElectricityConversion:
        entry = self.params.entry("energy_electricity", dt.date(year, 1, 1))
        basis = acc.ElectricityBasis(entry.value["basis"])
        factor = Decimal(str(entry.value["kgce_per_kwh"])) if basis is acc.ElectricityBasis.EQUIVALENT else None
        return acc.electricity_conversion(basis, factor, entry.citation)

    def _pollutants(self, year: int) -> frozenset[str]:
        return frozenset(self.params.value("pollutants", dt.date(year, 1, 1)))

    # ================================================================== schemes and periods
    async def create_scheme(self, who: Identity, req: s.CreateScheme) -> s.SchemeOut:
        code = req.code
        if not _SCHEME_CODE.fullmatch(code):
            raise InvalidInput("code", "Give 2 to 11 upper-case letters, digits or '-', starting with a letter.")
        name = clean_text(req.name, "name", max_len=200)
        role = AUTHORITY_BY_KIND[req.kind]
        if who.role is not role:
            raise Forbidden(f"Only the {role.value} runs {req.kind} schemes.")
        if req.kind == "carbon" and req.cea_scheme is None:
            raise InvalidInput("cea_scheme", "A carbon scheme names its allowances: 'national' or 'provincial'.")
        if req.kind != "carbon" and req.cea_scheme is not None:
            raise InvalidInput("cea_scheme", "Only carbon schemes have allowances.")
        template = req.calendar if req.calendar is not None else self._default_template(req.kind, req.cea_scheme)
        try:
            parsed = cal.template_from_dict(template)
            cal.build_calendar(parsed, 2025, is_working_day=is_working_day)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput("calendar", f"The calendar template is not valid: {exc}") from exc
        kinds = {r.kind for r in parsed.rules}
        missing = {cal.EventKind.SURRENDER_DEADLINE, cal.EventKind.SETTLEMENT} - kinds
        if missing:
            raise InvalidInput("calendar", f"The calendar needs the events: {', '.join(sorted(missing))}.")

        async def work(uow: UnitOfWork) -> s.SchemeOut:
            ses = uow.session
            if (await ses.execute(select(ComplianceScheme.id).where(ComplianceScheme.code == code))).first():
                raise Conflict("duplicate", f"A scheme with code {code} exists.", field="code")
            scheme = ComplianceScheme(
                code=code,
                name=name,
                kind=req.kind,
                cea_scheme=req.cea_scheme,
                authority_role=role.value,
                authority_organisation_id=who.organisation_id,
                template=_json(template),
                created_by=who.principal_id,
                created_at=self.clock.now(),
            )
            ses.add(scheme)
            await ses.flush()
            uow.audit(
                who.actor,
                "compliance.scheme.create",
                "compliance_scheme",
                str(scheme.id),
                {"code": code, "kind": req.kind},
            )
            return _scheme_out(scheme)

        return await self.db.run(work)

    async def list_schemes(self, who: Identity) -> list[s.SchemeOut]:
        async def work(uow: UnitOfWork) -> list[s.SchemeOut]:
            rows = (await uow.session.execute(select(ComplianceScheme).order_by(ComplianceScheme.id))).scalars()
            return [_scheme_out(r) for r in rows]

        return await self.db.read(work)

    async def create_period(self, who: Identity, req: s.CreatePeriod) -> s.PeriodOut:
        if not 2000 <= req.year <= 2100:
            raise InvalidInput("year", "Give a year between 2000 and 2100.")
        region = clean_text(req.region, "region", max_len=40) if req.region else None

        async def work(uow: UnitOfWork) -> s.PeriodOut:
            ses = uow.session
            scheme = await ses.get(ComplianceScheme, req.scheme_id)
            if scheme is None:
                raise NotFound("scheme", field="scheme_id")
            self._require_authority(who, scheme)
            code = req.code or f"{scheme.code}-{req.year}"
            if not _PERIOD_CODE.fullmatch(code):
                raise InvalidInput("code", "Give 2 to 16 upper-case letters, digits or '-'.")
            try:
                overrides = {cal.EventKind(k).value: v.isoformat() for k, v in req.overrides.items()}
            except ValueError as exc:
                raise InvalidInput("overrides", f"Unknown event kind: {exc}.") from exc
            vintages = sorted(set(req.eligible_vintages or [req.year]))
            if any(not 2000 <= v <= 2100 for v in vintages):
                raise InvalidInput("eligible_vintages", "Give years between 2000 and 2100.")
            offsets = sorted(set(req.eligible_offset_vintages)) if req.eligible_offset_vintages is not None else None
            today = business_date(self.clock.now())
            cap = req.offset_cap_bps if req.offset_cap_bps is not None else int(self._param("offset_cap_bps", today))
            if not 0 <= cap <= int(self._param("offset_cap_bps", today)):
                raise InvalidInput("offset_cap_bps", "The offset cap is 0 to 500 bps (5 %, 办法 第二十九条).")
            if req.multiplier_k is not None and not 5 <= req.multiplier_k <= 10:
                raise InvalidInput("multiplier_k", "k is an integer from 5 to 10 (国务院令第775号 第二十四条).")
            if (await ses.execute(select(CompliancePeriod.id).where(CompliancePeriod.code == code))).first():
                raise Conflict("duplicate", f"A period with code {code} exists.", field="code")
            if (
                await ses.execute(
                    select(CompliancePeriod.id).where(
                        CompliancePeriod.scheme_id == scheme.id, CompliancePeriod.year == req.year
                    )
                )
            ).first():
                raise Conflict("duplicate", f"Scheme {scheme.code} already has a period for {req.year}.", field="year")
            period = CompliancePeriod(
                scheme_id=scheme.id or 0,
                code=code,
                year=req.year,
                status="open",
                overrides=_json(overrides),
                eligible_vintages=_json(vintages),
                eligible_offset_vintages=_json(offsets) if offsets is not None else None,
                offset_cap_bps=cap,
                late_until=req.late_until,
                multiplier_k=req.multiplier_k,
                region=region,
                created_by=who.principal_id,
                created_at=self.clock.now(),
            )
            try:
                calendar = self._calendar(scheme, period)
            except (ValueError, KeyError) as exc:
                raise InvalidInput("overrides", f"The calendar cannot be built: {exc}") from exc
            deadline = calendar.event(cal.EventKind.SURRENDER_DEADLINE).business_date
            if req.late_until is not None and req.late_until < deadline:
                raise InvalidInput("late_until", "The correction window ends on or after the surrender deadline.")
            ses.add(period)
            await ses.flush()
            uow.audit(
                who.actor,
                "compliance.period.create",
                "compliance_period",
                str(period.id),
                {"code": code, "year": req.year, "overrides": overrides, "vintages": vintages},
            )
            return self._period_out(scheme, period)

        return await self.db.run(work)

    async def update_period_dates(self, who: Identity, period_id: int, req: s.UpdatePeriodDates) -> s.PeriodOut:
        """Apply the authority's (new or corrected) notice to an open period: event dates and the correction
        window. Surrenders already made keep their instants; on time or late is judged against the new dates."""
        note = clean_text(req.note, "note", max_len=500, required=False)

        async def work(uow: UnitOfWork) -> s.PeriodOut:
            period, scheme = await self._period(uow.session, period_id)
            self._require_authority(who, scheme)
            self._require_open(period)
            try:
                merged = {
                    **json.loads(period.overrides),
                    **{cal.EventKind(k).value: v.isoformat() for k, v in req.overrides.items()},
                }
            except ValueError as exc:
                raise InvalidInput("overrides", f"Unknown event kind: {exc}.") from exc
            before = (period.overrides, period.late_until)
            period.overrides = _json(merged)
            if req.late_until is not None:
                period.late_until = req.late_until
            try:
                calendar = self._calendar(scheme, period)
            except (ValueError, KeyError) as exc:
                raise InvalidInput("overrides", f"The calendar cannot be built: {exc}") from exc
            deadline = calendar.event(cal.EventKind.SURRENDER_DEADLINE).business_date
            if period.late_until is not None and period.late_until < deadline:
                raise InvalidInput("late_until", "The correction window ends on or after the surrender deadline.")
            uow.audit(
                who.actor,
                "compliance.period.dates",
                "compliance_period",
                str(period.id),
                {
                    "before": {"overrides": json.loads(before[0]), "late_until": str(before[1])},
                    "overrides": merged,
                    "late_until": str(period.late_until),
                    "note": note,
                },
            )
            return self._period_out(scheme, period)

        return await self.db.run(work)

    async def get_period(self, who: Identity, period_id: int) -> s.PeriodOut:
        async def work(uow: UnitOfWork) -> s.PeriodOut:
            period, scheme = await self._period(uow.session, period_id)
            return self._period_out(scheme, period)

        return await self.db.read(work)

    async def list_periods(self, who: Identity) -> list[s.PeriodOut]:
        async def work(uow: UnitOfWork) -> list[s.PeriodOut]:
            rows = (
                await uow.session.execute(
                    select(CompliancePeriod, ComplianceScheme)
                    .join(ComplianceScheme, ComplianceScheme.id == CompliancePeriod.scheme_id)
                    .order_by(CompliancePeriod.id)
                )
            ).all()
            return [self._period_out(sc, p) for p, sc in rows]

        return await self.db.read(work)

    async def period_calendar(self, who: Identity, period_id: int) -> s.CalendarOut:
        async def work(uow: UnitOfWork) -> s.CalendarOut:
            period, scheme = await self._period(uow.session, period_id)
            calendar = self._calendar(scheme, period)
            return s.CalendarOut(
                period_id=period.id or 0,
                period_code=period.code,
                scheme=scheme.code,
                year=period.year,
                timezone="Asia/Shanghai",
                events=[
                    s.CalendarEventOut(
                        kind=e.kind.value,
                        business_date=e.business_date,
                        starts_at=e.starts_at,
                        due_before=e.due_before,
                        fires_at=e.fires_at,
                        is_deadline=e.is_deadline,
                        description=e.description,
                        citation=e.citation,
                        shifted_from=e.shifted_from,
                        overridden=e.overridden,
                        job=EVENT_JOBS.get(e.kind),
                    )
                    for e in calendar.events
                ],
            )

        return await self.db.read(work)

    async def set_reference_price(self, who: Identity, period_id: int, req: s.SetReferencePrice) -> s.PeriodOut:
        price = parse_money_fen(req.price_yuan, field="price_yuan")
        note = clean_text(req.note, "note", max_len=500, required=False)

        async def work(uow: UnitOfWork) -> s.PeriodOut:
            period, scheme = await self._period(uow.session, period_id)
            self._require_authority(who, scheme)
            if scheme.kind != "carbon":
                raise InvalidInput("price_yuan", "Only carbon periods price shortfalls by the market.")
            if period.status != "open":
                raise Conflict("period-closed", "The settlement has started; its price is fixed.", field="period_id")
            period.reference_price_fen = price
            period.reference_price_note = note
            period.reference_price_set_by = who.principal_id
            uow.audit(
                who.actor,
                "compliance.period.reference_price",
                "compliance_period",
                str(period.id),
                {"price_fen": price, "note": note},
            )
            return self._period_out(scheme, period)

        return await self.db.run(work)

    async def register_obligations(
        self, who: Identity, period_id: int, req: s.RegisterObligations
    ) -> list[s.ObligationOut]:
        """Name the enterprises obligated in a period (those without an allocation or a report yet), so that
        the settlement finds them (status C if they never report). Green-power quotas are set here too."""
        if not 1 <= len(req.enterprise_ids) <= 10_000:
            raise InvalidInput("enterprise_ids", "Name 1 to 10,000 enterprises.")

        async def work(uow: UnitOfWork) -> list[s.ObligationOut]:
            ses = uow.session
            period, scheme = await self._period(ses, period_id)
            self._require_authority(who, scheme)
            self._require_open(period)
            pollutant = req.pollutant or ""
            if scheme.kind == "discharge" and pollutant not in self._pollutants(period.year):
                raise InvalidInput("pollutant", f"Give one of: {', '.join(sorted(self._pollutants(period.year)))}.")
            if scheme.kind != "discharge" and pollutant:
                raise InvalidInput("pollutant", "Only discharge obligations name a pollutant.")
            quota: int | None = None
            if scheme.kind == "green_power":
                if req.quota is None:
                    raise InvalidInput("quota", "A green-power obligation is a quota of MWh; give it.")
                quota = parse_quantity(req.quota, scale=0, field="quota")
            elif req.quota is not None:
                raise InvalidInput("quota", "Only green-power obligations are set as a quota.")
            found = set(
                (await ses.execute(select(Enterprise.id).where(Enterprise.id.in_(req.enterprise_ids)))).scalars()  # type: ignore[attr-defined]
            )
            missing = [e for e in req.enterprise_ids if e not in found]
            if missing:
                raise AppError("not-found", f"No enterprises with ids {missing[:20]}.", field="enterprise_ids")
            now = self.clock.now()
            out = []
            for ent_id in dict.fromkeys(req.enterprise_ids):
                ob = await self._ensure_obligation(ses, period, ent_id, pollutant, now)
                if quota is not None:
                    ob.verified_quantity = quota
                    ob.updated_at = now
                out.append(_obligation_out(ob))
            uow.audit(
                who.actor,
                "compliance.obligations.register",
                "compliance_period",
                str(period.id),
                {"enterprises": list(dict.fromkeys(req.enterprise_ids)), "pollutant": pollutant, "quota": quota},
            )
            return out

        return await self.db.run(work)

    async def order_forced_surrender(
        self, who: Identity, period_id: int, req: s.OrderForcedSurrender
    ) -> s.ObligationOut:
        """Order that part of an at-risk enterprise's carbon obligation be surrendered from the provincial reserve
        at settlement (2023 MEE notice); the enterprise then owes it back from its next allocation."""
        quantity = parse_quantity(req.quantity, scale=0)

        async def work(uow: UnitOfWork) -> s.ObligationOut:
            ses = uow.session
            period, scheme = await self._period(ses, period_id)
            self._require_authority(who, scheme)
            self._require_open(period)
            if scheme.kind != "carbon":
                raise InvalidInput("period_id", "Forced surrender from the reserve exists for carbon only.")
            ob = await self._obligation(ses, period.id or 0, req.enterprise_id, "")
            if ob is None:
                raise NotFound("obligation of this enterprise in this period", field="enterprise_id")
            ob.forced_surrender_ordered = quantity
            ob.updated_at = self.clock.now()
            uow.audit(
                who.actor,
                "compliance.forced_surrender.order",
                "compliance_obligation",
                str(ob.id),
                {"period": period.code, "enterprise_id": req.enterprise_id, "quantity": quantity},
            )
            return _obligation_out(ob)

        return await self.db.run(work)

    async def fund_reserve(self, who: Identity, req: s.FundReserve, request_key: str | None) -> dict[str, Any]:
        """Move allowances from the regulator's allocation account into the provincial reserve (储备) account."""

        async def work(uow: UnitOfWork) -> dict[str, Any]:
            ses = uow.session
            if request_key is not None:
                prior = (
                    await ses.execute(select(RegistryTransaction).where(RegistryTransaction.request_key == request_key))
                ).scalar_one_or_none()
                if prior is not None:
                    return {
                        "transaction_id": prior.id,
                        "quantity": prior.quantity,
                        "instrument_id": prior.instrument_id,
                    }
            inst = await self.registry._instrument(ses, req.instrument_id)
            if inst.kind != Kind.CEA.value:
                raise InvalidInput("instrument_id", "The provincial reserve holds carbon allowances (CEA).")
            quantity = parse_quantity(req.quantity, scale=0)
            source = await self._allocation_account(ses, who.organisation_id)
            reserve = await self.registry._system_account(ses, "reserve")
            now = self.clock.now()
            tx = await self.registry.record_and_move(
                ses,
                RegistryTransaction(
                    code="reserve_funding",
                    instrument_id=inst.id or 0,
                    from_account_id=source.id,
                    to_account_id=reserve.id,
                    quantity=quantity,
                    initiated_by=who.principal_id,
                    initiator_organisation_id=who.organisation_id,
                    request_key=request_key,
                    created_at=now,
                ),
                inst,
                source,
                reserve,
                now,
            )
            uow.audit(
                who.actor,
                "compliance.reserve.fund",
                "transaction",
                str(tx.id),
                {"instrument": inst.code, "quantity": quantity},
            )
            return {"transaction_id": tx.id, "quantity": quantity, "instrument_id": inst.id}

        return await self.db.run(work)

    # ================================================================== reports
    async def submit_report(self, who: Identity, period_id: int, req: s.SubmitReport) -> s.ReportOut:
        note = clean_text(req.note, "note", max_len=1000, required=False)
        if not 1 <= len(req.lines) <= reports_import.MAX_ROWS:
            raise InvalidInput("lines", f"Give 1 to {reports_import.MAX_ROWS} lines.")

        async def work(uow: UnitOfWork) -> s.ReportOut:
            ses = uow.session
            period, scheme = await self._period(ses, period_id)
            self._require_reporting(scheme)
            ent = await self._reporting_enterprise(ses, who, scheme, req.enterprise_id)
            computed = self._compute(scheme.kind, period.year, [_line_dict(x) for x in req.lines])
            if isinstance(computed, list):
                raise AppError(
                    "report-rows-invalid",
                    f"{len(computed)} problem(s) in the report lines; nothing was "
                    "saved. Fix every line listed in `errors`.",
                    field="lines",
                    extra={"errors": computed},
                )
            self._require_open(period)
            report = await self._add_version(uow, who, scheme, period, ent, computed, "api", note)
            return await self._report_out(ses, report)

        return await self.db.run(work)

    async def upload_reports(self, who: Identity, period_id: int, data: bytes, filename: str) -> s.UploadOut:
        """Import a CSV or Excel file of report rows, one or many enterprises, all or nothing: every bad row is
        reported with its spreadsheet row number and nothing is saved if any row is bad."""

        async def load(uow: UnitOfWork) -> tuple[CompliancePeriod, ComplianceScheme, Enterprise | None]:
            period, scheme = await self._period(uow.session, period_id)
            self._require_reporting(scheme)
            own = None
            if who.role is Role.EMITTER:
                own = await self._own_enterprise(uow.session, who)
            else:
                self._require_authority(who, scheme)
            return period, scheme, own

        period, scheme, own = await self.db.read(load)
        kind: reports_import.ReportKind = scheme.kind  # type: ignore[assignment]
        rules = (
            reports_import.carbon_rules(self._carbon_factors(period.year))
            if kind == "carbon"
            else reports_import.energy_rules()
            if kind == "energy"
            else reports_import.discharge_rules(self._pollutants(period.year))
        )
        parsed = reports_import.parse_report(
            data,
            filename=filename,
            kind=kind,
            rules=rules,
            expected_uscc=own.uscc if own is not None else None,
            expected_year=period.year,
        )
        if isinstance(parsed, reports_import.ReportRejected):
            _raise_rows(parsed.errors)
        assert isinstance(parsed, reports_import.ParsedReport)
        source = "xlsx" if filename.lower().endswith((".xlsx", ".xlsm")) or data.startswith(b"PK\x03\x04") else "csv"
        by_uscc: dict[str, list[reports_import.ReportRow]] = defaultdict(list)
        for row in parsed.rows:
            by_uscc[row.uscc].append(row)

        async def work(uow: UnitOfWork) -> s.UploadOut:
            ses = uow.session
            period_now, scheme_now = await self._period(ses, period_id)
            ents = {
                e.uscc: e
                for e in (await ses.execute(select(Enterprise).where(Enterprise.uscc.in_(list(by_uscc))))).scalars()  # type: ignore[attr-defined]
            }
            errors: list[reports_import.RowError] = []
            computed_by: dict[str, dict[str, Any]] = {}
            for code, rows in by_uscc.items():
                if code not in ents:
                    errors += [
                        reports_import.RowError(
                            r.row, "uscc", "unknown-enterprise", "no enterprise with this code is registered", code
                        )
                        for r in rows
                    ]
                    continue
                lines = [_row_dict(kind, r) for r in rows]
                result = self._compute(kind, period.year, lines)
                if isinstance(result, list):
                    for e in result:
                        r = rows[e["line"]]
                        errors.append(reports_import.RowError(r.row, e["field"].split(".")[-1], e["code"], e["detail"]))
                    continue
                computed_by[code] = result
            if errors:
                _raise_rows(sorted(errors, key=lambda e: (e.row, e.column or "")))
            self._require_open(period_now)
            reports = []
            for code, result in computed_by.items():
                report = await self._add_version(uow, who, scheme_now, period_now, ents[code], result, source, filename)
                reports.append(await self._report_out(ses, report))
            return s.UploadOut(imported_rows=len(parsed.rows), reports=reports)

        return await self.db.run(work)

    async def verify_report(self, who: Identity, report_id: int, req: s.VerifyReport) -> s.ReportOut:
        note = clean_text(req.note, "note", max_len=1000, required=False)

        async def work(uow: UnitOfWork) -> s.ReportOut:
            ses = uow.session
            report = await ses.get(ComplianceReport, report_id)
            if report is None:
                raise NotFound("report")
            period, scheme = await self._period(ses, report.period_id)
            self._require_open(period)
            if req.version != report.current_version:
                raise Conflict(
                    "invalid-state",
                    f"Version {report.current_version} is the latest; verify that one.",
                    field="version",
                )
            now = self.clock.now()
            if req.decision == "correct":
                if not req.lines:
                    raise InvalidInput("lines", "A correction gives the corrected lines.")
                computed = self._compute(scheme.kind, period.year, [_line_dict(x) for x in req.lines])
                if isinstance(computed, list):
                    raise AppError(
                        "report-rows-invalid",
                        f"{len(computed)} problem(s) in the corrected lines.",
                        field="lines",
                        extra={"errors": computed},
                    )
                version = await self._new_version(ses, report, who, "verifier", computed, note or "核查修正", now)
            else:
                if req.lines:
                    raise InvalidInput("lines", "Verify takes no lines; use decision 'correct' to change figures.")
                version = (
                    await ses.execute(
                        select(ReportVersion).where(
                            ReportVersion.report_id == report.id, ReportVersion.version == report.current_version
                        )
                    )
                ).scalar_one()
            report.status = "verified"
            report.verified_version = version.version
            report.verified_at = now
            report.verified_by = who.principal_id
            totals = json.loads(version.totals)
            figures = _figures(scheme.kind, totals)
            existing = {
                o.pollutant: o
                for o in (
                    await ses.execute(
                        select(Obligation).where(
                            Obligation.period_id == period.id, Obligation.enterprise_id == report.enterprise_id
                        )
                    )
                ).scalars()
            }
            for pollutant, quantity in figures.items():
                ob = existing.get(pollutant) or await self._ensure_obligation(
                    ses, period, report.enterprise_id, pollutant, now
                )
                ob.verified_quantity = quantity
                ob.report_version_id = version.id
                ob.updated_at = now
            # A pollutant the verified version no longer reports was verified as zero.
            for pollutant, ob in existing.items():
                if pollutant not in figures:
                    ob.verified_quantity = 0
                    ob.report_version_id = version.id
                    ob.updated_at = now
            uow.audit(
                who.actor,
                f"compliance.report.{req.decision}",
                "compliance_report",
                str(report.id),
                {"version": version.version, "figures": figures, "enterprise_id": report.enterprise_id},
            )
            return await self._report_out(ses, report)

        return await self.db.run(work)

    async def get_report(self, who: Identity, report_id: int) -> s.ReportOut:
        async def work(uow: UnitOfWork) -> s.ReportOut:
            report = await uow.session.get(ComplianceReport, report_id)
            if report is None or not await self._may_see_enterprise(uow.session, who, report.enterprise_id):
                raise NotFound("report")
            return await self._report_out(uow.session, report)

        return await self.db.read(work)

    async def list_reports(self, who: Identity, period_id: int) -> list[s.ReportOut]:
        async def work(uow: UnitOfWork) -> list[s.ReportOut]:
            ses = uow.session
            await self._period(ses, period_id)
            q = select(ComplianceReport).where(ComplianceReport.period_id == period_id)
            if who.role is Role.EMITTER:
                own = await self._own_enterprise(ses, who)
                q = q.where(ComplianceReport.enterprise_id == own.id)
            rows = (await ses.execute(q.order_by(ComplianceReport.id).limit(1000))).scalars().all()
            return [await self._report_out(ses, r) for r in rows]

        return await self.db.read(work)

    def _compute(self, kind: str, year: int, lines: list[dict[str, Any]]) -> dict[str, Any] | list[dict[str, Any]]:
        """Run the national accounting method over report lines. Returns the stored figures, or every problem."""
        errors: list[dict[str, Any]] = []
        quantities: list[Decimal | None] = []
        for i, line in enumerate(lines):
            q = line.get("quantity")
            if isinstance(q, bool) or not isinstance(q, (int, str)):
                errors.append(
                    {
                        "line": i,
                        "field": f"lines[{i}].quantity",
                        "code": "not-a-number",
                        "detail": 'Give the quantity as a decimal string such as "1234.5".',
                    }
                )
                quantities.append(None)
                continue
            text = str(q)
            if not _DECIMAL.fullmatch(text):
                errors.append(
                    {
                        "line": i,
                        "field": f"lines[{i}].quantity",
                        "code": "not-a-number",
                        "detail": "The quantity must be a plain decimal number (no text, exponent or spaces).",
                    }
                )
                quantities.append(None)
                continue
            value = Decimal(text)
            exponent = value.normalize().as_tuple().exponent
            if isinstance(exponent, int) and -exponent > reports_import.MAX_DECIMALS:
                errors.append(
                    {
                        "line": i,
                        "field": f"lines[{i}].quantity",
                        "code": "too-many-decimals",
                        "detail": f"At most {reports_import.MAX_DECIMALS} decimals; the value is never rounded.",
                    }
                )
                quantities.append(None)
                continue
            quantities.append(value + 0)
        ok = [(i, line, q) for (i, line), q in zip(enumerate(lines), quantities, strict=True) if q is not None]
        result: Any
        if kind == "carbon":
            factors = self._carbon_factors(year)
            carbon_lines = []
            for i, line, q in ok:
                try:
                    lt = acc.LineType(line.get("line_type") or "")
                except ValueError:
                    errors.append(
                        {
                            "line": i,
                            "field": f"lines[{i}].line_type",
                            "code": "unknown-line-type",
                            "detail": "line_type is one of fuel, process, electricity, heat.",
                        }
                    )
                    continue
                carbon_lines.append((i, acc.ActivityLine(lt, line.get("item") or "", q, line.get("unit") or "")))
            result = acc.account_carbon([x for _, x in carbon_lines], factors)
            index = [i for i, _ in carbon_lines]
        elif kind == "energy":
            energy_lines = [(i, acc.EnergyLine(line.get("item") or "", q, line.get("unit") or "")) for i, line, q in ok]
            result = acc.account_energy(
                [x for _, x in energy_lines], DEFAULT_ENERGY_COEFFICIENTS, self._electricity(year)
            )
            index = [i for i, _ in energy_lines]
        else:
            d_lines = [
                (i, acc.DischargeLine(line.get("pollutant") or "", q, line.get("unit") or "")) for i, line, q in ok
            ]
            result = acc.account_discharge([x for _, x in d_lines], self._pollutants(year))
            index = [i for i, _ in d_lines]
        if isinstance(result, Rejected):
            for v in result.violations:
                m = re.match(r"lines\[(\d+)\]\.(\w+)", v.field)
                j = index[int(m.group(1))] if m else 0
                errors.append(
                    {
                        "line": j,
                        "field": f"lines[{j}].{m.group(2) if m else 'quantity'}",
                        "code": v.code,
                        "detail": v.message,
                    }
                )
        if errors:
            return sorted(errors, key=lambda e: (e["line"], e["field"]))
        return {"lines": lines, **_totals(kind, result)}

    async def _add_version(
        self,
        uow: UnitOfWork,
        who: Identity,
        scheme: ComplianceScheme,
        period: CompliancePeriod,
        ent: Enterprise,
        computed: dict[str, Any],
        source: str,
        note: str,
    ) -> ComplianceReport:
        ses = uow.session
        now = self.clock.now()
        report = (
            await ses.execute(
                select(ComplianceReport).where(
                    ComplianceReport.period_id == period.id, ComplianceReport.enterprise_id == ent.id
                )
            )
        ).scalar_one_or_none()
        if report is None:
            calendar = self._calendar(scheme, period)
            kinds = {e.kind for e in calendar.events}
            late = cal.EventKind.REPORT_DUE in kinds and not calendar.event(cal.EventKind.REPORT_DUE).is_on_time(now)
            report = ComplianceReport(
                period_id=period.id or 0,
                enterprise_id=ent.id or 0,
                kind=scheme.kind,
                status="submitted",
                current_version=0,
                first_submitted_at=now,
                late=late,
            )
            ses.add(report)
            await ses.flush()
        version = await self._new_version(ses, report, who, source, computed, note, now)
        report.status = "submitted"
        pollutants = list(computed.get("kg", {})) if scheme.kind == "discharge" else [""]
        for p in pollutants:
            await self._ensure_obligation(ses, period, ent.id or 0, p, now)
        uow.audit(
            who.actor,
            "compliance.report.submit",
            "compliance_report",
            str(report.id),
            {
                "version": version.version,
                "source": source,
                "enterprise_id": ent.id,
                "figures": _figures(scheme.kind, computed),
            },
        )
        return report

    async def _new_version(
        self,
        ses: AsyncSession,
        report: ComplianceReport,
        who: Identity,
        source: str,
        computed: dict[str, Any],
        note: str,
        now: dt.datetime,
    ) -> ReportVersion:
        report.current_version += 1
        totals = {k: v for k, v in computed.items() if k not in ("lines", "explanation")}
        version = ReportVersion(
            report_id=report.id or 0,
            version=report.current_version,
            source=source,
            lines=_json(computed["lines"]),
            totals=_json(totals),
            explanation=_json(computed["explanation"]),
            submitted_by=who.principal_id,
            submitted_role=who.role.value,
            note=note[:1000],
            created_at=now,
        )
        ses.add(version)
        await ses.flush()
        return version

    async def _report_out(self, ses: AsyncSession, report: ComplianceReport) -> s.ReportOut:
        versions = (
            (
                await ses.execute(
                    select(ReportVersion).where(ReportVersion.report_id == report.id).order_by(ReportVersion.version)
                )
            )
            .scalars()
            .all()
        )
        verified = next((v for v in versions if v.version == report.verified_version), None)
        return s.ReportOut(
            id=report.id or 0,
            period_id=report.period_id,
            enterprise_id=report.enterprise_id,
            kind=report.kind,
            status=report.status,
            late=report.late,
            current_version=report.current_version,
            verified_version=report.verified_version,
            verified_figure=json.loads(verified.totals) if verified is not None else None,
            first_submitted_at=report.first_submitted_at,
            verified_at=report.verified_at,
            versions=[
                s.ReportVersionOut(
                    version=v.version,
                    source=v.source,
                    lines=json.loads(v.lines),
                    totals=json.loads(v.totals),
                    explanation=json.loads(v.explanation),
                    submitted_by=v.submitted_by,
                    submitted_role=v.submitted_role,
                    note=v.note,
                    created_at=v.created_at,
                )
                for v in versions
            ],
        )

    # ================================================================== allocation tables
    async def upload_allocation_table(
        self, who: Identity, period_id: int, req: s.UploadAllocationTable, request_key: str | None
    ) -> s.AllocationTableOut:
        note = clean_text(req.note, "note", max_len=1000, required=False)
        if not 1 <= len(req.lines) <= 10_000:
            raise InvalidInput("lines", "Give 1 to 10,000 lines.")

        async def work(uow: UnitOfWork) -> s.AllocationTableOut:
            ses = uow.session
            if request_key is not None:
                prior = (
                    await ses.execute(select(AllocationTable).where(AllocationTable.request_key == request_key))
                ).scalar_one_or_none()
                if prior is not None:
                    return await self._table_out(ses, prior)
            period, scheme = await self._period(ses, period_id)
            self._require_authority(who, scheme)
            self._require_open(period)
            if scheme.kind not in ALLOCATION_KIND:
                raise InvalidInput("kind", "Green-power quotas are set with registerObligations, not allocated.")
            inst = await self.registry._instrument(ses, req.instrument_id)
            self._check_instrument(scheme, inst)
            kind = Kind(inst.kind)
            scale = KIND_RULES[kind].scale
            errors: list[dict[str, Any]] = []
            seen: set[int] = set()
            lines: list[AllocationLine] = []
            ents = {
                e.id: e
                for e in (
                    await ses.execute(
                        select(Enterprise).where(Enterprise.id.in_([x.enterprise_id for x in req.lines]))  # type: ignore[attr-defined]
                    )
                ).scalars()
            }
            for i, line in enumerate(req.lines):
                f = f"lines[{i}]"
                ent = ents.get(line.enterprise_id)
                if ent is None:
                    errors.append({"field": f"{f}.enterprise_id", "code": "not-found", "detail": "No such enterprise."})
                    continue
                if line.enterprise_id in seen:
                    errors.append(
                        {
                            "field": f"{f}.enterprise_id",
                            "code": "duplicate",
                            "detail": "An enterprise appears once per table.",
                        }
                    )
                    continue
                seen.add(line.enterprise_id)
                account = await self._holding_account(ses, ent, line.account_id)
                if account is None:
                    errors.append(
                        {
                            "field": f"{f}.account_id",
                            "code": "unknown-account",
                            "detail": "Name a holding account of this enterprise (or open one first).",
                        }
                    )
                    continue
                try:
                    method, quantity, inputs = await self._line_quantity(
                        ses, req.kind, period, scheme, inst, line, scale, f
                    )
                except AppError as exc:
                    errors.append({"field": exc.field or f, "code": exc.problem.slug, "detail": exc.detail})
                    continue
                lines.append(
                    AllocationLine(
                        table_id=0,
                        enterprise_id=ent.id or 0,
                        account_id=account.id or 0,
                        method=method,
                        quantity=quantity,
                        inputs=_json(inputs),
                    )
                )
            if errors:
                raise AppError(
                    "invalid-input",
                    f"{len(errors)} problem(s) in the table; nothing was saved.",
                    field=errors[0]["field"],
                    extra={"errors": errors},
                )
            table = AllocationTable(
                period_id=period.id or 0,
                kind=req.kind,
                status="awaiting_approval",
                instrument_id=inst.id or 0,
                uploaded_by=who.principal_id,
                uploaded_role=who.role.value,
                organisation_id=who.organisation_id,
                request_key=request_key,
                note=note,
                created_at=self.clock.now(),
            )
            ses.add(table)
            await ses.flush()
            for row in lines:
                row.table_id = table.id or 0
                ses.add(row)
            await ses.flush()
            uow.audit(
                who.actor,
                "compliance.allocation_table.upload",
                "compliance_allocation_table",
                str(table.id),
                {
                    "period": period.code,
                    "kind": req.kind,
                    "instrument": inst.code,
                    "lines": len(lines),
                    "total": sum(x.quantity for x in lines),
                },
            )
            return await self._table_out(ses, table)

        return await self.db.run(work)

    async def _line_quantity(
        self,
        ses: AsyncSession,
        table_kind: str,
        period: CompliancePeriod,
        scheme: ComplianceScheme,
        inst: Instrument,
        line: s.AllocationLineIn,
        scale: int,
        f: str,
    ) -> tuple[str, int, dict[str, Any]]:
        """The allocation the rule gives one line: a fixed quantity, `benchmark × output × correction`, or 70 %
        of the previous year's verified emissions; the true-up's difference is taken when it is posted."""
        if table_kind == "pre_allocation":
            if line.quantity is not None or line.benchmark_lines is not None:
                raise InvalidInput(f"{f}.quantity", "A pre-allocation is computed from previous verified emissions.")
            source = "given"
            if line.previous_verified is not None:
                previous = parse_quantity(line.previous_verified, scale=scale, field=f"{f}.previous_verified")
            else:
                prev = (
                    await ses.execute(
                        select(Obligation.verified_quantity)
                        .join(CompliancePeriod, CompliancePeriod.id == Obligation.period_id)
                        .where(
                            CompliancePeriod.scheme_id == scheme.id,
                            CompliancePeriod.year == period.year - 1,
                            Obligation.enterprise_id == line.enterprise_id,
                            Obligation.pollutant == (inst.pollutant or ""),
                        )
                    )
                ).scalar_one_or_none()
                if prev is None:
                    raise InvalidInput(
                        f"{f}.previous_verified",
                        f"No verified figure for {period.year - 1} in this scheme; give previous_verified.",
                    )
                previous, source = prev, f"verified {period.year - 1}"
            ratio = int(self._param("pre_allocation_ratio_bps", dt.date(period.year + 1, 1, 1)))
            quantity = alloc.pre_allocation(previous, ratio)
            return (
                "pre_allocation",
                quantity,
                {
                    "previous_verified": previous,
                    "source": source,
                    "ratio_bps": ratio,
                    "ratio": alloc.ratio_text(ratio),
                    "rule": "pre-allocation = previous verified × ratio, rounded half up",
                },
            )
        if line.previous_verified is not None:
            raise InvalidInput(f"{f}.previous_verified", "Only pre-allocation lines take previous_verified.")
        if (line.quantity is None) == (line.benchmark_lines is None):
            raise InvalidInput(f"{f}.quantity", "Give either quantity or benchmark_lines.")
        method = "true_up" if table_kind == "true_up" else "fixed"
        if line.quantity is not None:
            # A true-up to zero is a real decision (e.g. a plant that closed); a plain allocation of zero is not.
            quantity = parse_amount(line.quantity, scale=scale, field=f"{f}.quantity", allow_zero=method == "true_up")
            return method, quantity, {"final_allocation": quantity} if method == "true_up" else {}
        bl = line.benchmark_lines or []
        if not 1 <= len(bl) <= 20:
            raise InvalidInput(f"{f}.benchmark_lines", "Give 1 to 20 benchmark lines.")
        parsed = [
            alloc.BenchmarkLine(
                clean_text(b.label, f"{f}.benchmark_lines[{j}].label", max_len=100),
                _decimal(b.benchmark, f"{f}.benchmark_lines[{j}].benchmark"),
                _decimal(b.output, f"{f}.benchmark_lines[{j}].output"),
                tuple(_decimal(c, f"{f}.benchmark_lines[{j}].corrections") for c in b.corrections),
            )
            for j, b in enumerate(bl)
        ]
        try:
            result = alloc.intensity_allocation(parsed)
        except ValueError as exc:
            raise InvalidInput(f"{f}.benchmark_lines", str(exc)) from exc
        inputs = {
            "rule": "Σ benchmark × output × Π corrections, rounded half up once",
            "lines": [
                {
                    "label": b.label,
                    "benchmark": b.benchmark,
                    "output": b.output,
                    "corrections": b.corrections,
                    "exact": x.text,
                }
                for b, x in zip(bl, result.lines, strict=True)
            ],
            "exact_total": fraction_text(result.exact_total, 6),
        }
        return ("true_up" if table_kind == "true_up" else "benchmark"), result.quantity, inputs

    async def approve_allocation_table(self, who: Identity, table_id: int, req: s.Decision) -> s.AllocationTableOut:
        reason = clean_text(req.reason, "reason", max_len=500, required=req.decision == "reject")

        async def work(uow: UnitOfWork) -> s.AllocationTableOut:
            ses = uow.session
            table = await ses.get(AllocationTable, table_id)
            if table is None or table.organisation_id != who.organisation_id:
                raise NotFound("allocation table")
            if who.role.value != table.uploaded_role:
                raise Forbidden(f"Only a {table.uploaded_role} of the uploading authority decides this table.")
            if table.status != "awaiting_approval":
                if table.approved_by == who.principal_id:
                    return await self._table_out(ses, table)
                raise Conflict("invalid-state", f"Table {table.id} is {table.status}; it was decided already.")
            if table.uploaded_by == who.principal_id:
                raise AppError("four-eyes-required", "The uploader may not approve its own table; ask a second person.")
            period, scheme = await self._period(ses, table.period_id)
            now = self.clock.now()
            table.approved_by = who.principal_id
            table.decided_at = now
            if req.decision == "reject":
                table.status = "rejected"
                table.reason = reason
            else:
                self._require_open(period)
                table.status = "approved"
                if self._table_due(scheme, period, table, now):
                    await self._post_table(uow, table, period, scheme, now, who.actor)
            await ses.flush()
            uow.audit(
                who.actor,
                f"compliance.allocation_table.{req.decision}",
                "compliance_allocation_table",
                str(table.id),
                {"status": table.status},
            )
            return await self._table_out(ses, table)

        return await self.db.run(work)

    async def get_allocation_table(self, who: Identity, table_id: int) -> s.AllocationTableOut:
        async def work(uow: UnitOfWork) -> s.AllocationTableOut:
            table = await uow.session.get(AllocationTable, table_id)
            if table is None:
                raise NotFound("allocation table")
            return await self._table_out(uow.session, table)

        return await self.db.read(work)

    def _table_due(
        self, scheme: ComplianceScheme, period: CompliancePeriod, table: AllocationTable, now: dt.datetime
    ) -> bool:
        calendar = self._calendar(scheme, period)
        kinds = {e.kind for e in calendar.events}
        for kind in TABLE_EVENTS[table.kind]:
            if kind in kinds:
                return calendar.event(kind).fires_at <= now
        return True

    async def post_due_allocations(self, period_code: str, event: str) -> dict[str, Any]:
        """The `allocation` job: post every approved table of the period whose calendar event has come."""

        async def work(uow: UnitOfWork) -> dict[str, Any]:
            ses = uow.session
            period, scheme = await self._period_by_code(ses, period_code)
            now = self.clock.now()
            tables = (
                (
                    await ses.execute(
                        select(AllocationTable)
                        .where(AllocationTable.period_id == period.id, AllocationTable.status == "approved")
                        .order_by(AllocationTable.id)
                    )
                )
                .scalars()
                .all()
            )
            posted = lines = 0
            for table in tables:
                if self._table_due(scheme, period, table, now):
                    lines += await self._post_table(uow, table, period, scheme, now, SYSTEM_ACTOR)
                    posted += 1
            return {"period": period_code, "event": event, "tables_posted": posted, "lines_posted": lines}

        return await self.db.run(work)

    async def _post_table(
        self,
        uow: UnitOfWork,
        table: AllocationTable,
        period: CompliancePeriod,
        scheme: ComplianceScheme,
        now: dt.datetime,
        actor: str,
    ) -> int:
        """Post a table's lines through the ledger, each under its own unique request key (exactly once)."""
        ses = uow.session
        inst = await self.registry._instrument(ses, table.instrument_id)
        source = await self._allocation_account(ses, table.organisation_id)
        pollutant = inst.pollutant or ""
        lines = (
            (
                await ses.execute(
                    select(AllocationLine).where(AllocationLine.table_id == table.id).order_by(AllocationLine.id)
                )
            )
            .scalars()
            .all()
        )
        count = 0
        for line in lines:
            if line.transaction_id is not None:
                continue
            dest = await ses.get(RegistryAccount, line.account_id)
            assert dest is not None
            if line.method == "true_up":
                pre = await self._pre_allocated(ses, period.id or 0, line.enterprise_id, inst.id or 0)
                t = alloc.true_up(line.quantity, pre)
                line.direction, line.delta = t.direction.value, t.quantity
                inputs = json.loads(line.inputs)
                inputs.update({"pre_allocated": pre, "delta": t.delta, "direction": t.direction.value})
                line.inputs = _json(inputs)
            else:
                line.direction, line.delta = "issue", line.quantity
            await self._ensure_obligation(ses, period, line.enterprise_id, pollutant, now)
            if line.direction == "issue" and line.delta > 0:
                line.deducted = await self._apply_deductions(
                    ses, scheme.id or 0, line.enterprise_id, pollutant, line.delta
                )
                quantity, code, frm, to = line.delta - line.deducted, "allocation", source, dest
            elif line.direction == "reverse" and line.delta > 0:
                la = await self.registry.ledger_account(ses, dest, inst)
                available = la.credits_posted - la.debits_posted - la.debits_pending
                quantity, code, frm, to = min(available, line.delta), "allocation_reversal", dest, source
                owed = line.delta - quantity
                if owed > 0:
                    # What cannot be clawed back now is owed and deducted from the next allocation.
                    await self._owe(ses, scheme.id or 0, period.id or 0, line.enterprise_id, pollutant, owed, now)
            else:
                quantity = 0
            if quantity > 0:
                if code == "allocation":
                    failures = _status_failures(dest)
                    if failures:
                        raise AppError(failures[0], f"Account {dest.id} cannot receive units.", field="account_id")
                tx = await self.registry.record_and_move(
                    ses,
                    RegistryTransaction(
                        code=code,
                        instrument_id=inst.id or 0,
                        from_account_id=frm.id,
                        to_account_id=to.id,
                        quantity=quantity,
                        initiated_by=table.uploaded_by,
                        initiator_organisation_id=table.organisation_id,
                        approved_by=table.approved_by,
                        request_key=f"compliance:alloc:{line.id}",
                        period=period.code,
                        details=_json(
                            {"allocation_table": table.id, "enterprise_id": line.enterprise_id, "method": line.method}
                        ),
                        created_at=now,
                    ),
                    inst,
                    frm,
                    to,
                    now,
                )
                line.transaction_id = tx.id
            line.posted = quantity
            uow.audit(
                actor,
                "compliance.allocation.post",
                "compliance_allocation_line",
                str(line.id),
                {
                    "table": table.id,
                    "enterprise_id": line.enterprise_id,
                    "direction": line.direction,
                    "delta": line.delta,
                    "deducted": line.deducted,
                    "posted": quantity,
                },
            )
            count += 1
        table.status = "posted"
        table.posted_at = now
        await ses.flush()
        return count

    async def _owe(
        self,
        ses: AsyncSession,
        scheme_id: int,
        period_id: int,
        enterprise_id: int,
        pollutant: str,
        owed: int,
        now: dt.datetime,
    ) -> None:
        row = (
            await ses.execute(
                select(AllocationDeduction).where(
                    AllocationDeduction.source_period_id == period_id,
                    AllocationDeduction.enterprise_id == enterprise_id,
                    AllocationDeduction.pollutant == pollutant,
                    AllocationDeduction.reason == "true_up",
                )
            )
        ).scalar_one_or_none()
        if row is None:
            ses.add(
                AllocationDeduction(
                    scheme_id=scheme_id,
                    source_period_id=period_id,
                    enterprise_id=enterprise_id,
                    pollutant=pollutant,
                    reason="true_up",
                    shortfall_quantity=owed,
                    quantity=owed,
                    created_at=now,
                )
            )
        else:
            row.shortfall_quantity += owed
            row.quantity += owed
        await ses.flush()

    async def _pre_allocated(self, ses: AsyncSession, period_id: int, enterprise_id: int, instrument_id: int) -> int:
        total = (
            await ses.execute(
                select(func.coalesce(func.sum(AllocationLine.quantity), 0))
                .join(AllocationTable, AllocationTable.id == AllocationLine.table_id)
                .where(
                    AllocationTable.period_id == period_id,
                    AllocationTable.kind == "pre_allocation",
                    AllocationTable.status == "posted",
                    AllocationLine.enterprise_id == enterprise_id,
                )
            )
        ).scalar_one()
        return int(total)

    async def _apply_deductions(
        self, ses: AsyncSession, scheme_id: int, enterprise_id: int, pollutant: str, allocation: int
    ) -> int:
        """Deduct earlier shortfalls of this scheme from an allocation, oldest first (`deduct_from_allocation`)."""
        rows = (
            (
                await ses.execute(
                    select(AllocationDeduction)
                    .where(
                        AllocationDeduction.scheme_id == scheme_id,
                        AllocationDeduction.enterprise_id == enterprise_id,
                        AllocationDeduction.pollutant == pollutant,
                        AllocationDeduction.applied < AllocationDeduction.quantity,
                    )
                    .order_by(AllocationDeduction.id)
                )
            )
            .scalars()
            .all()
        )
        left = allocation
        deducted = 0
        for row in rows:
            d = alloc.deduct_from_allocation(left, row.quantity - row.applied)
            if d.deducted == 0:
                break
            # Conditional: a concurrent applier can never push `applied` past `quantity`.
            done = await ses.execute(
                update(AllocationDeduction)
                .where(
                    AllocationDeduction.id == row.id,
                    AllocationDeduction.applied + d.deducted <= AllocationDeduction.quantity,
                )
                .values(applied=AllocationDeduction.applied + d.deducted)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount != 1:
                raise Conflict("invalid-state", "A deduction was applied concurrently; retry.")
            deducted += d.deducted
            left = d.allocation_after
        return deducted

    async def _table_out(self, ses: AsyncSession, table: AllocationTable) -> s.AllocationTableOut:
        lines = (
            (
                await ses.execute(
                    select(AllocationLine).where(AllocationLine.table_id == table.id).order_by(AllocationLine.id)
                )
            )
            .scalars()
            .all()
        )
        return s.AllocationTableOut(
            id=table.id or 0,
            period_id=table.period_id,
            kind=table.kind,
            status=table.status,
            instrument_id=table.instrument_id,
            uploaded_by=table.uploaded_by,
            approved_by=table.approved_by,
            note=table.note,
            reason=table.reason,
            total_quantity=sum(x.quantity for x in lines),
            created_at=table.created_at,
            decided_at=table.decided_at,
            posted_at=table.posted_at,
            lines=[
                s.AllocationLineOut(
                    enterprise_id=x.enterprise_id,
                    account_id=x.account_id,
                    method=x.method,
                    quantity=x.quantity,
                    direction=x.direction,
                    delta=x.delta,
                    deducted=x.deducted,
                    posted=x.posted,
                    inputs=json.loads(x.inputs),
                    transaction_id=x.transaction_id,
                )
                for x in lines
            ],
        )

    # ================================================================== surrender rules (the registry's hook)
    async def _check_surrender(
        self,
        ses: AsyncSession,
        who: Identity,
        account: RegistryAccount,
        instrument: Instrument,
        quantity: int,
        period: str,
        now: dt.datetime,
    ) -> None:
        """Refuse a surrender that breaks a compliance rule, listing every failed condition. Runs inside the
        registry's surrender transaction; `now` is the server's clock."""
        la = (
            await ses.execute(
                select(LedgerAccount).where(
                    LedgerAccount.owner_kind == "registry",
                    LedgerAccount.owner_id == account.id,
                    LedgerAccount.asset_id == instrument.asset_id,
                )
            )
        ).scalar_one_or_none()
        available = 0 if la is None else la.credits_posted - la.debits_posted - la.debits_pending
        found = (
            await ses.execute(select(CompliancePeriod).where(CompliancePeriod.code == period))
        ).scalar_one_or_none()
        if found is None:
            if quantity > available:
                raise Conflict(
                    "insufficient-available",
                    f"Only {available} base units are available; {quantity} were asked for.",
                    field="quantity",
                    extra={"available": available, "requested": quantity},
                )
            raise AppError(
                "not-found",
                f"No compliance period with code {period!r}; name the period as "
                "listed by listPeriods (e.g. CN-CEA-2025).",
                field="period",
            )
        await self._check_against_period(ses, account, instrument, quantity, found, available, now)

    async def _check_against_period(
        self,
        ses: AsyncSession,
        account: RegistryAccount,
        instrument: Instrument,
        quantity: int,
        period: CompliancePeriod,
        available: int,
        now: dt.datetime,
    ) -> None:
        scheme = await ses.get(ComplianceScheme, period.scheme_id)
        assert scheme is not None
        deadline, close = self._deadline(scheme, period)
        closed = period.status != "open" or now >= close
        pre: list[Violation] = []
        if closed:
            pre.append(
                Violation(
                    "period-closed",
                    "period",
                    "The surrender period is closed: the deadline has passed "
                    "(server time) or the period is being settled.",
                    (("at", now.isoformat()), ("deadline", deadline.isoformat()), ("closes", close.isoformat())),
                )
            )
        kind = INSTRUMENT_KIND.get(Kind(instrument.kind))
        obligation_kind = OBLIGATION_KIND[scheme.kind]
        if (
            scheme.kind == "green_power"
            or kind is None
            or kind not in sur.ACCEPTED_KINDS[obligation_kind]
            or (instrument.kind == Kind.CEA.value and instrument.scheme != scheme.cea_scheme)
        ):
            pre.append(
                Violation(
                    "instrument-not-eligible",
                    "instrument_id",
                    f"{instrument.code} cannot cover an obligation of scheme {scheme.code}.",
                )
            )
        if quantity > available:
            pre.append(
                Violation(
                    "insufficient-available",
                    "quantity",
                    f"{quantity} units requested but only {available} available",
                    (("available", str(available)), ("requested", str(quantity))),
                )
            )
        if pre:
            _raise_violations(pre, field_map=_SURRENDER_FIELDS)
        assert kind is not None
        ent = (
            await ses.execute(select(Enterprise).where(Enterprise.organisation_id == account.organisation_id))
        ).scalar_one_or_none()
        pollutant = (instrument.pollutant or "") if scheme.kind == "discharge" else ""
        ob = None if ent is None else await self._obligation(ses, period.id or 0, ent.id or 0, pollutant)
        if ent is None or ob is None or ob.verified_quantity is None:
            raise AppError(
                "no-verified-obligation",
                f"This enterprise has no verified {scheme.kind} obligation in "
                f"{period.code} yet; surrender after its report is verified.",
                field="period",
            )
        assert ent.id is not None
        obligation_quantity = ob.verified_quantity
        if scheme.kind == "energy":
            energy = await self._energy_obligation(ses, period, ob, ent.organisation_id, close)
            if not isinstance(energy, Rejected):
                obligation_quantity = energy.obligation_kgce
        so_far = await self._surrendered_so_far(ses, period, ent.organisation_id, pollutant)
        rules = sur.SurrenderRules(
            eligible_vintages=frozenset(json.loads(period.eligible_vintages)),
            deadline=deadline,
            offset_cap_bps=period.offset_cap_bps,
            eligible_offset_vintages=(
                frozenset(json.loads(period.eligible_offset_vintages))
                if period.eligible_offset_vintages is not None
                else None
            ),
            late_until=close if period.late_until is not None else None,
        )
        holding = sur.Holding(
            str(instrument.id), kind, instrument.vintage or period.year, available, instrument.pollutant
        )
        plan = sur.validate_surrender(
            sur.Obligation(obligation_kind, obligation_quantity, pollutant or None),
            [sur.SurrenderLine(str(instrument.id), quantity)],
            [holding],
            rules,
            so_far,
            at=now,
            period_closed=period.status != "open",
        )
        if isinstance(plan, Rejected):
            _raise_violations(plan.violations, field_map=_SURRENDER_FIELDS)

    async def _surrendered_so_far(
        self, ses: AsyncSession, period: CompliancePeriod, organisation_id: int, pollutant: str
    ) -> sur.SurrenderedSoFar:
        q = (
            select(RegistryTransaction.quantity, Instrument.kind, RegistryTransaction.status)
            .join(RegistryAccount, RegistryAccount.id == RegistryTransaction.from_account_id)
            .join(Instrument, Instrument.id == RegistryTransaction.instrument_id)
            .where(
                RegistryTransaction.period == period.code,
                RegistryTransaction.code == "surrender",
                RegistryAccount.organisation_id == organisation_id,
            )
        )
        if pollutant:
            q = q.where(Instrument.pollutant == pollutant)
        total = offsets = 0
        for qty, kind, status in (await ses.execute(q)).all():
            if status != "completed":
                continue
            total += qty
            offsets += qty if kind == Kind.CCER.value else 0
        return sur.SurrenderedSoFar(total, offsets)

    async def _energy_obligation(
        self,
        ses: AsyncSession,
        period: CompliancePeriod,
        ob: Obligation,
        organisation_id: int,
        close: dt.datetime,
        retired: int | None = None,
        totals: dict[str, Any] | None = None,
    ) -> sur.EnergyObligation | Rejected:
        """Verified kgce less the electricity proven green by certificates the enterprise retired (claimed)."""
        if totals is None:
            version = await ses.get(ReportVersion, ob.report_version_id) if ob.report_version_id else None
            totals = json.loads(version.totals) if version is not None else {}
        if retired is None:
            retired = (await self._retired_gec_mwh(ses, period.year, [organisation_id], close)).get(organisation_id, 0)
        basis = acc.ElectricityBasis(totals.get("electricity_basis", "equivalent"))
        factor = totals.get("electricity_kgce_per_kwh")
        conversion = (
            acc.electricity_conversion(basis, Decimal(factor), totals.get("electricity_citation", ""))
            if basis is acc.ElectricityBasis.EQUIVALENT and factor
            else self._electricity(period.year)
        )
        return sur.energy_obligation(
            ob.verified_quantity or 0,
            basis,
            retired,
            conversion,
            electricity_consumed_mwh=totals.get("electricity_mwh"),
        )

    async def _retired_gec_mwh(
        self, ses: AsyncSession, year: int, organisation_ids: Sequence[int], before: dt.datetime
    ) -> dict[int, int]:
        """MWh of green certificates produced in `year` that each organisation retired (claimed) before `before`."""
        if not organisation_ids:
            return {}
        rows = (
            await ses.execute(
                select(RegistryAccount.organisation_id, func.sum(RegistryTransaction.quantity))
                .join(RegistryAccount, RegistryAccount.id == RegistryTransaction.from_account_id)
                .join(Instrument, Instrument.id == RegistryTransaction.instrument_id)
                .where(
                    # A retirement is recorded completed when it posts; the status is not filtered in SQL so that
                    # the planner searches by account (the status index would scan every completed transaction).
                    RegistryTransaction.code == "retirement",
                    Instrument.kind == Kind.GEC.value,
                    Instrument.production_month.like(f"{year}-%"),  # type: ignore[union-attr]
                    RegistryTransaction.completed_at < before,  # type: ignore[operator]
                    RegistryAccount.organisation_id.in_(list(organisation_ids)),  # type: ignore[attr-defined]
                )
                .group_by(RegistryAccount.organisation_id)
            )
        ).all()
        return {org: int(total or 0) for org, total in rows}

    # ================================================================== settlement
    async def settle_period_by_code(self, code: str, **kw: Any) -> s.SettlementOut:
        async def find(uow: UnitOfWork) -> int:
            period, _ = await self._period_by_code(uow.session, code)
            return period.id or 0

        return await self.settle_period(await self.db.read(find), **kw)

    async def reference_month(self, code_or_id: str | int) -> tuple[int, int]:
        """(year, month) of the reference price: the month `reference_price_month_offset` before the deadline's."""

        async def work(uow: UnitOfWork) -> tuple[int, int]:
            if isinstance(code_or_id, int):
                period, scheme = await self._period(uow.session, code_or_id)
            else:
                period, scheme = await self._period_by_code(uow.session, code_or_id)
            return _reference_month(self, scheme, period)

        return await self.db.read(work)

    async def settle_period(
        self,
        period_id: int,
        *,
        dry_run: bool = False,
        who: Identity | None = None,
        market_price_fen: int | None = None,
        market_price_source: str = "",
    ) -> s.SettlementOut:
        """Settle every obligation of a period: one batch per transaction, each result stored under its unique
        key, so a second run, a concurrent run or a resumed run never settles one twice. `dry_run` computes and
        reports the same results without writing anything. `who` is the authority calling through the API;
        None is the scheduler."""
        actor = who.actor if who is not None else SYSTEM_ACTOR
        ctx, run = await self.db.read(self._settle_context, period_id, market_price_fen, market_price_source, who)
        if ctx.period.status == "settled":
            return await self._summary(ctx, run, dry_run=dry_run, status="already_settled", settled_now=0, batches=0)
        if dry_run:
            return await self._dry_run(ctx)
        if self.clock.now() < ctx.close:
            # Surrenders are still accepted (server clock); settling now would miss them.
            raise Conflict(
                "invalid-state",
                f"Period {ctx.period.code} accepts surrenders until {ctx.close.isoformat()}; settle after that "
                "(a dry run is possible at any time).",
                field="period_id",
            )
        if run is None:
            run = await self._start_run(ctx, actor)
        batch = self.batch_size or int(self._param("settlement_batch_size"))
        settled_now = batches = conflicts = 0
        # A keyset cursor over obligation ids keeps every batch's query the same size, so the job stays linear
        # in the number of obligations; a resumed run starts from 0 and skips the settled ones once.
        after_id = 0
        while True:
            try:
                n, after_id = await self.db.run(self._settle_batch, ctx, run.id or 0, batch, actor, after_id)
            except IntegrityError:
                # Another settler stored some of these results first; take the batch again without them.
                conflicts += 1
                if conflicts > 20:
                    raise
                continue
            if n == 0:
                break
            settled_now += n
            batches += 1
            fault_point("settlement-after-batch")
        await self.db.run(self._finish_run, ctx, run.id or 0, actor)
        ctx.period.status = "settled"
        return await self._summary(ctx, run, dry_run=False, status="settled", settled_now=settled_now, batches=batches)

    async def _settle_context(
        self, uow: UnitOfWork, period_id: int, market_price: int | None, market_source: str, who: Identity | None
    ) -> tuple[_SettleContext, SettlementRun | None]:
        ses = uow.session
        period, scheme = await self._period(ses, period_id)
        if who is not None:
            self._require_authority(who, scheme)
        run = (
            await ses.execute(select(SettlementRun).where(SettlementRun.period_id == period.id))
        ).scalar_one_or_none()
        deadline, close = self._deadline(scheme, period)
        if run is not None:
            # A resumed (or repeated) settlement keeps the parameters it started with.
            stored = json.loads(run.params)
            return _SettleContext(
                period,
                scheme,
                _params_from_json(stored),
                deadline,
                close,
                run.reference_price_fen,
                run.price_source,
                int(stored.get("k", 0)),
            ), run
        day = business_date(deadline)

        def entry(name: str) -> Any:
            try:
                return self.params.entry(name, day)
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
            year, month = _reference_month(self, scheme, period)
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
                extra={"errors": [_problem(v) for v in exc.violations]},
            ) from exc
        return _SettleContext(period, scheme, params, deadline, close, price, source, k), None

    async def _start_run(self, ctx: _SettleContext, actor: str) -> SettlementRun:
        async def work(uow: UnitOfWork) -> SettlementRun:
            ses = uow.session
            existing = (
                await ses.execute(select(SettlementRun).where(SettlementRun.period_id == ctx.period.id))
            ).scalar_one_or_none()
            if existing is not None:
                return existing
            run = SettlementRun(
                period_id=ctx.period.id or 0,
                status="running",
                params=_json(_params_to_json(ctx.params, ctx.k)),
                reference_price_fen=ctx.price_fen,
                price_source=ctx.price_source[:200],
                actor=actor[:64],
                started_at=self.clock.now(),
            )
            ses.add(run)
            await ses.execute(
                update(CompliancePeriod)
                .where(CompliancePeriod.id == ctx.period.id, CompliancePeriod.status == "open")
                .values(status="settling")
            )
            await ses.flush()
            uow.audit(
                actor,
                "compliance.settlement.start",
                "compliance_period",
                str(ctx.period.id),
                {"period": ctx.period.code, "price_fen": ctx.price_fen, "price_source": ctx.price_source, "k": ctx.k},
            )
            return run

        try:
            return await self.db.run(work)
        except IntegrityError:

            async def again(uow: UnitOfWork) -> SettlementRun:
                return (
                    await uow.session.execute(select(SettlementRun).where(SettlementRun.period_id == ctx.period.id))
                ).scalar_one()

            return await self.db.read(again)

    async def _finish_run(self, uow: UnitOfWork, ctx: _SettleContext, run_id: int, actor: str) -> None:
        ses = uow.session
        now = self.clock.now()
        done = await ses.execute(
            update(SettlementRun)
            .where(SettlementRun.id == run_id, SettlementRun.status == "running")
            .values(status="done", finished_at=now)
        )
        await ses.execute(
            update(CompliancePeriod)
            .where(CompliancePeriod.id == ctx.period.id, CompliancePeriod.status != "settled")
            .values(status="settled", settled_at=now)
        )
        if done.rowcount == 1:
            count = (
                await ses.execute(
                    select(func.count())
                    .select_from(SettlementResultRow)
                    .where(SettlementResultRow.period_id == ctx.period.id)
                )
            ).scalar_one()
            uow.audit(
                actor,
                "compliance.period.settled",
                "compliance_period",
                str(ctx.period.id),
                {"period": ctx.period.code, "results": count},
            )

    async def _settle_batch(
        self, uow: UnitOfWork, ctx: _SettleContext, run_id: int, limit: int, actor: str, after_id: int
    ) -> tuple[int, int]:
        """Settle up to `limit` unsettled obligations with ids above `after_id`; (how many, the last id)."""
        ses = uow.session
        obs = (
            (
                await ses.execute(
                    select(Obligation)
                    .where(
                        Obligation.period_id == ctx.period.id,
                        Obligation.id > after_id,  # type: ignore[operator]
                        # By obligation only (an obligation has one period), so the lookup uses its own index
                        # rather than scanning the period's results.
                        ~exists().where(SettlementResultRow.obligation_id == Obligation.id),
                    )
                    .order_by(Obligation.id)
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
        if not obs:
            return 0, after_id
        reserve = await self._reserve_holdings(ses, ctx) if ctx.scheme.kind == "carbon" else []
        params = ctx.params
        if ctx.scheme.kind == "carbon":
            params = SettlementParams(
                carbon=params.carbon,
                reserve_available=sum(a for _, _, a in reserve),
                not_reported_fine_fen=params.not_reported_fine_fen,
            )
        facts, _, extra = await self._facts(ses, ctx, obs)
        results = settle(facts, params, ctx.deadline)
        now = self.clock.now()
        today = business_date(now)
        due_days = int(self._param("fine_payment_days", today))
        reserve_left = [[inst, acc_, avail] for inst, acc_, avail in reserve]
        result_rows: list[dict[str, Any]] = []
        deduction_rows: list[dict[str, Any]] = []
        audit_items: list[list[Any]] = []
        surrender_target = await self.registry._system_account(ses, "surrender") if reserve else None
        for ob, r in zip(obs, results, strict=True):
            forced_txs = []
            if r.forced_quantity > 0:
                assert surrender_target is not None
                need = r.forced_quantity
                for item in reserve_left:
                    inst, source, avail = item
                    take = min(avail, need)
                    if take <= 0:
                        continue
                    tx = await self.registry.record_and_move(
                        ses,
                        RegistryTransaction(
                            code="forced_surrender",
                            instrument_id=inst.id or 0,
                            from_account_id=source.id,
                            to_account_id=surrender_target.id,
                            quantity=take,
                            initiated_by=0,
                            initiator_organisation_id=source.organisation_id,
                            request_key=f"compliance:forced:{ob.id}:{inst.id}",
                            period=ctx.period.code,
                            details=_json({"enterprise_id": ob.enterprise_id, "obligation_id": ob.id}),
                            created_at=now,
                        ),
                        inst,
                        source,
                        surrender_target,
                        now,
                    )
                    forced_txs.append(tx.id)
                    item[2] = avail - take
                    need -= take
                    if need == 0:
                        break
                assert need == 0, "the reserve given to settle() is what the ledger holds"
            detail = extra.get(ob.id or 0, {})
            if forced_txs:
                detail = {**detail, "forced_transactions": forced_txs}
            # Plain rows for one multi-row INSERT per batch: building ORM objects costs more than the settlement.
            result_rows.append(
                {
                    "period_id": ctx.period.id or 0,
                    "enterprise_id": ob.enterprise_id,
                    "obligation_id": ob.id or 0,
                    "run_id": run_id,
                    "kind": ctx.scheme.kind,
                    "pollutant": ob.pollutant,
                    "city": r.city[:8],
                    "industry": r.industry[:8],
                    "status": r.status.value,
                    "timeliness": r.timeliness.value,
                    "report_late": bool(detail.get("report_late")),
                    "obligation": r.obligation,
                    "surrendered_on_time": r.surrendered_on_time,
                    "surrendered_late": r.surrendered_late,
                    "forced_quantity": r.forced_quantity,
                    "surrendered": r.surrendered,
                    "excess": r.excess,
                    "shortfall_at_deadline": r.shortfall_at_deadline,
                    "shortfall": r.shortfall,
                    "fine_fen": r.fine_fen,
                    "fine_formula": r.fine_formula[:200],
                    "next_allocation_deduction": r.next_allocation_deduction,
                    "reserve_repayment": r.reserve_repayment,
                    "citation": r.citation[:200],
                    "detail": _json(detail),
                    "fine_due_on": today + dt.timedelta(days=due_days) if r.fine_fen > 0 else None,
                    "settled_at": now,
                }
            )
            owed = r.next_allocation_deduction + r.reserve_repayment
            if owed > 0:
                deduction_rows.append(
                    {
                        "scheme_id": ctx.scheme.id or 0,
                        "source_period_id": ctx.period.id or 0,
                        "enterprise_id": ob.enterprise_id,
                        "pollutant": ob.pollutant,
                        "reason": "settlement",
                        "shortfall_quantity": r.next_allocation_deduction,
                        "reserve_quantity": r.reserve_repayment,
                        "quantity": owed,
                        "applied": 0,
                        "created_at": now,
                    }
                )
            audit_items.append([ob.id, ob.enterprise_id, r.status.value, r.shortfall, r.fine_fen, r.forced_quantity])
        # One audit entry per batch, listing every obligation it settled ([obligation, enterprise, status,
        # shortfall, fine_fen, forced]): the same facts as one entry each, without 100,000 chain rows to append.
        uow.audit(
            actor,
            "compliance.settle",
            "compliance_period",
            str(ctx.period.id),
            {"period": ctx.period.code, "results": audit_items},
        )
        await ses.flush()
        await ses.execute(insert(SettlementResultRow.__table__), result_rows)  # type: ignore[attr-defined]
        if deduction_rows:
            await ses.execute(insert(AllocationDeduction.__table__), deduction_rows)  # type: ignore[attr-defined]
        await ses.execute(
            update(SettlementRun)
            .where(SettlementRun.id == run_id)
            .values(settled_count=SettlementRun.settled_count + len(obs), batches=SettlementRun.batches + 1)
        )
        return len(obs), obs[-1].id or 0

    async def _dry_run(self, ctx: _SettleContext) -> s.SettlementOut:
        batch = self.batch_size or int(self._param("settlement_batch_size"))

        async def work(uow: UnitOfWork) -> list[tuple[Obligation, SettlementResult, Enterprise, dict[str, Any]]]:
            ses = uow.session
            out: list[tuple[Obligation, SettlementResult, Enterprise, dict[str, Any]]] = []
            reserve_left = (
                sum(a for _, _, a in await self._reserve_holdings(ses, ctx)) if ctx.scheme.kind == "carbon" else None
            )
            after = 0
            while True:
                obs = (
                    (
                        await ses.execute(
                            select(Obligation)
                            .where(Obligation.period_id == ctx.period.id, Obligation.id > after)  # type: ignore[operator]
                            .order_by(Obligation.id)
                            .limit(batch)
                        )
                    )
                    .scalars()
                    .all()
                )
                if not obs:
                    return out
                params = ctx.params
                if reserve_left is not None:
                    params = SettlementParams(
                        carbon=params.carbon,
                        reserve_available=reserve_left,
                        not_reported_fine_fen=params.not_reported_fine_fen,
                    )
                facts, ents, extra = await self._facts(ses, ctx, obs)
                results = settle(facts, params, ctx.deadline)
                if reserve_left is not None:
                    reserve_left -= sum(r.forced_quantity for r in results)
                out += [
                    (o, r, ents[o.enterprise_id], extra.get(o.id or 0, {})) for o, r in zip(obs, results, strict=True)
                ]
                after = obs[-1].id or 0

        rows = await self.db.read(work)
        results = [r for _, r, _, _ in rows]
        out = [_result_out_from(o, r, e, d, ctx.scheme.kind) for o, r, e, d in rows[:RESULTS_IN_ANSWER_MAX]]
        return s.SettlementOut(
            period_id=ctx.period.id or 0,
            period_code=ctx.period.code,
            dry_run=True,
            status="dry_run",
            reference_price_fen=ctx.price_fen,
            price_source=ctx.price_source,
            multiplier_k=ctx.k,
            obligations=len(rows),
            settled_now=0,
            batches=0,
            compliant=sum(r.status is Status.COMPLIANT for r in results),
            shortfall_count=sum(r.status is Status.SHORTFALL for r in results),
            not_reported=sum(r.status is Status.NOT_REPORTED for r in results),
            total_shortfall=sum(r.shortfall for r in results),
            total_fine_fen=sum(r.fine_fen for r in results),
            total_forced=sum(r.forced_quantity for r in results),
            results=out,
        )

    async def _summary(
        self,
        ctx: _SettleContext,
        run: SettlementRun | None,
        *,
        dry_run: bool,
        status: str,
        settled_now: int,
        batches: int,
    ) -> s.SettlementOut:
        async def work(uow: UnitOfWork) -> tuple[Any, SettlementRun | None]:
            ses = uow.session
            agg = (
                await ses.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(SettlementResultRow.shortfall), 0),
                        func.coalesce(func.sum(SettlementResultRow.fine_fen), 0),
                        func.coalesce(func.sum(SettlementResultRow.forced_quantity), 0),
                    ).where(SettlementResultRow.period_id == ctx.period.id)
                )
            ).one()
            by_status: dict[str, int] = dict(
                (
                    await ses.execute(
                        select(SettlementResultRow.status, func.count())
                        .where(SettlementResultRow.period_id == ctx.period.id)
                        .group_by(SettlementResultRow.status)
                    )
                ).all()
            )
            stored = (
                await ses.execute(select(SettlementRun).where(SettlementRun.period_id == ctx.period.id))
            ).scalar_one_or_none()
            return (agg, by_status), stored

        (agg, by_status), stored = await self.db.read(work)
        run = stored or run
        return s.SettlementOut(
            period_id=ctx.period.id or 0,
            period_code=ctx.period.code,
            dry_run=dry_run,
            status=status,
            reference_price_fen=run.reference_price_fen if run else ctx.price_fen,
            price_source=run.price_source if run else ctx.price_source,
            multiplier_k=ctx.k,
            obligations=int(agg[0]),
            settled_now=settled_now,
            batches=batches,
            compliant=int(by_status.get("A", 0)),
            shortfall_count=int(by_status.get("B", 0)),
            not_reported=int(by_status.get("C", 0)),
            total_shortfall=int(agg[1]),
            total_fine_fen=int(agg[2]),
            total_forced=int(agg[3]),
            results=[],
        )

    async def _reserve_holdings(
        self, ses: AsyncSession, ctx: _SettleContext
    ) -> list[tuple[Instrument, RegistryAccount, int]]:
        """Eligible allowances in the provincial reserve, oldest vintage first, with what is available of each."""
        reserve = await self.registry._system_account(ses, "reserve")
        vintages = json.loads(ctx.period.eligible_vintages)
        rows = (
            await ses.execute(
                select(Instrument, LedgerAccount)
                .join(LedgerAccount, LedgerAccount.asset_id == Instrument.asset_id)
                .where(
                    Instrument.kind == Kind.CEA.value,
                    Instrument.scheme == ctx.scheme.cea_scheme,
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

    async def _facts(
        self, ses: AsyncSession, ctx: _SettleContext, obs: Sequence[Obligation]
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
        kind = ctx.scheme.kind
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
                        Instrument.production_month.like(f"{ctx.period.year}-%"),  # type: ignore[union-attr]
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
                        RegistryTransaction.period == ctx.period.code,
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
                        ComplianceReport.period_id == ctx.period.id,
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
            retired = await self._retired_gec_mwh(ses, ctx.period.year, list(org_to_ent), ctx.close)
        facts = []
        obligation_kind = OBLIGATION_KIND[kind]
        for ob in obs:
            ent = ents[ob.enterprise_id]
            detail: dict[str, Any] = {}
            if late.get(ob.enterprise_id):
                detail["report_late"] = True
            verified = ob.verified_quantity
            if kind == "energy" and verified is not None:
                energy = await self._energy_obligation(
                    ses,
                    ctx.period,
                    ob,
                    ent.organisation_id,
                    ctx.close,
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

    # ================================================================== results, status, fines
    async def list_results(
        self,
        who: Identity,
        period_id: int,
        *,
        status: str | None = None,
        city: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> s.ResultsPage:
        async def work(uow: UnitOfWork) -> s.ResultsPage:
            ses = uow.session
            period, _ = await self._period(ses, period_id)
            q = (
                select(SettlementResultRow, Enterprise)
                .join(Enterprise, Enterprise.id == SettlementResultRow.enterprise_id)
                .where(SettlementResultRow.period_id == period.id)
            )
            if who.role is Role.EMITTER:
                own = await self._own_enterprise(ses, who)
                q = q.where(SettlementResultRow.enterprise_id == own.id)
            if status is not None:
                q = q.where(SettlementResultRow.status == status)
            if city is not None:
                q = q.where(SettlementResultRow.city == city)
            rows = (await ses.execute(q.order_by(SettlementResultRow.id))).all()
            domain = [_domain_result(r) for r, _ in rows]
            return s.ResultsPage(
                period_id=period.id or 0,
                total=len(rows),
                items=[_result_out(r, e) for r, e in rows[offset : offset + limit]],
                totals_by_city=[_group_out(g) for g in totals_by(domain, "city")],
                totals_by_industry=[_group_out(g) for g in totals_by(domain, "industry")],
            )

        return await self.db.read(work)

    async def export_results_csv(self, who: Identity, period_id: int) -> str:
        page = await self.list_results(who, period_id, limit=10**9)
        out = io.StringIO()
        columns = [
            "obligation_id",
            "enterprise_id",
            "uscc",
            "enterprise_name",
            "city",
            "industry",
            "kind",
            "pollutant",
            "status",
            "timeliness",
            "report_late",
            "obligation",
            "surrendered_on_time",
            "surrendered_late",
            "forced_quantity",
            "surrendered",
            "excess",
            "shortfall_at_deadline",
            "shortfall",
            "fine_fen",
            "fine_yuan",
            "fine_formula",
            "next_allocation_deduction",
            "reserve_repayment",
            "fine_due_on",
            "citation",
        ]
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for item in page.items:
            row = []
            for c in columns:
                value = getattr(item, c)
                text = "" if value is None else str(value)
                # A cell starting with = + - @ is a formula to a spreadsheet; prefix it so it stays text.
                if text[:1] in ("=", "+", "-", "@") and c in ("enterprise_name", "fine_formula", "citation"):
                    text = "'" + text
                row.append(text)
            writer.writerow(row)
        return out.getvalue()

    async def report_data(self, who: Identity, period_id: int) -> dict[str, Any]:
        """What the compliance report PDF prints, read in one snapshot (only for a settled period)."""

        async def work(uow: UnitOfWork) -> dict[str, Any]:
            ses = uow.session
            period, scheme = await self._period(ses, period_id)
            if period.status != "settled":
                raise Conflict("invalid-state", f"Period {period.code} is {period.status}; settle it first.")
            run = (await ses.execute(select(SettlementRun).where(SettlementRun.period_id == period.id))).scalar_one()
            rows = (
                await ses.execute(
                    select(SettlementResultRow, Enterprise)
                    .join(Enterprise, Enterprise.id == SettlementResultRow.enterprise_id)
                    .where(SettlementResultRow.period_id == period.id)
                    .order_by(SettlementResultRow.id)
                )
            ).all()
            authority = await ses.get(Organisation, scheme.authority_organisation_id)
            return {
                "period": period,
                "scheme": scheme,
                "run": run,
                "rows": rows,
                "deadline": self._calendar(scheme, period).event(cal.EventKind.SURRENDER_DEADLINE).business_date,
                "authority": authority.name if authority else "",
                "totals_city": totals_by([_domain_result(r) for r, _ in rows], "city"),
                "totals_industry": totals_by([_domain_result(r) for r, _ in rows], "industry"),
            }

        return await self.db.read(work)

    async def compliance_status(self, enterprise_id: int) -> dict[str, Any]:
        """For the incentives and finance contexts: whether the enterprise has an open shortfall (a settled
        shortfall not yet deducted from a later allocation) and its latest settled status per scheme."""

        async def work(uow: UnitOfWork) -> dict[str, Any]:
            return msgspec.to_builtins(await self._status(uow.session, enterprise_id))  # type: ignore[no-any-return]

        return await self.db.read(work)

    async def get_compliance_status(self, who: Identity, enterprise_id: int) -> s.ComplianceStatusOut:
        async def work(uow: UnitOfWork) -> s.ComplianceStatusOut:
            if not await self._may_see_enterprise(uow.session, who, enterprise_id):
                raise NotFound("enterprise")
            return await self._status(uow.session, enterprise_id)

        return await self.db.read(work)

    async def _status(self, ses: AsyncSession, enterprise_id: int) -> s.ComplianceStatusOut:
        ent = await ses.get(Enterprise, enterprise_id)
        if ent is None:
            raise NotFound("enterprise")
        owed_rows = (
            await ses.execute(
                select(AllocationDeduction, ComplianceScheme, CompliancePeriod)
                .join(ComplianceScheme, ComplianceScheme.id == AllocationDeduction.scheme_id)
                .join(CompliancePeriod, CompliancePeriod.id == AllocationDeduction.source_period_id)
                .where(
                    AllocationDeduction.enterprise_id == enterprise_id,
                    AllocationDeduction.applied < AllocationDeduction.quantity,
                )
                .order_by(AllocationDeduction.id)
            )
        ).all()
        owed = [
            {
                "scheme_code": sc.code,
                "kind": sc.kind,
                "period_code": p.code,
                "pollutant": d.pollutant or None,
                "reason": d.reason,
                "owed": d.quantity - d.applied,
                "since": d.created_at.isoformat(),
            }
            for d, sc, p in owed_rows
        ]
        rows = (
            await ses.execute(
                select(SettlementResultRow, CompliancePeriod, ComplianceScheme)
                .join(CompliancePeriod, CompliancePeriod.id == SettlementResultRow.period_id)
                .join(ComplianceScheme, ComplianceScheme.id == CompliancePeriod.scheme_id)
                .where(SettlementResultRow.enterprise_id == enterprise_id)
                .order_by(CompliancePeriod.year, SettlementResultRow.id)
            )
        ).all()
        latest: dict[tuple[int, str], s.SchemeStatusOut] = {}
        for r, p, sc in rows:
            latest[(sc.id or 0, r.pollutant)] = s.SchemeStatusOut(
                scheme_code=sc.code,
                kind=sc.kind,
                period_code=p.code,
                year=p.year,
                pollutant=r.pollutant or None,
                status=r.status,
                timeliness=r.timeliness,
                shortfall=r.shortfall,
                fine_fen=r.fine_fen,
            )
        carbon_owed = sum(int(o["owed"] or 0) for o in owed if o["kind"] == "carbon")
        return s.ComplianceStatusOut(
            enterprise_id=enterprise_id,
            open_shortfall=bool(owed) or any(v.status == "B" for v in latest.values()),
            carbon_open_shortfall_t=carbon_owed,
            owed=owed,
            latest=list(latest.values()),
        )

    async def list_fines(self, period_id: int | None = None) -> list[s.FineOut]:
        """For the finance context: every settled fine (fen), with its period, formula, citation and due date."""

        async def work(uow: UnitOfWork) -> list[s.FineOut]:
            q = (
                select(SettlementResultRow, Enterprise, CompliancePeriod, ComplianceScheme)
                .join(Enterprise, Enterprise.id == SettlementResultRow.enterprise_id)
                .join(CompliancePeriod, CompliancePeriod.id == SettlementResultRow.period_id)
                .join(ComplianceScheme, ComplianceScheme.id == CompliancePeriod.scheme_id)
                .where(SettlementResultRow.fine_fen > 0)
            )
            if period_id is not None:
                q = q.where(SettlementResultRow.period_id == period_id)
            rows = (await uow.session.execute(q.order_by(SettlementResultRow.id))).all()
            return [
                s.FineOut(
                    enterprise_id=e.id or 0,
                    uscc=e.uscc,
                    enterprise_name=e.name,
                    period_id=p.id or 0,
                    period_code=p.code,
                    scheme_code=sc.code,
                    kind=sc.kind,
                    obligation_id=r.obligation_id,
                    shortfall_at_deadline=r.shortfall_at_deadline,
                    fine_fen=r.fine_fen,
                    fine_formula=r.fine_formula,
                    citation=r.citation,
                    settled_at=r.settled_at,
                    due_on=r.fine_due_on,
                )
                for r, e, p, sc in rows
            ]

        return await self.db.read(work)

    async def list_notices(self, who: Identity, period_id: int) -> list[s.NoticeOut]:
        async def work(uow: UnitOfWork) -> list[s.NoticeOut]:
            ses = uow.session
            await self._period(ses, period_id)
            q = select(ComplianceNotice).where(ComplianceNotice.period_id == period_id)
            if who.role is Role.EMITTER:
                own = await self._own_enterprise(ses, who)
                q = q.where(ComplianceNotice.enterprise_id == own.id)
            rows = (await ses.execute(q.order_by(ComplianceNotice.id).limit(10_000))).scalars().all()
            return [
                s.NoticeOut(
                    id=n.id or 0,
                    period_id=n.period_id,
                    enterprise_id=n.enterprise_id,
                    kind=n.kind,
                    message=n.message,
                    created_at=n.created_at,
                )
                for n in rows
            ]

        return await self.db.read(work)

    # ================================================================== calendar jobs
    async def scheduled_events(self) -> list[ScheduledEvent]:
        """Every calendar event of every unsettled period that a job handles, for the scheduler's triggers and
        its catch-up of missed slots. Keys: the period code (allocation events: `<code>/<event>`)."""

        async def work(uow: UnitOfWork) -> list[ScheduledEvent]:
            rows = (
                await uow.session.execute(
                    select(CompliancePeriod, ComplianceScheme)
                    .join(ComplianceScheme, ComplianceScheme.id == CompliancePeriod.scheme_id)
                    .where(CompliancePeriod.status != "settled")
                    .order_by(CompliancePeriod.id)
                )
            ).all()
            out = []
            for period, scheme in rows:
                calendar = self._calendar(scheme, period)
                days = int(self._param("report_reminder_days_before", period.created_at.date()))
                for e in calendar.events:
                    job = EVENT_JOBS.get(e.kind)
                    if job is None:
                        continue
                    key = f"{period.code}/{e.kind.value}" if job == "allocation" else period.code
                    at = e.fires_at - dt.timedelta(days=days) if e.kind is cal.EventKind.REPORT_DUE else e.fires_at
                    out.append(ScheduledEvent(job, key, at, e.kind.value, period.id or 0))
            return out

        return await self.db.read(work)

    async def send_report_reminders(self, period_code: str) -> dict[str, Any]:
        """The `report_reminders` job: one notice to each obligated enterprise that has not reported."""
        return await self._notices(period_code, "report_reminder", reported_ok=True)

    async def verification_deadline(self, period_code: str) -> dict[str, Any]:
        """The `verification_deadline` job: one notice per obligation still without a verified figure."""
        return await self._notices(period_code, "verification_overdue", reported_ok=False)

    async def _notices(self, period_code: str, kind: str, *, reported_ok: bool) -> dict[str, Any]:
        async def work(uow: UnitOfWork) -> dict[str, Any]:
            ses = uow.session
            period, scheme = await self._period_by_code(ses, period_code)
            calendar = self._calendar(scheme, period)
            if reported_ok:
                q = select(Obligation.enterprise_id).where(
                    Obligation.period_id == period.id,
                    ~exists().where(
                        and_(
                            ComplianceReport.period_id == period.id,
                            ComplianceReport.enterprise_id == Obligation.enterprise_id,
                        )
                    ),
                )
                event = (
                    calendar.event(cal.EventKind.REPORT_DUE)
                    if cal.EventKind.REPORT_DUE in {e.kind for e in calendar.events}
                    else None
                )
                due = event.business_date.isoformat() if event else ""
                message = f"{period.code}：请于 {due} 前报送排放（能耗/排污）报告。"
            else:
                q = select(Obligation.enterprise_id).where(
                    Obligation.period_id == period.id, Obligation.verified_quantity.is_(None)
                )  # type: ignore[union-attr]
                message = f"{period.code}：核查期限已过，尚无经核查的数据；结算时将按未报告（C）处理。"
            targets = sorted(set((await ses.execute(q)).scalars()))
            have = set(
                (
                    await ses.execute(
                        select(ComplianceNotice.enterprise_id).where(
                            ComplianceNotice.period_id == period.id, ComplianceNotice.kind == kind
                        )
                    )
                ).scalars()
            )
            now = self.clock.now()
            new = [e for e in targets if e not in have]
            for ent_id in new:
                ses.add(
                    ComplianceNotice(
                        period_id=period.id or 0, enterprise_id=ent_id, kind=kind, message=message, created_at=now
                    )
                )
            if new:
                uow.audit(
                    SYSTEM_ACTOR, f"compliance.notice.{kind}", "compliance_period", str(period.id), {"enterprises": new}
                )
            return {"period": period_code, "notices": len(new)}

        return await self.db.run(work)

    # ================================================================== helpers (inside a unit of work)
    def _period_out(self, scheme: ComplianceScheme, period: CompliancePeriod) -> s.PeriodOut:
        deadline = None
        due_before = None
        try:
            event = self._calendar(scheme, period).event(cal.EventKind.SURRENDER_DEADLINE)
            deadline, due_before = event.business_date, event.due_before
        except (KeyError, ValueError):
            pass
        k = period.multiplier_k or 0
        if not k and scheme.kind == "carbon" and deadline is not None:
            try:
                k = int(self._param("carbon_penalty_multiplier_k", deadline))
            except KeyError:
                k = 0  # No default k applies on that day; settling will say so.
        return s.PeriodOut(
            id=period.id or 0,
            scheme_id=scheme.id or 0,
            scheme_code=scheme.code,
            kind=scheme.kind,
            code=period.code,
            year=period.year,
            status=period.status,
            eligible_vintages=json.loads(period.eligible_vintages),
            eligible_offset_vintages=(
                json.loads(period.eligible_offset_vintages) if period.eligible_offset_vintages is not None else None
            ),
            offset_cap_bps=period.offset_cap_bps,
            late_until=period.late_until,
            multiplier_k=k,
            region=period.region,
            reference_price_fen=period.reference_price_fen,
            surrender_deadline=deadline,
            surrender_due_before=due_before,
            created_at=period.created_at,
            settled_at=period.settled_at,
        )

    async def _period(self, ses: AsyncSession, period_id: int) -> tuple[CompliancePeriod, ComplianceScheme]:
        period = await ses.get(CompliancePeriod, period_id)
        if period is None:
            raise NotFound("compliance period")
        scheme = await ses.get(ComplianceScheme, period.scheme_id)
        assert scheme is not None
        return period, scheme

    async def _period_by_code(self, ses: AsyncSession, code: str) -> tuple[CompliancePeriod, ComplianceScheme]:
        period = (await ses.execute(select(CompliancePeriod).where(CompliancePeriod.code == code))).scalar_one_or_none()
        if period is None:
            raise NotFound("compliance period", field="period_key")
        return await self._period(ses, period.id or 0)

    @staticmethod
    def _require_authority(who: Identity, scheme: ComplianceScheme) -> None:
        if who.role.value != scheme.authority_role or who.organisation_id != scheme.authority_organisation_id:
            raise Forbidden(f"Only the authority running scheme {scheme.code} ({scheme.authority_role}) may do this.")

    @staticmethod
    def _require_open(period: CompliancePeriod) -> None:
        if period.status != "open":
            raise Conflict(
                "period-closed",
                f"Period {period.code} is {period.status}; it takes no more changes.",
                field="period_id",
            )

    @staticmethod
    def _require_reporting(scheme: ComplianceScheme) -> None:
        if scheme.kind == "green_power":
            raise InvalidInput("period_id", "Green-power quotas are proven by retired certificates, not reports.")

    @staticmethod
    def _check_instrument(scheme: ComplianceScheme, inst: Instrument) -> None:
        want = ALLOCATION_KIND[scheme.kind]
        if inst.kind != want.value or (want is Kind.CEA and inst.scheme != scheme.cea_scheme):
            raise InvalidInput(
                "instrument_id",
                f"Scheme {scheme.code} allocates {want.value}"
                + (f" of the {scheme.cea_scheme} scheme" if want is Kind.CEA else "")
                + ".",
            )

    async def _own_enterprise(self, ses: AsyncSession, who: Identity) -> Enterprise:
        ent = (
            await ses.execute(select(Enterprise).where(Enterprise.organisation_id == who.organisation_id))
        ).scalar_one_or_none()
        if ent is None:
            raise NotFound("enterprise")
        return ent

    async def _reporting_enterprise(
        self, ses: AsyncSession, who: Identity, scheme: ComplianceScheme, enterprise_id: int | None
    ) -> Enterprise:
        if who.role is Role.EMITTER:
            own = await self._own_enterprise(ses, who)
            if enterprise_id is not None and enterprise_id != own.id:
                raise NotFound("enterprise", field="enterprise_id")
            return own
        self._require_authority(who, scheme)
        if enterprise_id is None:
            raise InvalidInput("enterprise_id", "Name the enterprise whose report this is.")
        ent = await ses.get(Enterprise, enterprise_id)
        if ent is None:
            raise NotFound("enterprise", field="enterprise_id")
        return ent

    async def _may_see_enterprise(self, ses: AsyncSession, who: Identity, enterprise_id: int) -> bool:
        if who.reads_all() or who.role in (Role.VERIFIER, Role.BANK, Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER):
            return True
        ent = await ses.get(Enterprise, enterprise_id)
        return ent is not None and ent.organisation_id == who.organisation_id

    async def _obligation(
        self, ses: AsyncSession, period_id: int, enterprise_id: int, pollutant: str
    ) -> Obligation | None:
        return (
            await ses.execute(
                select(Obligation).where(
                    Obligation.period_id == period_id,
                    Obligation.enterprise_id == enterprise_id,
                    Obligation.pollutant == pollutant,
                )
            )
        ).scalar_one_or_none()

    async def _ensure_obligation(
        self, ses: AsyncSession, period: CompliancePeriod, enterprise_id: int, pollutant: str, now: dt.datetime
    ) -> Obligation:
        ob = await self._obligation(ses, period.id or 0, enterprise_id, pollutant)
        if ob is None:
            ob = Obligation(
                period_id=period.id or 0,
                enterprise_id=enterprise_id,
                pollutant=pollutant,
                created_at=now,
                updated_at=now,
            )
            ses.add(ob)
            await ses.flush()
        return ob

    async def _allocation_account(self, ses: AsyncSession, organisation_id: int) -> RegistryAccount:
        account = (
            (
                await ses.execute(
                    select(RegistryAccount)
                    .where(RegistryAccount.organisation_id == organisation_id, RegistryAccount.type == "allocation")
                    .order_by(RegistryAccount.id)
                )
            )
            .scalars()
            .first()
        )
        if account is None:
            raise AppError(
                "unknown-account",
                "Open an allocation account first (openAccount with type 'allocation').",
                field="instrument_id",
            )
        return account

    async def _holding_account(
        self, ses: AsyncSession, ent: Enterprise, account_id: int | None
    ) -> RegistryAccount | None:
        q = select(RegistryAccount).where(
            RegistryAccount.organisation_id == ent.organisation_id, RegistryAccount.type == "holding"
        )
        if account_id is not None:
            q = q.where(RegistryAccount.id == account_id)
        return (await ses.execute(q.order_by(RegistryAccount.id))).scalars().first()


# ---------------------------------------------------------------------------------------------------- helpers


def _reference_month(service: ComplianceService, scheme: ComplianceScheme, period: CompliancePeriod) -> tuple[int, int]:
    day = service._calendar(scheme, period).event(cal.EventKind.SURRENDER_DEADLINE).business_date
    index = day.year * 12 + day.month - 1 - int(service._param("reference_price_month_offset", day))
    return index // 12, index % 12 + 1


def _template_to_dict(t: cal.CalendarTemplate) -> dict[str, Any]:
    events = []
    for r in t.rules:
        e: dict[str, Any] = {"kind": r.kind.value}
        if isinstance(r.when, cal.FixedDate):
            e.update(year_offset=r.when.year_offset, month=r.when.month, day=r.when.day)
        else:
            e.update(after=r.when.event.value, days=r.when.days)
        e.update(is_deadline=r.is_deadline, shift=r.shift.value, description=r.description, citation=r.citation)
        events.append(e)
    return {"scheme": t.scheme, "note": t.note, "events": events}


def _scheme_out(r: ComplianceScheme) -> s.SchemeOut:
    return s.SchemeOut(
        id=r.id or 0,
        code=r.code,
        name=r.name,
        kind=r.kind,
        cea_scheme=r.cea_scheme,
        authority_role=r.authority_role,
        calendar=json.loads(r.template),
        created_at=r.created_at,
    )


def _obligation_out(o: Obligation) -> s.ObligationOut:
    return s.ObligationOut(
        id=o.id or 0,
        period_id=o.period_id,
        enterprise_id=o.enterprise_id,
        pollutant=o.pollutant or None,
        verified_quantity=o.verified_quantity,
        forced_surrender_ordered=o.forced_surrender_ordered,
    )


def _line_dict(line: s.ReportLine) -> dict[str, Any]:
    out: dict[str, Any] = {"quantity": line.quantity, "unit": line.unit}
    for k in ("line_type", "item", "pollutant"):
        v = getattr(line, k)
        if v is not None:
            out[k] = v
    return out


def _row_dict(kind: str, r: reports_import.ReportRow) -> dict[str, Any]:
    out: dict[str, Any] = {"quantity": str(r.quantity), "unit": r.unit, "row": r.row}
    if kind == "carbon":
        out.update(line_type=r.line_type, item=r.item)
    elif kind == "energy":
        out["item"] = r.item
    else:
        out["pollutant"] = r.item
    return out


def _totals(kind: str, result: Any) -> dict[str, Any]:
    if kind == "carbon":
        return {
            "tco2e": result.total_tco2e,
            "exact": fraction_text(result.exact_total, 6),
            "factors_version": result.factors_version,
            "explanation": {
                "rounding_rule": result.rounding_rule,
                "lines": [
                    {
                        "line_type": x.line_type.value,
                        "item": x.item,
                        "quantity": fraction_text(x.quantity, 4),
                        "unit": x.unit,
                        "formula": x.formula,
                        "factors": dict(x.factors),
                        "tco2e": x.tco2e_text,
                    }
                    for x in result.lines
                ],
            },
        }
    if kind == "energy":
        kwh = sum((x.quantity for x in result.lines if x.item == acc.ELECTRICITY), Fraction(0))
        return {
            "kgce": result.total_kgce,
            "exact": fraction_text(result.exact_total, 6),
            "electricity_basis": result.electricity.basis.value,
            "electricity_kgce_per_kwh": str(result.electricity.kgce_per_kwh),
            "electricity_citation": result.electricity.citation,
            "electricity_mwh": int(kwh // 1000),
            "explanation": {
                "rounding_rule": result.rounding_rule,
                "lines": [
                    {
                        "item": x.item,
                        "quantity": fraction_text(x.quantity, 4),
                        "unit": x.unit,
                        "kgce_per_unit": x.kgce_per_unit,
                        "kgce": fraction_text(x.kgce_exact, 6),
                    }
                    for x in result.lines
                ],
            },
        }
    return {
        "kg": dict(result.kg_by_pollutant),
        "explanation": {
            "rounding_rule": result.rounding_rule,
            "exact_kg": {p: fraction_text(v, 6) for p, v in result.exact_kg_by_pollutant},
        },
    }


def _figures(kind: str, totals: dict[str, Any]) -> dict[str, int]:
    """The obligation figures of a report version, per pollutant ('' for carbon and energy)."""
    if kind == "carbon":
        return {"": int(totals["tco2e"])}
    if kind == "energy":
        return {"": int(totals["kgce"])}
    return {p: int(v) for p, v in totals["kg"].items()}


def _raise_rows(errors: Iterable[reports_import.RowError]) -> None:
    errors = list(errors)
    items: list[dict[str, Any]] = [
        {"row": e.row, "column": e.column, "code": e.code, "detail": e.message, "value": e.value} for e in errors
    ]
    rows = sorted({e.row for e in errors})
    raise AppError(
        "report-rows-invalid",
        f"{len(items)} problem(s) in row(s) {', '.join(map(str, rows[:30]))}{' …' if len(rows) > 30 else ''}; "
        "nothing was imported. Fix every row listed in `errors` and upload the file again.",
        field="file",
        extra={"errors": items},
    )


def _status_failures(acc_: RegistryAccount) -> list[str]:
    if acc_.status in ("closed", "closure_pending"):
        return ["account-closed"]
    if acc_.status == "blocked":
        return ["account-blocked"]
    return []


def _params_to_json(p: SettlementParams, k: int) -> dict[str, Any]:
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


def _params_from_json(d: dict[str, Any]) -> SettlementParams:
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


def _domain_result(r: SettlementResultRow) -> SettlementResult:
    return SettlementResult(
        obligation_id=str(r.obligation_id),
        enterprise_id=str(r.enterprise_id),
        city=r.city,
        industry=r.industry,
        kind=OBLIGATION_KIND[r.kind],
        pollutant=r.pollutant or None,
        status=Status(r.status),
        timeliness=Timeliness(r.timeliness),
        obligation=r.obligation,
        surrendered_on_time=r.surrendered_on_time,
        surrendered_late=r.surrendered_late,
        forced_quantity=r.forced_quantity,
        surrendered=r.surrendered,
        excess=r.excess,
        shortfall_at_deadline=r.shortfall_at_deadline,
        shortfall=r.shortfall,
        fine_fen=r.fine_fen,
        fine_formula=r.fine_formula,
        next_allocation_deduction=r.next_allocation_deduction,
        reserve_repayment=r.reserve_repayment,
        citation=r.citation,
    )


def _result_out(r: SettlementResultRow, e: Enterprise) -> s.SettlementResultOut:
    return s.SettlementResultOut(
        obligation_id=r.obligation_id,
        enterprise_id=r.enterprise_id,
        enterprise_name=e.name,
        uscc=e.uscc,
        city=r.city,
        industry=r.industry,
        kind=r.kind,
        pollutant=r.pollutant or None,
        status=r.status,
        timeliness=r.timeliness,
        report_late=r.report_late,
        obligation=r.obligation,
        surrendered_on_time=r.surrendered_on_time,
        surrendered_late=r.surrendered_late,
        forced_quantity=r.forced_quantity,
        surrendered=r.surrendered,
        excess=r.excess,
        shortfall_at_deadline=r.shortfall_at_deadline,
        shortfall=r.shortfall,
        fine_fen=r.fine_fen,
        fine_yuan=format_fen(r.fine_fen),
        fine_formula=r.fine_formula,
        next_allocation_deduction=r.next_allocation_deduction,
        reserve_repayment=r.reserve_repayment,
        citation=r.citation,
        detail=json.loads(r.detail),
        fine_due_on=r.fine_due_on,
    )


def _result_out_from(
    o: Obligation, r: SettlementResult, e: Enterprise, detail: dict[str, Any], kind: str
) -> s.SettlementResultOut:
    return s.SettlementResultOut(
        obligation_id=o.id or 0,
        enterprise_id=o.enterprise_id,
        enterprise_name=e.name,
        uscc=e.uscc,
        city=r.city,
        industry=r.industry,
        kind=kind,
        pollutant=o.pollutant or None,
        status=r.status.value,
        timeliness=r.timeliness.value,
        report_late=bool(detail.get("report_late")),
        obligation=r.obligation,
        surrendered_on_time=r.surrendered_on_time,
        surrendered_late=r.surrendered_late,
        forced_quantity=r.forced_quantity,
        surrendered=r.surrendered,
        excess=r.excess,
        shortfall_at_deadline=r.shortfall_at_deadline,
        shortfall=r.shortfall,
        fine_fen=r.fine_fen,
        fine_yuan=format_fen(r.fine_fen),
        fine_formula=r.fine_formula,
        next_allocation_deduction=r.next_allocation_deduction,
        reserve_repayment=r.reserve_repayment,
        citation=r.citation,
        detail=detail,
        fine_due_on=None,
    )


def _group_out(g: Any) -> s.GroupTotalOut:
    return s.GroupTotalOut(
        dimension=g.dimension,
        key=g.key,
        kind=g.kind.value,
        pollutant=g.pollutant,
        enterprises=g.enterprises,
        compliant=g.compliant,
        shortfall_count=g.shortfall_count,
        not_reported=g.not_reported,
        late=g.late,
        obligation=g.obligation,
        surrendered=g.surrendered,
        shortfall=g.shortfall,
        forced=g.forced,
        fine_fen=g.fine_fen,
        next_allocation_deduction=g.next_allocation_deduction,
    )


__all__ = ["ComplianceService", "ScheduledEvent", "fault_point", "market_price_fen"]
