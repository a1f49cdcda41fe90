"""Request and response shapes of the compliance API. Requests forbid unknown fields, so a body that tries to
set server-owned fields (status, verified figure, approver, settlement results) is refused with 422.

Quantities in requests are decimal strings (or JSON integers) in the base unit of the report line's own unit
(`"120000"`, `"350.5"`); money is a decimal string in yuan with at most two decimals (`"98.00"`); responses
carry integers of base units (`*_fen`, tCO2e, kgce, kg, MWh) beside their display text.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Literal

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
    about,
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
    """A compliance scheme: what is surrendered against obligations (carbon, energy use, discharge, green power)."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "code": "CN-CEA",
        "name": "全国碳排放权交易市场",
        "kind": "carbon",
        "cea_scheme": "national",
    }

    code: Annotated[Code, about("The scheme's code; a period's code is this code and the year (CN-CEA-2025).")]
    name: Annotated[Name, about("The scheme's name.")]
    kind: Annotated[
        Literal["carbon", "energy", "discharge", "green_power"], about("What the scheme's obligations are about.")
    ]
    cea_scheme: (
        Annotated[
            Literal["national", "provincial"], about("Carbon schemes: which allowances (national or provincial) count.")
        ]
        | None
    ) = None
    calendar: (
        Annotated[
            FreeObject,
            about(
                "A calendar template in `registry.domain.calendar.template_from_dict` shape; the default by kind "
                "otherwise."
            ),
        ]
        | None
    ) = None


class SchemeOut(msgspec.Struct, kw_only=True):
    """A compliance scheme with its calendar template."""

    id: int
    code: str
    name: str
    kind: str
    cea_scheme: str | None
    authority_role: str
    calendar: dict[str, Any]
    created_at: dt.datetime


class CreatePeriod(Req):
    """A compliance period (one year) of a scheme, with the dates of the authority's notice."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "scheme_id": 1,
        "year": 2026,
        "overrides": {"allocation": "2027-01-15", "surrender_deadline": "2027-12-31"},
        "eligible_vintages": [2025, 2026],
        "offset_cap_bps": 500,
    }

    scheme_id: Annotated[Id, about("The scheme the period belongs to.")]
    year: Annotated[Year, about("The year whose emissions (or use) the period covers.")]
    code: Annotated[Code, about("The period's code; the scheme's code and the year if omitted.")] | None = None
    overrides: Annotated[
        EventDates,
        about('Event dates set by the authority\'s notice for this period, e.g. {"surrender_deadline": "2026-12-31"}.'),
    ] = msgspec.field(default_factory=dict)
    eligible_vintages: Annotated[YearList, about("Vintages of units that may be surrendered.")] | None = None
    eligible_offset_vintages: (
        Annotated[YearList, about("Vintages of offsets (CCER) that may be surrendered.")] | None
    ) = None
    offset_cap_bps: Annotated[Bps, about("The share of an obligation offsets may cover, in basis points.")] | None = (
        None
    )
    late_until: Annotated[dt.date, about("The last day late surrenders are accepted; none if omitted.")] | None = None
    multiplier_k: Annotated[Multiplier, about("The multiplier of a missed surrender in the fine formula.")] | None = (
        None
    )
    region: Annotated[Code, about("The region of the period (energy and discharge schemes).")] | None = None


class UpdatePeriodDates(Req):
    """A new or corrected notice of the authority: event dates merged over the period's earlier ones, and/or the
    end of the correction window. `legal_basis` is the notice (文号) that makes the change, `note` why; both are
    required, audited, and sent to every obligated enterprise (event `compliance.calendar_changed`)."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "overrides": {"surrender_deadline": "2027-12-31"},
        "legal_basis": "赣环气候〔2026〕12号",
        "note": "清缴截止日延后至年底",
    }

    overrides: Annotated[
        EventDates, about("Event dates by event name, merged over the period's earlier ones (none in the past).")
    ] = msgspec.field(default_factory=dict)
    late_until: Annotated[dt.date, about("The new end of the late-surrender window.")] | None = None
    legal_basis: Annotated[Reference, about("The notice (文号) that makes the change; required.")] = ""
    note: Annotated[str, msgspec.Meta(max_length=500), about("Why the dates change; required.")] = ""


class PeriodOut(msgspec.Struct, kw_only=True):
    """A compliance period: its rules (eligible vintages, offset cap, late window, multiplier), status and deadline."""

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
    """One event of a period's calendar: its business date, the instant it is due and the job it fires."""

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
    """A period's calendar: every event in date order (Asia/Shanghai)."""

    period_id: int
    period_code: str
    scheme: str
    year: int
    timezone: str
    events: list[CalendarEventOut]


class SetReferencePrice(Req):
    """The reference price of the period's units, used to price fines."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"price_yuan": "98.00", "note": "参考月挂牌协议成交均价"}

    price_yuan: Annotated[Amount, about("Yuan per unit, at most two decimals.")]
    note: Annotated[Note, about("Where the price comes from.")] = ""


class RegisterObligations(Req):
    """The enterprises obligated in the period."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"enterprise_ids": [1, 2]}

    enterprise_ids: Annotated[IdList, about("The enterprises that take on an obligation in the period.")]
    pollutant: Annotated[Code, about("Discharge schemes: the pollutant the obligations are for.")] | None = None
    quota: Annotated[
        OptAmount,
        about("Green-power schemes only: the consumption quota in MWh that each named enterprise must prove."),
    ] = None


class ObligationOut(msgspec.Struct, kw_only=True):
    """An enterprise's obligation in a period (the verified quantity once the report is verified)."""

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
    """An order that units be taken from an enterprise that did not surrender enough."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"enterprise_id": 1, "quantity": "2000"}

    enterprise_id: Annotated[Id, about("The enterprise whose units are taken.")]
    quantity: Annotated[Amount, about("How much, in the period's display unit or base units.")]


class FundReserve(Req):
    """Units put into the provincial reserve (which lends to enterprises that fall short)."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"instrument_id": 1, "quantity": "50000"}

    instrument_id: Annotated[Id, about("The instrument (unit class) of the reserve.")]
    quantity: Annotated[Amount, about("How much, in the instrument's display unit or base units.")]


# ---------------------------------------------------------------- reports


class ReportLine(Req):
    """One line: carbon `{line_type, item, quantity, unit}`, energy `{item, quantity, unit}`,
    discharge `{pollutant, quantity, unit}`."""

    quantity: Annotated[Amount, about("The line's quantity, in its own unit.")]
    unit: Annotated[Code, about("The unit of the quantity (t, MWh, GJ, tce, kg ...).")]
    line_type: Annotated[Code, about("Carbon reports: fuel, process, electricity or heat.")] | None = None
    item: (
        Annotated[Code, about("Carbon and energy reports: the fuel, process or source code (e.g. raw_coal).")] | None
    ) = None
    pollutant: Annotated[Code, about("Discharge reports: the pollutant (SO2, NOx, COD, NH3-N, VOCs).")] | None = None


class SubmitReport(Req):
    """The annual report of an enterprise (a new version if one was submitted before)."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "lines": [
            {"line_type": "fuel", "item": "raw_coal", "quantity": "120000", "unit": "t"},
            {"line_type": "process", "item": "clinker", "quantity": "1000000", "unit": "t"},
            {"line_type": "electricity", "item": "purchased", "quantity": "95000", "unit": "MWh"},
        ],
        "enterprise_id": 1,
    }

    lines: Annotated[list[ReportLine], msgspec.Meta(max_length=ROWS_MAX), about("The report's lines.")]
    enterprise_id: Annotated[Id, about("The enterprise reported on; yours if omitted.")] | None = None
    note: Annotated[Note, about("A note to the verifier.")] = ""


class VerifyReport(Req):
    """The verifier's decision on a report version: verify it as it is, or correct it (a new version)."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"decision": "verify", "version": 1}

    decision: Annotated[Literal["verify", "correct"], about("verify: the figure stands; correct: give `lines`.")]
    version: Annotated[
        Id, about("The version the verifier read; refused (409) if the enterprise submitted a newer one meanwhile.")
    ]
    lines: (
        Annotated[list[ReportLine], msgspec.Meta(max_length=ROWS_MAX), about("The corrected lines (with `correct`).")]
        | None
    ) = None
    note: Annotated[Note, about("The verifier's note.")] = ""


class ReportVersionOut(msgspec.Struct, kw_only=True):
    """One version of a report: its lines, the computed totals and how they were computed."""

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
    """An annual report with every version; the verified version is the obligation."""

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
    """The reports created or updated by an uploaded file."""

    imported_rows: int
    reports: list[ReportOut]


# ---------------------------------------------------------------- allocation


class BenchmarkLineIn(Req):
    """One benchmark line of an allocation: benchmark × output × corrections."""

    label: Annotated[Name, about("What the line covers (a product or process, e.g. 熟料).")]
    benchmark: Annotated[Code, about("Units allocated per unit of output, a decimal text (e.g. 0.8500).")]
    output: Annotated[Code, about("The output the benchmark applies to, a decimal text.")]
    corrections: Annotated[NoteList, about("Correction factors multiplied in, each a decimal text (e.g. 1.0).")] = (
        msgspec.field(default_factory=list)
    )


class AllocationLineIn(Req):
    """One enterprise's line of an allocation table: a fixed `quantity`, `benchmark_lines`, or (pre-allocation)
    `previous_verified`."""

    enterprise_id: Annotated[Id, about("The enterprise allocated to.")]
    account_id: Annotated[Id, about("The account to post to; the enterprise's holding account if omitted.")] | None = (
        None
    )
    quantity: Annotated[OptAmount, about("A fixed quantity to allocate.")] = None
    benchmark_lines: (
        Annotated[
            list[BenchmarkLineIn], msgspec.Meta(max_length=64), about("Benchmark lines whose products are summed.")
        ]
        | None
    ) = None
    previous_verified: Annotated[
        OptAmount, about("Pre-allocation: last year's verified emissions, of which a share is allocated.")
    ] = None


class UploadAllocationTable(Req):
    """An allocation table of the period; a second person approves it before it is posted."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "kind": "allocation",
        "instrument_id": 1,
        "lines": [
            {
                "enterprise_id": 1,
                "benchmark_lines": [
                    {"label": "熟料", "benchmark": "0.8500", "output": "1000000", "corrections": ["1.0"]}
                ],
            }
        ],
    }

    kind: Annotated[
        Literal["pre_allocation", "allocation", "true_up"],
        about("pre_allocation: a share of last year's verified figure; allocation; true_up: the difference after."),
    ]
    instrument_id: Annotated[Id, about("The instrument (unit class) allocated.")]
    lines: Annotated[list[AllocationLineIn], msgspec.Meta(max_length=ROWS_MAX), about("One line per enterprise.")]
    note: Annotated[Note, about("A note to the approver.")] = ""


class Decision(Req):
    """A second person's decision: approve or reject, always said explicitly (a reason is required to reject)."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"decision": "approve"}

    decision: Annotated[Literal["approve", "reject"], about("approve or reject: there is no default.")]
    reason: Annotated[Note, about("Why; required to reject.")] = ""


class AllocationLineOut(msgspec.Struct, kw_only=True):
    """One posted (or to be posted) line of an allocation table."""

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
    """An allocation table: its lines, status and the four-eyes decision."""

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
    """The settlement of one obligation: surrendered on time and late, shortfall, fine and its formula."""

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
    """Settlement totals of one group (a city or an industry)."""

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
    """The settlement of a period (or its dry run): counts, totals and each obligation's result."""

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
    """A page of a settled period's results with totals by city and by industry."""

    period_id: int
    total: int
    items: list[SettlementResultOut]
    totals_by_city: list[GroupTotalOut]
    totals_by_industry: list[GroupTotalOut]


class FineOut(msgspec.Struct, kw_only=True):
    """A fine for a shortfall at the surrender deadline."""

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
    """A notice sent to an enterprise about a period."""

    id: int
    period_id: int
    enterprise_id: int
    kind: str
    message: str
    created_at: dt.datetime


class SchemeStatusOut(msgspec.Struct, kw_only=True):
    """Where an enterprise stands in the latest period of one scheme."""

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
    """An enterprise's compliance status: open shortfalls, what it owes and the latest results."""

    enterprise_id: int
    open_shortfall: bool
    carbon_open_shortfall_t: int
    owed: list[dict[str, Any]]
    latest: list[SchemeStatusOut]
