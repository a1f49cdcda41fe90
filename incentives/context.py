"""The incentives context's shared context object: what every use case needs (the database, the clock, and the
registry services it reads enterprise facts and compliance status through). Built once per process by the
facade (`incentives.service.IncentivesService`); the use-case modules take it as their first argument.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.clock import Clock
from core.db import Database
from registry.compliance.service import ComplianceService
from registry.service import RegistryService


@dataclass(frozen=True)
class IncentivesContext:
    db: Database
    clock: Clock
    registry: RegistryService
    compliance: ComplianceService
