"""Serial blocks: the numbered units a serialised asset's holders hold, as half-open ranges [start, end).

Issuance cuts a new block from the asset's serial counter; any other posting moves whole blocks oldest first and
splits at most one, the sender keeping the low part; a receiver's touching blocks merge, so holdings stay compact.
`core.ledger` calls `move_serials` for every posted transfer of a serialised asset (Core statements only: the hot
path of every registry transfer and trade).
"""

from __future__ import annotations

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
