"""HTTP controllers of the compliance cycle: thin, guarded, each route with its operation id, tags and problems.

Every POST is idempotent (an `Idempotency-Key` header is required): value-moving ones because the house
rule says so, the others so that a retried upload or verification never makes a second version.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromQuery, JSONBody, Parameter

from core.csvfile import csv_response
from core.errors import AppError, InvalidInput
from core.http import IDEMPOTENT, READ_PROBLEMS, WRITE_PROBLEMS, allow, problem_responses, request_key
from core.identity import Identity, Role
from core.schema import MAX_ID, IdPath
from registry.compliance import (
    allocation,
    calendars,
    exports,
    notices,
    obligations,
    periods,
    reports,
    results,
    schemes,
    settlement,
    verification,
)
from registry.compliance import schemas as s
from registry.compliance.context import ComplianceContext
from registry.compliance.settlement_inputs import market_price_fen

R = Role
AUTHORITIES = (R.REGULATOR, R.ENERGY_AUTHORITY)
READERS = (R.REGULATOR, R.ENERGY_AUTHORITY, R.AUDITOR, R.EMITTER, R.VERIFIER)
RESULT_READERS = (R.REGULATOR, R.ENERGY_AUTHORITY, R.AUDITOR, R.EMITTER)
FILES = {"idempotent": True, "accepts_files": True}
TAGS = ["compliance"]


async def run_settlement(state: Any, who: Identity, period_id: int, *, dry_run: bool) -> s.SettlementOut:
    """Settle a period (or dry-run it) with the market's reference price for carbon periods: what `settlePeriod`
    and the regulator's settlement page both run."""
    context: ComplianceContext = state.compliance.ctx
    period = await periods.get_period(context, who, period_id)
    price = None
    source = ""
    if period.kind == "carbon":
        year, month = await periods.reference_month(context, period_id)
        price = await market_price_fen(getattr(state, "trading", None), year, month)
        source = f"trading: CEA monthly average {year}-{month:02d}"
    return await settlement.settle_period(
        context, period_id, dry_run=dry_run, who=who, market_price_fen=price, market_price_source=source
    )


def ctx(request: Request[Any, Any, Any]) -> ComplianceContext:
    """The compliance context of the process (held by the `ComplianceService` the composition root built)."""
    return request.app.state.compliance.ctx  # type: ignore[no-any-return]


class SchemeController(Controller):
    path = "/api/v1/compliance"
    tags = TAGS

    @post(
        "/schemes",
        operation_id="createScheme",
        guards=[allow(*AUTHORITIES)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Create a compliance scheme (carbon, energy-use, discharge or green power) with its calendar",
    )
    async def create_scheme(self, request: Request[Identity, Any, Any], data: JSONBody[s.CreateScheme]) -> s.SchemeOut:
        return await schemes.create_scheme(ctx(request), request.user, data)

    @get("/schemes", operation_id="listSchemes", guards=[allow(*READERS)], responses=READ_PROBLEMS)
    async def list_schemes(self, request: Request[Identity, Any, Any]) -> list[s.SchemeOut]:
        return await schemes.list_schemes(ctx(request), request.user)

    @post(
        "/periods",
        operation_id="createPeriod",
        guards=[allow(*AUTHORITIES)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Open a compliance period of a scheme, with the dates of the authority's notice",
    )
    async def create_period(self, request: Request[Identity, Any, Any], data: JSONBody[s.CreatePeriod]) -> s.PeriodOut:
        return await periods.create_period(ctx(request), request.user, data)

    @get("/periods", operation_id="listPeriods", guards=[allow(*READERS)], responses=READ_PROBLEMS)
    async def list_periods(self, request: Request[Identity, Any, Any]) -> list[s.PeriodOut]:
        return await periods.list_periods(ctx(request), request.user)

    @get("/periods/{period_id:int}", operation_id="getPeriod", guards=[allow(*READERS)], responses=READ_PROBLEMS)
    async def get_period(self, request: Request[Identity, Any, Any], period_id: IdPath) -> s.PeriodOut:
        return await periods.get_period(ctx(request), request.user, period_id)

    @get(
        "/periods/{period_id:int}/calendar",
        operation_id="getPeriodCalendar",
        guards=[allow(*READERS)],
        responses=READ_PROBLEMS,
        summary="The period's dated events (Asia/Shanghai, Chinese working days) and the job each one fires",
    )
    async def calendar(self, request: Request[Identity, Any, Any], period_id: IdPath) -> s.CalendarOut:
        return await calendars.period_calendar(ctx(request), request.user, period_id)

    @post(
        "/periods/{period_id:int}/calendar",
        operation_id="updatePeriodCalendar",
        guards=[allow(*AUTHORITIES)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Apply the authority's notice: new event dates or a correction window for an open period",
    )
    async def update_dates(
        self, request: Request[Identity, Any, Any], period_id: IdPath, data: JSONBody[s.UpdatePeriodDates]
    ) -> s.PeriodOut:
        return await periods.update_period_dates(ctx(request), request.user, period_id, data)

    @post(
        "/periods/{period_id:int}/reference-price",
        operation_id="setReferencePrice",
        guards=[allow(R.REGULATOR)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Enter the average CEA price used when the market has none for the reference month",
    )
    async def reference_price(
        self, request: Request[Identity, Any, Any], period_id: IdPath, data: JSONBody[s.SetReferencePrice]
    ) -> s.PeriodOut:
        return await periods.set_reference_price(ctx(request), request.user, period_id, data)

    @post(
        "/periods/{period_id:int}/obligations",
        operation_id="registerObligations",
        guards=[allow(*AUTHORITIES)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Name obligated enterprises (and green-power quotas) of a period",
    )
    async def obligations(
        self, request: Request[Identity, Any, Any], period_id: IdPath, data: JSONBody[s.RegisterObligations]
    ) -> list[s.ObligationOut]:
        return await obligations.register_obligations(ctx(request), request.user, period_id, data)

    @post(
        "/periods/{period_id:int}/forced-surrenders",
        operation_id="orderForcedSurrender",
        guards=[allow(R.REGULATOR)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Order a forced surrender from the provincial reserve at settlement",
    )
    async def forced(
        self, request: Request[Identity, Any, Any], period_id: IdPath, data: JSONBody[s.OrderForcedSurrender]
    ) -> s.ObligationOut:
        return await obligations.order_forced_surrender(ctx(request), request.user, period_id, data)

    @post(
        "/reserve",
        operation_id="fundProvincialReserve",
        guards=[allow(R.REGULATOR)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Move allowances from the regulator's allocation account into the provincial reserve",
    )
    async def reserve(self, request: Request[Identity, Any, Any], data: JSONBody[s.FundReserve]) -> dict[str, Any]:
        return await obligations.fund_reserve(ctx(request), request.user, data, request_key(request))


class ReportController(Controller):
    path = "/api/v1/compliance"
    tags = TAGS

    @post(
        "/periods/{period_id:int}/reports",
        operation_id="submitReport",
        guards=[allow(R.EMITTER, *AUTHORITIES)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Submit an annual report as JSON lines; the figure is computed by the national method",
    )
    async def submit(
        self, request: Request[Identity, Any, Any], period_id: IdPath, data: JSONBody[s.SubmitReport]
    ) -> s.ReportOut:
        return await reports.submit_report(ctx(request), request.user, period_id, data)

    @post(
        "/periods/{period_id:int}/reports/upload",
        operation_id="uploadReports",
        guards=[allow(R.EMITTER, *AUTHORITIES)],
        opt=FILES,
        responses=WRITE_PROBLEMS,
        summary="Upload reports as CSV or Excel (multipart field `file`, or a text/csv body); all rows or none",
    )
    async def upload(
        self,
        request: Request[Identity, Any, Any],
        period_id: IdPath,
        filename: Annotated[str | None, Parameter(query="filename", max_length=255)] = None,
    ) -> s.UploadOut:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            form = await request.form()
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidInput("file", "Send the report file as the multipart form field `file`.")
            data = await upload.read()
            name = upload.filename or filename or "upload.csv"
        elif ctype == "text/csv":
            data = await request.body()
            name = filename or "upload.csv"
        else:
            raise AppError("unsupported-media-type", "Send multipart/form-data (field `file`) or text/csv.")
        return await reports.upload_reports(ctx(request), request.user, period_id, data, name[:200])

    @get(
        "/periods/{period_id:int}/reports",
        operation_id="listReports",
        guards=[allow(*READERS)],
        responses=READ_PROBLEMS,
    )
    async def list_reports(self, request: Request[Identity, Any, Any], period_id: IdPath) -> list[s.ReportOut]:
        return await reports.list_reports(ctx(request), request.user, period_id)

    @get("/reports/{report_id:int}", operation_id="getReport", guards=[allow(*READERS)], responses=READ_PROBLEMS)
    async def get_report(self, request: Request[Identity, Any, Any], report_id: IdPath) -> s.ReportOut:
        return await reports.get_report(ctx(request), request.user, report_id)

    @post(
        "/reports/{report_id:int}/verification",
        operation_id="verifyReport",
        guards=[allow(R.VERIFIER)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Verify (or correct) the latest version of a report; the verified figure is the obligation",
    )
    async def verify(
        self, request: Request[Identity, Any, Any], report_id: IdPath, data: JSONBody[s.VerifyReport]
    ) -> s.ReportOut:
        return await verification.verify_report(ctx(request), request.user, report_id, data)


class AllocationController(Controller):
    path = "/api/v1/compliance"
    tags = TAGS

    @post(
        "/periods/{period_id:int}/allocation-tables",
        operation_id="uploadAllocationTable",
        guards=[allow(*AUTHORITIES)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Upload an allocation, pre-allocation or true-up table; a second user must approve it",
    )
    async def upload_table(
        self, request: Request[Identity, Any, Any], period_id: IdPath, data: JSONBody[s.UploadAllocationTable]
    ) -> s.AllocationTableOut:
        return await allocation.upload_allocation_table(
            ctx(request), request.user, period_id, data, request_key(request)
        )

    @get(
        "/allocation-tables/{table_id:int}",
        operation_id="getAllocationTable",
        guards=[allow(*AUTHORITIES, R.AUDITOR)],
        responses=READ_PROBLEMS,
    )
    async def get_table(self, request: Request[Identity, Any, Any], table_id: IdPath) -> s.AllocationTableOut:
        return await allocation.get_allocation_table(ctx(request), request.user, table_id)

    @post(
        "/allocation-tables/{table_id:int}/approval",
        operation_id="approveAllocationTable",
        guards=[allow(*AUTHORITIES)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Approve (four-eyes) or reject a table; approved lines are posted through the ledger",
    )
    async def approve_table(
        self, request: Request[Identity, Any, Any], table_id: IdPath, data: JSONBody[s.Decision]
    ) -> s.AllocationTableOut:
        return await allocation.approve_allocation_table(ctx(request), request.user, table_id, data)


class SettlementController(Controller):
    path = "/api/v1/compliance"
    tags = TAGS

    @post(
        "/periods/{period_id:int}/settlement",
        operation_id="settlePeriod",
        guards=[allow(*AUTHORITIES)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Settle the period (dry_run=true reports without posting); a second settlement changes nothing",
    )
    async def settle(
        self,
        request: Request[Identity, Any, Any],
        period_id: IdPath,
        dry_run: FromQuery[bool] = False,
    ) -> s.SettlementOut:
        return await run_settlement(request.app.state, request.user, period_id, dry_run=dry_run)

    @get(
        "/periods/{period_id:int}/results",
        operation_id="listComplianceResults",
        guards=[allow(*RESULT_READERS)],
        responses=READ_PROBLEMS,
    )
    async def results(
        self,
        request: Request[Identity, Any, Any],
        period_id: IdPath,
        status: Annotated[str | None, Parameter(query="status", pattern="^[ABC]$", max_length=1)] = None,
        city: Annotated[str | None, Parameter(query="city", max_length=8)] = None,
        limit: Annotated[int, Parameter(query="limit", ge=1, le=1000)] = 100,
        offset: Annotated[int, Parameter(query="offset", ge=0, le=10_000_000)] = 0,
    ) -> s.ResultsPage:
        return await results.list_results(
            ctx(request), request.user, period_id, status=status, city=city, limit=limit, offset=offset
        )

    @get(
        "/periods/{period_id:int}/results.csv",
        operation_id="exportComplianceResults",
        guards=[allow(*RESULT_READERS)],
        responses=READ_PROBLEMS,
        media_type="text/csv",
    )
    async def results_csv(self, request: Request[Identity, Any, Any], period_id: IdPath) -> Response[str]:
        text = await exports.export_results_csv(ctx(request), request.user, period_id)
        return csv_response(text, f"compliance-{period_id}.csv")

    @get(
        "/periods/{period_id:int}/report.pdf",
        operation_id="downloadComplianceReport",
        guards=[allow(*RESULT_READERS)],
        responses=problem_responses(401, 403, 404, 409, 422),
        media_type="application/pdf",
        summary="The compliance report in Chinese: status per enterprise, totals by city and industry",
    )
    async def report_pdf(self, request: Request[Identity, Any, Any], period_id: IdPath) -> Response[bytes]:
        from registry.compliance.pdf import render_compliance_report

        now = request.app.state.clock.now()
        data = await exports.report_data(ctx(request), request.user, period_id, issued_at=now)
        pdf = render_compliance_report(data, generated_at=now)
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="compliance-report-{period_id}.pdf"'},
        )

    @get(
        "/enterprises/{enterprise_id:int}/status",
        operation_id="getComplianceStatus",
        guards=[allow(*RESULT_READERS)],
        responses=READ_PROBLEMS,
        summary="Open shortfall (yes/no, owed quantities) and the latest settled status per scheme",
    )
    async def status(self, request: Request[Identity, Any, Any], enterprise_id: IdPath) -> s.ComplianceStatusOut:
        return await results.get_compliance_status(ctx(request), request.user, enterprise_id)

    @get(
        "/enterprises/{enterprise_id:int}/obligations",
        operation_id="listEnterpriseObligations",
        guards=[allow(*RESULT_READERS)],
        responses=READ_PROBLEMS,
        summary="An enterprise's obligations: owed, surrendered so far, remaining, and the surrender deadlines",
    )
    async def enterprise_obligations(
        self, request: Request[Identity, Any, Any], enterprise_id: IdPath
    ) -> list[s.EnterpriseObligationOut]:
        return await obligations.enterprise_obligations(ctx(request), request.user, enterprise_id)

    @get(
        "/fines",
        operation_id="listComplianceFines",
        guards=[allow(R.REGULATOR, R.ENERGY_AUTHORITY, R.AUDITOR, R.FINANCE_REVIEWER, R.FINANCE_APPROVER)],
        responses=READ_PROBLEMS,
    )
    async def fines(
        self,
        request: Request[Identity, Any, Any],
        period_id: Annotated[int | None, Parameter(query="period_id", ge=1, le=MAX_ID)] = None,
    ) -> list[s.FineOut]:
        return await results.list_fines(ctx(request), period_id)

    @get(
        "/periods/{period_id:int}/notices",
        operation_id="listComplianceNotices",
        guards=[allow(*RESULT_READERS)],
        responses=READ_PROBLEMS,
    )
    async def notices(self, request: Request[Identity, Any, Any], period_id: IdPath) -> list[s.NoticeOut]:
        return await notices.list_notices(ctx(request), request.user, period_id)


CONTROLLERS = [SchemeController, ReportController, AllocationController, SettlementController]
