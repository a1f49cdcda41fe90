"""The finance bureau's daily jobs: make approvals final after their public notice, pay final approvals in a
disbursement batch (with the bank's payment file), issue penalty notices for newly settled fines, and flag
notices that are past their due day.

All are `daily` jobs keyed by the Shanghai business date, so the runner claims each (job, day) once. Each item
also has its own unique key (a claim's transition is conditional on its version, a claim's ledger transfers have
fixed client ids, a batch is named `job:<day>`, a penalty notice is unique per settled obligation), so a double
fire, two schedulers or a restart half way settle every item exactly once.
"""

from __future__ import annotations

from typing import Any

from scheduler.jobs import JobDef, Services


async def _finalise_notices(services: Services, _key: str) -> dict[str, Any]:
    return await services["finance"].finalise_due_claims()  # type: ignore[no-any-return]


async def _disbursement_batch(services: Services, key: str) -> dict[str, Any]:
    return await services["finance"].run_disbursement_batch(key)  # type: ignore[no-any-return]


async def _penalty_notices(services: Services, _key: str) -> dict[str, Any]:
    out = await services["finance"].issue_penalty_notices(None)
    return {"issued": out.issued, "already_issued": out.already_issued}


async def _overdue_penalties(services: Services, key: str) -> dict[str, Any]:
    return await services["finance"].mark_overdue_penalties(key)  # type: ignore[no-any-return]


JOBS: list[JobDef] = [
    JobDef(
        "finance_finalise_notices",
        "daily",
        "Make subsidy approvals final once their public notice (公示) has ended, and issue the decision letters.",
        _finalise_notices,
        at_hour=0,
        at_minute=30,
    ),
    JobDef(
        "finance_disbursement_batch",
        "daily",
        "On working days, pay every final approval in one batch and write the payment file for the bank.",
        _disbursement_batch,
        at_hour=10,
        at_minute=0,
    ),
    JobDef(
        "finance_penalty_notices",
        "daily",
        "Turn newly settled compliance fines into payable penalty notices with due days in working days.",
        _penalty_notices,
        at_hour=8,
        at_minute=0,
    ),
    JobDef(
        "finance_overdue_penalties",
        "daily",
        "Flag unpaid penalty notices past their due day (the late surcharge accrues from the next day).",
        _overdue_penalties,
        at_hour=0,
        at_minute=45,
    ),
]
