"""Incentives units of work (being built: issue 5)."""

from __future__ import annotations

from dataclasses import dataclass

from core.clock import Clock
from core.db import Database
from registry.compliance.service import ComplianceService
from registry.service import RegistryService


@dataclass
class IncentivesService:
    db: Database
    clock: Clock
    registry: RegistryService
    compliance: ComplianceService
