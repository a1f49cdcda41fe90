"""Construct every context's service once per process, in dependency order (the composition root)."""

from __future__ import annotations

from typing import Any

from core.clock import Clock
from core.db import Database
from core.settings import Settings
from finance.service import FinanceService
from incentives.service import IncentivesService
from registry.compliance.service import ComplianceService
from registry.service import RegistryService
from trading.service import TradingService


def build_services(db: Database, clock: Clock, settings: Settings | None = None) -> dict[str, Any]:
    """`settings` carries the operator's settings the services read (the settlement batch size); the services'
    defaults without it."""
    registry = RegistryService(db, clock)
    compliance = ComplianceService(
        db, clock, registry, batch_size=settings.settlement_batch_size if settings is not None else None
    )
    trading = TradingService(db, clock, registry)
    incentives = IncentivesService(db, clock, registry, compliance)
    finance = FinanceService(db, clock, registry, compliance, incentives)
    return {
        "db": db,
        "clock": clock,
        "registry": registry,
        "compliance": compliance,
        "trading": trading,
        "incentives": incentives,
        "finance": finance,
    }
