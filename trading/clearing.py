"""Clearing on the ledger: fund accounts in yuan, holds for orders and bids, and delivery versus payment.

Accounts (all ledger accounts of `core.ledger`):
- a fund account per organisation in CNY (asset `CNY`, scale 2, not serialised; owner kind `fund`);
- the settlement bank's account (owner kind `settlement`, role `issuance`): the money outside the system,
  the only CNY source; deposits post from it and withdrawals post to it, both on the bank's confirmation;
- one clearing account per asset (owner kind `clearing`): the pass-through of every settlement;
- the fee account (owner kind `fee`), credited with trading fees.

A hold is a pending transfer from the holder's account into the clearing account. Settlement posts what a
trade needs from each hold into clearing (releasing the rest, exactly once by the ledger's constraint), a
new hold covers what is still open, and clearing pays out to the counterparties and the fee account, all
in the caller's one unit of work: units and yuan move together or not at all (DVP).

Buy orders hold `money.buy_hold_fen(limit, remaining, scale, largest fee)`. Amounts and fees round down to
the fen, and that bound is superadditive in the quantity, so releasing a hold and re-holding the remainder
after a fill never needs more than was released, and no rounding can make a settled trade cost more than
its hold (see `trading/domain/money.py` for the rule and the proof).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import figures, ledger
from core.errors import Conflict
from core.models import LedgerAccount, LedgerAsset
from registry.service import OWNER

CNY = "CNY"
CNY_SCALE = 2
FUND = "fund"
CLEARING = "clearing"
FEE = "fee"
SETTLEMENT = "settlement"


AccountKey = tuple[str, int, int]
_CNY_KEY: AccountKey = ("asset", 0, 0)


class Accounts:
    """The ledger accounts clearing uses, found or created on first use, their ids cached per process.

    An id enters the cache only when the transaction that saw it commits (a SQLAlchemy `after_commit` hook on the
    unit of work's session), and never from the unit of work that created the row (as in core/cache.py): a
    savepoint can roll the creation back while the transaction around it commits.
    """

    def __init__(self) -> None:
        self._ids: dict[AccountKey, int] = {}

    def _remember(self, ses: AsyncSession, key: AccountKey, account_id: int) -> None:
        sync = ses.sync_session
        staged: dict[AccountKey, int] | None = sync.info.get("trading.accounts")
        if staged is None:
            staged = sync.info["trading.accounts"] = {}
            cache = self._ids

            def merge(session: Any) -> None:
                # `after_commit` also fires when a savepoint is released; only the outermost commit counts.
                if session.get_nested_transaction() is None:
                    cache.update(staged)

            event.listen(sync, "after_commit", merge)
        staged[key] = account_id

    async def cny_asset_id(self, ses: AsyncSession) -> int:
        cached = self._ids.get(_CNY_KEY)
        if cached is not None:
            return cached
        found = (await ses.execute(select(LedgerAsset.id).where(LedgerAsset.code == CNY))).scalar_one_or_none()
        if found is None:
            # Created here: not remembered by this unit of work (see `account_id`).
            asset = await ledger.ensure_asset(ses, CNY, scale=CNY_SCALE, serialised=False)
            return int(asset.id or 0)
        self._remember(ses, _CNY_KEY, int(found))
        return int(found)

    async def account_id(self, ses: AsyncSession, *, asset_id: int, owner_kind: str, owner_id: int, role: str) -> int:
        """The id of the owner's ledger account for the asset, created on first use (`ledger.ensure_account` is
        race-free: a concurrent first use finds the winner's row)."""
        key = (owner_kind, owner_id, asset_id)
        cached = self._ids.get(key)
        if cached is not None:
            return cached
        stmt = select(LedgerAccount.id).where(
            LedgerAccount.owner_kind == owner_kind,
            LedgerAccount.owner_id == owner_id,
            LedgerAccount.asset_id == asset_id,
        )
        found = (await ses.execute(stmt)).scalar_one_or_none()
        if found is None:
            # Created here (or by a concurrent first use): not remembered by this unit of work. A savepoint that
            # rolls the creation back while the transaction commits (a refused command in a group commit) would
            # otherwise leave the id of a row that does not exist, which SQLite hands to the next new account.
            account = await ledger.ensure_account(
                ses, asset_id=asset_id, owner_kind=owner_kind, owner_id=owner_id, role=role
            )
            return int(account.id or 0)
        self._remember(ses, key, int(found))
        return int(found)

    async def fund(self, ses: AsyncSession, organisation_id: int) -> int:
        """The organisation's fund account in CNY."""
        cny = await self.cny_asset_id(ses)
        return await self.account_id(ses, asset_id=cny, owner_kind=FUND, owner_id=organisation_id, role=FUND)

    async def settlement(self, ses: AsyncSession) -> int:
        # Role "issuance": the bank side is the one CNY source; its balance is minus the money inside the system.
        cny = await self.cny_asset_id(ses)
        return await self.account_id(ses, asset_id=cny, owner_kind=SETTLEMENT, owner_id=0, role=ledger.ROLE_ISSUANCE)

    async def units(self, ses: AsyncSession, *, asset_id: int, registry_account_id: int, role: str) -> int:
        """The ledger account of a registry account for one instrument (as `RegistryService.ledger_account`)."""
        return await self.account_id(ses, asset_id=asset_id, owner_kind=OWNER, owner_id=registry_account_id, role=role)

    async def ids_for(self, ses: AsyncSession, units_asset_id: int) -> Ids:
        """The clearing and fee accounts one settlement of this instrument needs."""
        cny = await self.cny_asset_id(ses)
        return Ids(
            units_asset_id=units_asset_id,
            units_clearing_id=await self.account_id(
                ses, asset_id=units_asset_id, owner_kind=CLEARING, owner_id=0, role=CLEARING
            ),
            cny_asset_id=cny,
            cny_clearing_id=await self.account_id(ses, asset_id=cny, owner_kind=CLEARING, owner_id=0, role=CLEARING),
            fee_account_id=await self.account_id(ses, asset_id=cny, owner_kind=FEE, owner_id=0, role=FEE),
        )


@dataclass(frozen=True)
class Ids:
    """The ledger ids one settlement needs for one instrument."""

    units_asset_id: int
    units_clearing_id: int
    cny_asset_id: int
    cny_clearing_id: int
    fee_account_id: int


async def hold(
    ses: AsyncSession,
    *,
    client_id: str,
    from_account_id: int,
    clearing_id: int,
    asset_id: int,
    amount: int,
    code: str,
    now: dt.datetime,
    ref: str,
    field: str = "quantity",
    what: str = "units",
    holder_role: str | None = None,
) -> int:
    """Reserve `amount` of the holder's available balance (a pending transfer into clearing); its id.

    Refuses with `insufficient-available` (409) naming what is short, in yuan for funds. With `holder_role` (the
    holder's ledger role, known to the caller) the ledger is handed both accounts and reads neither.
    """
    accounts = (
        None
        if holder_role is None
        else (
            ledger.AccountRef(from_account_id, asset_id, holder_role),
            ledger.AccountRef(clearing_id, asset_id, CLEARING),
        )
    )
    try:
        result = await ledger.create_transfer(
            ses,
            client_id=client_id,
            debit_account_id=from_account_id,
            credit_account_id=clearing_id,
            asset_id=asset_id,
            amount=amount,
            code=code,
            now=now,
            pending=True,
            ref=ref,
            field=field,
            accounts=accounts,
            fresh_client_id=True,
        )
    except Conflict as exc:
        if exc.problem.slug != "insufficient-available" or what != "funds":
            raise
        have = int(exc.extra.get("available", 0))
        raise Conflict(
            "insufficient-available",
            f"The fund account has {figures.yuan(have)} yuan available; "
            f"this needs {figures.yuan(amount)} yuan. Deposit first.",
            field=field,
            extra={"available": figures.yuan_plain(have), "requested": figures.yuan_plain(amount)},
        ) from exc
    return result.id


async def collect(
    ses: AsyncSession,
    *,
    hold_id: int,
    amount: int,
    client_id: str,
    now: dt.datetime,
    code: str,
    serials_to: int | None = None,
) -> None:
    """Post `amount` of a hold into clearing and release the rest; with `amount` 0, void the hold. Once only.
    `serials_to`: the units' serials go straight on to the account clearing pays them to (`ledger.resolve_pending`)."""
    await ledger.resolve_pending(
        ses,
        client_id=client_id,
        pending_id=hold_id,
        now=now,
        post=amount > 0,
        amount=amount if amount > 0 else None,
        code=code,
        serials_to=serials_to,
    )


async def pay(
    ses: AsyncSession,
    *,
    client_id: str,
    clearing_id: int,
    to_account_id: int,
    asset_id: int,
    amount: int,
    code: str,
    now: dt.datetime,
    ref: str,
    serialised: bool,
) -> None:
    """Pay `amount` out of clearing (nothing for zero). Client ids derive from the trade row just inserted."""
    if amount <= 0:
        return
    await ledger.create_transfer(
        ses,
        client_id=client_id,
        debit_account_id=clearing_id,
        credit_account_id=to_account_id,
        asset_id=asset_id,
        amount=amount,
        code=code,
        now=now,
        ref=ref,
        serialised=serialised,
        fresh_client_id=True,
    )


@dataclass(frozen=True)
class Delivery:
    """One trade's payouts from clearing, after both sides' contributions were collected into it."""

    trade_id: int
    quantity: int
    notional_fen: int
    buyer_fee_fen: int
    seller_fee_fen: int
    buyer_units_account_id: int
    seller_fund_account_id: int


async def deliver(ses: AsyncSession, ids: Ids, d: Delivery, now: dt.datetime) -> None:
    """Units to the buyer, the price less the seller's fee to the seller, both fees to the fee account."""
    ref = f"trade:{d.trade_id}"
    await pay(
        ses,
        client_id=f"trd:{d.trade_id}:units",
        clearing_id=ids.units_clearing_id,
        to_account_id=d.buyer_units_account_id,
        asset_id=ids.units_asset_id,
        amount=d.quantity,
        code="trade",
        now=now,
        ref=ref,
        serialised=True,
    )
    await pay(
        ses,
        client_id=f"trd:{d.trade_id}:funds",
        clearing_id=ids.cny_clearing_id,
        to_account_id=d.seller_fund_account_id,
        asset_id=ids.cny_asset_id,
        amount=d.notional_fen - d.seller_fee_fen,
        code="trade",
        now=now,
        ref=ref,
        serialised=False,
    )
    await pay(
        ses,
        client_id=f"trd:{d.trade_id}:fee",
        clearing_id=ids.cny_clearing_id,
        to_account_id=ids.fee_account_id,
        asset_id=ids.cny_asset_id,
        amount=d.buyer_fee_fen + d.seller_fee_fen,
        code="fee",
        now=now,
        ref=ref,
        serialised=False,
    )
