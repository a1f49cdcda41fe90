"""HTTP controllers of the finance context: thin, guarded, each route with its operation id, tags and problems.

Every POST that changes a claim, a budget, a consent or a penalty needs an `Idempotency-Key` (a retried request
replays the first answer). A bank's green-credit query is a read with an access log, so it needs none: each
call is one more logged look. `/verify/...` is public: anyone holding a document's code can check it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody, Parameter
from litestar.response import Template

from core.csvfile import csv_response
from core.http import IDEMPOTENT, READ_PROBLEMS, WRITE_PROBLEMS, allow, problem_responses, request_key
from core.identity import Identity, Role
from core.quantity import parse_money_fen
from core.schema import MAX_ID, IdPath
from finance import budgets, claims, claims_review, consents, disbursement, green_credit, letters, penalties
from finance import schemas as s
from finance.context import FinanceContext

R = Role
STAFF = (R.FINANCE_REVIEWER, R.FINANCE_APPROVER)
CLAIM_READERS = (R.EMITTER, *STAFF, R.AUDITOR)
CLAIMANTS = (R.EMITTER, *STAFF)
TAGS = ["finance"]
Limit = Annotated[int, Parameter(ge=1, le=500)]
BeforeId = Annotated[int | None, Parameter(ge=1, le=MAX_ID)]


def ctx(request: Request[Any, Any, Any]) -> FinanceContext:
    """The finance context that the application's `FinanceService` holds (built once per process)."""
    return request.app.state.finance.ctx  # type: ignore[no-any-return]


# A verification code as a reader types it (any case, spaces for dashes): anything up to this long that is not a
# code answers 404 like an unknown one; longer is refused.
TypedCode = Annotated[str, Parameter(max_length=1000)]
# A letter's number as the claim lists it in `documents` (e.g. JD2026-000012-01).
DocumentNo = Annotated[str | None, Parameter(max_length=40)]

class ClaimController(Controller):
    path = "/api/v1/finance/claims"
    tags = TAGS

    @post(
        "/",
        operation_id="submitClaim",
        guards=[allow(*CLAIMANTS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Submit a subsidy claim (or keep it as a draft); one per enterprise, programme, project and period",
    )
    async def submit(self, request: Request[Identity, Any, Any], data: JSONBody[s.SubmitClaim]) -> s.ClaimOut:
        return await claims.submit_claim(ctx(request), request.user, data, request_key(request))

    @get("/", operation_id="listClaims", guards=[allow(*CLAIM_READERS)], responses=READ_PROBLEMS)
    async def list_claims(
        self,
        request: Request[Identity, Any, Any],
        claim_state: Annotated[s.ClaimState | None, Parameter(query="state")] = None,
        programme: Annotated[str | None, Parameter(max_length=40)] = None,
        enterprise_id: Annotated[int | None, Parameter(ge=1, le=MAX_ID)] = None,
        overdue: bool | None = None,
        limit: Limit = 50,
        before_id: BeforeId = None,
        city: Annotated[str | None, Parameter(max_length=8)] = None,
        amount_min: Annotated[str | None, Parameter(max_length=24)] = None,
        amount_max: Annotated[str | None, Parameter(max_length=24)] = None,
        submitted_from: dt.date | None = None,
        submitted_to: dt.date | None = None,
        sort: Literal["-id", "submitted_at", "-submitted_at", "amount", "-amount"] = "-id",
        offset: Annotated[int, Parameter(ge=0, le=100_000)] = 0,
    ) -> s.ClaimPage:
        """Claims, newest first by default; filter by state, programme, enterprise, city, amount in yuan
        (`amount_min`/`amount_max`, both ends included) and submission date (Asia/Shanghai); sort by submission
        time or amount (`-` for descending) and then page with `offset`."""
        return await claims.list_claims(
            ctx(request),
            request.user,
            state=claim_state,
            programme=programme,
            enterprise_id=enterprise_id,
            overdue=overdue,
            limit=limit,
            before_id=before_id,
            city=city,
            amount_min_fen=None if amount_min is None else parse_money_fen(amount_min, field="amount_min"),
            amount_max_fen=None if amount_max is None else parse_money_fen(amount_max, field="amount_max"),
            submitted_from=submitted_from,
            submitted_to=submitted_to,
            sort=sort,
            offset=offset,
        )

    @get(
        "/{claim_id:int}",
        operation_id="getClaim",
        guards=[allow(*CLAIM_READERS)],
        responses=READ_PROBLEMS,
        summary="A claim with its determination, history, documents and what changed since the last decision",
    )
    async def get_claim(self, request: Request[Identity, Any, Any], claim_id: IdPath) -> s.ClaimOut:
        return await claims.get_claim(ctx(request), request.user, claim_id)

    @post(
        "/{claim_id:int}/submission",
        operation_id="resubmitClaim",
        guards=[allow(*CLAIMANTS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Submit a draft, or a returned or rejected claim again (the changes are recorded)",
    )
    async def resubmit(
        self, request: Request[Identity, Any, Any], claim_id: IdPath, data: JSONBody[s.ResubmitClaim]
    ) -> s.ClaimOut:
        return await claims.resubmit_claim(ctx(request), request.user, claim_id, data)

    @post(
        "/{claim_id:int}/formal-check",
        operation_id="formalCheckClaim",
        guards=[allow(*STAFF)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Pass the formal check, or return the claim for correction with a reason",
    )
    async def formal_check(
        self, request: Request[Identity, Any, Any], claim_id: IdPath, data: JSONBody[s.FormalCheck]
    ) -> s.ClaimOut:
        return await claims.formal_check(ctx(request), request.user, claim_id, data)

    @post(
        "/{claim_id:int}/review",
        operation_id="reviewClaim",
        guards=[allow(*STAFF)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Recompute the determination with the incentives engine and attach it",
    )
    async def review(
        self, request: Request[Identity, Any, Any], claim_id: IdPath, data: JSONBody[s.Note]
    ) -> s.ClaimOut:
        return await claims_review.review_claim(ctx(request), request.user, claim_id, data)

    @post(
        "/{claim_id:int}/approval",
        operation_id="approveClaim",
        guards=[allow(R.FINANCE_APPROVER)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Four-eyes approval: commit the budget and open the public notice (公示)",
    )
    async def approve(
        self, request: Request[Identity, Any, Any], claim_id: IdPath, data: JSONBody[s.Note]
    ) -> s.ClaimOut:
        return await claims_review.approve_claim(ctx(request), request.user, claim_id, data)

    @post(
        "/{claim_id:int}/finalisation",
        operation_id="finaliseClaim",
        guards=[allow(*STAFF)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Make the approval final after the public notice and issue the decision letter",
    )
    async def finalise(self, request: Request[Identity, Any, Any], claim_id: IdPath) -> s.ClaimOut:
        return await claims_review.finalise_claim(ctx(request), request.user, claim_id)

    @post(
        "/{claim_id:int}/rejection",
        operation_id="rejectClaim",
        guards=[allow(*STAFF)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Reject with a reason (releases a committed budget) and issue the decision letter",
    )
    async def reject(
        self, request: Request[Identity, Any, Any], claim_id: IdPath, data: JSONBody[s.Reason]
    ) -> s.ClaimOut:
        return await claims_review.reject_claim(ctx(request), request.user, claim_id, data)

    @post(
        "/{claim_id:int}/clawback",
        operation_id="clawbackClaim",
        guards=[allow(R.FINANCE_APPROVER)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Recover a disbursed subsidy (in full or in part) back to the budget",
    )
    async def clawback(
        self, request: Request[Identity, Any, Any], claim_id: IdPath, data: JSONBody[s.Clawback]
    ) -> s.ClaimOut:
        return await claims_review.clawback_claim(ctx(request), request.user, claim_id, data)

    @get(
        "/{claim_id:int}/decision-letter.pdf",
        operation_id="downloadDecisionLetter",
        guards=[allow(*CLAIM_READERS)],
        responses=READ_PROBLEMS,
        media_type="application/pdf",
        summary="A decision letter (决定书) of the claim, in Chinese, with its verification code: the latest, or the "
        "one numbered document_no (every version stays downloadable; the claim lists them in documents)",
    )
    async def decision_letter(
        self, request: Request[Identity, Any, Any], claim_id: IdPath, document_no: DocumentNo = None
    ) -> Response[bytes]:
        from finance.pdf import render_decision_letter

        record, code, issued_at = await letters.decision_letter(ctx(request), request.user, claim_id, document_no)
        pdf = render_decision_letter(record, code, generated_at=issued_at)
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{record.get("document_no", claim_id)}.pdf"'},
        )


class DisbursementController(Controller):
    path = "/api/v1/finance/disbursements"
    tags = TAGS

    @post(
        "/",
        operation_id="disburseClaims",
        guards=[allow(R.FINANCE_APPROVER)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Pay every finally approved claim in one batch and write the bank's payment file",
    )
    async def disburse(
        self, request: Request[Identity, Any, Any], data: JSONBody[s.DisburseClaims]
    ) -> s.DisbursementOut:
        return await disbursement.disburse_claims(ctx(request), request.user, data, request_key(request))

    @get("/", operation_id="listDisbursements", guards=[allow(*STAFF, R.AUDITOR)], responses=READ_PROBLEMS)
    async def list_batches(self, request: Request[Identity, Any, Any], limit: Limit = 50) -> list[s.DisbursementOut]:
        return await disbursement.list_disbursements(ctx(request), request.user, limit)

    @get(
        "/{batch_id:int}/payment-file.csv",
        operation_id="downloadPaymentFile",
        guards=[allow(*STAFF, R.AUDITOR)],
        responses=READ_PROBLEMS,
        media_type="text/csv",
        summary="The batch's payment file for the bank (CSV, UTF-8 with BOM; columns in finance/domain/payments.py)",
    )
    async def payment_file(self, request: Request[Identity, Any, Any], batch_id: IdPath) -> Response[str]:
        batch_no, text = await disbursement.payment_file(ctx(request), request.user, batch_id)
        return csv_response(text, f"{batch_no}.csv")


class BudgetController(Controller):
    path = "/api/v1/finance/budgets"
    tags = TAGS

    @post(
        "/",
        operation_id="createBudget",
        guards=[allow(R.FINANCE_APPROVER)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Open a programme's budget for one fiscal year",
    )
    async def create(self, request: Request[Identity, Any, Any], data: JSONBody[s.CreateBudget]) -> s.BudgetOut:
        return await budgets.create_budget(ctx(request), request.user, data)

    @get("/", operation_id="listBudgets", guards=[allow(*STAFF, R.AUDITOR)], responses=READ_PROBLEMS)
    async def list_budgets(
        self,
        request: Request[Identity, Any, Any],
        fiscal_year: Annotated[int | None, Parameter(ge=2000, le=2200)] = None,
    ) -> list[s.BudgetOut]:
        return await budgets.list_budgets(ctx(request), request.user, fiscal_year)

    @get(
        "/{budget_id:int}",
        operation_id="getBudget",
        guards=[allow(*STAFF, R.AUDITOR)],
        responses=READ_PROBLEMS,
        summary="Appropriated, committed, disbursed, clawed back and available (from the ledger)",
    )
    async def get_budget(self, request: Request[Identity, Any, Any], budget_id: IdPath) -> s.BudgetOut:
        return await budgets.get_budget(ctx(request), request.user, budget_id)

    @post(
        "/{budget_id:int}/appropriations",
        operation_id="appropriateBudget",
        guards=[allow(R.FINANCE_APPROVER)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Post an appropriation into the budget",
    )
    async def appropriate(
        self, request: Request[Identity, Any, Any], budget_id: IdPath, data: JSONBody[s.Appropriate]
    ) -> s.BudgetOut:
        return await budgets.appropriate_budget(ctx(request), request.user, budget_id, data, request_key(request))


class ConsentController(Controller):
    path = "/api/v1/finance/consents"
    tags = TAGS

    @post(
        "/",
        operation_id="grantConsent",
        guards=[allow(R.EMITTER)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Let a named bank query the enterprise's green-credit data (until revoked or valid_until)",
    )
    async def grant(self, request: Request[Identity, Any, Any], data: JSONBody[s.GrantConsent]) -> s.ConsentOut:
        return await consents.grant_consent(ctx(request), request.user, data)

    @post(
        "/{consent_id:int}/revocation",
        operation_id="revokeConsent",
        guards=[allow(R.EMITTER)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Revoke a consent: the bank's next query answers 404",
    )
    async def revoke(self, request: Request[Identity, Any, Any], consent_id: IdPath) -> s.ConsentOut:
        return await consents.revoke_consent(ctx(request), request.user, consent_id)

    @get("/", operation_id="listConsents", guards=[allow(R.EMITTER, R.BANK, R.AUDITOR)], responses=READ_PROBLEMS)
    async def list_consents(self, request: Request[Identity, Any, Any]) -> list[s.ConsentOut]:
        return await consents.list_consents(ctx(request), request.user)


class BankController(Controller):
    path = "/api/v1/finance/banks"
    tags = TAGS

    @get(
        "/",
        operation_id="listBanks",
        guards=[allow(R.EMITTER, *STAFF, R.AUDITOR)],
        responses=READ_PROBLEMS,
        summary="The banks an enterprise can name in a consent",
    )
    async def list_banks(self, request: Request[Identity, Any, Any]) -> list[s.BankOut]:
        return await consents.list_banks(ctx(request), request.user)


class GreenCreditController(Controller):
    path = "/api/v1/finance/green-credit/queries"
    tags = TAGS

    @post(
        "/",
        operation_id="queryGreenCredit",
        guards=[allow(R.BANK)],
        responses=problem_responses(400, 401, 403, 404, 413, 415, 422, 503),
        summary="A signed green-credit answer about an enterprise that consented to this bank (else 404)",
    )
    async def query(
        self, request: Request[Identity, Any, Any], data: JSONBody[s.GreenCreditQuery]
    ) -> s.GreenCreditAnswer:
        return await green_credit.query_green_credit(ctx(request), request.user, data)

    @get(
        "/",
        operation_id="listGreenCreditQueries",
        guards=[allow(R.EMITTER, R.BANK, R.AUDITOR)],
        responses=READ_PROBLEMS,
        summary="Who looked at the enterprise's data (an enterprise), or the bank's own answered queries",
    )
    async def list_queries(self, request: Request[Identity, Any, Any], limit: Limit = 100) -> list[s.QueryLogOut]:
        return await green_credit.list_queries(ctx(request), request.user, limit)

    @get(
        "/{query_id:int}/report.pdf",
        operation_id="downloadGreenCreditReport",
        guards=[allow(R.BANK, R.EMITTER, R.AUDITOR)],
        responses=READ_PROBLEMS,
        media_type="application/pdf",
        summary="The answer as a PDF report in Chinese, with its signature and verification code",
    )
    async def report(self, request: Request[Identity, Any, Any], query_id: IdPath) -> Response[bytes]:
        from finance.pdf import render_green_credit_report

        data = await green_credit.green_credit_report(ctx(request), request.user, query_id)
        pdf = render_green_credit_report(data, generated_at=data["issued_at"])
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{data["document_no"]}.pdf"'},
        )


class PenaltyController(Controller):
    path = "/api/v1/finance/penalties"
    tags = TAGS

    @post(
        "/issue",
        operation_id="issuePenaltyNotices",
        guards=[allow(*STAFF)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="Turn settled compliance fines into payable notices (once per obligation)",
    )
    async def issue(self, request: Request[Identity, Any, Any], data: JSONBody[s.IssuePenalties]) -> s.IssueOut:
        return await penalties.issue_penalty_notices(ctx(request), request.user, data.period_id)

    @get(
        "/",
        operation_id="listPenalties",
        guards=[allow(R.EMITTER, *STAFF, R.AUDITOR, R.REGULATOR, R.ENERGY_AUTHORITY)],
        responses=READ_PROBLEMS,
        summary="Penalty notices with the amount due today; filter by status (unpaid, overdue, paid)",
    )
    async def list_penalties(
        self,
        request: Request[Identity, Any, Any],
        status: s.PenaltyStatus | None = None,
        period_id: Annotated[int | None, Parameter(ge=1, le=MAX_ID)] = None,
        limit: Limit = 200,
    ) -> list[s.PenaltyOut]:
        return await penalties.list_penalties(
            ctx(request), request.user, status=status, period_id=period_id, limit=limit
        )

    @post(
        "/{penalty_id:int}/payments",
        operation_id="recordPenaltyPayment",
        guards=[allow(R.BANK)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="The bank records the payment of a notice (the amount due today, once)",
    )
    async def pay(
        self, request: Request[Identity, Any, Any], penalty_id: IdPath, data: JSONBody[s.RecordPayment]
    ) -> s.PenaltyOut:
        return await penalties.record_penalty_payment(
            ctx(request), request.user, penalty_id, data, request_key(request)
        )


class VerifyController(Controller):
    """Public: no login. A document's code answers what the document says, or 404."""

    path = "/verify"
    tags = TAGS

    @get(
        "/public-key",
        operation_id="getSigningPublicKey",
        responses=problem_responses(503),
        summary="The Ed25519 public key that signs green-credit answers",
    )
    async def public_key(self, request: Request[Any, Any, Any]) -> s.PublicKeyOut:
        return letters.public_key(ctx(request))

    @get(
        "/{code:str}",
        operation_id="verifyDocument",
        responses=problem_responses(404, 422),
        summary="Check a document's verification code without logging in",
    )
    async def verify(self, request: Request[Any, Any, Any], code: TypedCode) -> Response[s.VerificationOut]:
        """JSON for programs; a page for a person (a browser that opened the QR code's address)."""
        out = await letters.verify_document(ctx(request), code)
        accept = request.headers.get("accept", "")
        if "text/html" in accept and ("json" not in accept or accept.find("text/html") < accept.find("json")):
            return Template(template_name="verify.html", context={"doc": out})
        return Response(out)


CONTROLLERS: list[Any] = [
    ClaimController,
    DisbursementController,
    BudgetController,
    ConsentController,
    BankController,
    GreenCreditController,
    PenaltyController,
    VerifyController,
]
