"""Errors that carry their HTTP meaning, rendered as RFC 9457 ``application/problem+json``.

Every refusal has a stable ``type`` (a slug from the catalogue below, published at ``/problems/<slug>``) and a
numbered check code after the UK ETS registry's catalogue, so that clients can branch on it and staff can look
it up. A message says how to fix the input. Raising one inside a unit of work rolls the whole unit back, so a
refused request changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.observability import REQUEST_ID

PROBLEM_BASE = "/problems/"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str
    code: str


_CATALOGUE: tuple[ProblemType, ...] = (
    # 1xxx: request form
    ProblemType("invalid-input", 422, "The request has an invalid field", "1000"),
    ProblemType("malformed-body", 400, "The request body is not well-formed JSON", "1001"),
    ProblemType("unsupported-media-type", 415, "This route takes application/json", "1002"),
    ProblemType("body-too-large", 413, "The request body is over the size limit", "1003"),
    ProblemType("idempotency-key-missing", 400, "This request moves value and needs an Idempotency-Key", "1010"),
    ProblemType("idempotency-key-reused", 422, "This Idempotency-Key was used with another request body", "1011"),
    ProblemType(
        "idempotency-key-in-flight", 409, "A request with this Idempotency-Key is still being processed", "1012"
    ),
    # 2xxx: access
    ProblemType("unauthenticated", 401, "Authentication is required", "2001"),
    ProblemType("forbidden", 403, "Your role may not do this", "2003"),
    ProblemType("sign-in-locked", 429, "Too many wrong passwords; sign-in is locked for a while", "2005"),
    ProblemType("rate-limited", 429, "Too many requests; slow down and retry after the time given", "2006"),
    ProblemType("four-eyes-required", 403, "A second person must approve this", "2004"),
    ProblemType("not-found", 404, "No such resource", "2404"),
    # 3xxx: registry checks (domain.md section 3)
    ProblemType("unknown-account", 404, "Unknown account", "3001"),
    ProblemType("account-closed", 409, "The account is closed", "3002"),
    ProblemType("account-blocked", 409, "The account is blocked", "3003"),
    ProblemType("quantity-invalid", 422, "The quantity is not a positive whole number of base units", "3004"),
    ProblemType("insufficient-available", 409, "The quantity is above the available balance", "3005"),
    ProblemType("accounts-must-differ", 422, "The two accounts must differ", "3006"),
    ProblemType("assets-must-match", 422, "The two sides must hold the same unit class", "3007"),
    ProblemType("account-may-not-hold", 422, "The acquiring account may not hold this kind of unit", "3008"),
    ProblemType("untrusted-counterparty", 409, "The acquiring account is not on the trusted list", "3009"),
    ProblemType("issuance-cap-exceeded", 409, "The issuance is above the cap left", "3010"),
    ProblemType("period-closed", 409, "The period is closed", "3011"),
    ProblemType("vintage-not-eligible", 422, "The vintage is not eligible for this surrender", "3012"),
    ProblemType("offset-cap-exceeded", 422, "Offsets above the cap for this obligation", "3013"),
    ProblemType("certificate-expired", 409, "The certificate has expired", "3014"),
    ProblemType(
        "untrusted-transfer-cap", 422, "The quantity is above the cap for a transfer to an untrusted account", "3015"
    ),
    ProblemType("not-tradable", 409, "These certificates are not tradable", "3016"),
    ProblemType("invalid-state", 409, "The resource is not in a state that allows this", "3017"),
    ProblemType("duplicate", 409, "This already exists", "3018"),
    ProblemType("calendar-not-published", 409, "The working-day calendar for that year is not published", "3019"),
    # 4xxx: ledger
    ProblemType("transfer-exists-different", 409, "A transfer with this id exists with other fields", "4001"),
    ProblemType("pending-already-resolved", 409, "The hold was already posted or voided", "4002"),
    ProblemType("amount-overflow", 422, "The amount would overflow a 64-bit balance", "4003"),
    # 5xxx: infrastructure
    ProblemType("service-unavailable", 503, "The service is busy; retry after the given delay", "5003"),
    ProblemType("internal-error", 500, "Internal error", "5000"),
    ProblemType("not-a-sandbox", 409, "This database is not a sandbox: its clock is real time and cannot move", "5101"),
    ProblemType("clock-not-forward", 409, "The sandbox clock only moves forward", "5102"),
    # 36xx: compliance cycle (registry/compliance; domain.md section 4)
    ProblemType("instrument-not-eligible", 422, "These units cannot cover this kind of obligation", "3601"),
    ProblemType("pollutant-mismatch", 422, "Permits of another pollutant cannot cover this obligation", "3602"),
    ProblemType("surrender-above-obligation", 422, "The surrender is above what remains of the obligation", "3603"),
    ProblemType("no-verified-obligation", 409, "There is no verified obligation to surrender against", "3604"),
    ProblemType("report-rows-invalid", 422, "The report has invalid rows; nothing was imported", "3610"),
    ProblemType("reference-price-missing", 409, "No reference price is known for this settlement", "3620"),
    ProblemType("compliance-parameter-invalid", 422, "A compliance parameter is missing or out of range", "3621"),
    # 38xx: trading (trading/; domain.md section 5). Slugs equal the matcher's stable result codes where one exists.
    ProblemType("invalid-price", 422, "The price is missing, not positive, or given where none is allowed", "3801"),
    ProblemType("off-tick", 422, "The price is not a whole multiple of the tick", "3802"),
    ProblemType("off-lot", 422, "The quantity is not a whole multiple of the lot", "3803"),
    ProblemType("outside-band", 422, "The price lies outside the price band around the previous close", "3804"),
    ProblemType("quantity-above-max", 422, "The quantity is above this trading mode's maximum", "3805"),
    ProblemType("market-closed", 409, "The market is closed for this kind of order now", "3806"),
    ProblemType("wrong-mode", 422, "This order kind or command is not available in this market's mode", "3807"),
    ProblemType("would-cross", 409, "The listing would cross the opposite side; pick the opposite listing", "3808"),
    ProblemType("order-filled", 409, "The order is already filled", "3809"),
    ProblemType("order-cancelled", 409, "The order is already cancelled", "3810"),
    ProblemType("self-trade", 422, "A participant cannot trade with itself", "3811"),
    ProblemType("pick-wrong-side", 422, "A buyer picks a sell listing and a seller picks a buy listing", "3812"),
    ProblemType("pick-outside-best-levels", 409, "Only listings within the best five levels can be picked", "3813"),
    ProblemType("pick-quantity-above-listing", 409, "The pick asks for more than the listing has left", "3814"),
    ProblemType("t-plus-one", 409, "Units bought today can be sold from the next trading day", "3815"),
    ProblemType("below-block-minimum", 422, "A block trade needs at least the block minimum quantity", "3816"),
    ProblemType("below-floor", 422, "The bid is below the auction's floor price", "3817"),
    ProblemType("above-ceiling", 422, "The bid is above the auction's ceiling price", "3818"),
    ProblemType("auction-spec-invalid", 422, "The auction's terms break the auction rules", "3819"),
    # 37xx: finance (finance/; domain.md section 7)
    ProblemType("claim-transition-refused", 409, "The claim's current state does not allow this action", "3701"),
    ProblemType("budget-insufficient", 409, "The programme budget has not enough available for this amount", "3702"),
    ProblemType("budget-missing", 409, "No budget exists for this programme and fiscal year", "3703"),
    ProblemType("notice-period-running", 409, "The public notice period has not ended yet", "3704"),
    ProblemType("claim-not-eligible", 409, "The claim's determination is not eligible for payment", "3705"),
    ProblemType("clawback-window-closed", 409, "The window for recovering this subsidy has closed", "3706"),
    ProblemType("penalty-already-paid", 409, "This penalty notice is already paid", "3707"),
    ProblemType("payment-amount-mismatch", 422, "The payment does not equal the amount due today", "3708"),
    # 39xx: incentives (incentives/; domain.md section 6)
    ProblemType("facts-invalid", 422, "The facts given are missing or invalid", "3901"),
    ProblemType("parameter-not-in-force", 422, "A parameter has no value in force on the day asked", "3902"),
    ProblemType("reform-invalid", 422, "The reform's parameter values do not fit the parameters", "3903"),
    ProblemType("batch-input-invalid", 422, "The batch has invalid columns or rows; nothing was evaluated", "3904"),
    ProblemType("unknown-programme", 404, "No incentive programme has this code", "3905"),
    ProblemType("unknown-parameter", 404, "No incentive parameter has this name", "3906"),
)

CATALOGUE: dict[str, ProblemType] = {p.slug: p for p in _CATALOGUE}


class AppError(Exception):
    """A refusal that maps to one problem type. `field` names the offending input where there is one."""

    def __init__(
        self,
        slug: str,
        detail: str,
        *,
        field: str | None = None,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if slug not in CATALOGUE:
            raise KeyError(f"unknown problem type {slug!r}")
        super().__init__(detail)
        self.problem = CATALOGUE[slug]
        self.detail = detail
        self.field = field
        self.status = status or self.problem.status
        self.extra = extra or {}
        self.headers = headers or {}

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.problem.slug,
            "title": self.problem.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.problem.code,
        }
        if self.field is not None:
            body["field"] = self.field
        if instance is not None:
            body["instance"] = instance
        rid = REQUEST_ID.get()
        if rid is not None:
            body["request_id"] = rid
        body.update(self.extra)
        return body


class InvalidInput(AppError):
    def __init__(self, field: str, detail: str, **kw: Any) -> None:
        super().__init__("invalid-input", detail, field=field, **kw)


class NotFound(AppError):
    def __init__(self, what: str, field: str | None = None) -> None:
        super().__init__("not-found", f"No {what} with this id is visible to you.", field=field)


class Forbidden(AppError):
    def __init__(self, detail: str = "Your role does not allow this operation.") -> None:
        super().__init__("forbidden", detail)


class Conflict(AppError):
    def __init__(self, slug: str, detail: str, field: str | None = None, **kw: Any) -> None:
        super().__init__(slug, detail, field=field, **kw)


class ServiceUnavailable(AppError):
    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__("service-unavailable", detail, headers={"Retry-After": str(retry_after_s)})
