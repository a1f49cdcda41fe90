"""What every finance use case is given: the database (each public use-case function is one unit of work on it),
the clock, the services of the contexts it reads (the registry's enterprises, compliance status and fines, the
incentives engine's determinations) and the key that signs green-credit answers.

One context is built per process, by `finance.service.FinanceService`; the controllers and the facade pass it to
the use-case functions as their first argument.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from core.clock import Clock, business_date
from core.db import Database
from core.signing import Signer
from incentives.service import IncentivesService
from registry.compliance.service import ComplianceService
from registry.service import RegistryService


@dataclass
class FinanceContext:
    db: Database
    clock: Clock
    registry: RegistryService
    compliance: ComplianceService
    incentives: IncentivesService
    signer: Signer = field(default_factory=Signer)

    def today(self) -> dt.date:
        """Today's business date (Asia/Shanghai) by this context's clock."""
        return business_date(self.clock.now())
