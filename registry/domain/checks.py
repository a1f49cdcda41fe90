"""The registry's numbered checks (domain.md section 3) as pure functions that return every failure at once.

Each failure is (problem slug, field, message). The service raises the first as the HTTP problem and lists the
rest in it, so a user fixes everything in one go.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from core.figures import quantity as quantity_text
from registry.domain.instruments import Kind

Failure = tuple[str, str, str]

ACCOUNT_OPEN = "open"
ACCOUNT_BLOCKED = "blocked"
ACCOUNT_CLOSURE_PENDING = "closure_pending"
ACCOUNT_CLOSED = "closed"
ACCOUNT_STATUSES = (ACCOUNT_OPEN, ACCOUNT_BLOCKED, ACCOUNT_CLOSURE_PENDING, ACCOUNT_CLOSED)

HOLDING = "holding"
TRADING = "trading"
ALLOCATION = "allocation"
USER_ACCOUNT_TYPES = (HOLDING, TRADING, ALLOCATION)
SYSTEM_ACCOUNT_TYPES = ("issuance", "surrender", "retirement", "cancellation", "expiry", "freeze", "auction", "reserve")

# Which kinds each account type may acquire. Trading members hold only what the national market lists;
# energy-use rights and discharge permits are compliance instruments held by the obligated enterprises.
MAY_HOLD: dict[str, frozenset[Kind]] = {
    HOLDING: frozenset(Kind),
    ALLOCATION: frozenset(Kind),
    TRADING: frozenset({Kind.CEA, Kind.CCER, Kind.GEC}),
}


@dataclass(frozen=True)
class AccountFacts:
    id: int
    type: str
    status: str


def check_status(acc: AccountFacts, field: str, *, acquiring: bool) -> list[Failure]:
    if acc.status == ACCOUNT_CLOSED:
        return [("account-closed", field, f"Account {acc.id} is closed and never reopens.")]
    if acc.status == ACCOUNT_BLOCKED:
        return [("account-blocked", field, f"Account {acc.id} is blocked; ask the regulator.")]
    if acc.status == ACCOUNT_CLOSURE_PENDING and acquiring:
        return [("account-closed", field, f"Account {acc.id} is being closed and may not acquire units.")]
    return []


def check_transfer(
    source: AccountFacts,
    dest: AccountFacts,
    kind: Kind,
    *,
    tradable: bool,
    expires_on: dt.date | None,
    today: dt.date,
) -> list[Failure]:
    failures: list[Failure] = []
    if source.id == dest.id:
        failures.append(("accounts-must-differ", "to_account_id", "Transfer to another account."))
    failures += check_status(source, "from_account_id", acquiring=False)
    failures += check_status(dest, "to_account_id", acquiring=True)
    if dest.type in MAY_HOLD and kind not in MAY_HOLD[dest.type]:
        failures.append(("account-may-not-hold", "to_account_id", f"A {dest.type} account may not hold {kind.value}."))
    if not tradable:
        failures.append(
            ("not-tradable", "instrument_id", "These certificates may only be claimed (retired), not transferred.")
        )
    failures += check_not_expired(expires_on, today)
    return failures


def check_not_expired(expires_on: dt.date | None, today: dt.date) -> list[Failure]:
    if expires_on is not None and today > expires_on:
        return [("certificate-expired", "instrument_id", f"These units expired after {expires_on.isoformat()}.")]
    return []


def check_untrusted_cap(quantity: int, cap: int) -> list[Failure]:
    if quantity > cap:
        return [
            (
                "untrusted-transfer-cap",
                "quantity",
                f"A transfer to an untrusted account may move at most {quantity_text(cap)} base units; "
                "split it or trust the account.",
            )
        ]
    return []
