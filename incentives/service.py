"""Incentives units of work (being built: issue 5). The contract below is used by the finance context."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from core.clock import Clock
from core.db import Database
from incentives import engine
from registry.compliance.service import ComplianceService
from registry.service import RegistryService


@dataclass
class IncentivesService:
    db: Database
    clock: Clock
    registry: RegistryService
    compliance: ComplianceService

    def evaluate(
        self, programme_code: str, facts: dict[str, Any], on: dt.date, known_on: dt.date | None = None
    ) -> Any:
        """One programme's determination (pure: the rules engine over the given facts). Finance calls this to
        recompute a claim's determination at review; it raises engine errors for bad facts."""
        return engine.evaluate(programme_code, facts, on, known_on=known_on)
