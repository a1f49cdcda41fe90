"""Request and response shapes of the finance API. Requests forbid unknown fields, so a body that tries to set
server-owned fields (state, amount, approved_by, organisation) is refused with 422. Money in requests is a
decimal string of yuan (or a whole JSON number of yuan), parsed exactly by `core.quantity`; money in responses
is integer fen (`*_fen`) with the display string beside it (`*_yuan`)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import msgspec

from core.schema import Amount, Code, FreeObject, Id, IdList, Name, OptAmount, Reference, Req, Year
from core.schema import Note as NoteText

ClaimState = Literal[
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
]

# ------------------------------------------------------------------------------------------------ claims


class SubmitClaim(Req):
    """A new claim. `facts` are the incentives facts of the programme (see the incentives fact list); money facts
    are integer fen. With `draft: true` the claim is kept as a draft until `resubmitClaim` submits it."""

    enterprise_id: Id
    programme: Code
    project_ref: Reference
    period: Code
    facts: FreeObject
    payee_bank: Name
    payee_account_no: Reference
    draft: bool = False


class ResubmitClaim(Req):
    """Submit a draft, or submit a returned or rejected claim again, optionally with corrected facts or payee."""

    facts: FreeObject | None = None
    payee_bank: Name | None = None
    payee_account_no: Reference | None = None
    note: NoteText = ""


class FormalCheck(Req):
    passed: bool
    reason: NoteText = ""


class Note(Req):
    note: NoteText = ""


class Reason(Req):
    reason: NoteText


class Clawback(Req):
    reason: NoteText
    amount_yuan: OptAmount = None


class FactChangeOut(msgspec.Struct, kw_only=True):
    fact: str
    change: str
    before: Any
    after: Any


class ClaimEventOut(msgspec.Struct, kw_only=True):
    seq: int
    action: str
    from_state: str
    to_state: str
    actor_id: int
    actor_role: str
    at: dt.datetime
    note: str


class DocumentRef(msgspec.Struct, kw_only=True):
    kind: str
    document_no: str
    verification_code: str
    issued_at: dt.datetime


class ClaimOut(msgspec.Struct, kw_only=True):
    id: int
    claim_no: str
    enterprise_id: int
    enterprise_name: str
    enterprise_uscc: str
    programme: str
    project_ref: str
    period: str
    facts: dict[str, Any]
    payee_bank: str
    payee_account_no: str
    state: str
    allowed_actions: list[str]
    version: int
    cycle: int
    due_on: dt.date | None
    overdue: bool
    submitted_by: int
    submitted_at: dt.datetime | None
    checked_by: int | None
    reviewed_by: int | None
    reviewed_at: dt.datetime | None
    eligible: bool | None
    failed_gates: list[str]
    amount_fen: int
    amount_yuan: str
    approved_by: int | None
    approved_at: dt.datetime | None
    notice_first_day: dt.date | None
    notice_last_day: dt.date | None
    budget_id: int | None
    decided_by: int | None
    decided_at: dt.datetime | None
    reason: str
    changes_since_last_decision: list[FactChangeOut]
    disbursement_batch_id: int | None
    disbursed_at: dt.datetime | None
    clawed_back_fen: int
    created_at: dt.datetime
    determination: dict[str, Any] | None = None
    history: list[ClaimEventOut] = msgspec.field(default_factory=list)
    documents: list[DocumentRef] = msgspec.field(default_factory=list)


class ClaimPage(msgspec.Struct, kw_only=True):
    items: list[ClaimOut]
    next_before_id: int | None
    next_offset: int | None = None


# ------------------------------------------------------------------------------------------------ budgets


class CreateBudget(Req):
    programme: Code
    fiscal_year: Year
    name: Name = ""


class Appropriate(Req):
    amount_yuan: Amount
    reference: Reference = ""


class BudgetOut(msgspec.Struct, kw_only=True):
    id: int
    programme: str
    fiscal_year: int
    name: str
    appropriated_fen: int
    committed_fen: int
    disbursed_fen: int
    clawed_back_fen: int
    available_fen: int
    available_yuan: str
    created_at: dt.datetime


class DisburseClaims(Req):
    """Pay every finally approved claim (optionally only these claim ids) in one batch."""

    claim_ids: IdList | None = None


class DisbursementOut(msgspec.Struct, kw_only=True):
    id: int
    batch_no: str
    created_at: dt.datetime
    created_by: str
    line_count: int
    total_fen: int
    total_yuan: str
    claim_ids: list[int]


# ------------------------------------------------------------------------------------------------ documents


class VerificationOut(msgspec.Struct, kw_only=True):
    """What a verified document says, for anyone holding its code (no login)."""

    valid: bool
    verification_code: str
    type: str
    title: str
    document_no: str
    enterprise_name: str
    enterprise_uscc: str
    amount_fen: int | None
    amount_yuan: str | None
    date: str
    issued_by: str
    details: dict[str, Any]
    # A later document of the same subject exists (a newer statement of the account, a clawback decision after the
    # decision letter): this one still verifies as issued, and the newer one is named.
    superseded: bool = False
    superseded_by: str | None = None
    superseded_by_document_no: str | None = None
    superseded_on: str | None = None


class PublicKeyOut(msgspec.Struct, kw_only=True):
    algorithm: str
    key_id: str
    public_key_pem: str
    public_key_base64: str
    signs: str


# ------------------------------------------------------------------------------------------------ consent


class BankOut(msgspec.Struct, kw_only=True):
    organisation_id: int
    name: str


class GrantConsent(Req):
    enterprise_id: Id
    bank_organisation_id: Id
    purpose: NoteText
    valid_until: dt.date | None = None


class ConsentOut(msgspec.Struct, kw_only=True):
    id: int
    enterprise_id: int
    enterprise_name: str
    bank_organisation_id: int
    bank_name: str
    purpose: str
    status: str
    active: bool
    valid_until: dt.date | None
    granted_at: dt.datetime
    revoked_at: dt.datetime | None


class GreenCreditQuery(Req):
    """A bank's question about one enterprise (by id or unified social credit code), optionally about one
    project: `project_facts` are the incentives facts of the green-loan and carbon-tool programmes (the
    compliance shortfall is taken from the registry, never from the bank)."""

    purpose: NoteText
    enterprise_id: Id | None = None
    uscc: Code | None = None
    project_ref: Reference = ""
    project_facts: FreeObject | None = None


class GreenCreditAnswer(msgspec.Struct, kw_only=True):
    query_id: int
    answer: dict[str, Any]
    signature: dict[str, str]


class QueryLogOut(msgspec.Struct, kw_only=True):
    id: int
    bank_organisation_id: int
    bank_name: str
    enterprise_id: int
    outcome: str
    purpose: str
    project_ref: str
    asked_at: dt.datetime
    has_report: bool


# ------------------------------------------------------------------------------------------------ penalties


class IssuePenalties(Req):
    period_id: Id | None = None


class IssueOut(msgspec.Struct, kw_only=True):
    issued: int
    already_issued: int
    notices: list[int]


class RecordPayment(Req):
    notice_no: Reference
    amount_yuan: Amount
    bank_reference: Reference


class PenaltyOut(msgspec.Struct, kw_only=True):
    id: int
    notice_no: str
    enterprise_id: int
    enterprise_name: str
    enterprise_uscc: str
    period_id: int
    period_code: str
    scheme_code: str
    shortfall: int
    fine_fen: int
    fine_yuan: str
    fine_formula: str
    citation: str
    issued_on: dt.date
    due_on: dt.date
    status: str
    days_late: int
    surcharge_fen: int
    amount_due_fen: int
    amount_due_yuan: str
    paid_fen: int
    paid_at: dt.datetime | None
    bank_reference: str


PenaltyStatus = Literal["unpaid", "overdue", "paid"]
