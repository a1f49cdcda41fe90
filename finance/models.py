"""Tables of the finance context: programme budgets, subsidy claims with their event history, disbursement
batches, issued documents (decision letters, bank reports) with their verification codes, consents to bank
queries, the log of those queries, and penalty notices.

What the database itself guarantees (each a constraint, so no code path can get around it):
- one claim per (enterprise, programme, project, period): UNIQUE → 409 duplicate;
- four-eyes on approval: CHECK approved_by differs from submitted_by and from reviewed_by;
- a claim's state is one of the workflow's states, amounts are never negative, a clawback never exceeds the
  amount paid;
- one budget per (programme, fiscal year); one consent row per (enterprise, bank); one penalty notice per
  settled obligation; one document per verification code; one disbursement batch per batch key.
Money moves only through the ledger (`core.ledger`): the budget, commitment and payee balances live there.
"""

from __future__ import annotations

import datetime as dt

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

CLAIM_STATES = (
    "draft",
    "submitted",
    "returned",
    "checked",
    "reviewed",
    "in_notice",
    "approved",
    "rejected",
    "disbursed",
    "clawed_back",
)


class FinanceBudget(SQLModel, table=True):
    """A programme's budget for one fiscal year; its money is in the ledger accounts owned by this row."""

    __tablename__ = "finance_budget"
    __table_args__ = (UniqueConstraint("programme", "fiscal_year", name="uq_finance_budget_programme_year"),)
    id: int | None = Field(default=None, primary_key=True)
    programme: str = Field(max_length=40)
    fiscal_year: int
    name: str = Field(max_length=200)
    created_by: int = Field(sa_type=BigInteger)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)


class FinanceClaim(SQLModel, table=True):
    """A subsidy claim. `version` grows by one with every transition, which is a conditional UPDATE
    (`WHERE version = :seen`), so two people acting on one claim at once cannot both succeed."""

    __tablename__ = "finance_claim"
    __table_args__ = (
        UniqueConstraint("enterprise_id", "programme", "project_ref", "period", name="uq_finance_claim_key"),
        CheckConstraint(
            "approved_by IS NULL OR (approved_by <> submitted_by"
            " AND (reviewed_by IS NULL OR approved_by <> reviewed_by))",
            name="ck_finance_claim_four_eyes",
        ),
        CheckConstraint("state IN (" + ", ".join(f"'{s}'" for s in CLAIM_STATES) + ")", name="ck_finance_claim_state"),
        CheckConstraint(
            "amount_fen >= 0 AND clawed_back_fen >= 0 AND clawed_back_fen <= amount_fen",
            name="ck_finance_claim_amounts",
        ),
        Index("ix_finance_claim_org", "enterprise_organisation_id", "id"),
        Index("ix_finance_claim_state", "state", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    enterprise_id: int = Field(sa_type=BigInteger)
    enterprise_organisation_id: int = Field(foreign_key="organisation.id")
    enterprise_name: str = Field(max_length=200)
    enterprise_uscc: str = Field(max_length=18)
    programme: str = Field(max_length=40)
    project_ref: str = Field(max_length=100)
    period: str = Field(max_length=20)
    facts: str = Field(sa_type=Text)  # JSON object of the incentives facts, as submitted
    payee_bank: str = Field(max_length=200)
    payee_account_no: str = Field(max_length=40)
    state: str = Field(max_length=16)
    version: int = Field(default=1)
    cycle: int = Field(default=1)  # 1 + number of resubmissions after a return or rejection
    state_changed_at: dt.datetime = Field(sa_type=DateTimeUTC)
    due_on: dt.date | None = Field(default=None)
    evaluation_on: dt.date | None = Field(default=None)
    submitted_by: int = Field(sa_type=BigInteger)
    submitted_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)
    checked_by: int | None = Field(default=None, sa_type=BigInteger)
    reviewed_by: int | None = Field(default=None, sa_type=BigInteger)
    reviewed_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)
    determination: str | None = Field(default=None, sa_type=Text)  # Determination.to_dict() as JSON
    determination_digest: str | None = Field(default=None, max_length=64)
    eligible: bool | None = Field(default=None)
    amount_fen: int = Field(default=0, sa_type=BigInteger)
    approved_by: int | None = Field(default=None, sa_type=BigInteger)
    approved_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)
    notice_first_day: dt.date | None = Field(default=None)
    notice_last_day: dt.date | None = Field(default=None)
    budget_id: int | None = Field(default=None, foreign_key="finance_budget.id")
    hold_transfer_id: int | None = Field(default=None, foreign_key="ledger_transfer.id")
    decided_by: int | None = Field(default=None, sa_type=BigInteger)
    decided_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)
    reason: str = Field(default="", max_length=1000)
    decision_facts: str | None = Field(default=None, sa_type=Text)  # facts at the last decision (JSON)
    changes: str = Field(default="[]", sa_type=Text)  # what the last resubmission changed (JSON list)
    disbursement_batch_id: int | None = Field(default=None, foreign_key="finance_disbursement_batch.id")
    disbursed_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)
    clawed_back_fen: int = Field(default=0, sa_type=BigInteger)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)


class FinanceClaimEvent(SQLModel, table=True):
    """One transition of a claim, in order; `seq` equals the claim's version after the transition."""

    __tablename__ = "finance_claim_event"
    __table_args__ = (UniqueConstraint("claim_id", "seq", name="uq_finance_claim_event_seq"),)
    id: int | None = Field(default=None, primary_key=True)
    claim_id: int = Field(foreign_key="finance_claim.id")
    seq: int
    action: str = Field(max_length=24)
    from_state: str = Field(max_length=16)
    to_state: str = Field(max_length=16)
    actor_id: int = Field(sa_type=BigInteger)
    actor_role: str = Field(max_length=24)
    at: dt.datetime = Field(sa_type=DateTimeUTC)
    note: str = Field(default="", max_length=1000)
    data: str = Field(default="{}", sa_type=Text)


class FinanceDisbursementBatch(SQLModel, table=True):
    """One payment run: the claims it paid and the CSV payment file for the bank. `batch_key` is the request
    key or the scheduler's day key, so a retried or doubled run finds its first batch."""

    __tablename__ = "finance_disbursement_batch"
    id: int | None = Field(default=None, primary_key=True)
    batch_key: str = Field(max_length=240, unique=True)
    batch_no: str = Field(max_length=40, default="")
    created_by: str = Field(max_length=100)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)
    line_count: int = Field(default=0)
    total_fen: int = Field(default=0, sa_type=BigInteger)
    payment_file: str = Field(default="", sa_type=Text)


class FinanceDocument(SQLModel, table=True):
    """A document issued to someone (decision letter, clawback decision, green-credit report). `record` is the
    canonical JSON the verification code hashes; `/verify/{code}` answers from it without a login."""

    __tablename__ = "finance_document"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=24, unique=True)
    kind: str = Field(max_length=32)
    document_no: str = Field(max_length=40)
    claim_id: int | None = Field(default=None, foreign_key="finance_claim.id", index=True)
    query_id: int | None = Field(default=None, foreign_key="finance_green_credit_query.id", index=True)
    record: str = Field(sa_type=Text)
    issued_at: dt.datetime = Field(sa_type=DateTimeUTC)


class FinanceConsent(SQLModel, table=True):
    """An enterprise's consent to one bank's green-credit queries. Revoking keeps the row (status revoked);
    granting again reactivates it, and the audit log keeps every change."""

    __tablename__ = "finance_consent"
    __table_args__ = (
        UniqueConstraint("enterprise_id", "bank_organisation_id", name="uq_finance_consent_pair"),
        CheckConstraint("status IN ('active', 'revoked')", name="ck_finance_consent_status"),
    )
    id: int | None = Field(default=None, primary_key=True)
    enterprise_id: int = Field(sa_type=BigInteger)
    enterprise_organisation_id: int = Field(foreign_key="organisation.id", index=True)
    enterprise_name: str = Field(max_length=200)
    bank_organisation_id: int = Field(foreign_key="organisation.id", index=True)
    bank_name: str = Field(max_length=200)
    purpose: str = Field(max_length=500)
    status: str = Field(max_length=8)
    valid_until: dt.date | None = Field(default=None)
    granted_by: int = Field(sa_type=BigInteger)
    granted_at: dt.datetime = Field(sa_type=DateTimeUTC)
    revoked_by: int | None = Field(default=None, sa_type=BigInteger)
    revoked_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)


class FinanceGreenCreditQuery(SQLModel, table=True):
    """One bank query about an enterprise ("who looked at my data"). Answered queries keep the signed answer;
    a query refused for want of consent is logged too, and only the enterprise sees it."""

    __tablename__ = "finance_green_credit_query"
    __table_args__ = (
        Index("ix_finance_gcq_enterprise", "enterprise_organisation_id", "id"),
        Index("ix_finance_gcq_bank", "bank_organisation_id", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    bank_organisation_id: int = Field(foreign_key="organisation.id")
    bank_name: str = Field(max_length=200)
    asked_by: int = Field(sa_type=BigInteger)
    enterprise_id: int = Field(sa_type=BigInteger)
    enterprise_organisation_id: int = Field(foreign_key="organisation.id")
    consent_id: int | None = Field(default=None, foreign_key="finance_consent.id")
    outcome: str = Field(max_length=24)  # answered | refused_no_consent
    purpose: str = Field(max_length=500)
    project_ref: str = Field(default="", max_length=100)
    asked_at: dt.datetime = Field(sa_type=DateTimeUTC)
    answer: str | None = Field(default=None, sa_type=Text)  # canonical JSON of the signed body
    signature: str | None = Field(default=None, max_length=100)
    key_id: str | None = Field(default=None, max_length=32)


class FinancePenalty(SQLModel, table=True):
    """A payable notice for a compliance fine. One per settled obligation; paid once, by a bank's record."""

    __tablename__ = "finance_penalty"
    __table_args__ = (
        UniqueConstraint("period_id", "obligation_id", name="uq_finance_penalty_obligation"),
        CheckConstraint("fine_fen > 0 AND surcharge_fen >= 0 AND paid_fen >= 0", name="ck_finance_penalty_amounts"),
        CheckConstraint("status IN ('unpaid', 'paid')", name="ck_finance_penalty_status"),
        Index("ix_finance_penalty_org", "enterprise_organisation_id", "id"),
        Index("ix_finance_penalty_due", "status", "due_on"),
    )
    id: int | None = Field(default=None, primary_key=True)
    notice_no: str = Field(max_length=40, unique=True)
    enterprise_id: int = Field(sa_type=BigInteger)
    enterprise_organisation_id: int = Field(foreign_key="organisation.id")
    enterprise_name: str = Field(max_length=200)
    enterprise_uscc: str = Field(max_length=18)
    period_id: int = Field(sa_type=BigInteger)
    period_code: str = Field(max_length=16)
    scheme_code: str = Field(max_length=16)
    obligation_id: int = Field(sa_type=BigInteger)
    shortfall: int = Field(default=0, sa_type=BigInteger)
    fine_fen: int = Field(sa_type=BigInteger)
    fine_formula: str = Field(default="", max_length=500)
    citation: str = Field(default="", max_length=500)
    issued_on: dt.date
    due_on: dt.date
    status: str = Field(max_length=8, default="unpaid")
    overdue_marked_on: dt.date | None = Field(default=None)
    surcharge_fen: int = Field(default=0, sa_type=BigInteger)
    paid_fen: int = Field(default=0, sa_type=BigInteger)
    paid_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)
    paid_recorded_by: int | None = Field(default=None, sa_type=BigInteger)
    paid_bank_organisation_id: int | None = Field(default=None, foreign_key="organisation.id")
    bank_reference: str = Field(default="", max_length=100)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)
