"""Request and response shapes of the finance API. Requests forbid unknown fields, so a body that tries to set
server-owned fields (state, amount, approved_by, organisation) is refused with 422. Money in requests is a
decimal string of yuan (or a whole JSON number of yuan), parsed exactly by `core.quantity`; money in responses
is integer fen (`*_fen`) with the display string beside it (`*_yuan`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from core.schema import Amount, Code, FreeObject, Id, IdList, Name, OptAmount, Reference, Req, Year, about
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

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "enterprise_id": 1,
        "programme": "first_set_insurance",
        "project_ref": "FS-2025-001",
        "period": "2025",
        "facts": {
            "fs_catalogue_code": "FS2019-01",
            "fs_first_insured_on": "2024-06-01",
            "fs_compensated_policy_years": "1",
            "fs_insured_value_fen": 5000000000,
            "fs_premium_rate_bp": 400,
            "fs_premium_paid_fen": 200000000,
        },
        "payee_bank": "中国银行南昌分行",
        "payee_account_no": "6217 0000 0000 0001",
    }

    enterprise_id: Annotated[Id, about("The enterprise that claims.")]
    programme: Annotated[Code, about("The incentives programme claimed under (listProgrammes).")]
    project_ref: Annotated[Reference, about("Your reference of the project or equipment claimed for.")]
    period: Annotated[Code, about("The period claimed for, e.g. the year 2025.")]
    facts: Annotated[FreeObject, about("The programme's incentives facts by name; money facts are integer fen.")]
    payee_bank: Annotated[Name, about("The bank the money is paid to.")]
    payee_account_no: Annotated[Reference, about("The account number the money is paid to.")]
    draft: Annotated[bool, about("Keep the claim as a draft until resubmitClaim submits it.")] = False


class ResubmitClaim(Req):
    """Submit a draft, or submit a returned or rejected claim again, optionally with corrected facts or payee."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"facts": {"fs_premium_paid_fen": 210000000}, "note": "补充保费发票"}

    facts: Annotated[FreeObject, about("Corrected facts, merged over the claim's facts.")] | None = None
    payee_bank: Annotated[Name, about("A corrected payee bank.")] | None = None
    payee_account_no: Annotated[Reference, about("A corrected payee account number.")] | None = None
    note: Annotated[NoteText, about("What was corrected.")] = ""


class FormalCheck(Req):
    """The formal check of a claim: complete and in order, or returned for correction."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"passed": True}

    passed: Annotated[bool, about("true: the claim goes to review; false: it is returned to the enterprise.")]
    reason: Annotated[NoteText, about("What is missing or wrong; required when not passed.")] = ""


class Note(Req):
    """A note on a step of a claim (review, approval)."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"note": "复核无误"}

    note: Annotated[NoteText, about("The note, kept in the claim's history.")] = ""


class Reason(Req):
    """The reason of a refusal, kept in the claim's history and on the decision letter."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"reason": "设备不在首台（套）重大技术装备推广应用指导目录内"}

    reason: Annotated[NoteText, about("Why; required.")]


class Clawback(Req):
    """Money of a paid claim to take back, in whole or in part."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"reason": "设备已转让", "amount_yuan": "200000"}

    reason: Annotated[NoteText, about("Why the money is taken back; on the clawback letter.")]
    amount_yuan: Annotated[OptAmount, about("Yuan to take back; the whole amount paid if omitted.")] = None


class FactChangeOut(msgspec.Struct, kw_only=True):
    """One fact changed since the last decision on a claim."""

    fact: str
    change: str
    before: Any
    after: Any


class ClaimEventOut(msgspec.Struct, kw_only=True):
    """One step of a claim's history."""

    seq: int
    action: str
    from_state: str
    to_state: str
    actor_id: int
    actor_role: str
    at: dt.datetime
    note: str


class DocumentRef(msgspec.Struct, kw_only=True):
    """A document issued for a claim (a decision or clawback letter) and its verification code."""

    kind: str
    document_no: str
    verification_code: str
    issued_at: dt.datetime


class ClaimOut(msgspec.Struct, kw_only=True):
    """A claim: its facts, state, the actions allowed next, the determination and its history."""

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
    """A page of claims; `next_before_id` (or `next_offset`) fetches the next page (null on the last)."""

    items: list[ClaimOut]
    next_before_id: int | None
    next_offset: int | None = None


# ------------------------------------------------------------------------------------------------ budgets


class CreateBudget(Req):
    """A budget of one programme and fiscal year, from which approved claims are paid."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"programme": "first_set_insurance", "fiscal_year": 2026}

    programme: Annotated[Code, about("The incentives programme the budget pays.")]
    fiscal_year: Annotated[Year, about("The fiscal year.")]
    name: Annotated[Name, about("A name for the budget.")] = ""


class Appropriate(Req):
    """Money appropriated to a budget."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"amount_yuan": "10000000", "reference": "赣财教〔2026〕8号"}

    amount_yuan: Annotated[Amount, about("Yuan, at most two decimals.")]
    reference: Annotated[Reference, about("The appropriation's document number.")] = ""


class BudgetOut(msgspec.Struct, kw_only=True):
    """A budget: appropriated, committed, disbursed, clawed back and available (fen)."""

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

    EXAMPLE: ClassVar[dict[str, Any]] = {"claim_ids": [1, 2]}

    claim_ids: Annotated[IdList, about("Only these claims; every finally approved claim if omitted.")] | None = None


class DisbursementOut(msgspec.Struct, kw_only=True):
    """A disbursement batch: its lines go into one payment file."""

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
    """The public key that signs green-credit answers."""

    algorithm: str
    key_id: str
    public_key_pem: str
    public_key_base64: str
    signs: str


# ------------------------------------------------------------------------------------------------ consent


class BankOut(msgspec.Struct, kw_only=True):
    """A bank an enterprise may consent to."""

    organisation_id: int
    name: str


class GrantConsent(Req):
    """An enterprise's consent that a bank may ask about it."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "enterprise_id": 1,
        "bank_organisation_id": 7,
        "purpose": "风电项目贷款审批",
        "valid_until": "2026-12-31",
    }

    enterprise_id: Annotated[Id, about("Your enterprise.")]
    bank_organisation_id: Annotated[Id, about("The bank (listBanks) that may ask.")]
    purpose: Annotated[NoteText, about("What the bank may ask for.")]
    valid_until: Annotated[dt.date, about("The consent's last day; until revoked if omitted.")] | None = None


class ConsentOut(msgspec.Struct, kw_only=True):
    """An enterprise's consent to a bank."""

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

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "enterprise_id": 1,
        "purpose": "贷前审查",
        "project_ref": "WF-1",
        "project_facts": {
            "loan_approved_on": "2025-10-01",
            "green_activity": "wind_power",
            "loan_principal_fen": 10000000000,
            "industrial_structure_class": "permitted",
            "baseline_emissions_t": 100000,
            "project_emissions_t": 20000,
            "co2_method": "CCER CMS-002-V01",
            "carbon_tool_field": "clean_energy",
            "lender_eligible": True,
        },
    }

    purpose: Annotated[NoteText, about("Why the bank asks; within the enterprise's consent.")]
    enterprise_id: Annotated[Id, about("The enterprise asked about (or give `uscc`).")] | None = None
    uscc: Annotated[Code, about("The enterprise's unified social credit code (or give `enterprise_id`).")] | None = None
    project_ref: Annotated[Reference, about("The bank's reference of the project asked about.")] = ""
    project_facts: (
        Annotated[FreeObject, about("Incentives facts of the green-loan and carbon-tool programmes for the project.")]
        | None
    ) = None


class GreenCreditAnswer(msgspec.Struct, kw_only=True):
    """The signed answer to a bank's question (Ed25519 over the canonical JSON of `answer`)."""

    query_id: int
    answer: dict[str, Any]
    signature: dict[str, str]


class QueryLogOut(msgspec.Struct, kw_only=True):
    """One question a bank asked, as logged."""

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
    """Penalty notices to issue for the fines of settled periods."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"period_id": 1}

    period_id: Annotated[Id, about("Only this period's fines; every settled period's if omitted.")] | None = None


class IssueOut(msgspec.Struct, kw_only=True):
    """The penalty notices issued now and those issued before."""

    issued: int
    already_issued: int
    notices: list[int]


class RecordPayment(Req):
    """A payment of a penalty notice as the bank reported it."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "notice_no": "FK20270101-3FA9C2D1",
        "amount_yuan": "196000.00",
        "bank_reference": "BOC-20270105-001",
    }

    notice_no: Annotated[Reference, about("The penalty notice's number.")]
    amount_yuan: Annotated[Amount, about("Yuan paid, at most two decimals.")]
    bank_reference: Annotated[Reference, about("The bank's reference of the payment.")]


class PenaltyOut(msgspec.Struct, kw_only=True):
    """A penalty notice: the fine, the late surcharge and what is due and paid."""

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
