"""The registry's published interface: `RegistryService`, the facade that the composition root builds once per
process and that the other contexts (trading, finance, incentives, the compliance cycle), the scheduler's jobs,
the server's commands, the benches and the end-to-end tests call. It holds the context
(`registry.context.RegistryContext`) and delegates each method to its use case; the controllers in
`registry.api` call the use-case modules directly:

    enterprises.py   registering and reading enterprises (unified social credit code, city, industry)
    accounts.py      the operator's system accounts, opening and reading accounts, trusted lists
    issuance.py      issuance (four-eyes) and allocation
    transfers.py     transfers, the four-eyes decision and the delayed execution of approved transfers
    freezes.py       freezing and releasing units
    surrenders.py    surrender (through the compliance cycle's surrender policy) and retirement
    expiry.py        moving expired units to the expiry account
    holdings.py      holdings, transaction history, statements and instruments
    queries.py, _common.py  look-ups and guards, the ledger path and the answers the use cases share

One public use-case function is one transaction (run through `Database.run`); controllers and jobs call them
and nothing else commits. Every movement of units goes through `core.ledger`.

Status of a registry transaction: `completed`, `awaiting_approval` (four-eyes: issuance, transfers to untrusted
accounts), `approved` (waiting for its execution time), `rejected`, `active` / `released` (freezes).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock
from core.db import Database
from core.identity import Identity
from core.models import LedgerAccount, LedgerAsset
from registry import (
    _common,
    accounts,
    enterprises,
    expiry,
    freezes,
    holdings,
    issuance,
    queries,
    surrenders,
    transfers,
)
from registry import schemas as s
from registry._common import OWNER
from registry.accounts import SYSTEM_ORG
from registry.context import PARAMS, RegistryContext, SurrenderPolicy
from registry.enterprises import JIANGXI_CITIES, validate_uscc
from registry.models import Enterprise, Instrument, RegistryAccount, RegistryTransaction

__all__ = [
    "JIANGXI_CITIES",
    "OWNER",
    "PARAMS",
    "SYSTEM_ORG",
    "LedgerAsset",
    "RegistryContext",
    "RegistryService",
    "SurrenderPolicy",
    "validate_uscc",
]


class RegistryService:
    """What the other contexts, the scheduler's jobs, the server and the tests call. `ctx` is what the use cases
    take. The underscored methods are the look-ups and the ledger path that other contexts use inside their own
    units of work (a trading fill, a forced surrender, an allocation table's posting)."""

    def __init__(self, db: Database, clock: Clock, surrender_policy: SurrenderPolicy | None = None) -> None:
        self.ctx = RegistryContext(db, clock, surrender_policy)

    @property
    def surrender_policy(self) -> SurrenderPolicy | None:
        """The compliance cycle installs its surrender rules here (period open, eligible vintages, offset cap, ...).
        It is called inside the surrender's unit of work, after the generic checks and before units move."""
        return self.ctx.surrender_policy

    @surrender_policy.setter
    def surrender_policy(self, value: SurrenderPolicy | None) -> None:
        self.ctx.surrender_policy = value

    # ------------------------------------------------------------------ bootstrap
    async def bootstrap(self) -> None:
        """Create the registry operator and its system accounts once (idempotent)."""
        await accounts.bootstrap(self.ctx)

    # ------------------------------------------------------------------ enterprises and accounts
    async def create_enterprise(self, who: Identity, req: s.CreateEnterprise) -> s.EnterpriseOut:
        return await enterprises.create_enterprise(self.ctx, who, req)

    async def get_enterprise(self, who: Identity, enterprise_id: int) -> s.EnterpriseOut:
        return await enterprises.get_enterprise(self.ctx, who, enterprise_id)

    async def enterprise_by_uscc(self, code: str) -> Enterprise | None:
        return await enterprises.enterprise_by_uscc(self.ctx, code)

    async def open_account(self, who: Identity, req: s.OpenAccount) -> s.AccountOut:
        return await accounts.open_account(self.ctx, who, req)

    # ------------------------------------------------------------------ issuance and allocation
    async def issue_units(self, who: Identity, req: s.IssueUnits, request_key: str | None) -> s.TransactionOut:
        return await issuance.issue_units(self.ctx, who, req, request_key)

    async def allocate_units(self, who: Identity, req: s.AllocateUnits, request_key: str | None) -> s.TransactionOut:
        return await issuance.allocate_units(self.ctx, who, req, request_key)

    # ------------------------------------------------------------------ transfers
    async def create_transfer(self, who: Identity, req: s.MoveUnits, request_key: str | None) -> s.TransactionOut:
        return await transfers.create_transfer(self.ctx, who, req, request_key)

    async def approve_transfer(self, who: Identity, tx_id: int, req: s.Decision) -> s.TransactionOut:
        return await transfers.approve_transfer(self.ctx, who, tx_id, req)

    async def execute_due_transfers(self, limit: int = 1000) -> int:
        """Post approved transfers whose time has come; each by its own hold, so a second run changes nothing."""
        return await transfers.execute_due_transfers(self.ctx, limit)

    # ------------------------------------------------------------------ freeze, surrender, retirement, expiry
    async def freeze_units(self, who: Identity, req: s.FreezeUnits, request_key: str | None) -> s.TransactionOut:
        return await freezes.freeze_units(self.ctx, who, req, request_key)

    async def unfreeze_units(self, who: Identity, tx_id: int, req: s.Unfreeze) -> s.TransactionOut:
        return await freezes.unfreeze_units(self.ctx, who, tx_id, req)

    async def surrender_units(self, who: Identity, req: s.SurrenderUnits, request_key: str | None) -> s.TransactionOut:
        return await surrenders.surrender_units(self.ctx, who, req, request_key)

    async def retire_units(self, who: Identity, req: s.RetireUnits, request_key: str | None) -> s.TransactionOut:
        return await surrenders.retire_units(self.ctx, who, req, request_key)

    async def expire_certificates(self) -> int:
        """Move every holding of expired units to the expiry account (核销). Idempotent: expired holdings are empty."""
        return await expiry.expire_certificates(self.ctx)

    # ------------------------------------------------------------------ reads
    async def list_holdings(self, who: Identity, account_id: int) -> list[s.HoldingOut]:
        return await holdings.list_holdings(self.ctx, who, account_id)

    async def get_transaction(self, who: Identity, tx_id: int) -> s.TransactionOut:
        return await holdings.get_transaction(self.ctx, who, tx_id)

    # ------------------------------------------------------------------ helpers (inside the caller's unit of work)
    async def _own_account(self, ses: AsyncSession, who: Identity, account_id: int, field: str) -> RegistryAccount:
        return await queries.own_account(ses, who, account_id, field)

    async def _instrument(self, ses: AsyncSession, instrument_id: int) -> Instrument:
        return await queries.instrument(ses, instrument_id)

    async def _system_account(self, ses: AsyncSession, type_: str) -> RegistryAccount:
        return await queries.system_account(ses, type_)

    async def _allocation_account(self, ses: AsyncSession, who: Identity) -> RegistryAccount:
        return await queries.allocation_account(ses, who)

    async def record_and_move(
        self,
        ses: AsyncSession,
        tx: RegistryTransaction,
        inst: Instrument,
        source: RegistryAccount,
        dest: RegistryAccount,
        now: dt.datetime,
    ) -> RegistryTransaction:
        """Record a registry transaction that completes at once and move its units through the ledger, in the
        caller's unit of work (allocation, surrender, retirement, expiry, reserve funding, forced surrender).
        The units move through `self._move`, so a test that replaces it sees the other contexts' movements."""
        return await _common.record_and_move(ses, tx, inst, source, dest, now, move=self._move)

    async def ledger_account(self, ses: AsyncSession, acc: RegistryAccount, inst: Instrument) -> LedgerAccount:
        return await _common.ledger_account(ses, acc, inst)

    async def _move(
        self,
        ses: AsyncSession,
        tx: RegistryTransaction,
        inst: Instrument,
        source: RegistryAccount,
        dest: RegistryAccount,
        quantity: int,
        now: dt.datetime,
        *,
        pending: bool = False,
    ) -> int:
        return await _common.move(ses, tx, inst, source, dest, quantity, now, pending=pending)
