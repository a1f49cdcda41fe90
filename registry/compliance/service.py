"""The compliance context's published interface: `ComplianceService`, the facade that the composition root builds
once per process and that the scheduler's jobs, the incentives and finance contexts and the end-to-end tests
call. It holds the context (`registry.compliance.context.ComplianceContext`) and delegates each method to its use
case; the controllers in `registry.compliance.api` call the use-case modules directly:

    schemes.py             compliance schemes and their calendar templates
    periods.py             periods, their notice dates and correction window, the reference price and its month
    calendars.py           a period's dated events and every event the scheduler fires
    obligations.py         obligated enterprises and green-power quotas, forced surrenders, funding the reserve
    reports.py             report submission (JSON lines, CSV or Excel) and its versions
    figures.py             the national accounting method over report lines
    verification.py        verification (or correction) of a report; the verified figure is the obligation
    allocation.py          allocation, pre-allocation and true-up tables and their four-eyes approval
    allocation_posting.py  posting approved tables through the ledger when their date comes
    surrender.py           the surrender rules (the registry's surrender hook) and the energy obligation
    settlement_inputs.py   the reference price, penalties and facts a settlement runs with
    settlement.py          settlement at the deadline, batch by batch, and its dry run
    results.py             settled results, compliance status and fines for the other contexts
    exports.py             the results CSV and what the compliance report PDF prints
    notices.py             report reminders and verification-overdue notices
    queries.py, _common.py look-ups, guards, parameters and calendars the use cases share

Guarantees:
- One public use-case function is one transaction (`Database.run`), except `settle_period`, which commits one
  batch of obligations per transaction so that a crash loses at most one batch and a rerun resumes where it
  stopped.
- Every movement of units goes through the registry's ledger path (`RegistryService._move` with a registry
  transaction whose `request_key` is unique): allocations, true-up reversals, forced surrenders and reserve
  funding happen exactly once, however often they are retried.
- Settlement results are unique per (period, enterprise, obligation); a second settlement changes nothing.
  The price, k and penalties are fixed when the real settlement starts, so a resumed run uses the same ones.
- The rules themselves are the pure functions of `registry.domain` (accounting, allocation, surrender,
  settlement, calendar); the use-case modules load facts, call them and store what they decide.
- Surrender checks run inside the registry's surrender transaction through `RegistryService.surrender_policy`,
  judged by the server clock (a client's timestamp is never read).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from core.db import Database
from core.identity import Identity
from core.parameters import DatedParameters
from registry.compliance import (
    allocation,
    allocation_posting,
    calendars,
    notices,
    obligations,
    periods,
    reminders,
    reports,
    results,
    schemes,
    settlement,
    surrender,
    verification,
)
from registry.compliance import schemas as s
from registry.compliance.calendars import ScheduledEvent
from registry.compliance.context import PARAMS, ComplianceContext
from registry.compliance.settlement import FAULT_ENV, fault_point
from registry.compliance.settlement_inputs import market_price_fen
from registry.models import Instrument, RegistryAccount
from registry.service import RegistryService

__all__ = [
    "FAULT_ENV",
    "PARAMS",
    "ComplianceContext",
    "ComplianceService",
    "ScheduledEvent",
    "fault_point",
    "market_price_fen",
]


class ComplianceService:
    """What the other contexts, the scheduler's jobs and the end-to-end tests call. `ctx` is what the use cases
    take; building the service installs the surrender rules as the registry's surrender policy."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        registry: RegistryService,
        params: DatedParameters = PARAMS,
        batch_size: int | None = None,
    ) -> None:
        self.ctx = ComplianceContext(db, clock, registry, params, batch_size)
        registry.surrender_policy = self._check_surrender

    @property
    def batch_size(self) -> int | None:
        """The settlement's batch size (None: the dated `settlement_batch_size`); GREENRIGHTS_SETTLEMENT_BATCH_SIZE,
        tests and the bench set it."""
        return self.ctx.batch_size

    @batch_size.setter
    def batch_size(self, value: int | None) -> None:
        self.ctx.batch_size = value

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
        await surrender.check_surrender(self.ctx, ses, who, account, instrument, quantity, period, now)

    # ------------------------------------------------------------------ schemes, periods, obligations
    async def create_scheme(self, who: Identity, req: s.CreateScheme) -> s.SchemeOut:
        return await schemes.create_scheme(self.ctx, who, req)

    async def create_period(self, who: Identity, req: s.CreatePeriod) -> s.PeriodOut:
        return await periods.create_period(self.ctx, who, req)

    async def set_reference_price(self, who: Identity, period_id: int, req: s.SetReferencePrice) -> s.PeriodOut:
        return await periods.set_reference_price(self.ctx, who, period_id, req)

    async def reference_month(self, code_or_id: str | int) -> tuple[int, int]:
        return await periods.reference_month(self.ctx, code_or_id)

    async def register_obligations(
        self, who: Identity, period_id: int, req: s.RegisterObligations
    ) -> list[s.ObligationOut]:
        return await obligations.register_obligations(self.ctx, who, period_id, req)

    async def order_forced_surrender(
        self, who: Identity, period_id: int, req: s.OrderForcedSurrender
    ) -> s.ObligationOut:
        return await obligations.order_forced_surrender(self.ctx, who, period_id, req)

    async def fund_reserve(self, who: Identity, req: s.FundReserve, request_key: str | None) -> dict[str, Any]:
        return await obligations.fund_reserve(self.ctx, who, req, request_key)

    # ------------------------------------------------------------------ reports and allocation tables
    async def submit_report(self, who: Identity, period_id: int, req: s.SubmitReport) -> s.ReportOut:
        return await reports.submit_report(self.ctx, who, period_id, req)

    async def verify_report(self, who: Identity, report_id: int, req: s.VerifyReport) -> s.ReportOut:
        return await verification.verify_report(self.ctx, who, report_id, req)

    async def upload_allocation_table(
        self, who: Identity, period_id: int, req: s.UploadAllocationTable, request_key: str | None
    ) -> s.AllocationTableOut:
        return await allocation.upload_allocation_table(self.ctx, who, period_id, req, request_key)

    async def approve_allocation_table(self, who: Identity, table_id: int, req: s.Decision) -> s.AllocationTableOut:
        return await allocation.approve_allocation_table(self.ctx, who, table_id, req)

    # ------------------------------------------------------------------ settlement and results
    async def settle_period(
        self,
        period_id: int,
        *,
        dry_run: bool = False,
        who: Identity | None = None,
        market_price_fen: int | None = None,
        market_price_source: str = "",
    ) -> s.SettlementOut:
        return await settlement.settle_period(
            self.ctx,
            period_id,
            dry_run=dry_run,
            who=who,
            market_price_fen=market_price_fen,
            market_price_source=market_price_source,
        )

    async def settle_period_by_code(self, code: str, **kw: Any) -> s.SettlementOut:
        return await settlement.settle_period_by_code(self.ctx, code, **kw)

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
        return await results.list_results(
            self.ctx, who, period_id, status=status, city=city, limit=limit, offset=offset
        )

    async def compliance_status(self, enterprise_id: int, as_of: dt.date | None = None) -> dict[str, Any]:
        """Today's compliance status, or with `as_of` the carbon open shortfall the registry showed that day."""
        return await results.compliance_status(self.ctx, enterprise_id, as_of=as_of)

    async def list_fines(self, period_id: int | None = None) -> list[s.FineOut]:
        return await results.list_fines(self.ctx, period_id)

    # ------------------------------------------------------------------ calendar jobs
    async def scheduled_events(self) -> list[ScheduledEvent]:
        return await calendars.scheduled_events(self.ctx)

    async def post_due_allocations(self, period_code: str, event: str) -> dict[str, Any]:
        return await allocation_posting.post_due_allocations(self.ctx, period_code, event)

    async def send_report_reminders(self, period_code: str) -> dict[str, Any]:
        return await notices.send_report_reminders(self.ctx, period_code)

    async def deadline_reminders(self, today: dt.date) -> dict[str, Any]:
        return await reminders.deadline_reminders(self.ctx, today)

    async def verification_deadline(self, period_code: str) -> dict[str, Any]:
        return await notices.verification_deadline(self.ctx, period_code)
