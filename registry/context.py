"""What every registry use case is given: the database (each public use-case function is one unit of work on it),
the clock, the dated registry parameters (trusted-list delay, untrusted transfer cap and execution hour) and the
surrender policy, the hook through which the compliance cycle judges a surrender inside its unit of work.

One context is built per process, by `registry.service.RegistryService`; the controllers and the facade pass it to
the use-case functions as their first argument.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from core.db import Database
from core.identity import Identity
from core.parameters import DatedParameters
from registry.models import Instrument, RegistryAccount

PARAMS = DatedParameters.load(Path(__file__).with_name("parameters.yaml"))


class SurrenderPolicy(Protocol):
    async def __call__(
        self,
        ses: AsyncSession,
        who: Identity,
        account: RegistryAccount,
        instrument: Instrument,
        quantity: int,
        period: str,
        now: dt.datetime,
    ) -> None: ...


@dataclass
class RegistryContext:
    db: Database
    clock: Clock
    # The compliance cycle installs its surrender rules here (period open, eligible vintages, offset cap, ...).
    # It is called inside the surrender's unit of work, after the generic checks and before units move.
    surrender_policy: SurrenderPolicy | None = None
    params: DatedParameters = field(default_factory=lambda: PARAMS)
