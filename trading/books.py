"""A market's order book of one trading day: its row (`trading_book`, which freezes the band, tick, lot, fees and
self-trade rule the day opened with, so that a replay builds the same book) and the units of work that commands on
the book run in, holding the book's lock, so that the sequencer's in-memory book never runs ahead of the journal
in the database.

Two ways in:
- `submit` (placements and cancels): group commit. Commands of one book that arrive while a batch is being written
  wait in the book's queue and join the next batch. One drainer task for all books (their batches share the unit of
  work) runs a batch as ONE unit of work:
  the book's row and in-memory state are loaded once, the commands run one after the other, each undone alone
  when it fails (a refusal, say insufficient funds or a price off the band, answers its caller with its problem;
  the batch keeps its rows, balances and serial moves in memory to its end, so that is done in memory, and a
  command that did write to the database first makes the batch run again with a SAVEPOINT per command:
  `_commands`), the accepted commands are journalled under consecutive sequence numbers in one INSERT, the unit of
  work commits once, and only then is every caller answered (acknowledge after durable). If the batch cannot
  commit, every command of it fails (503, nothing changed) and the book is rebuilt from the journal.
- `exclusive` (the daily close): one unit of work holding the book's lock, journalling through
  `Sequencer.append`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import bindparam, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import balances, events
from core.db import UnitOfWork, is_connection_loss, is_retryable
from core.errors import AppError, ServiceUnavailable
from core.observability import forget_counts_since, pending_counts
from core.prepared import Prepared, SavepointFailed, reserve_ids, savepoint, writes
from registry.models import Instrument, RegistryAccount
from trading import staging
from trading._common import STALE_RETRIES, kind_scale
from trading.context import TradingContext
from trading.domain.commands import Command
from trading.domain.model import Result
from trading.models import BookDay, BookDayRow, Market, Order
from trading.sequencer import BookState, StaleBook

T = TypeVar("T")
log = logging.getLogger(__name__)

# `trading.clearing.Accounts` stages the ids of ledger accounts it finds or creates in the session's info under this
# key and caches them when the unit of work commits. An account created inside a command's savepoint that rolls
# back must not be cached, so the batch restores the staged ids when it rolls a command back.
_STAGED_ACCOUNTS = "trading.accounts"


async def exclusive(ctx: TradingContext, book_id: int, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """Run `work` as one unit of work holding the book's lock.

    A failure after the book accepted a command leaves the in-memory book ahead of the database, so the
    book is dropped and the next command replays the journal. A stale book (another process appended to
    the journal) is replayed and the command retried.
    """
    seq = ctx.sequencer
    for _ in range(STALE_RETRIES):
        async with seq.lock(book_id):
            try:
                result = await ctx.db.run(work)
            except StaleBook:
                continue
            except BaseException:
                seq.discard_if_dirty(book_id)
                raise
            seq.committed(book_id)
            return result
    raise ServiceUnavailable("Another process is writing this order book; retry shortly.")


# ---------------------------------------------------------------------------------------------- group commit


@dataclass
class BookTxn:
    """What the commands of one batch share: the unit of work, the book's row and in-memory state, the journal rows
    staged so far, and per-batch copies of rows no command of the batch changes (the instrument, the callers'
    registry accounts)."""

    ctx: TradingContext
    uow: UnitOfWork
    row: BookDay
    state: BookState
    staged: list[tuple[int, Command, dt.datetime]] = field(default_factory=list)
    instruments: dict[int, Instrument] = field(default_factory=dict)
    accounts: dict[tuple[Any, ...], RegistryAccount] = field(default_factory=dict)
    # Set when the running command changed the in-memory book (reset before each command).
    changed: bool = False
    # How many commands the batch has: the order ids it takes ahead, in one statement (`order_id`).
    size: int = 1
    order_ids: list[int] = field(default_factory=list)

    @property
    def session(self) -> AsyncSession:
        return self.uow.session

    async def instrument(self, instrument_id: int) -> Instrument:
        inst = self.instruments.get(instrument_id)
        if inst is None:
            inst = self.instruments[instrument_id] = await self.ctx.registry._instrument(self.session, instrument_id)
        return inst

    def apply(self, command: Command) -> Result:
        result = self.ctx.sequencer.apply(self.state, command)
        if result.ok:
            self.changed = True
        return result

    async def order_id(self) -> int:
        """The id of the order the running command places, taken ahead with the batch's others
        (`core.prepared.reserve_ids`): an id left unused by a refused command is a gap."""
        if not self.order_ids:
            self.order_ids = await reserve_ids(self.session, Order.__table__, self.size)  # type: ignore[attr-defined]
        return self.order_ids.pop(0)

    def journal(self, command: Command, at: dt.datetime) -> int:
        """The command's sequence number; its journal row is written with the batch's others before the commit."""
        return self.ctx.sequencer.stage(self.state, command, at, self.staged)


BookCommand = Callable[[BookTxn], Awaitable[Any]]


class _CommandRefused(Exception):
    """The one command of a batch of one failed: carried out of the unit of work, which then rolls back."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(eq=False)
class _Queued:
    work: BookCommand
    future: asyncio.Future[Any]


# A process's books share one drainer (the sequencer's drainer under this key; book ids start at 1): the commands
# of every book that arrived together run in one unit of work and commit once. Batches of different books would not
# run side by side anyway: every trade moves the same clearing and fee accounts, whose balances a batch holds to
# its commit (SQLite has one writer; on PostgreSQL the batch locks the rows, `core.balances`).
_DRAINER = 0


async def submit(ctx: TradingContext, book_id: int, work: Callable[[BookTxn], Awaitable[T]]) -> T:
    """Run the command `work` on the book in the next batch; its result once the batch has committed.

    A caller that stops waiting (cancelled) before its batch starts is skipped; once the batch has started, the
    command's effect stands or falls with the batch, like a request whose reply was lost (idempotency keys cover
    the retry)."""
    seq = ctx.sequencer
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    seq.queue(book_id).append(_Queued(work, future))
    if seq.drainer(_DRAINER) is None:
        # The drainer serves every caller, so it runs in a context of its own: nothing bound to the request that
        # happened to start it (log context, a request's rider in `core.db`) leaks into the batches.
        task = asyncio.get_running_loop().create_task(_drain(ctx), context=contextvars.Context())
        seq.set_drainer(_DRAINER, task)
    return await future


async def _drain(ctx: TradingContext) -> None:
    """Run the books' queues in batches until they are empty (one drainer per process)."""
    seq = ctx.sequencer
    batches: dict[int, list[_Queued]] = {}
    try:
        while seq.queued():
            await _collect(ctx)
            batches = {}
            for book_id, queue in seq.queued().items():
                batch = [queue.popleft() for _ in range(min(len(queue), ctx.group_commit_max))]
                batch = [q for q in batch if not q.future.done()]
                if batch:
                    batches[book_id] = batch
            if batches:
                await _run_batch(ctx, batches)
            batches = {}
    except BaseException as exc:
        # The drainer itself was cancelled (the loop is closing) or broke: nobody may be left waiting.
        failure = _batch_failure(exc)
        waiting = [q for batch in batches.values() for q in batch]
        for queue in seq.queued().values():
            waiting += queue
            queue.clear()
        for q in waiting:
            if not q.future.done():
                q.future.set_exception(_copy_failure(failure, exc))
        if not isinstance(exc, Exception):
            raise
        log.exception("order books: group commit drainer failed")
    finally:
        seq.set_drainer(_DRAINER, None)


async def _collect(ctx: TradingContext) -> None:
    """Let the batch fill: yield to the callers that are ready to submit, and keep yielding while new commands keep
    arriving, until every book's batch is full or `group_commit_linger_s` has passed. A lone caller never waits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.group_commit_linger_s

    def waiting() -> tuple[int, int]:
        queues = ctx.sequencer.queued()
        return sum(len(q) for q in queues.values()), ctx.group_commit_max * max(1, len(queues))

    before, _ = waiting()
    await asyncio.sleep(0)
    now, full = waiting()
    while before < now < full and loop.time() < deadline:
        before = now
        await asyncio.sleep(0)
        now, full = waiting()


async def _run_batch(ctx: TradingContext, batches: dict[int, list[_Queued]]) -> None:
    """Run one batch (the commands of one book or of several) holding the books' locks, and answer it."""
    seq = ctx.sequencer
    book_ids = sorted(batches)  # the locks in one order: no two holders of several ever wait for each other
    outcomes: dict[int, list[tuple[bool, Any] | None]] | None = None
    failure: BaseException | None = None
    try:
        stale, savepoints = 0, False
        while stale < STALE_RETRIES:
            async with contextlib.AsyncExitStack() as locks:
                for book_id in book_ids:
                    await locks.enter_async_context(seq.lock(book_id))
                try:
                    outcomes = await ctx.db.run(_batch_work, ctx, batches, savepoints)
                except StaleBook:
                    for book_id in book_ids:  # the stale one is dropped already; the others replay their journals
                        seq.discard_if_dirty(book_id)
                    stale += 1
                    continue
                except _NeedSavepoints:
                    # A command failed after it had written to the database: the batch rolled back whole, and runs
                    # again with a savepoint per command.
                    for book_id in book_ids:
                        seq.discard_if_dirty(book_id)
                    savepoints = True
                    continue
                except _CommandRefused as refused:
                    # The batch's one command failed and its unit of work rolled back: answer it with its problem.
                    (book_id,) = book_ids
                    seq.discard_if_dirty(book_id)
                    outcomes = {book_id: [(False, refused.error)]}
                    break
                except BaseException:
                    for book_id in book_ids:
                        seq.discard_if_dirty(book_id)
                    raise
                for book_id in book_ids:
                    seq.committed(book_id)
                break
        else:
            failure = ServiceUnavailable("Another process is writing this order book; retry shortly.")
    except Exception as exc:
        failure = exc
    for book_id in book_ids:
        seq.note_batch(book_id, len(batches[book_id]))
    if outcomes is None:
        assert failure is not None
        answer = _batch_failure(failure)
        for q in [q for batch in batches.values() for q in batch]:
            if not q.future.done():
                q.future.set_exception(_copy_failure(answer, failure))
        return
    for book_id in book_ids:
        for q, outcome in zip(batches[book_id], outcomes[book_id], strict=True):
            if outcome is None or q.future.done():
                continue
            ok, value = outcome
            if ok:
                q.future.set_result(value)
            else:
                q.future.set_exception(value)


_BOOK_DAYS = BookDay.__table__  # type: ignore[attr-defined]
_BOOK_DAY = Prepared(select(*_BOOK_DAYS.c).where(_BOOK_DAYS.c.id == bindparam("book_id")))


async def _book_txn(ctx: TradingContext, uow: UnitOfWork, book_id: int, size: int) -> BookTxn:
    """A batch's view of one book: its row (read as a plain row: no command of the batch changes it) and state."""
    row = BookDayRow(**(await _BOOK_DAY.one(uow.session, {"book_id": book_id}))._asdict())
    return BookTxn(ctx, uow, row, await ctx.sequencer.load(uow.session, row), size=size)


async def _batch_work(
    uow: UnitOfWork, ctx: TradingContext, batches: dict[int, list[_Queued]], savepoints: bool
) -> dict[int, list[tuple[bool, Any] | None]]:
    """The batch's unit of work: its commands one after the other (`_commands`), each book's journal rows in one
    INSERT."""
    ses = uow.session
    seq = ctx.sequencer
    if sum(len(batch) for batch in batches.values()) == 1:
        # A batch of one needs no savepoint: if its command fails, the whole unit of work rolls back instead.
        ((book_id, (queued,)),) = batches.items()
        txn = await _book_txn(ctx, uow, book_id, 1)
        try:
            value = await queued.work(txn)
        except StaleBook:
            raise
        except Exception as exc:
            if isinstance(exc, DBAPIError) and (is_retryable(exc) or is_connection_loss(exc)):
                raise
            raise _CommandRefused(exc) from exc
        await seq.write_staged(ses, book_id, txn.staged)
        return {book_id: [(True, value)]}
    # SQLite: the batch is the one writer, so the balances its commands move are kept in memory and written once,
    # one UPDATE per account, before the commit (a batch of one gains nothing: its accounts are read, then written).
    await balances.defer(ses)
    txns: dict[int, BookTxn] = {}
    outcomes: dict[int, list[tuple[bool, Any] | None]] = {}
    for book_id, batch in batches.items():
        txn = txns[book_id] = await _book_txn(ctx, uow, book_id, len(batch))
        outcomes[book_id] = await _commands(uow, txn, batch, savepoints)
    # The transfers first: the orders' rows name their holds (PostgreSQL checks a foreign key at once).
    await balances.flush(ses)
    await staging.flush(ses)
    for book_id, txn in txns.items():
        await seq.write_staged(ses, book_id, txn.staged)
    return outcomes


class _NeedSavepoints(Exception):
    """A command of a batch run without savepoints failed after it had written to the database."""


def _touched_database(sync: Any, wrote: bool, exc: BaseException) -> bool:
    """Whether a failed command may have left something in the transaction that only a savepoint could undo: a
    statement that may have written, ORM changes not flushed yet, or a database error (on PostgreSQL any failed
    statement aborts the transaction)."""
    if wrote or sync.new or sync.dirty or sync.deleted:
        return True
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DBAPIError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def _commands(
    uow: UnitOfWork, txn: BookTxn, batch: list[_Queued], savepoints: bool
) -> list[tuple[bool, Any] | None]:
    """One book's commands of a batch: a command that fails is undone alone, and its caller told why.

    A batch keeps its rows, balances and serial moves in memory to its end (`core.balances`, `trading.staging`),
    so a command normally writes nothing to the database, and what it changed is undone in memory (its marks,
    below). Only when a failed command did send a statement that may have written (`core.prepared.writes`),
    left ORM changes, or met a database error, is that not enough: the batch then rolls back whole
    (`_NeedSavepoints`) and runs again with each command in its own savepoint (`savepoints`)."""
    ses = uow.session
    sync = ses.sync_session
    seq = txn.ctx.sequencer
    outcomes: list[tuple[bool, Any] | None] = []
    for q in batch:
        if q.future.done():  # its caller gave up while the batch waited for the book's lock
            outcomes.append(None)
            continue
        audit_mark, staged_mark, counts_mark = len(uow.audit_events), len(txn.staged), pending_counts(ses)
        events_mark = events.pending_mark(ses)
        held = balances.deferred(ses)
        held_mark = None if held is None else held.mark()
        rows = staging.rows(ses)
        rows_mark = None if rows is None else rows.mark()
        accounts = ses.sync_session.info.get(_STAGED_ACCOUNTS)
        accounts_mark = None if accounts is None else dict(accounts)
        txn.changed = False
        if not savepoints and (sync.new or sync.dirty or sync.deleted):
            await ses.flush()  # what came before: not this command's to undo
        writes_mark = -1 if savepoints else await writes(ses)
        try:
            if savepoints:
                async with savepoint(ses):
                    value = await q.work(txn)
            else:
                value = await q.work(txn)
        except (StaleBook, SavepointFailed):
            raise
        except Exception as exc:
            if isinstance(exc, DBAPIError) and (is_retryable(exc) or is_connection_loss(exc)):
                raise  # the transaction itself is gone or must be retried whole: the whole batch goes
            if not savepoints and _touched_database(sync, await writes(ses) != writes_mark, exc):
                raise _NeedSavepoints from exc
            # Nothing of it is in the database (or its savepoint rolled it back): forget what it staged, and
            # rebuild the book if it changed.
            del uow.audit_events[audit_mark:]
            del txn.staged[staged_mark:]
            forget_counts_since(ses, counts_mark)  # its trades and orders never committed: not counted
            events.forget_since(ses, events_mark)  # nor are they told
            if held is not None and held_mark is not None:
                held.restore(held_mark)  # nor did its balances move
            if rows is not None and rows_mark is not None:
                rows.restore(rows_mark)
            accounts = ses.sync_session.info.get(_STAGED_ACCOUNTS)
            if accounts is not None:
                accounts.clear()
                accounts.update(accounts_mark or {})
            if txn.changed:
                txn.state = await seq.rebuild(ses, txn.row, [command for _, command, _ in txn.staged])
            outcomes.append((False, exc))
            continue
        outcomes.append((True, value))
    return outcomes


def _batch_failure(exc: BaseException) -> AppError:
    """What every caller of a batch that did not commit is told: its own problem when it is one (503 from the
    database layer, say), else 503: the transaction rolled back, so nothing changed and a retry is safe."""
    if isinstance(exc, AppError):
        return exc
    return ServiceUnavailable("The order book's batch could not be committed; nothing was changed. Retry shortly.")


def _copy_failure(answer: AppError, cause: BaseException) -> AppError:
    """One exception object per waiting caller (each raise writes its own traceback into it)."""
    copy: AppError
    if isinstance(answer, ServiceUnavailable):
        copy = ServiceUnavailable(answer.detail, retry_after_s=int(answer.headers.get("Retry-After", "1")))
    else:
        copy = AppError(
            answer.problem.slug,
            answer.detail,
            field=answer.field,
            status=answer.status,
            extra=dict(answer.extra),
            headers=dict(answer.headers),
        )
    copy.__cause__ = cause
    return copy


async def ensure_book_row(ses: AsyncSession, market_id: int, day: dt.date, now: dt.datetime) -> BookDay:
    stmt = select(BookDay).where(BookDay.market_id == market_id, BookDay.trade_date == day)
    row = (await ses.execute(stmt)).scalar_one_or_none()
    if row is not None:
        return row
    market = await ses.get(Market, market_id)
    assert market is not None
    row = BookDay(
        market_id=market_id,
        trade_date=day,
        mode=market.mode,
        prev_close_fen=market.prev_close_fen,
        band_bps=market.band_bps,
        tick_fen=market.tick_fen,
        scale=kind_scale(market.kind),
        lot_quantity=market.lot_quantity,
        quantity_max=market.quantity_max,
        taker_fee_bps=market.taker_fee_bps,
        maker_fee_bps=market.maker_fee_bps,
        stp=market.stp,
        created_at=now,
    )
    try:
        async with ses.begin_nested():
            ses.add(row)
            await ses.flush()
    except IntegrityError:
        row = (await ses.execute(stmt)).scalar_one()
    return row
