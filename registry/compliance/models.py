"""Tables of the compliance cycle: schemes and periods, reports with every version kept, obligations,
allocation tables (four-eyes), shortfall deductions, settlement runs and results, and scheduler notices.

Exactly-once keys (each is a UNIQUE constraint, so a retried or doubled job finds its first effect):
- settlement result: (period, enterprise, obligation);
- settlement run: one per period (its parameters are fixed when it starts, so a resumed run uses them);
- deduction carried to the next allocation: (source period, enterprise, pollutant);
- notice sent by a calendar job: (period, enterprise, kind);
- ledger effects (allocations, reversals, forced surrenders) through `registry_transaction.request_key`.
"""

from __future__ import annotations

import datetime as dt

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class ComplianceScheme(SQLModel, table=True):
    """A compliance scheme: national or provincial carbon, energy-use rights, discharge permits, green power.

    `template` is the calendar template (JSON, `registry.domain.calendar.template_from_dict` shape) fixed
    when the scheme was created, so a later change of the default parameters never moves a period's dates.
    """

    __tablename__ = "compliance_scheme"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=11, unique=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=16)  # carbon | energy | discharge | green_power
    cea_scheme: str | None = Field(default=None, max_length=16)  # national | provincial (carbon only)
    authority_role: str = Field(max_length=24)
    authority_organisation_id: int = Field(foreign_key="organisation.id")
    template: str = Field(sa_type=Text)
    created_by: int = Field(sa_type=BigInteger)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)


class CompliancePeriod(SQLModel, table=True):
    """One compliance period (a year) of a scheme. `code` is what a surrender names as its `period`."""

    __tablename__ = "compliance_period"
    __table_args__ = (
        UniqueConstraint("scheme_id", "year", name="uq_compliance_period_scheme_year"),
        CheckConstraint("offset_cap_bps >= 0 AND offset_cap_bps <= 10000", name="ck_compliance_period_offset_cap"),
        CheckConstraint("multiplier_k IS NULL OR (multiplier_k >= 5 AND multiplier_k <= 10)", name="ck_period_k"),
    )
    id: int | None = Field(default=None, primary_key=True)
    scheme_id: int = Field(foreign_key="compliance_scheme.id", index=True)
    code: str = Field(max_length=16, unique=True)
    year: int
    status: str = Field(default="open", max_length=12)  # open | settling | settled
    overrides: str = Field(default="{}", sa_type=Text)  # event kind -> ISO date set by the authority's notice
    eligible_vintages: str = Field(default="[]", sa_type=Text)  # JSON list of years
    eligible_offset_vintages: str | None = Field(default=None, sa_type=Text)  # JSON list, or NULL for any
    offset_cap_bps: int = Field(default=500)
    late_until: dt.date | None = Field(default=None)
    multiplier_k: int | None = Field(default=None)
    region: str | None = Field(default=None, max_length=40)
    reference_price_fen: int | None = Field(default=None, sa_type=BigInteger)
    reference_price_note: str = Field(default="", max_length=500)
    reference_price_set_by: int | None = Field(default=None, sa_type=BigInteger)
    created_by: int = Field(sa_type=BigInteger)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)
    settled_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)


class ComplianceReport(SQLModel, table=True):
    """An enterprise's annual report for one period; its content lives in versions, none ever overwritten."""

    __tablename__ = "compliance_report"
    __table_args__ = (UniqueConstraint("period_id", "enterprise_id", name="uq_compliance_report_period_ent"),)
    id: int | None = Field(default=None, primary_key=True)
    period_id: int = Field(foreign_key="compliance_period.id", index=True)
    enterprise_id: int = Field(foreign_key="registry_enterprise.id", index=True)
    kind: str = Field(max_length=16)
    status: str = Field(max_length=12)  # submitted | verified
    current_version: int = Field(default=1)
    verified_version: int | None = Field(default=None)
    first_submitted_at: dt.datetime = Field(sa_type=DateTimeUTC)
    late: bool = Field(default=False)
    verified_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)
    verified_by: int | None = Field(default=None, sa_type=BigInteger)


class ReportVersion(SQLModel, table=True):
    """One version of a report: the lines as submitted (or as corrected by a verifier) and the computed figure."""

    __tablename__ = "compliance_report_version"
    __table_args__ = (UniqueConstraint("report_id", "version", name="uq_report_version"),)
    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="compliance_report.id", index=True)
    version: int
    source: str = Field(max_length=16)  # api | csv | xlsx | verifier
    lines: str = Field(sa_type=Text)  # JSON list of the lines as given
    totals: str = Field(sa_type=Text)  # JSON: {"tco2e": n} | {"kgce": n, ...} | {"kg": {pollutant: n}}
    explanation: str = Field(sa_type=Text)  # JSON: per-line factors and exact values, rounding rule
    submitted_by: int = Field(sa_type=BigInteger)
    submitted_role: str = Field(max_length=24)
    note: str = Field(default="", max_length=1000)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)


class Obligation(SQLModel, table=True):
    """What one enterprise must surrender in one period (per pollutant for discharge).

    `verified_quantity` is NULL until a verifier verifies a report (status C if still NULL at settlement);
    for energy it is the verified kgce before the green-certificate deduction, which is applied when the
    obligation is used, from the certificates retired by then. For green power it is the consumption quota
    (MWh) set by the authority.
    """

    __tablename__ = "compliance_obligation"
    __table_args__ = (
        UniqueConstraint("period_id", "enterprise_id", "pollutant", name="uq_obligation_period_ent_pollutant"),
        Index("ix_obligation_period_id", "period_id", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    period_id: int = Field(foreign_key="compliance_period.id")
    enterprise_id: int = Field(foreign_key="registry_enterprise.id", index=True)
    pollutant: str = Field(default="", max_length=8)
    verified_quantity: int | None = Field(default=None, sa_type=BigInteger)
    report_version_id: int | None = Field(default=None, foreign_key="compliance_report_version.id")
    forced_surrender_ordered: int = Field(default=0, sa_type=BigInteger)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)
    updated_at: dt.datetime = Field(sa_type=DateTimeUTC)


class AllocationTable(SQLModel, table=True):
    """An allocation table uploaded by an authority; posted only after a second user of the same role approves."""

    __tablename__ = "compliance_allocation_table"
    __table_args__ = (
        CheckConstraint("approved_by IS NULL OR approved_by <> uploaded_by", name="ck_allocation_table_four_eyes"),
    )
    id: int | None = Field(default=None, primary_key=True)
    period_id: int = Field(foreign_key="compliance_period.id", index=True)
    kind: str = Field(max_length=16)  # pre_allocation | allocation | true_up
    status: str = Field(max_length=20)  # awaiting_approval | approved | posted | rejected
    instrument_id: int = Field(foreign_key="registry_instrument.id")
    uploaded_by: int = Field(sa_type=BigInteger)
    uploaded_role: str = Field(max_length=24)
    organisation_id: int = Field(foreign_key="organisation.id")
    approved_by: int | None = Field(default=None, sa_type=BigInteger)
    request_key: str | None = Field(default=None, max_length=240, unique=True)
    note: str = Field(default="", max_length=1000)
    reason: str = Field(default="", max_length=500)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)
    decided_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)
    posted_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)


class AllocationLine(SQLModel, table=True):
    """One enterprise's line of a table: how its quantity was computed, what was deducted and what was posted."""

    __tablename__ = "compliance_allocation_line"
    __table_args__ = (UniqueConstraint("table_id", "enterprise_id", name="uq_allocation_line_table_ent"),)
    id: int | None = Field(default=None, primary_key=True)
    table_id: int = Field(foreign_key="compliance_allocation_table.id", index=True)
    enterprise_id: int = Field(foreign_key="registry_enterprise.id")
    account_id: int = Field(foreign_key="registry_account.id")
    method: str = Field(max_length=24)  # fixed | benchmark | pre_allocation | true_up
    quantity: int = Field(sa_type=BigInteger)  # the allocation the rule gives (before deductions)
    direction: str = Field(default="issue", max_length=8)  # issue | reverse | none
    delta: int = Field(default=0, sa_type=BigInteger)  # units to move (issue) or claw back (reverse)
    deducted: int = Field(default=0, sa_type=BigInteger)  # earlier shortfalls deducted from this line
    posted: int = Field(default=0, sa_type=BigInteger)  # units actually moved
    inputs: str = Field(default="{}", sa_type=Text)  # JSON explanation (benchmark lines, ratio, true-up)
    transaction_id: int | None = Field(default=None, foreign_key="registry_transaction.id")


class AllocationDeduction(SQLModel, table=True):
    """A quantity owed from a settled shortfall (and forced surrender repaid to the reserve), deducted from the
    enterprise's next allocations in the same scheme until `applied == quantity`. Dated by `created_at`."""

    __tablename__ = "compliance_deduction"
    __table_args__ = (
        UniqueConstraint("source_period_id", "enterprise_id", "pollutant", "reason", name="uq_deduction_period_ent"),
        CheckConstraint("applied >= 0 AND applied <= quantity", name="ck_deduction_applied"),
    )
    id: int | None = Field(default=None, primary_key=True)
    scheme_id: int = Field(foreign_key="compliance_scheme.id", index=True)
    source_period_id: int = Field(foreign_key="compliance_period.id")
    enterprise_id: int = Field(foreign_key="registry_enterprise.id", index=True)
    pollutant: str = Field(default="", max_length=8)
    reason: str = Field(default="settlement", max_length=16)  # settlement | true_up (a reversal not clawed back)
    shortfall_quantity: int = Field(sa_type=BigInteger)
    reserve_quantity: int = Field(default=0, sa_type=BigInteger)
    quantity: int = Field(sa_type=BigInteger)
    applied: int = Field(default=0, sa_type=BigInteger)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)


class SettlementRun(SQLModel, table=True):
    """The one real settlement of a period, with the parameters fixed at its start (price, k, penalties)."""

    __tablename__ = "compliance_settlement_run"
    id: int | None = Field(default=None, primary_key=True)
    period_id: int = Field(foreign_key="compliance_period.id", unique=True)
    status: str = Field(max_length=12)  # running | done
    params: str = Field(sa_type=Text)  # JSON of the settlement parameters used
    reference_price_fen: int | None = Field(default=None, sa_type=BigInteger)
    price_source: str = Field(default="", max_length=200)
    settled_count: int = Field(default=0)
    batches: int = Field(default=0)
    actor: str = Field(max_length=64)
    started_at: dt.datetime = Field(sa_type=DateTimeUTC)
    finished_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)


class SettlementResultRow(SQLModel, table=True):
    """The settled outcome of one obligation (registry.domain.settlement.SettlementResult, stored)."""

    __tablename__ = "compliance_settlement"
    __table_args__ = (
        UniqueConstraint("period_id", "enterprise_id", "obligation_id", name="uq_settlement_period_ent_obligation"),
        Index("ix_settlement_period_id", "period_id", "id"),
        # The settlement job asks "is this obligation settled?" once per obligation; this makes it a lookup.
        Index("ix_settlement_obligation", "obligation_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    period_id: int = Field(foreign_key="compliance_period.id")
    enterprise_id: int = Field(foreign_key="registry_enterprise.id", index=True)
    obligation_id: int = Field(foreign_key="compliance_obligation.id")
    run_id: int = Field(foreign_key="compliance_settlement_run.id")
    kind: str = Field(max_length=16)
    pollutant: str = Field(default="", max_length=8)
    city: str = Field(max_length=8)
    industry: str = Field(max_length=8)
    status: str = Field(max_length=1)  # A | B | C
    timeliness: str = Field(max_length=8)
    report_late: bool = Field(default=False)
    obligation: int | None = Field(default=None, sa_type=BigInteger)
    surrendered_on_time: int = Field(sa_type=BigInteger)
    surrendered_late: int = Field(sa_type=BigInteger)
    forced_quantity: int = Field(sa_type=BigInteger)
    surrendered: int = Field(sa_type=BigInteger)
    excess: int = Field(sa_type=BigInteger)
    shortfall_at_deadline: int = Field(sa_type=BigInteger)
    shortfall: int = Field(sa_type=BigInteger)
    fine_fen: int = Field(sa_type=BigInteger)
    fine_formula: str = Field(max_length=200)
    next_allocation_deduction: int = Field(sa_type=BigInteger)
    reserve_repayment: int = Field(sa_type=BigInteger)
    citation: str = Field(max_length=200)
    detail: str = Field(default="{}", sa_type=Text)  # JSON: e.g. the energy obligation's green-certificate deduction
    fine_due_on: dt.date | None = Field(default=None)
    settled_at: dt.datetime = Field(sa_type=DateTimeUTC)


class ComplianceNotice(SQLModel, table=True):
    """A notice a calendar job issued (report reminder, verification overdue): one per period, enterprise, kind."""

    __tablename__ = "compliance_notice"
    __table_args__ = (UniqueConstraint("period_id", "enterprise_id", "kind", name="uq_notice_period_ent_kind"),)
    id: int | None = Field(default=None, primary_key=True)
    period_id: int = Field(foreign_key="compliance_period.id", index=True)
    enterprise_id: int = Field(foreign_key="registry_enterprise.id")
    kind: str = Field(max_length=24)
    message: str = Field(max_length=500)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)
