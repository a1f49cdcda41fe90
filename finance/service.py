"""Finance units of work (being built: issue 6)."""

from __future__ import annotations

from dataclasses import dataclass

from core.clock import Clock
from core.db import Database
from incentives.service import IncentivesService
from registry.compliance.service import ComplianceService
from registry.service import RegistryService


@dataclass
class FinanceService:
    db: Database
    clock: Clock
    registry: RegistryService
    compliance: ComplianceService
    incentives: IncentivesService
