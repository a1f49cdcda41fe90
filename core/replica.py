"""Reads of GET requests from a PostgreSQL streaming replica, when `GREENRIGHTS_READ_DATABASE_URL` is set.

What goes where:
- Writes always go to the primary (`Database.run`); so do the reads of every other request (POST, PUT, PATCH,
  DELETE), the reads outside a request (the scheduler, the CLI), authentication (a revoked key stops at once, as
  without a replica) and the probes (`/health`, `/ready`, `/metrics`).
- The read units of work (`Database.read`) of a GET request go to the replica, unless:
  - the request's principal (API key, staff token or signed-in person) committed a write through this process
    within `read_your_writes_s` (read-your-writes): its reads go to the primary;
  - the replica may be more than `read_max_lag_s` behind (see below): reads go to the primary;
  - the replica is down, not a standby, or answers a read with a database error (a lost connection, a query
    cancelled by recovery): that read runs again on the primary, so the client never sees the replica's failure.

Lag, measured without a clock shared between the machines: every `replica_check_interval_s` a background task
(never a request) asks the primary for its WAL position (`pg_current_wal_lsn()`) and then the replica for what it
has replayed (`pg_last_wal_replay_lsn()`). The replica is known to hold every transaction the primary had committed
at the newest sampled moment whose position it has replayed, so at any later instant its staleness is at most
"now - that moment". A read uses the replica only while that bound is within `read_max_lag_s`; between checks the
bound grows with the clock, so a replica whose replay stopped is left within the bound's time plus one check, and
an idle primary does not look like a lagging replica. Since a replica read sees every transaction committed more
than `read_max_lag_s` ago, a read-your-writes window at least that long (Settings refuses a shorter one) means a
writer always reads its own writes.

Limits: the read-your-writes memory is this process's; behind a load balancer with several API processes, a
writer's next GET can reach a process that did not see its write and so may read the replica, which is then at
most `read_max_lag_s` behind (route a client to one process, or accept that bound). A GET that writes and then reads
reads its own write (the write marks its principal). docs/scaling.md describes the setup and failover.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from core.db import Database, async_url
from core.identity import Identity

T = TypeVar("T")
log = logging.getLogger("greenrights.replica")

READS = Counter(
    "greenrights_db_reads",
    "Read units of work of GET requests, by the database that answered and why",
    ["served_by", "reason"],
)
# served_by=replica: reason "replica". served_by=primary: "own-write" (read-your-writes), "lag" (possibly further
# behind than the bound), "down" (the last check or read failed, or the read database is not a standby),
# "unchecked" (no check has finished yet), "replica-error" (this read failed on the replica and ran again on the
# primary).

# Probes read the primary: /ready must say whether the primary answers.
_PRIMARY_PATHS = ("/health", "/ready", "/metrics")


@dataclass(frozen=True)
class _Request:
    actor: str | None  # the principal, when the request is authenticated
    may_read_replica: bool  # a GET (other methods read the primary)


_request: ContextVar[_Request | None] = ContextVar("_read_request", default=None)


class ReadRouting:
    """ASGI middleware (after authentication): tells the database which principal this request is and whether its
    reads may go to the replica."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        user = scope.get("user")
        actor = user.actor if isinstance(user, Identity) else None
        path = scope["path"]
        may = scope["method"] == "GET" and not any(path == p or path.startswith(p + "/") for p in _PRIMARY_PATHS)
        token = _request.set(_Request(actor=actor, may_read_replica=may))
        try:
            await self.app(scope, receive, send)
        finally:
            _request.reset(token)


def _lsn_sql(fn: str) -> Any:
    # A WAL position as a byte count (pg_lsn has no Python type of its own in the driver).
    return text(f"SELECT pg_wal_lsn_diff({fn}, '0/0')::bigint")


_REPLICA_STATE = text(
    "SELECT pg_is_in_recovery(), pg_wal_lsn_diff(coalesce(pg_last_wal_replay_lsn(), '0/0'), '0/0')::bigint"
)


class ReadReplica:
    """The replica's engine, its measured staleness, and the routing of reads (module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        max_lag_s: float,
        read_your_writes_s: float,
        check_interval_s: float,
        connect_timeout_s: float = 2.0,
    ) -> None:
        self.url = async_url(url)
        self.max_lag_s = max_lag_s
        self.read_your_writes_s = read_your_writes_s
        self.check_interval_s = check_interval_s
        self.timeout_s = connect_timeout_s
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            pool_size=10,
            max_overflow=20,
            pool_pre_ping=True,
            connect_args={"connect_timeout": max(1, round(connect_timeout_s))},
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # (monotonic time, primary WAL position) samples of the last checks, oldest first.
        self._samples: deque[tuple[float, int]] = deque()
        # The newest sampled moment the replica is known to have replayed (None: behind every sample kept), and
        # whether the last check or read found it down or not a standby; "unchecked" before the first check.
        self._covered_at: float | None = None
        self._down: str | None = "unchecked"
        self._checked_at = float("-inf")
        self._check: asyncio.Task[None] | None = None
        self._writes: OrderedDict[str, float] = OrderedDict()

    # ------------------------------------------------------------------ routing

    def wrote(self) -> None:
        """A write unit of work committed: its request's principal reads the primary for the window."""
        req = _request.get()
        if req is None or req.actor is None:
            return
        now = time.monotonic()
        self._writes[req.actor] = now
        self._writes.move_to_end(req.actor)
        while self._writes:
            actor, at = next(iter(self._writes.items()))
            if now - at <= self.read_your_writes_s:
                break
            del self._writes[actor]

    def staleness_s(self) -> float | None:
        """At most how far behind the primary the replica is now, by the last check; None when not known."""
        if self._down is not None or self._covered_at is None:
            return None
        return time.monotonic() - self._covered_at

    def _reason(self, req: _Request) -> str:
        now = time.monotonic()
        if req.actor is not None:
            at = self._writes.get(req.actor)
            if at is not None and now - at <= self.read_your_writes_s:
                return "own-write"
        if self._down is not None:
            return self._down
        if self._covered_at is None:
            return "lag"
        return "replica" if now - self._covered_at <= self.max_lag_s else "lag"

    def describe(self) -> str:
        """The replica's state for /ready (which it never fails: reads fall back to the primary)."""
        staleness = self.staleness_s()
        if self._down == "unchecked":
            return "not checked yet: reads on the primary"
        if self._down is not None:
            return "down or not a standby: reads on the primary"
        if staleness is None or staleness > self.max_lag_s:
            return f"more than {self.max_lag_s:g} s behind: reads on the primary"
        return "ok"

    async def read(self, db: Database, fn: Callable[..., Awaitable[T]], args: Any, kwargs: Any) -> T:
        """`db.read(fn, ...)`: on the replica when this request may, else (or when the replica fails) the primary."""
        req = _request.get()
        if req is None or not req.may_read_replica:
            return await db.run(fn, *args, readonly=True, **kwargs)
        self._maybe_check(db)
        reason = self._reason(req)
        if reason == "replica":
            try:
                result = await db.attempt(self.sessions, fn, args, kwargs)
            except DBAPIError as exc:
                # Nothing was written (a read-only transaction); the same read on the primary answers instead.
                # Until the next check says otherwise (within the check interval), reads go to the primary.
                log.warning("read replica failed (%s); reading the primary", type(exc.orig or exc).__name__)
                self._down = "down"
                reason = "replica-error"
            else:
                READS.labels(served_by="replica", reason="replica").inc()
                return result
        READS.labels(served_by="primary", reason=reason).inc()
        return await db.run(fn, *args, readonly=True, **kwargs)

    # ------------------------------------------------------------------ lag checks

    def _maybe_check(self, db: Database) -> None:
        """Start a background check when the last one is older than the interval (at most one at a time)."""
        if self._check is not None and not self._check.done():
            return
        if time.monotonic() - self._checked_at < self.check_interval_s:
            return
        self._checked_at = time.monotonic()
        self._check = asyncio.get_running_loop().create_task(self.refresh(db))

    async def refresh(self, db: Database) -> None:
        """One check: the primary's WAL position now, then what the replica has replayed (module docstring)."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                async with db.engine.connect() as conn:
                    auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    primary_lsn = int((await auto.execute(_lsn_sql("pg_current_wal_lsn()"))).scalar_one())
                async with self.engine.connect() as conn:
                    auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    standby, replayed = (await auto.execute(_REPLICA_STATE)).one()
        except (DBAPIError, OSError, TimeoutError) as exc:
            if self._down != "down":
                log.warning("read replica unreachable (%s); reads go to the primary", type(exc).__name__)
            self._down = "down"
            self._checked_at = time.monotonic()
            return
        self._checked_at = time.monotonic()
        if not standby:
            if self._down != "down":
                log.warning("the read database is not a standby (promoted?); reads go to the primary")
            self._down = "down"
            self._samples.clear()
            return
        self._down = None
        self._samples.append((started, primary_lsn))
        # Samples older than the bound can only say "too far behind"; keep one of them to say so.
        while len(self._samples) > 1 and started - self._samples[1][0] > self.max_lag_s:
            self._samples.popleft()
        covered = [at for at, lsn in self._samples if lsn <= int(replayed)]
        self._covered_at = covered[-1] if covered else None

    async def dispose(self) -> None:
        if self._check is not None and not self._check.done():
            self._check.cancel()
        await self.engine.dispose()
