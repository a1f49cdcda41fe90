"""Ledger balances kept in memory for one unit of work, and written once at its end (the market's group commit).

A batch of order commands (`trading.books`) moves the same few accounts over and over: the traders' fund and unit
accounts, clearing, the fee account. Each transfer's conditional UPDATE of its two balance rows cost more than the
transfer's own row. So no one else may change a balance the unit of work has read until it commits: on SQLite it is
the one writer from its BEGIN IMMEDIATE to its COMMIT; on PostgreSQL the rows are read `FOR UPDATE`, and another
transaction that would change one waits for the commit (two that wait for each other are a deadlock, which
PostgreSQL breaks and `core.db` retries). The rows are read once (`load`), every transfer's rule (debits may not
exceed credits, nor either side pass 64 bits) is checked here against the running figures, and the changes of the
whole unit of work are written as one UPDATE per account (`flush`, before the commit), each adding what changed
(not setting a figure, so a statement of another path in the same transaction is never lost). The database's CHECK
constraints still stand behind them.

What a caller of `core.ledger` sees does not change: the same refusals, with the same figures, at the same call.
The transfer rows are staged too (`stage`): each gets its id at once, from ids taken ahead
(`core.prepared.IdsAhead`), and all are written as one executemany before the balances. Until then the rows
exist only here, so foreign keys that name them (an order's hold, a resolution's hold) are checked at the commit
on SQLite (`PRAGMA defer_foreign_keys`, for this transaction only; on PostgreSQL the transfers are written first,
in id order, before the rows that name them, `trading.books`), and the ledger looks here before the table: for a
client id already used (`staged`), and for a hold already resolved (`resolved`). The holds the unit of work creates are
remembered (`Hold`), so that resolving one of them later in it reads nothing. A command of a batch that fails
restores the figures, holds, staged rows and serial moves it started from (`mark`, `restore`); the accounts it
read first are forgotten (when the batch runs with savepoints, PostgreSQL forgets their locks with the savepoint).

Serial blocks move at the flush too (`core.serials.Move`): a posted transfer of a serialised asset is queued here and
replayed by `core.serials.move_all`, in the order the unit of work posted them (so the blocks end exactly as
they would have, moved one by one), after the balances. Nothing in a batch reads serial blocks, and a serial move
cannot be refused once its transfer's balances moved (the blocks cover the balance: `check_invariants`). So a
command of a batch writes nothing to the database: its rows, balances and serials are all here until the flush,
and one that fails is undone in memory alone (`trading.books` sets no savepoint for it).

Only the market's batches defer (`defer`); every other unit of work moves balances with the ledger's conditional
UPDATEs (`core.ledger`), which lock a row only for the statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import figures, serials
from core.errors import AppError, Conflict
from core.models import LedgerAccount, LedgerTransfer
from core.prepared import IdsAhead, Prepared, plain
from core.quantity import INT64_MAX

_KEY = "core.balances"
_ACC = LedgerAccount.__table__.c  # type: ignore[attr-defined]
# The four figures, in this order everywhere here.
COLUMNS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
_DPE, _DPO, _CPE, _CPO = range(4)

_FIGURES = (
    _ACC.id,
    *(getattr(_ACC, name) for name in COLUMNS),
    _ACC.debits_must_not_exceed_credits,
    _ACC.credits_must_not_exceed_debits,
)
# FOR UPDATE: nobody else changes the figures until this unit of work commits (SQLite, the one writer, has no such
# clause and needs none).
_LOAD = Prepared(
    select(*_FIGURES).where(_ACC.id.in_([bindparam("first"), bindparam("second")])).order_by(_ACC.id).with_for_update()
)
_TRANSFERS = LedgerTransfer.__table__  # type: ignore[attr-defined]
_INSERT_TRANSFERS = Prepared(insert(_TRANSFERS))
_ADD = Prepared(
    update(LedgerAccount.__table__)  # type: ignore[attr-defined]
    .where(_ACC.id == bindparam("account_id"))
    .values({name: getattr(_ACC, name) + bindparam(f"d_{name}") for name in COLUMNS})
)


@dataclass(frozen=True, slots=True)
class Hold:
    """What resolving a hold must know of it, remembered when this unit of work created it (the same names as the
    row `core.ledger` reads otherwise)."""

    id: int
    amount: int
    debit_account_id: int
    credit_account_id: int
    asset_id: int
    code: str
    ref: str | None
    serialised: bool
    debit_role: str


class Balances:
    """The running figures of the accounts a unit of work touched and what the database holds of them, the holds it
    created and has not resolved yet, and the transfer rows it has not written yet."""

    __slots__ = ("figures", "flags", "holds", "ids", "resolved", "serial_moves", "staged", "stored", "transfers")

    def __init__(self) -> None:
        self.figures: dict[int, list[int]] = {}
        self.stored: dict[int, tuple[int, ...]] = {}
        # (debits must not exceed credits, credits must not exceed debits) per account.
        self.flags: dict[int, tuple[bool, bool]] = {}
        # A hold created here cannot have been resolved by anyone else (nobody else sees it before the commit), so
        # its resolution needs no read of it.
        self.holds: dict[int, Hold] = {}
        # The transfer rows not written yet, in id order; the same rows by client id; the holds they resolve.
        self.transfers: list[dict[str, Any]] = []
        self.staged: dict[str, dict[str, Any]] = {}
        self.resolved: set[int] = set()
        self.ids = IdsAhead(_TRANSFERS)
        self.serial_moves: list[serials.Move] = []

    async def stage(self, session: AsyncSession, row: dict[str, Any]) -> int:
        """Keep a transfer row (every column but `id`) to write with the others; its id."""
        row["id"] = transfer_id = await self.ids.next(session)
        self.transfers.append(row)
        self.staged[row["client_id"]] = row
        if row["resolves_id"] is not None:
            self.resolved.add(row["resolves_id"])
        return transfer_id

    async def load(self, session: AsyncSession, first: int, second: int) -> tuple[list[int], list[int]]:
        """The figures of a transfer's two accounts, read (in one statement) when this unit of work first needs
        them."""
        missing = [account_id for account_id in (first, second) if account_id not in self.figures]
        rows = [] if not missing else await _LOAD.execute(session, {"first": missing[0], "second": missing[-1]})
        for row in rows:
            found = self.figures[row[0]] = [int(v) for v in row[1:5]]
            self.stored[row[0]] = tuple(found)
            self.flags[row[0]] = (bool(row[5]), bool(row[6]))
        return self.figures[first], self.figures[second]

    async def move(
        self, session: AsyncSession, debit_id: int, credit_id: int, amount: int, *, pending: bool, field: str
    ) -> None:
        """A transfer's two sides, after the same checks as `core.ledger`'s conditional UPDATEs; a refusal raises
        (the one `core.ledger` would) and changes nothing."""
        debit, credit = await self.load(session, debit_id, credit_id)
        debit_flag, credit_flag = self.flags[debit_id][0], self.flags[credit_id][1]
        if (debit_flag and debit[_DPO] + debit[_DPE] > debit[_CPO] - amount) or (
            INT64_MAX - amount < debit[_DPO] + debit[_DPE]
        ):
            raise refusal(debit, amount, field)
        if (credit_flag and credit[_CPO] + credit[_CPE] > credit[_DPO] - amount) or (
            INT64_MAX - amount < credit[_CPO] + credit[_CPE]
        ):
            raise refusal(credit, amount, field)
        debit[_DPE if pending else _DPO] += amount
        credit[_CPE if pending else _CPO] += amount

    async def resolve(self, session: AsyncSession, debit_id: int, credit_id: int, held: int, posted: int) -> None:
        """A hold of `held` leaves both pending figures; `posted` of it enters the posted ones."""
        debit, credit = await self.load(session, debit_id, credit_id)
        debit[_DPE] -= held
        debit[_DPO] += posted
        credit[_CPE] -= held
        credit[_CPO] += posted

    def available(self, account_id: int) -> int | None:
        """The account's available balance, when this unit of work holds its figures."""
        found = self.figures.get(account_id)
        return None if found is None else found[_CPO] - found[_DPO] - found[_DPE]

    def mark(self) -> Mark:
        return (
            {account_id: tuple(values) for account_id, values in self.figures.items()},
            dict(self.holds),
            len(self.transfers),
            set(self.resolved),
            len(self.serial_moves),
        )

    def restore(self, mark: Mark) -> None:
        """Back to the figures, holds, staged rows and serial moves of `mark`; accounts first read since are
        forgotten (the database still has them as they were: nothing is written before `flush`), and so are holds
        created and rows staged since (their ids are gaps)."""
        figures_then, holds_then, staged_then, resolved_then, moves_then = mark
        del self.serial_moves[moves_then:]
        for row in self.transfers[staged_then:]:
            del self.staged[row["client_id"]]
        del self.transfers[staged_then:]
        self.resolved = resolved_then
        for account_id in [a for a in self.figures if a not in figures_then]:
            del self.figures[account_id], self.stored[account_id], self.flags[account_id]
        for account_id, values in figures_then.items():
            self.figures[account_id][:] = values
        self.holds.clear()
        self.holds.update(holds_then)

    async def flush(self, session: AsyncSession) -> None:
        """Write what is staged: the transfer rows (one executemany), one UPDATE per account (another), then the
        serial moves, in the order they were posted."""
        if self.transfers:
            await _INSERT_TRANSFERS.many(session, self.transfers)
            self.transfers.clear()
            self.staged.clear()
            self.resolved.clear()  # the rows now in the table say so
        changes = []
        for account_id, values in self.figures.items():
            before = self.stored[account_id]
            if tuple(values) != before:
                changes.append(
                    {"account_id": account_id, **{f"d_{n}": values[i] - before[i] for i, n in enumerate(COLUMNS)}}
                )
                self.stored[account_id] = tuple(values)
        if await _ADD.many(session, changes) != len(changes):
            raise AssertionError("a ledger account held in memory is gone from the database")
        moves, self.serial_moves = self.serial_moves, []
        await serials.move_all(session, moves)


Mark = tuple[dict[int, tuple[int, ...]], dict[int, Hold], int, set[int], int]


async def defer(session: AsyncSession) -> bool:
    """Keep this unit of work's balances and transfer rows in memory until `flush`; whether it does. On SQLite its
    foreign keys are checked at its commit from now on (the staged rows are not there yet)."""
    bind = session.bind
    if bind is None:
        return False
    if _KEY not in session.sync_session.info:
        if bind.dialect.name == "sqlite":
            await plain(session, "PRAGMA defer_foreign_keys = ON")
        session.sync_session.info[_KEY] = Balances()
    return True


def deferred(session: AsyncSession) -> Balances | None:
    found: Balances | None = session.sync_session.info.get(_KEY)
    return found


async def flush(session: AsyncSession) -> None:
    found = deferred(session)
    if found is not None:
        await found.flush(session)


def refusal(values: Any, amount: int, field: str) -> AppError:
    """Why an account refuses to move `amount` more: a 64-bit overflow, or not enough available. `values`: the four
    figures in `COLUMNS` order."""
    dpe, dpo, cpe, cpo = values[:4]
    if dpo + dpe > INT64_MAX - amount or cpo + cpe > INT64_MAX - amount:
        return AppError("amount-overflow", "The amount would overflow a 64-bit balance.", field=field)
    have = cpo - dpo - dpe
    return Conflict(
        "insufficient-available",
        f"Only {figures.quantity(have)} base units are available; {figures.quantity(amount)} were asked for.",
        field=field,
        extra={"available": have, "requested": amount},
    )
