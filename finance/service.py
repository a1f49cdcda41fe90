"""The finance context's published interface: `FinanceService`, the facade that the composition root builds once
per process and that the scheduler's jobs call. It holds the context (`finance.context.FinanceContext`) and
delegates each method to its use case; the controllers in `finance.api` call the use-case modules directly:

    claims.py         reading claims, submitting (or drafting) and resubmitting them, the formal check
    claims_review.py  review, four-eyes approval and public notice, making final, rejection, clawback
    letters.py        decision letters and the public verification of every document, the signing public key
    disbursement.py   disbursement batches and their payment files
    budgets.py        programme budgets on the ledger and their appropriations
    consents.py       enterprises' consents to banks' green-credit queries
    green_credit.py   banks' green-credit queries and their signed answers
    penalties.py      penalty notices for compliance fines and their payment
    signing.py        the Ed25519 key that signs green-credit answers

The units of work cover subsidy claims, programme budgets on the ledger, disbursement batches, decision letters
and their public verification, consent to bank green-credit queries, the queries themselves (signed answers), and
penalty notices for compliance fines.

One public use-case function is one transaction (`Database.run`); controllers and scheduler jobs call these
functions and nothing else commits. Reads of other contexts (the registry's enterprises, the compliance status and
fines) go through their services and happen before this context's own transaction opens, so no write lock is held
while another transaction runs. Money moves only through `core.ledger`:

    appropriation (issuance role) ──appropriation──▶ budget ──commitment (pending)──▶ payee (enterprise)
                                                        ▲  approval holds; disbursement posts; rejection voids
                                                        └──────────── clawback (posted, payee → budget)
    fine payer (issuance role) ──penalty_payment──▶ fine revenue

Guarantees:
- a claim moves only along `finance.domain.workflow.TRANSITIONS`; each transition is a conditional UPDATE on the
  claim's version, taken before any money moves, so two concurrent actions on one claim cannot both succeed;
- four-eyes: the approver is a finance approver who neither submitted nor reviewed the claim (here and by a
  database CHECK);
- no budget is ever overspent: the commitment is a pending ledger transfer from an account that may not go
  below zero, under any concurrency; every hold is posted or voided exactly once (ledger client ids);
- a bank sees an enterprise only under its active consent; otherwise the answer is the same 404 as for an
  unknown enterprise; every query is logged and visible to the enterprise;
- green-credit answers are signed with Ed25519 over their canonical JSON; the public key is published at
  `/verify/public-key`.
"""

from __future__ import annotations

from typing import Any

from core.clock import Clock
from core.db import Database
from core.identity import Identity
from core.signing import DEFAULT_SIGNING_KEY_PATH, SIGNING_KEY_ENV, Signer
from finance import claims_review, disbursement, penalties
from finance import schemas as s
from finance._common import BATCH_SIZE_MAX
from finance.context import FinanceContext
from incentives.service import IncentivesService
from registry.compliance.service import ComplianceService
from registry.service import RegistryService

__all__ = ["DEFAULT_SIGNING_KEY_PATH", "SIGNING_KEY_ENV", "FinanceContext", "FinanceService", "Signer"]


class FinanceService:
    """What the other contexts call: the scheduler's sweeps and batches. `ctx` is what the use cases take."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        registry: RegistryService,
        compliance: ComplianceService,
        incentives: IncentivesService,
        signer: Signer | None = None,
    ) -> None:
        self.ctx = FinanceContext(
            db, clock, registry, compliance, incentives, signer if signer is not None else Signer()
        )

    async def finalise_due_claims(self, limit: int = BATCH_SIZE_MAX) -> dict[str, int]:
        return await claims_review.finalise_due_claims(self.ctx, limit)

    async def run_disbursement_batch(self, day_key: str) -> dict[str, Any]:
        return await disbursement.run_disbursement_batch(self.ctx, day_key)

    async def issue_penalty_notices(self, who: Identity | None, period_id: int | None = None) -> s.IssueOut:
        return await penalties.issue_penalty_notices(self.ctx, who, period_id)

    async def mark_overdue_penalties(self, day_key: str | None = None) -> dict[str, Any]:
        return await penalties.mark_overdue_penalties(self.ctx, day_key)
