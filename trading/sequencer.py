"""The sequencer: one ordered, journalled command history per order book, and the in-memory books built from it.

One book (an instrument on a trading day) has one sequencer. In a process, commands of a book are serialised by
an `asyncio.Lock` per book, so a book sees exactly one command at a time, in the order they were admitted. Each
accepted command is written to `trading_journal` under the book's next sequence number, in the same unit of
work as its settlement, and only then acknowledged; rejected commands change nothing and are not journalled.

Recovery is replay: the book of a day is `journal.replay` of its journalled commands under the configuration
frozen in its `trading_book` row, so after a restart (or after any failure that left the in-memory book ahead
of the database) the book is rebuilt and equals the lost one (`snapshot()` compares equal).

Several processes: the journal, not memory, is the truth. Before each command (and each read of the book) the
sequencer reads the journal past its last known sequence number and applies what another process appended, so
a process never acts on an outdated book. Two processes racing for the same sequence number cannot interleave:
`(book_id, seq)` is unique, the loser's insert fails, it drops its copy, replays and retries the command. Even
so the design point is one writer per book (docs/trading.md): concurrent writers to one book only queue.

Group commit: commands of a book that arrive while a batch of them is being written wait in the book's queue
(`enqueue`) and form the next batch, which `trading.books` runs in one unit of work under the book's lock, each
command in its own savepoint. The batch journals its accepted commands under consecutive sequence numbers
(`stage`, then one INSERT for all of them, `write_staged`), commits once, and only then answers every caller. A
command that fails inside the batch after it changed the book rolls back alone, and the book is rebuilt from the
journal plus the batch's staged commands (`rebuild`), so the numbers stay gapless and memory never runs ahead of
what will commit. The batch is bounded: at most `GROUP_COMMIT_MAX_COMMANDS` commands, and its leader collects
arrivals for at most `GROUP_COMMIT_LINGER_S` (only while they keep arriving).

Session checks are done by the service, against the clock, before a command reaches the book; books run with
`check_session=False` so that replay depends on journalled data only, never on today's calendar.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import jsontext
from core.prepared import Prepared
from trading.domain.book import Book, BookConfig
from trading.domain.commands import Command
from trading.domain.journal import decode, encode, replay
from trading.domain.model import BookMode, Result, SelfTradePrevention
from trading.models import BookDay, JournalEntry

# Group commit bounds (overridable per process: `TradingContext.group_commit_max` / `group_commit_linger_s`).
GROUP_COMMIT_MAX_COMMANDS = 64
GROUP_COMMIT_LINGER_S = 0.002

_INSERT_JOURNAL = Prepared(insert(JournalEntry.__table__))  # type: ignore[attr-defined]
_JOURNAL_AFTER = Prepared(
    select(JournalEntry.seq, JournalEntry.command)
    .where(JournalEntry.book_id == bindparam("book_id"), JournalEntry.seq > bindparam("after"))
    .order_by(JournalEntry.seq)  # type: ignore[arg-type]
)


class StaleBook(Exception):
    """Another writer appended to this book's journal: the in-memory copy is stale and was dropped."""


def book_config(row: BookDay) -> BookConfig:
    """The matcher configuration a book was opened with (frozen in its row, so replay builds the same book)."""
    return BookConfig(
        mode=BookMode(row.mode),
        tick_fen=row.tick_fen,
        scale=row.scale,
        lot_quantity=row.lot_quantity,
        quantity_max=row.quantity_max,
        prev_close_fen=row.prev_close_fen,
        band_bps=row.band_bps,
        stp=SelfTradePrevention(row.stp),
        taker_fee_bps=row.taker_fee_bps,
        maker_fee_bps=row.maker_fee_bps,
        check_session=False,
    )


@dataclass
class BookState:
    """An in-memory book and the next sequence number of its journal.

    `dirty` is set when an accepted command has changed the book but its unit of work has not committed yet;
    a dirty book is never used again before it is rebuilt from the journal.
    """

    book_id: int
    book: Book
    next_seq: int
    dirty: bool = False


async def read_journal(ses: AsyncSession, book_id: int, *, after: int = 0) -> list[Command]:
    """The book's journalled commands with a sequence number above `after`, in order; a gap is corruption."""
    rows = await _JOURNAL_AFTER.execute(ses, {"book_id": book_id, "after": after})
    commands: list[Command] = []
    for expected, (seq, text) in enumerate(rows, start=after + 1):
        if seq != expected:
            raise RuntimeError(f"journal of book {book_id} has a gap: seq {seq} where {expected} was expected")
        commands.append(decode(json.loads(text)))
    return commands


class Sequencer:
    """The books of this process, their locks, and the journal writes that order them."""

    def __init__(self) -> None:
        self._states: dict[int, BookState] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        # Group commit: the commands waiting per book, the task draining each queue, the size of its last batch.
        self._queues: dict[int, deque[Any]] = {}
        self._drainers: dict[int, asyncio.Task[None]] = {}
        self._last_batch: dict[int, int] = {}

    def lock(self, book_id: int) -> asyncio.Lock:
        """The book's lock: hold it around the whole unit of work of any command on the book."""
        lock = self._locks.get(book_id)
        if lock is None:
            lock = self._locks[book_id] = asyncio.Lock()
        return lock

    async def load(self, ses: AsyncSession, row: BookDay) -> BookState:
        """The book as its journal says inside `ses`: from memory, caught up with any commands another process
        journalled since (one indexed read, usually empty), or replayed in full when memory cannot be trusted."""
        book_id = row.id or 0
        state = self._states.get(book_id)
        if state is not None and not state.dirty:
            tail = await read_journal(ses, book_id, after=state.next_seq - 1)
            for command in tail:
                state.book.apply(command)
            state.next_seq += len(tail)
            return state
        commands = await read_journal(ses, book_id)
        state = BookState(book_id, replay(commands, book_config(row)), len(commands) + 1)
        self._states[book_id] = state
        return state

    def apply(self, state: BookState, command: Command) -> Result:
        """Run one command on the book. An accepted command marks the book dirty until its commit."""
        result = state.book.apply(command)
        if result.ok:
            state.dirty = True
        return result

    async def append(self, ses: AsyncSession, state: BookState, command: Command, at: dt.datetime) -> int:
        """Journal an accepted command under the book's next sequence number; the number."""
        seq = state.next_seq
        # No savepoint: a clash on the unique key aborts the whole unit of work, which is what a stale book needs.
        ses.add(
            JournalEntry(
                book_id=state.book_id,
                seq=seq,
                command=jsontext.dumps(encode(command)),
                created_at=at,
            )
        )
        try:
            await ses.flush()
        except IntegrityError as exc:
            self.discard(state.book_id)
            raise StaleBook(f"book {state.book_id}: seq {seq} was written by another process") from exc
        state.next_seq = seq + 1
        return seq

    def stage(
        self, state: BookState, command: Command, at: dt.datetime, staged: list[tuple[int, Command, dt.datetime]]
    ) -> int:
        """Give an accepted command of a batch the book's next sequence number; written by `write_staged`."""
        seq = state.next_seq
        staged.append((seq, command, at))
        state.next_seq = seq + 1
        return seq

    async def write_staged(
        self, ses: AsyncSession, book_id: int, staged: Sequence[tuple[int, Command, dt.datetime]]
    ) -> None:
        """Journal a batch's accepted commands in one statement. A clash on the unique key means another process
        wrote this book meanwhile: the whole unit of work must roll back and replay (`StaleBook`)."""
        if not staged:
            return
        rows = [
            {
                "book_id": book_id,
                "seq": seq,
                "command": jsontext.dumps(encode(command)),
                "created_at": at,
            }
            for seq, command, at in staged
        ]
        try:
            await _INSERT_JOURNAL.many(ses, rows)
        except IntegrityError as exc:
            self.discard(book_id)
            raise StaleBook(f"book {book_id}: seq {staged[0][0]}.. was written by another process") from exc

    async def rebuild(self, ses: AsyncSession, row: BookDay, staged: Sequence[Command]) -> BookState:
        """The book as the journal in `ses` plus a batch's staged (not yet written) commands say: after a command
        of the batch failed once it had changed the book. It stays dirty until the batch commits."""
        commands = await read_journal(ses, row.id or 0) + list(staged)
        state = BookState(row.id or 0, replay(commands, book_config(row)), len(commands) + 1, dirty=True)
        self._states[row.id or 0] = state
        return state

    # ------------------------------------------------------------------ group commit queues
    def queue(self, book_id: int) -> deque[Any]:
        q = self._queues.get(book_id)
        if q is None:
            q = self._queues[book_id] = deque()
        return q

    def queued(self) -> dict[int, deque[Any]]:
        """The books' non-empty queues."""
        return {book_id: q for book_id, q in self._queues.items() if q}

    def drainer(self, book_id: int) -> asyncio.Task[None] | None:
        return self._drainers.get(book_id)

    def set_drainer(self, book_id: int, task: asyncio.Task[None] | None) -> None:
        if task is None:
            self._drainers.pop(book_id, None)
        else:
            self._drainers[book_id] = task

    def last_batch(self, book_id: int) -> int:
        return self._last_batch.get(book_id, 0)

    def note_batch(self, book_id: int, size: int) -> None:
        self._last_batch[book_id] = size

    def committed(self, book_id: int) -> None:
        state = self._states.get(book_id)
        if state is not None:
            state.dirty = False

    def discard_if_dirty(self, book_id: int) -> None:
        state = self._states.get(book_id)
        if state is not None and state.dirty:
            del self._states[book_id]

    def discard(self, book_id: int) -> None:
        self._states.pop(book_id, None)

    def forget(self, book_id: int) -> None:
        """Drop a closed book from memory (its journal stays). Its lock stays too: a waiter may hold it."""
        self._states.pop(book_id, None)

    def cached(self, book_id: int) -> BookState | None:
        return self._states.get(book_id)
