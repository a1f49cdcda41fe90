"""The sandbox: a database marked at creation, whose clock can be moved forward for walk-throughs and simulations.

A database is a sandbox only if `greenrights db upgrade --sandbox` created it empty: the mark is the one row of
`sandbox_clock` (migration 0014), written here and by no API. Any other database is production: every clock move is
refused (`not-a-sandbox`), and its processes read system time.

The sandbox clock is system time plus the offset kept in that row, so every process on the database (API workers,
the scheduler, the CLI) sees the same simulated now. A move only makes the offset larger (`clock-not-forward`
otherwise), in one unit of work that also writes its audit entry. The process that moved it adopts the new offset at
once; every other process re-reads it once a second in the background (`watch`: one primary-key read a second per
process, nothing on the request path), and a `SandboxClock` never takes a smaller offset, so no process sees time go
back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, insert, inspect, select, text
from sqlmodel import col

from core.clock import SHANGHAI, UTC, Clock, SandboxClock, SystemClock
from core.db import Database, UnitOfWork, sync_url
from core.errors import AppError, InvalidInput
from core.models import SandboxClockState

log = logging.getLogger("greenrights.sandbox")

WATCH_INTERVAL_S = 1.0
DAYS_MAX = 3660
HOURS_MAX = DAYS_MAX * 24
# What makes a database not empty: the mark is refused once any of these has a row.
DATA_TABLES = {
    "registry_enterprise": "enterprises",
    "registry_account": "registry accounts",
    "ledger_account": "ledger accounts",
    "registry_transaction": "registry transactions",
    "ledger_transfer": "ledger transfers",
}
NOT_A_SANDBOX = (
    "This database is production: it was not created as a sandbox (`greenrights db upgrade --sandbox` on an empty "
    "database), so its clock is real time and cannot be moved."
)


# ---------------------------------------------------------------- the mark (synchronous: `greenrights db upgrade`)


def _counts(conn: Any, tables: set[str]) -> dict[str, int]:
    return {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in DATA_TABLES if t in tables}  # noqa: S608


def sandbox_refusal(url: str) -> str | None:
    """Why this database cannot become a sandbox (before its migrations run), or None. A database already marked
    is no refusal: upgrading it again keeps the mark."""
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            if "sandbox_clock" in tables and conn.execute(text("SELECT count(*) FROM sandbox_clock")).scalar_one():
                return None
            held = {DATA_TABLES[t]: n for t, n in _counts(conn, tables).items() if n}
            if held:
                what = ", ".join(f"{n} {name}" for name, n in held.items())
                return (
                    f"the database already holds {what}: only an empty database can become a sandbox. Point "
                    "GREENRIGHTS_DATABASE_URL at a new database and run `greenrights db upgrade --sandbox` there."
                )
            if "alembic_version" in tables and conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one():
                return (
                    "the database was created before without --sandbox, so it is production for good: a database is "
                    "marked a sandbox only when it is created. Point GREENRIGHTS_DATABASE_URL at a new, empty database "
                    "and run `greenrights db upgrade --sandbox` there."
                )
    except Exception as exc:  # any failure to reach the database is the answer
        if engine.dialect.name == "sqlite" and "unable to open" in str(exc):
            return None  # a SQLite file that does not exist yet is empty
        return f"the database cannot be reached ({type(exc).__name__}: {str(exc)[:200]})"
    finally:
        engine.dispose()
    return None


def mark_sandbox(url: str, now: dt.datetime) -> bool:
    """Write the mark on a migrated database that is still empty (checked again in the same transaction). True when
    it was written now, False when the database was a sandbox already."""
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            if conn.execute(text("SELECT count(*) FROM sandbox_clock")).scalar_one():
                return False
            held = [DATA_TABLES[t] for t, n in _counts(conn, set(inspect(conn).get_table_names())).items() if n]
            if held:
                raise RuntimeError(f"the database stopped being empty while it was marked ({', '.join(held)})")
            table = SandboxClockState.__table__  # type: ignore[attr-defined]
            conn.execute(insert(table).values(id=1, marked_at=now, offset_us=0, moves=0))
            return True
    finally:
        engine.dispose()


def sandbox_offset(url: str) -> dt.timedelta | None:
    """The sandbox offset of this database, or None for production (also when it has no schema yet)."""
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            if "sandbox_clock" not in set(inspect(conn).get_table_names()):
                return None
            row = conn.execute(text("SELECT offset_us FROM sandbox_clock WHERE id = 1")).first()
    except Exception:  # no database yet: production until proven otherwise; /ready reports the database
        return None
    finally:
        engine.dispose()
    return None if row is None else dt.timedelta(microseconds=int(row[0]))


def clock_for(url: str) -> Clock:
    """The clock a process on this database uses: the sandbox clock of a sandbox, system time otherwise."""
    offset = sandbox_offset(url)
    return SystemClock() if offset is None else SandboxClock(offset)


# ---------------------------------------------------------------- reading and moving the clock (async)


@dataclass(frozen=True)
class ClockView:
    sandbox: bool
    now: dt.datetime
    real_now: dt.datetime
    offset_seconds: int
    moves: int
    marked_at: dt.datetime | None
    moved_at: dt.datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sandbox": self.sandbox,
            "now": self.now.isoformat(),
            "now_shanghai": self.now.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
            "real_now": self.real_now.isoformat(),
            "offset_seconds": self.offset_seconds,
            "moves": self.moves,
            "marked_at": self.marked_at.isoformat() if self.marked_at else None,
            "moved_at": self.moved_at.isoformat() if self.moved_at else None,
        }


def _offset(row: SandboxClockState) -> dt.timedelta:
    return dt.timedelta(microseconds=row.offset_us)


async def _state(uow: UnitOfWork, *, lock: bool = False) -> SandboxClockState | None:
    q = select(SandboxClockState).where(col(SandboxClockState.id) == 1)
    if lock:
        q = q.with_for_update()
    return (await uow.session.execute(q)).scalar_one_or_none()


async def view(db: Database, real_now: dt.datetime) -> ClockView:
    """What the clock of this database says now (production: real time, `sandbox` false)."""
    row = await db.read(_state)
    if row is None:
        return ClockView(False, real_now, real_now, 0, 0, None, None)
    off = _offset(row)
    return ClockView(True, real_now + off, real_now, int(off.total_seconds()), row.moves, row.marked_at, row.moved_at)


async def refresh(db: Database, clock: SandboxClock) -> bool:
    """Adopt the database's offset; True when the clock moved."""

    async def work(uow: UnitOfWork) -> int | None:
        q = select(col(SandboxClockState.offset_us)).where(col(SandboxClockState.id) == 1)
        return (await uow.session.execute(q)).scalar()

    offset_us = await db.read(work)
    return offset_us is not None and clock.adopt(dt.timedelta(microseconds=int(offset_us)))


async def watch(db: Database, clock: SandboxClock, interval_s: float = WATCH_INTERVAL_S) -> None:
    """Re-read the offset every `interval_s` until cancelled (one per process: the app's startup, `greenrights
    scheduler`)."""
    while True:
        try:
            if await refresh(db, clock):
                log.info("sandbox clock moved: now %s", clock.now().isoformat())
        except Exception:
            log.exception("reading the sandbox clock failed; retried in %.0f s", interval_s)
        await asyncio.sleep(interval_s)


def parse_target(value: str, field: str = "to") -> dt.datetime:
    """`YYYY-MM-DD` (00:00 that day) or `YYYY-MM-DDTHH:MM` in Shanghai time; an ISO instant with its offset too."""
    try:
        at = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(field, "Give the time to move to as YYYY-MM-DD or YYYY-MM-DDTHH:MM (Shanghai).") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=SHANGHAI)
    return at.astimezone(UTC)


@dataclass(frozen=True)
class Move:
    before: dt.datetime
    after: dt.datetime
    offset: dt.timedelta
    moves: int


async def advance(
    db: Database,
    actor: str,
    real_now: dt.datetime,
    *,
    days: int | None = None,
    hours: int | None = None,
    to: dt.datetime | None = None,
) -> Move:
    """Move the sandbox clock forward by `days`, by `hours` or to the instant `to` (exactly one), audited. Refused on
    production (`not-a-sandbox`) and for a move that is not forward (`clock-not-forward`)."""
    given = [name for name, v in (("days", days), ("hours", hours), ("to", to)) if v is not None]
    if len(given) != 1:
        raise InvalidInput(given[1] if len(given) > 1 else "days", "Give exactly one of days, hours or to.")
    for name, v, high in (("days", days, DAYS_MAX), ("hours", hours, HOURS_MAX)):
        if v is not None and not 1 <= v <= high:
            raise InvalidInput(name, f"{name} is a whole number from 1 to {high}.")

    async def work(uow: UnitOfWork) -> Move:
        row = await _state(uow, lock=True)
        if row is None:
            raise AppError("not-a-sandbox", NOT_A_SANDBOX)
        old = _offset(row)
        before = real_now + old
        if to is not None:
            if to <= before:
                raise AppError(
                    "clock-not-forward",
                    f"The sandbox clock only moves forward: it is already {before.astimezone(SHANGHAI):%Y-%m-%d %H:%M} "
                    "Shanghai.",
                    field="to",
                )
            new = to - real_now
        else:
            new = old + dt.timedelta(days=days or 0, hours=hours or 0)
        row.offset_us = new // dt.timedelta(microseconds=1)
        row.moves += 1
        row.moved_at = real_now
        uow.session.add(row)
        after = real_now + new
        by = {"days": days} if days is not None else {"hours": hours} if hours is not None else {"to": to.isoformat()}  # type: ignore[union-attr]
        uow.audit(
            actor,
            "sandbox.clock_advance",
            "sandbox_clock",
            "1",
            {**by, "from": before.isoformat(), "to_now": after.isoformat(), "offset_us": row.offset_us},
        )
        return Move(before, after, new, row.moves)

    return await db.run(work)
