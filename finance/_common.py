"""What the finance context's use cases share: its dated parameters, its ledger owners and limits, the roles that
act on claims, and small helpers (JSON columns, the problems a refused transition or bad facts answer, the
registry's look-up of an enterprise, this context's CNY ledger accounts, the actor of a move).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core import ledger
from core.clock import business_date
from core.errors import AppError, Forbidden, NotFound
from core.identity import Identity, Role
from core.models import LedgerAccount, LedgerAsset
from core.parameters import DatedParameters
from finance.context import FinanceContext
from finance.domain import rules
from finance.domain import workflow as wf
from finance.models import FinanceClaim, FinanceConsent
from incentives import engine
from incentives.service import facts_problem

PARAMS = DatedParameters.load(Path(__file__).with_name("parameters.yaml"))
CNY = "CNY"
BATCH_SIZE_MAX = 500
LIST_LIMIT_MAX = 500

# Ledger owners of this context (owner_kind, role).
APPROPRIATION = ("finance_appropriation", ledger.ROLE_ISSUANCE)
BUDGET = ("finance_budget", "budget")
PAYEE = ("finance_payee", "payee")
FINE_PAYER = ("finance_fine_payer", ledger.ROLE_ISSUANCE)
FINE_REVENUE = ("finance_fine_revenue", "revenue")

FINANCE_STAFF = frozenset({Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER})
SEES_ALL_CLAIMS = frozenset({Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER, Role.AUDITOR})

# The registry answers enterprise look-ups for an identity; this context reads as a read-all principal. It is
# never an API caller and never acts: it only lets this context ask the registry about an enterprise by id.
READER = Identity(principal_id=0, organisation_id=0, role=Role.AUDITOR, label="finance-service")


def param(name: str, on: dt.date) -> Any:
    return PARAMS.value(name, on)


def dump_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def load_json(text: str | None, default: Any = None) -> Any:
    return default if text is None else json.loads(text)


def refused(exc: wf.TransitionRefused) -> AppError:
    return AppError(
        "claim-transition-refused",
        str(exc),
        extra={
            "current_state": exc.state.value,
            "action": exc.action.value,
            "allowed_actions": [a.value for a in exc.allowed],
        },
    )


def engine_facts_problem(exc: engine.FactsError, prefix: str) -> AppError:
    """The incentives context's own problem for bad facts (422 facts-invalid naming every fact)."""
    return facts_problem(exc.problems, prefix=f"{prefix}.")


def require(who: Identity, *roles: Role) -> None:
    if who.role not in roles:
        raise Forbidden()


async def enterprise(ctx: FinanceContext, who: Identity, enterprise_id: int, field_name: str = "enterprise_id") -> Any:
    """The enterprise as the registry shows it to `who` (an emitter sees only its own): 404 otherwise."""
    reader = who if who.role == Role.EMITTER else READER
    try:
        return await ctx.registry.get_enterprise(reader, enterprise_id)
    except AppError as exc:
        if exc.problem.slug == "not-found":
            raise NotFound("enterprise", field=field_name) from None
        raise


async def cny_asset(ses: AsyncSession) -> LedgerAsset:
    return await ledger.ensure_asset(ses, CNY, scale=2, serialised=False)


async def account(ses: AsyncSession, owner: tuple[str, str], owner_id: int) -> LedgerAccount:
    asset = await cny_asset(ses)
    return await ledger.ensure_account(
        ses, asset_id=asset.id or 0, owner_kind=owner[0], owner_id=owner_id, role=owner[1]
    )


def actor_of(who: Identity | None) -> tuple[int, str, str]:
    if who is None:
        return 0, "system", "system:scheduler"
    return who.principal_id, who.role.value, who.actor


def claim_no(claim: FinanceClaim) -> str:
    return rules.claim_no(business_date(claim.created_at).year, claim.id or 0)


def consent_active(c: FinanceConsent, today: dt.date) -> bool:
    return c.status == "active" and (c.valid_until is None or today <= c.valid_until)
