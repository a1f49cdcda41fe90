"""Request and response shapes of the compliance API. Requests forbid unknown fields, so a body that tries to
set server-owned fields (status, verified figure, approver, settlement results) is refused with 422.

Quantities in requests are decimal strings (or JSON integers) in the base unit of the report line's own unit
(`"120000"`, `"350.5"`); money is a decimal string in yuan with at most two decimals (`"98.00"`); responses
carry integers of base units (`*_fen`, tCO2e, kgce, kg, MWh) beside their display text.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from core.schema import (
    FREE_KEYS_MAX,
    ROWS_MAX,
    Amount,
    Bps,
    Code,
    FreeObject,
    Id,
    IdList,
    Name,
    Note,
    NoteList,
    OptAmount,
    Reference,
    Req,
    Year,
    YearList,
    int_range,
)

# Event dates of a notice by event name (at most FREE_KEYS_MAX).
EventDates = Annotated[
    dict[Code, dt.date],
    msgspec.Meta(max_length=FREE_KEYS_MAX, extra_json_schema={"extra": {"maxProperties": FREE_KEYS_MAX}}),
]
# The multiplier of a missed surrender (registry.domain.settlement checks its own range).
Multiplier = Annotated[int, int_range(0, 1000)]


# ---------------------------------------------------------------- schemes and periods


class CreateScheme(Req):
    code: Code
    name: Name
    kind: Literal["carbon", "energy", "discharge", "green_power"]
    cea_scheme: Literal["national", "provincial"] | None = None
    # A calendar template in `registry.domain.calendar.template_from_dict` shape; the default by kind otherwise.
    calendar: FreeObject | None = None


class SchemeOut(msgspec.Struct, kw_only=True):
    id: int
    code: str
    name: str
    kind: str
    cea_scheme: str | None
    authority_role: str
    calendar: dict[str, Any]
    created_at: dt.datetime


class CreatePeriod(Req):
    scheme_id: Id
    year: Year
    code: Code | None = None
    # Event dates set by the authority's notice for this period, e.g. {"surrender_deadline": "2026-12-31"}.
    overrides: EventDates = msgspec.field(default_factory=dict)
    eligible_vintages: YearList | None = None
    eligible_offset_vintages: YearList | None = None
    offset_cap_bps: Bps | None = None
    late_until: dt.date | None = None
    multiplier_k: Multiplier | None = None
    region: Code | None = None


class UpdatePeriodDates(Req):
    """A new or corrected notice of the authority: event dates merged over the period's earlier ones, and/or the
    end of the correction window. `legal_basis` is the notice (文号) that makes the change, `note` why; both are
    required, audited, and sent to every obligated enterprise (event `compliance.calendar_changed`)."""

    overrides: EventDates = msgspec.field(default_factory=dict)
    late_until: dt.date | None = None
    legal_basis: Reference = ""
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


class PeriodOut(msgspec.Struct, kw_only=True):
    id: int
    scheme_id: int
    scheme_code: str
    kind: str
    code: str
    year: int
    status: str
    eligible_vintages: list[int]
    eligible_offset_vintages: list[int] | None
    offset_cap_bps: int
    late_until: dt.date | None
    multiplier_k: int
    region: str | None
    reference_price_fen: int | None
    surrender_deadline: dt.date | None
    surrender_due_before: dt.datetime | None
    created_at: dt.datetime
    settled_at: dt.datetime | None


class CalendarEventOut(msgspec.Struct, kw_only=True):
    kind: str
    business_date: dt.date
    starts_at: dt.datetime
    due_before: dt.datetime
    fires_at: dt.datetime
    is_deadline: bool
    description: str
    citation: str
    shifted_from: dt.date | None
    overridden: bool
    job: str | None


class CalendarOut(msgspec.Struct, kw_only=True):
    period_id: int
    period_code: str
    scheme: str
    year: int
    timezone: str
    events: list[CalendarEventOut]


class SetReferencePrice(Req):
    price_yuan: Amount
    note: Note = ""


class RegisterObligations(Req):
    enterprise_ids: IdList
    pollutant: Code | None = None
    # Green-power schemes only: the consumption quota in MWh that each named enterprise must prove.
    quota: OptAmount = None


class ObligationOut(msgspec.Struct, kw_only=True):
    id: int
    period_id: int
    enterprise_id: int
    pollutant: str | None
    verified_quantity: int | None
    forced_surrender_ordered: int


class EnterpriseObligationOut(msgspec.Struct, kw_only=True):
    """One obligation of one enterprise with where it stands: what it must surrender (None until verified),
    what it surrendered so far against the period, what remains, and the period's deadlines."""

    period_id: int
    period_code: str
    scheme_code: str
    kind: str
    year: int
    period_status: str
    pollutant: str | None
    obligation: int | None
    surrendered: int
    remaining: int | None
    report_status: str | None
    # The last day to surrender on time (Asia/Shanghai business date) and the instant it ends; late surrenders
    # are accepted until `late_until` when the period allows them.
    surrender_deadline: dt.date
    surrender_due_before: dt.datetime
    late_until: dt.date | None


class OrderForcedSurrender(Req):
    enterprise_id: Id
    quantity: Amount


class FundReserve(Req):
    instrument_id: Id
    quantity: Amount


# ---------------------------------------------------------------- reports


class ReportLine(Req):
    """One line: carbon `{line_type, item, quantity, unit}`, energy `{item, quantity, unit}`,
    discharge `{pollutant, quantity, unit}`."""

    quantity: Amount
    unit: Code
    line_type: Code | None = None
    item: Code | None = None
    pollutant: Code | None = None


class SubmitReport(Req):
    lines: Annotated[list[ReportLine], msgspec.Meta(max_length=ROWS_MAX)]
    enterprise_id: Id | None = None
    note: Note = ""


class VerifyReport(Req):
    decision: Literal["verify", "correct"]
    # The version the verifier read; refused (409) if the enterprise submitted a newer one meanwhile.
    version: Id
    lines: Annotated[list[ReportLine], msgspec.Meta(max_length=ROWS_MAX)] | None = None
    note: Note = ""


class ReportVersionOut(msgspec.Struct, kw_only=True):
    version: int
    source: str
    lines: list[dict[str, Any]]
    totals: dict[str, Any]
    explanation: dict[str, Any]
    submitted_by: int
    submitted_role: str
    note: str
    created_at: dt.datetime


class ReportOut(msgspec.Struct, kw_only=True):
    id: int
    period_id: int
    enterprise_id: int
    kind: str
    status: str
    late: bool
    current_version: int
    verified_version: int | None
    verified_figure: dict[str, Any] | None
    first_submitted_at: dt.datetime
    verified_at: dt.datetime | None
    versions: list[ReportVersionOut]


class UploadOut(msgspec.Struct, kw_only=True):
    imported_rows: int
    reports: list[ReportOut]


# ---------------------------------------------------------------- allocation


class BenchmarkLineIn(Req):
    label: Name
    benchmark: Code
    output: Code
    corrections: NoteList = msgspec.field(default_factory=list)


class AllocationLineIn(Req):
    enterprise_id: Id
    account_id: Id | None = None
    quantity: OptAmount = None
    benchmark_lines: Annotated[list[BenchmarkLineIn], msgspec.Meta(max_length=64)] | None = None
    previous_verified: OptAmount = None


class UploadAllocationTable(Req):
    kind: Literal["pre_allocation", "allocation", "true_up"]
    instrument_id: Id
    lines: Annotated[list[AllocationLineIn], msgspec.Meta(max_length=ROWS_MAX)]
    note: Note = ""


class Decision(Req):
    """A second person's decision: approve or reject, always said explicitly (a reason is required to reject)."""

    decision: Literal["approve", "reject"]
    reason: Note = ""


class AllocationLineOut(msgspec.Struct, kw_only=True):
    enterprise_id: int
    account_id: int
    method: str
    quantity: int
    direction: str
    delta: int
    deducted: int
    posted: int
    inputs: dict[str, Any]
    transaction_id: int | None


class AllocationTableOut(msgspec.Struct, kw_only=True):
    id: int
    period_id: int
    kind: str
    status: str
    instrument_id: int
    uploaded_by: int
    approved_by: int | None
    note: str
    reason: str
    total_quantity: int
    created_at: dt.datetime
    decided_at: dt.datetime | None
    posted_at: dt.datetime | None
    lines: list[AllocationLineOut]


# ---------------------------------------------------------------- settlement and results


class SettlementResultOut(msgspec.Struct, kw_only=True):
    obligation_id: int
    enterprise_id: int
    enterprise_name: str
    uscc: str
    city: str
    industry: str
    kind: str
    pollutant: str | None
    status: str
    timeliness: str
    report_late: bool
    obligation: int | None
    surrendered_on_time: int
    surrendered_late: int
    forced_quantity: int
    surrendered: int
    excess: int
    shortfall_at_deadline: int
    shortfall: int
    fine_fen: int
    fine_yuan: str
    fine_formula: str
    next_allocation_deduction: int
    reserve_repayment: int
    citation: str
    detail: dict[str, Any]
    fine_due_on: dt.date | None


class GroupTotalOut(msgspec.Struct, kw_only=True):
    dimension: str
    key: str
    kind: str
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


class SettlementOut(msgspec.Struct, kw_only=True):
    period_id: int
    period_code: str
    dry_run: bool
    status: str  # dry_run | settled | already_settled
    reference_price_fen: int | None
    price_source: str
    multiplier_k: int
    obligations: int
    settled_now: int
    batches: int
    compliant: int
    shortfall_count: int
    not_reported: int
    total_shortfall: int
    total_fine_fen: int
    total_forced: int
    results: list[SettlementResultOut]


class ResultsPage(msgspec.Struct, kw_only=True):
    period_id: int
    total: int
    items: list[SettlementResultOut]
    totals_by_city: list[GroupTotalOut]
    totals_by_industry: list[GroupTotalOut]


class FineOut(msgspec.Struct, kw_only=True):
    enterprise_id: int
    uscc: str
    enterprise_name: str
    period_id: int
    period_code: str
    scheme_code: str
    kind: str
    obligation_id: int
    shortfall_at_deadline: int
    fine_fen: int
    fine_formula: str
    citation: str
    settled_at: dt.datetime
    due_on: dt.date | None


class NoticeOut(msgspec.Struct, kw_only=True):
    id: int
    period_id: int
    enterprise_id: int
    kind: str
    message: str
    created_at: dt.datetime


class SchemeStatusOut(msgspec.Struct, kw_only=True):
    scheme_code: str
    kind: str
    period_code: str
    year: int
    pollutant: str | None
    status: str
    timeliness: str
    shortfall: int
    fine_fen: int


class ComplianceStatusOut(msgspec.Struct, kw_only=True):
    enterprise_id: int
    open_shortfall: bool
    carbon_open_shortfall_t: int
    owed: list[dict[str, Any]]
    latest: list[SchemeStatusOut]
