"""Construct every context's service once per process, in dependency order (the composition root)."""

from __future__ import annotations

from typing import Any

from core.clock import Clock
from core.db import Database
from finance.service import FinanceService
from incentives.service import IncentivesService
from registry.compliance.service import ComplianceService
from registry.service import RegistryService
from trading.service import TradingService


def build_services(db: Database, clock: Clock) -> dict[str, Any]:
    registry = RegistryService(db, clock)
    compliance = ComplianceService(db, clock, registry)
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
