"""The compliance calendar's jobs: allocation, report reminders, the verification deadline and settlement.

All four are `calendar` jobs keyed by the period (`ComplianceService.scheduled_events()` gives the key and
the instant of each event; allocation events are keyed `<period code>/<event>` because one period has up to
three of them). The runner claims each (job, key) once; each item a job touches has its own unique key in the
compliance tables (allocation line, notice, settlement result), so a double fire, two schedulers or a restart
after a crash settle every item exactly once.

The settlement job passes in the reference price from trading's market data when the trading service offers
`monthly_average_price_fen(kind=..., year=..., month=...)` and it answers a positive int; otherwise the
service uses the price the regulator entered on the period, and refuses to settle a carbon period with none.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from registry.compliance.service import market_price_fen
from scheduler.jobs import JobDef, Services


async def _allocation(services: Services, key: str) -> dict[str, object]:
    code, _, event = key.partition("/")
    return await services["compliance"].post_due_allocations(code, event or "allocation")  # type: ignore[no-any-return]


async def _report_reminders(services: Services, key: str) -> dict[str, object]:
    return await services["compliance"].send_report_reminders(key)  # type: ignore[no-any-return]


async def _deadline_reminders(services: Services, key: str) -> dict[str, object]:
    return await services["compliance"].deadline_reminders(dt.date.fromisoformat(key))  # type: ignore[no-any-return]


async def _verification_deadline(services: Services, key: str) -> dict[str, object]:
    return await services["compliance"].verification_deadline(key)  # type: ignore[no-any-return]


async def _settlement(services: Services, key: str) -> dict[str, object]:
    compliance = services["compliance"]
    year, month = await compliance.reference_month(key)
    price = await market_price_fen(services.get("trading"), year, month)
    out = await compliance.settle_period_by_code(
        key, market_price_fen=price, market_price_source=f"trading: CEA monthly average {year}-{month:02d}"
    )
    summary = msgspec.to_builtins(out)
    summary.pop("results", None)
    return summary  # type: ignore[no-any-return]


JOBS: list[JobDef] = [
    JobDef(
        "allocation",
        "calendar",
        "Post approved allocation, pre-allocation and true-up tables whose calendar date has come.",
        _allocation,
    ),
    JobDef(
        "report_reminders",
        "calendar",
        "Remind obligated enterprises without a report, a set number of days before the report deadline.",
        _report_reminders,
    ),
    JobDef(
        "deadline_reminders",
        "daily",
        "Tell each obligated enterprise (an outbox event) when a report or surrender deadline is 30, 7 or 1 days away.",
        _deadline_reminders,
        at_hour=8,
        at_minute=0,
    ),
    JobDef(
        "verification_deadline",
        "calendar",
        "At the verification deadline, notify every obligation still without a verified figure.",
        _verification_deadline,
    ),
    JobDef(
        "settlement",
        "calendar",
        "Settle the period after the surrender deadline: status A/B/C, shortfall, fine, deduction, forced surrender.",
        _settlement,
    ),
]
