"""The clearing account cache (trading/clearing.py `Accounts`) never remembers an account its own unit of work
created: a savepoint can roll the creation back while the transaction around it commits (a refused command in a
group commit), and the id of the rolled-back row would then name the next new account, of another asset."""

from __future__ import annotations

from core import ledger
from core.db import UnitOfWork
from core.models import LedgerAccount
from tests.conftest import Env
from trading.clearing import FUND, Accounts


async def test_an_account_created_in_a_rolled_back_savepoint_is_not_remembered(env: Env) -> None:
    accounts = Accounts()

    async def refused_in_a_savepoint(uow: UnitOfWork) -> None:
        savepoint = await uow.session.begin_nested()
        await accounts.fund(uow.session, organisation_id=4242)
        await savepoint.rollback()

    await env.db.run(refused_in_a_savepoint)

    async def other_asset_then_fund(uow: UnitOfWork) -> tuple[int, int, int]:
        # SQLite hands the freed id to the next new ledger account, here one of another asset.
        asset = await ledger.ensure_asset(uow.session, "TEST-OTHER", scale=0, serialised=False)
        other = await ledger.ensure_account(
            uow.session, asset_id=asset.id or 0, owner_kind=FUND, owner_id=4242, role=FUND
        )
        fund = await accounts.fund(uow.session, organisation_id=4242)
        row = await uow.session.get(LedgerAccount, fund)
        assert row is not None
        return other.id or 0, fund, row.asset_id

    other, fund, fund_asset = await env.db.run(other_asset_then_fund)
    assert fund != other
    assert fund_asset == await env.db.run(lambda uow: accounts.cny_asset_id(uow.session))
