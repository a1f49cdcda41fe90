"""The jobs the scheduler knows, by name. A job is a function of the services and a period key; the scheduler
decides when it fires, the claim table decides whether it runs, the services decide what it does.

Kinds:
- `calendar`: keyed by a compliance period (e.g. settlement of period 7); fired by the period's calendar events.
- `daily`: keyed by the Shanghai business date (e.g. green certificate expiry on 2026-03-01).
- `sweep`: idempotent by construction (each item resolves a unique hold), runs often and claims nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from core.settings import get_settings
from core.webhooks import policy_of, sweep

Services = dict[str, Any]
JobFn = Callable[[Services, str], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class JobDef:
    name: str
    kind: str  # calendar | daily | sweep
    description: str
    run: JobFn
    # daily jobs: Shanghai wall-clock time to fire; sweeps: interval in seconds
    at_hour: int = 0
    at_minute: int = 5
    interval_s: int = 60


async def _execute_due_transfers(services: Services, _key: str) -> dict[str, Any]:
    return {"executed": await services["registry"].execute_due_transfers()}


async def _gec_expiry(services: Services, _key: str) -> dict[str, Any]:
    return {"expired_holdings": await services["registry"].expire_certificates()}


async def _webhooks(services: Services, _key: str) -> dict[str, Any]:
    settings = services.get("settings") or get_settings()
    out = await sweep(
        services["db"], services["clock"], policy_of(settings), retry_for_s=settings.webhook_retry_for_s
    )
    return {"fanned_out": out.fanned_out, "delivered": out.delivered, "failed": out.failed, "dead": out.dead}


REGISTRY_JOBS = [
    JobDef(
        "execute_due_transfers",
        "sweep",
        "Post approved transfers to untrusted accounts whose time has come.",
        _execute_due_transfers,
        interval_s=60,
    ),
    JobDef(
        "webhooks",
        "sweep",
        "Deliver outbox events to the organisations' webhook endpoints (signed; retried with backoff, then parked).",
        _webhooks,
        interval_s=5,
    ),
    JobDef(
        "gec_expiry",
        "daily",
        "Move expired green certificates to the expiry account (核销).",
        _gec_expiry,
        at_hour=0,
        at_minute=5,
    ),
]


def all_jobs() -> dict[str, JobDef]:
    jobs: list[JobDef] = list(REGISTRY_JOBS)
    for module in ("scheduler.jobs_compliance", "scheduler.jobs_trading", "scheduler.jobs_finance"):
        try:
            mod = __import__(module, fromlist=["JOBS"])
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        jobs.extend(mod.JOBS)
    return {j.name: j for j in jobs}
