"""What every compliance use case is given: the database (each public use-case function is one unit of work on
it, except the settlement, which commits one batch per transaction), the clock, the registry service whose ledger
path moves every unit, the dated compliance parameters and the settlement's batch size.

One context is built per process, by `registry.compliance.service.ComplianceService`; the controllers and the
facade pass it to the use-case functions as their first argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.clock import Clock
from core.db import Database
from core.parameters import DatedParameters
from registry.service import RegistryService

PARAMS = DatedParameters.load(Path(__file__).with_name("parameters.yaml"))


@dataclass
class ComplianceContext:
    db: Database
    clock: Clock
    registry: RegistryService
    params: DatedParameters = field(default_factory=lambda: PARAMS)
    # None: the dated `settlement_batch_size`; tests and the bench set their own.
    batch_size: int | None = None
