"""What the phases of a simulated year share: the run's state (the world, the seed's random source, the schedule of
simulated days, what happened so far) and small helpers (prices in fen, the sandbox clock, tolerated refusals)."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from core import figures
from core.clock import SHANGHAI
from core.workdays import next_working_day
from greenrights.client import ApiError
from server.simulate.world import World

MONTHS = 12


def yuan(fen: int) -> str:
    """Integer fen as the API's yuan text (two decimals, never through float)."""
    return figures.yuan_plain(fen)


def scale_fen(fen: int, bps: int) -> int:
    """fen × (10000 + bps) / 10000, rounded down to the fen (a price moved by basis points)."""
    return fen * (10_000 + bps) // 10_000


@dataclass
class Enterprise:
    """One emitter as the simulation knows it: its ids (from the API), its key and the year it will have."""

    uscc: str
    name: str
    city: str
    sector: str
    enterprise_id: int
    organisation_id: int
    account_id: int
    pre_allocation_t: int
    emissions_t: int  # this year's emissions (the file's figure moved by the seed)
    final_allocation_t: int  # what the allocation table will give in all (pre-allocation included)
    allocation_posted: bool = False
    laggard: bool = False  # surrenders short on purpose
    energy: dict[str, int] = field(default_factory=dict)  # instrument code -> this year's need, base units
    verified_t: int | None = None


@dataclass
class Run:
    """The state of one simulated year."""

    world: World
    rng: random.Random
    year: int
    days: list[dt.date]  # the working days the year's months run on (months 1-12, then after)
    start: dt.date
    enterprises: list[Enterprise] = field(default_factory=list)
    market_maker: Enterprise | None = None
    farms: list[Enterprise] = field(default_factory=list)  # wind and solar farms: sellers of green certificates
    energy_period: Any = None
    instruments: dict[str, Any] = field(default_factory=dict)  # code -> InstrumentOut
    markets: dict[str, Any] = field(default_factory=dict)  # instrument code -> MarketOut
    counts: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)  # what was skipped, and why
    period: Any = None
    scheme: Any = None
    claims: list[int] = field(default_factory=list)

    @property
    def regulator(self) -> Any:
        return self.world.authority("regulator", 0)

    @property
    def regulator2(self) -> Any:
        return self.world.authority("regulator", 1)

    def client(self, e: Enterprise) -> Any:
        return self.world.enterprise(e.uscc)

    def by_org(self) -> dict[int, Enterprise]:
        return {e.organisation_id: e for e in self.everyone()}

    def everyone(self) -> list[Enterprise]:
        return [*self.enterprises, *([self.market_maker] if self.market_maker else []), *self.farms]

    def month_of(self, day: dt.date) -> int:
        """The simulated month (1-12) a trading day stands for; 0 for days outside the months."""
        return self.days.index(day) + 1 if day in self.days[:MONTHS] else 0

    async def clock_to(self, day: dt.date, hh: int, mm: int = 0) -> None:
        """Move the sandbox clock to `day` hh:mm Shanghai, unless it is there already (time only moves forward)."""
        target = dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=SHANGHAI)
        now = (await self.regulator.call("getSandboxClock")).now
        if now >= target:
            return
        await self.regulator.call("advanceSandboxClock", {"to": target.strftime("%Y-%m-%dT%H:%M")})
        self.counts["clock_moves"] += 1

    async def attempt(self, what: str, make: Callable[[], Awaitable[Any]]) -> Any:
        """A call the simulation expects the API may refuse (an agent's order the market turns down): the refusal
        is counted by its problem type, and None returned."""
        try:
            return await make()
        except ApiError as exc:
            self.counts[f"refused:{what}:{exc.slug}"] += 1
            return None


def working_days_after(day: dt.date, count: int) -> list[dt.date]:
    """The next `count` working days after `day` (the published holiday calendar, `core.workdays`)."""
    out: list[dt.date] = []
    while len(out) < count:
        day = next_working_day(day)
        out.append(day)
    return out
