"""Serial blocks: the numbered units a serialised asset's holders hold, as half-open ranges [start, end).

Issuance cuts a new block from the asset's serial counter; any other posting moves whole blocks oldest first and
splits at most one, the sender keeping the low part; a receiver's touching blocks merge, so holdings stay compact.
`core.ledger` calls `move_serials` for every posted transfer of a serialised asset (Core statements only: the hot
path of every registry transfer and trade). A unit of work that keeps its balances in memory (the market's batches,
`core.balances`) queues its moves and replays them at its end with `move_all`: the same rules, applied in memory to
the blocks of the accounts involved (read in one statement), and only the difference written.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.cache import CommittedCache
from core.models import LedgerAccount, LedgerAsset, SerialBlock
from core.prepared import Prepared

ROLE_ISSUANCE = "issuance"
# Whether an asset's units carry serials never changes: remembered per process once a committed unit of work read
# it (never by the unit of work that created the asset, `core.ledger.ensure_asset`).
ASSET_SERIALISED: CommittedCache[int, bool] = CommittedCache("ledger.asset_serialised")


async def is_serialised(session: AsyncSession, asset_id: int) -> bool:
    found = ASSET_SERIALISED.get(session, asset_id)
    if found is None:
        stmt = select(LedgerAsset.serialised).where(LedgerAsset.id == asset_id)
        found = bool((await session.execute(stmt)).scalar_one())
        ASSET_SERIALISED.remember(session, asset_id, found)
    return found


_BLK = SerialBlock.__table__.c
# Split the oldest block of `debit_id` when it alone covers `amount` with serials to spare; returns the cut.
_SPLIT_OLDEST = Prepared(
    update(SerialBlock.__table__)
    .where(
        _BLK.id
        == select(_BLK.id)
        .where(_BLK.ledger_account_id == bindparam("debit_id"))
        .order_by(_BLK.serial_start)
        .limit(1)
        .scalar_subquery(),
        _BLK.quantity > bindparam("amount"),
    )
    .values(serial_end=_BLK.serial_end - bindparam("amount"), quantity=_BLK.quantity - bindparam("amount"))
    .returning(_BLK.serial_end)
)
# Grow the receiver's block that starts at `end` down to `start`.
_GROW_DOWN = Prepared(
    update(SerialBlock.__table__)
    .where(_BLK.ledger_account_id == bindparam("account_id"), _BLK.serial_start == bindparam("end"))
    .values(serial_start=bindparam("start"), quantity=_BLK.quantity + bindparam("n"))
    .returning(_BLK.id)
)
_INSERT_BLOCK = Prepared(insert(SerialBlock.__table__))


async def move_serials(
    session: AsyncSession,
    asset_id: int,
    debit_id: int,
    credit_id: int,
    amount: int,
    *,
    serialised: bool | None = None,
    debit_role: str | None = None,
) -> None:
    """Move `amount` serials from the debit account's blocks to the credit account (Core statements only: the hot
    path of every registry transfer). Issuance cuts a new block from the asset's counter."""
    if serialised is None:
        serialised = await is_serialised(session, asset_id)
    if not serialised:
        return
    if debit_role is None:
        debit_role = (
            await session.execute(select(LedgerAccount.role).where(LedgerAccount.id == debit_id))
        ).scalar_one()
    if debit_role == ROLE_ISSUANCE:
        # The counter advances by a conditional update, so concurrent issuances get disjoint ranges.
        end = (
            await session.execute(
                update(LedgerAsset)
                .where(LedgerAsset.id == asset_id)
                .values(next_serial=LedgerAsset.next_serial + amount)
                .returning(LedgerAsset.next_serial)
            )
        ).scalar_one()
        await _add_block(session, asset_id, credit_id, end - amount, end)
        return
    # The common case in one statement: the oldest block alone covers the amount with serials to spare, so it is
    # the one block split; the sender keeps its low part and the receiver gets its top `amount` serials.
    cut = await _SPLIT_OLDEST.scalar(session, {"debit_id": debit_id, "amount": amount})
    if cut is not None:
        # The sender still holds serial cut - 1, so the only block of the receiver's that can touch [cut, end) is
        # one starting at `end`: grow it downward, or add the range as a block of its own.
        await _add_split_block(session, asset_id, credit_id, cut, cut + amount)
        return
    blocks = (
        await session.execute(
            select(SerialBlock.id, SerialBlock.serial_start, SerialBlock.serial_end)
            .where(SerialBlock.ledger_account_id == debit_id)
            .order_by(SerialBlock.serial_start)
        )
    ).all()
    left = amount
    whole: list[int] = []
    for block_id, start, end in blocks:
        if left == 0:
            break
        if end - start <= left:
            whole.append(block_id)
            left -= end - start
        else:
            # Split the one block: the sender keeps the low part, the receiver gets the top `left` serials.
            cut = end - left
            await session.execute(
                update(SerialBlock)
                .where(SerialBlock.id == block_id)
                .values(serial_end=cut, quantity=cut - start)
                .execution_options(synchronize_session=False)
            )
            await _add_block(session, asset_id, credit_id, cut, end)
            left = 0
    if left:
        raise AssertionError(f"serial blocks of ledger account {debit_id} do not cover its balance")
    if whole:
        # Whole blocks change hands as they are; they stay disjoint, so no merge is needed for correctness.
        await session.execute(
            update(SerialBlock)
            .where(SerialBlock.id.in_(whole))
            .values(ledger_account_id=credit_id)
            .execution_options(synchronize_session=False)
        )


async def _add_split_block(session: AsyncSession, asset_id: int, account_id: int, start: int, end: int) -> None:
    """Add [start, end), cut from the top of another account's block, merging with the block that starts at `end`."""
    merged = await _GROW_DOWN.scalar(session, {"account_id": account_id, "start": start, "end": end, "n": end - start})
    if merged is None:
        await _INSERT_BLOCK.execute(
            session,
            {
                "ledger_account_id": account_id,
                "asset_id": asset_id,
                "serial_start": start,
                "serial_end": end,
                "quantity": end - start,
            },
        )


async def _add_block(session: AsyncSession, asset_id: int, account_id: int, start: int, end: int) -> None:
    """Add [start, end) to an account, merging with the neighbours that touch it, so holdings stay compact."""
    neighbours = (
        await session.execute(
            select(SerialBlock.id, SerialBlock.serial_start, SerialBlock.serial_end).where(
                SerialBlock.ledger_account_id == account_id,
                or_(SerialBlock.serial_end == start, SerialBlock.serial_start == end),
            )
        )
    ).all()
    if not neighbours:
        await session.execute(
            insert(SerialBlock).values(
                ledger_account_id=account_id,
                asset_id=asset_id,
                serial_start=start,
                serial_end=end,
                quantity=end - start,
            )
        )
        return
    keep_id = neighbours[0][0]
    for _, n_start, n_end in neighbours:
        start, end = min(start, n_start), max(end, n_end)
    if len(neighbours) > 1:
        await session.execute(
            delete(SerialBlock)
            .where(SerialBlock.id.in_([n[0] for n in neighbours[1:]]))
            .execution_options(synchronize_session=False)
        )
    await session.execute(
        update(SerialBlock)
        .where(SerialBlock.id == keep_id)
        .values(serial_start=start, serial_end=end, quantity=end - start)
        .execution_options(synchronize_session=False)
    )


# ------------------------------------------------------------------------------------------------ moves at the end
# `move_all` reads at most this many blocks of the accounts involved; past it, the moves go one by one in SQL.
MOVE_ALL_MAX_BLOCKS = 4096


@dataclass(frozen=True, slots=True)
class Move:
    """A posted transfer's serials, queued by a unit of work whose balances are in memory (`core.balances`)."""

    asset_id: int
    debit_id: int
    credit_id: int
    amount: int
    debit_role: str | None


@dataclass(slots=True)
class _Block:
    id: int | None  # None: a block this replay adds
    account: int
    asset: int
    start: int
    end: int


_START = attrgetter("start")


class _Holding:
    """One account's blocks, in serial order, and by their first and their end serial (blocks are disjoint)."""

    __slots__ = ("blocks", "by_end", "by_start")

    def __init__(self) -> None:
        self.blocks: list[_Block] = []
        self.by_start: dict[int, _Block] = {}
        self.by_end: dict[int, _Block] = {}

    def add(self, b: _Block) -> None:
        self.blocks.insert(bisect_left(self.blocks, b.start, key=_START), b)
        self.by_start[b.start] = b
        self.by_end[b.end] = b

    def remove(self, b: _Block) -> None:
        del self.blocks[bisect_left(self.blocks, b.start, key=_START)], self.by_start[b.start], self.by_end[b.end]

    def reshape(self, b: _Block, start: int, end: int) -> None:
        self.remove(b)
        b.start, b.end = start, end
        self.add(b)


_BLOCKS_OF = (
    select(_BLK.id, _BLK.ledger_account_id, _BLK.asset_id, _BLK.serial_start, _BLK.serial_end)
    .order_by(_BLK.ledger_account_id, _BLK.serial_start)
    .with_for_update()
)
# The blocks of n accounts, one prepared statement per power of two of n (the list padded with its last id): a
# batch's flush reads them once, and building and compiling the statement anew cost more than running it.
_BLOCKS_OF_N: dict[int, Prepared] = {}


async def _blocks_of(session: AsyncSession, accounts: list[int]) -> list[Any]:
    size = 1 << (len(accounts) - 1).bit_length()
    found = _BLOCKS_OF_N.get(size)
    if found is None:
        names: list[Any] = [bindparam(f"a{i}") for i in range(size)]
        found = _BLOCKS_OF_N[size] = Prepared(
            _BLOCKS_OF.where(_BLK.ledger_account_id.in_(names)).limit(MOVE_ALL_MAX_BLOCKS + 1)
        )
    padded = accounts + [accounts[-1]] * (size - len(accounts))
    return await found.execute(session, {f"a{i}": account_id for i, account_id in enumerate(padded)})


_UPDATE_BLOCK = Prepared(
    update(SerialBlock.__table__)
    .where(_BLK.id == bindparam("block_id"))
    .values(
        ledger_account_id=bindparam("account_id"),
        serial_start=bindparam("start"),
        serial_end=bindparam("end"),
        quantity=bindparam("n"),
    )
)
_DELETE_BLOCK = Prepared(delete(SerialBlock.__table__).where(_BLK.id == bindparam("block_id")))


async def move_all(session: AsyncSession, moves: Sequence[Move]) -> None:
    """Replay posted moves, in order, as `move_serials` would have made them one by one (the same blocks split,
    merged and handed over), computed in memory over the involved accounts' blocks (one read) and written as their
    difference (a DELETE, an UPDATE and an INSERT executemany). Issuance, or more blocks than
    `MOVE_ALL_MAX_BLOCKS`: one by one."""
    if not moves:
        return
    if any(m.debit_role is None or m.debit_role == ROLE_ISSUANCE for m in moves):
        await _one_by_one(session, moves)
        return
    accounts = sorted({m.debit_id for m in moves} | {m.credit_id for m in moves})
    rows = await _blocks_of(session, accounts)
    if len(rows) > MOVE_ALL_MAX_BLOCKS:
        await _one_by_one(session, moves)
        return
    holdings = {account_id: _Holding() for account_id in accounts}
    before: dict[int, tuple[int, int, int]] = {}
    for block_id, account_id, asset_id, start, end in rows:
        holdings[account_id].add(_Block(block_id, account_id, asset_id, start, end))
        before[block_id] = (account_id, start, end)
    for m in moves:
        _replay(holdings[m.debit_id], holdings[m.credit_id], m)
    after = [b for h in holdings.values() for b in h.blocks]
    kept = {b.id for b in after if b.id is not None}
    await _DELETE_BLOCK.many(session, [{"block_id": i} for i in before if i not in kept])
    await _UPDATE_BLOCK.many(
        session,
        [
            {"block_id": b.id, "account_id": b.account, "start": b.start, "end": b.end, "n": b.end - b.start}
            for b in after
            if b.id is not None and before[b.id] != (b.account, b.start, b.end)
        ],
    )
    await _INSERT_BLOCK.many(
        session,
        [
            {
                "ledger_account_id": b.account,
                "asset_id": b.asset,
                "serial_start": b.start,
                "serial_end": b.end,
                "quantity": b.end - b.start,
            }
            for b in after
            if b.id is None
        ],
    )


async def _one_by_one(session: AsyncSession, moves: Sequence[Move]) -> None:
    for m in moves:
        await move_serials(
            session, m.asset_id, m.debit_id, m.credit_id, m.amount, serialised=True, debit_role=m.debit_role
        )


def _replay(debit: _Holding, credit: _Holding, m: Move) -> None:
    """`move_serials` (not issuance) on the blocks in memory, step for step."""
    amount = m.amount
    first = debit.blocks[0] if debit.blocks else None
    if first is not None and first.end - first.start > amount:  # `_SPLIT_OLDEST`
        cut = first.end - amount
        debit.reshape(first, first.start, cut)
        grown = credit.by_start.get(cut + amount)  # `_add_split_block`
        if grown is not None:
            credit.reshape(grown, cut, grown.end)
        else:
            credit.add(_Block(None, m.credit_id, m.asset_id, cut, cut + amount))
        return
    left = amount
    whole: list[_Block] = []
    for b in list(debit.blocks):
        if left == 0:
            break
        if b.end - b.start <= left:
            whole.append(b)
            left -= b.end - b.start
        else:
            cut, end = b.end - left, b.end
            debit.reshape(b, b.start, cut)
            _add_in_memory(credit, m, cut, end)
            left = 0
    if left:
        raise AssertionError(f"serial blocks of ledger account {m.debit_id} do not cover its balance")
    for b in whole:  # handed over as they are, after the split's merge (as the one UPDATE that moves them)
        debit.remove(b)
        b.account = m.credit_id
        credit.add(b)


def _add_in_memory(credit: _Holding, m: Move, start: int, end: int) -> None:
    """`_add_block`: [start, end) merged with the credit account's blocks that touch it."""
    neighbours = [b for b in (credit.by_end.get(start), credit.by_start.get(end)) if b is not None]
    if not neighbours:
        credit.add(_Block(None, m.credit_id, m.asset_id, start, end))
        return
    keep = neighbours[0]
    for b in neighbours:
        start, end = min(start, b.start), max(end, b.end)
    for b in neighbours[1:]:
        credit.remove(b)
    credit.reshape(keep, start, end)
