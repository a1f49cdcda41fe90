"""The sandbox clock over HTTP (`getSandboxClock`, `advanceSandboxClock`) and on the command line (`greenrights
clock show|advance`). core/sandbox.py keeps the clock; docs/operations.md says what a sandbox is."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any, ClassVar

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import JSONBody

from core import sandbox
from core.clock import SHANGHAI, Clock, SystemClock, is_sandbox
from core.db import Database
from core.errors import AppError
from core.http import allow, problem_responses
from core.identity import Identity, Role
from core.schema import Code, about, int_range

R = Role


class ClockOut(msgspec.Struct, kw_only=True):
    """The database's clock: on a sandbox the simulated now (system time plus the offset) and how it got there;
    on production `sandbox: false` and real time."""

    sandbox: bool
    now: dt.datetime
    now_shanghai: str
    real_now: dt.datetime
    offset_seconds: int
    moves: int
    marked_at: dt.datetime | None
    moved_at: dt.datetime | None


class AdvanceClock(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Exactly one of `days`, `hours` or `to` (`YYYY-MM-DD` or `YYYY-MM-DDTHH:MM`, Shanghai time)."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"days": 7}

    days: Annotated[int, int_range(1, sandbox.DAYS_MAX), about("Move the clock this many days forward.")] | None = None
    hours: Annotated[int, int_range(1, sandbox.HOURS_MAX), about("Move the clock this many hours forward.")] | None = (
        None
    )
    to: Annotated[Code, about("Move to this Shanghai time: YYYY-MM-DD (00:00) or YYYY-MM-DDTHH:MM.")] | None = (
        None
    )


def _out(v: sandbox.ClockView) -> ClockOut:
    d = v.to_dict()
    return ClockOut(
        sandbox=v.sandbox,
        now=v.now,
        now_shanghai=d["now_shanghai"],
        real_now=v.real_now,
        offset_seconds=v.offset_seconds,
        moves=v.moves,
        marked_at=v.marked_at,
        moved_at=v.moved_at,
    )


def _real_now(clock: Clock) -> dt.datetime:
    real = getattr(clock, "real_now", None)
    return real() if callable(real) else SystemClock().now()


class SandboxController(Controller):
    path = "/api/v1/sandbox"
    tags = ["ops"]

    @get(
        "/clock",
        operation_id="getSandboxClock",
        guards=[allow(*Role)],
        cache=False,
        responses=problem_responses(401),
    )
    async def get_clock(self, request: Request[Identity, Any, Any]) -> ClockOut:
        """The simulated now of a sandbox database (and how far it runs ahead of real time); on production
        `sandbox` is false and `now` is real time."""
        state = request.app.state
        return _out(await sandbox.view(state.db, _real_now(state.clock)))

    @post(
        "/clock",
        operation_id="advanceSandboxClock",
        guards=[allow(R.REGULATOR)],
        opt={"idempotent": True},
        status_code=200,
        responses=problem_responses(400, 401, 403, 409, 422),
    )
    async def advance_clock(self, request: Request[Identity, Any, Any], data: JSONBody[AdvanceClock]) -> ClockOut:
        """Move the sandbox clock forward (audited). A production database refuses with 409 `not-a-sandbox`; a move
        to a time not after the simulated now with 409 `clock-not-forward`. Every process on the database follows
        within about a second; this one at once."""
        state = request.app.state
        to = sandbox.parse_target(data.to) if data.to is not None else None
        real_now = _real_now(state.clock)
        move = await sandbox.advance(
            state.db, request.user.actor, real_now, days=data.days, hours=data.hours, to=to
        )
        if is_sandbox(state.clock):
            state.clock.adopt(move.offset)
        return _out(await sandbox.view(state.db, real_now))


CONTROLLERS = [SandboxController]


# ---------------------------------------------------------------- `greenrights clock`


def _shanghai(at: dt.datetime) -> str:
    return f"{at.astimezone(SHANGHAI):%Y-%m-%d %H:%M:%S} Shanghai"


async def _show(db: Database) -> tuple[int, str]:
    v = await sandbox.view(db, SystemClock().now())
    if not v.sandbox:
        return 0, f"production database: the clock is real time, {_shanghai(v.now)}; it cannot be moved"
    ahead = dt.timedelta(seconds=v.offset_seconds)
    return 0, (
        f"sandbox clock: {_shanghai(v.now)} (simulated; {ahead.days} days {ahead.seconds // 3600} hours ahead of real "
        f"time, {v.moves} moves)"
    )


async def _advance(db: Database, days: int | None, hours: int | None, to: str | None) -> tuple[int, str]:
    target = sandbox.parse_target(to, "--to") if to is not None else None
    move = await sandbox.advance(db, "operator:cli", SystemClock().now(), days=days, hours=hours, to=target)
    return 0, f"sandbox clock moved from {_shanghai(move.before)} to {_shanghai(move.after)} (move {move.moves})"


def clock_command(db: Database, action: str, days: int | None, hours: int | None, to: str | None) -> tuple[int, str]:
    """(exit code, message) of `greenrights clock show|advance`: 1 on a refusal (production, not forward), 2 on
    bad arguments."""

    async def go() -> tuple[int, str]:
        try:
            if action == "show":
                return await _show(db)
            return await _advance(db, days, hours, to)
        finally:
            await db.dispose()

    try:
        return asyncio.run(go())
    except AppError as exc:
        code = 2 if exc.problem.slug == "invalid-input" else 1
        return code, f"greenrights clock {action}: {exc.detail}"
