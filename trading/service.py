"""Trading units of work (being built: issue 4)."""

from __future__ import annotations

from dataclasses import dataclass

from core.clock import Clock
from core.db import Database
from registry.service import RegistryService


@dataclass
class TradingService:
    db: Database
    clock: Clock
    registry: RegistryService
