"""A stateful model test of the registry on the ledger (reliability.md, "Stateful model test").

Hypothesis drives random issue / allocate / transfer (trusted and untrusted) / approve / execute / freeze /
unfreeze / surrender / retire / over-spend / replay sequences through the service layer against a plain model,
and after every step asserts: conservation per asset (posted and pending), no negative available balance,
balances equal the sum of their transfers, serial blocks disjoint and summing to balances (all via
`core.ledger.check_invariants`), units in circulation per instrument against the transaction log
(`registry.circulation`), and every account's balance and hold equal the model's. Runs on SQLite and,
when configured, PostgreSQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from core import ledger
from core.audit import link_and_verify
from core.clock import FixedClock
from core.db import Database, UnitOfWork
from core.errors import AppError
from core.identity import Identity, Role, create_organisation
from core.settings import Settings
from registry import schemas as s
from registry.circulation import unit_circulation
from registry.service import RegistryService
from server.app import create_app
from tests.conftest import BACKENDS, START, schema_database_url
from tests.helpers import make_uscc

_ids = itertools.count(1)


class RegistryMachine(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop
    db: Database
    svc: RegistryService
    clock: FixedClock

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    @initialize()
    def setup(self) -> None:
        async def orgs(uow: UnitOfWork) -> tuple[int, int, int]:
            reg = await create_organisation(uow.session, "regulator", "regulator", self.clock.now())
            return reg.id or 0, 0, 0

        reg_org, _, _ = self.run(self.db.run(orgs))
        n = next(_ids)
        self.reg = Identity(n * 100 + 1, reg_org, Role.REGULATOR, "r1")
        self.reg2 = Identity(n * 100 + 2, reg_org, Role.REGULATOR, "r2")
        self.alloc = self.run(self.svc.open_account(self.reg, s.OpenAccount(type="allocation"))).id
        tx = self.run(
            self.svc.issue_units(
                self.reg, s.IssueUnits(kind="cea", scheme="national", vintage=2000 + n % 90, quantity="500"), None
            )
        )
        self.run(self.svc.approve_transfer(self.reg2, tx.id, s.Decision(decision="approve")))
        self.inst = tx.instrument_id
        # Two enterprises; the first has two accounts (transfers between them are trusted).
        self.accounts: list[int] = []
        self.owner: dict[int, Identity] = {}
        self.second: dict[int, Identity] = {}
        for e in range(2):
            ent = self.run(
                self.svc.create_enterprise(
                    self.reg,
                    s.CreateEnterprise(uscc=make_uscc(), name=f"企业{n}-{e}", city="南昌", industry_code="C3011"),
                )
            )
            for _ in range(2 if e == 0 else 1):
                acc = self.run(self.svc.open_account(self.reg, s.OpenAccount(type="holding", enterprise_id=ent.id))).id
                self.accounts.append(acc)
                self.owner[acc] = Identity(n * 100 + 10 + e, ent.organisation_id, Role.EMITTER, "e")
                self.second[acc] = Identity(n * 100 + 20 + e, ent.organisation_id, Role.EMITTER, "e2")
        self.balance = {a: 0 for a in [*self.accounts, self.alloc]}
        self.balance[self.alloc] = 500
        self.held = {a: 0 for a in self.balance}
        self.pending: list[tuple[int, int, int, int]] = []  # (tx id, from, to, qty) awaiting approval
        self.approved: list[tuple[int, int, int, int]] = []
        self.freezes: list[tuple[int, int, int]] = []  # (tx id, account, qty)
        self.keys: dict[str, tuple[str, int]] = {}  # request key -> (kind, tx id)

    def avail(self, acc: int) -> int:
        return self.balance[acc] - self.held[acc]

    def expect_refusal(self, coro, slug: str) -> None:  # type: ignore[no-untyped-def]
        with pytest.raises(AppError) as err:
            self.run(coro)
        assert err.value.problem.slug == slug

    @rule(i=st.integers(0, 2), q=st.integers(1, 200))
    def allocate(self, i: int, q: int) -> None:
        acc = self.accounts[i]
        req = s.AllocateUnits(to_account_id=acc, instrument_id=self.inst, quantity=str(q), from_account_id=self.alloc)
        if q > self.avail(self.alloc):
            self.expect_refusal(self.svc.allocate_units(self.reg, req, None), "insufficient-available")
            return
        self.run(self.svc.allocate_units(self.reg, req, None))
        self.balance[self.alloc] -= q
        self.balance[acc] += q

    @rule(src=st.integers(0, 2), dst=st.integers(0, 2), q=st.integers(1, 120), key=st.booleans())
    def transfer(self, src: int, dst: int, q: int, key: bool) -> None:
        a, b = self.accounts[src], self.accounts[dst]
        rk = f"k{next(_ids)}" if key else None
        req = s.MoveUnits(from_account_id=a, to_account_id=b, instrument_id=self.inst, quantity=str(q))
        if a == b:
            self.expect_refusal(self.svc.create_transfer(self.owner[a], req, rk), "accounts-must-differ")
            return
        if q > self.avail(a):
            self.expect_refusal(self.svc.create_transfer(self.owner[a], req, rk), "insufficient-available")
            return
        tx = self.run(self.svc.create_transfer(self.owner[a], req, rk))
        trusted = self.owner[a].organisation_id == self.owner[b].organisation_id
        assert tx.status == ("completed" if trusted else "awaiting_approval")
        if trusted:
            self.balance[a] -= q
            self.balance[b] += q
        else:
            self.held[a] += q
            self.pending.append((tx.id, a, b, q))
        if rk:
            self.keys[rk] = ("transfer", tx.id)

    @precondition(lambda self: bool(self.keys))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        rk = data.draw(st.sampled_from(sorted(self.keys)))
        _, tx_id = self.keys[rk]
        tx = self.run(self.svc.get_transaction(self.reg, tx_id))
        again = self.run(
            self.svc.create_transfer(
                self.owner[tx.from_account_id],
                s.MoveUnits(
                    from_account_id=tx.from_account_id or 0,
                    to_account_id=tx.to_account_id or 0,
                    instrument_id=self.inst,
                    quantity=tx.quantity,
                ),
                rk,
            )
        )
        assert again.id == tx_id  # the first effect, not a second one

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data(), reject=st.booleans(), self_approve=st.booleans())
    def decide(self, data: st.DataObject, reject: bool, self_approve: bool) -> None:
        item = data.draw(st.sampled_from(self.pending))
        tx_id, a, _b, q = item
        if self_approve:
            self.expect_refusal(
                self.svc.approve_transfer(self.owner[a], tx_id, s.Decision(decision="approve")), "four-eyes-required"
            )
            return
        decision = s.Decision(decision="reject", reason="不同意") if reject else s.Decision(decision="approve")
        self.run(self.svc.approve_transfer(self.second[a], tx_id, decision))
        self.pending.remove(item)
        if reject:
            self.held[a] -= q
        else:
            self.approved.append(item)

    @precondition(lambda self: bool(self.approved))
    @rule()
    def execute(self) -> None:
        self.clock.advance(dt.timedelta(days=4))
        self.run(self.svc.execute_due_transfers())
        for _, a, b, q in self.approved:
            self.held[a] -= q
            self.balance[a] -= q
            self.balance[b] += q
        self.approved.clear()

    @rule(i=st.integers(0, 2), q=st.integers(1, 80))
    def freeze(self, i: int, q: int) -> None:
        acc = self.accounts[i]
        req = s.FreezeUnits(
            account_id=acc,
            instrument_id=self.inst,
            quantity=str(q),
            legal_basis="judicial",
            authority="南昌市中级人民法院",
            reference=f"(2026)赣01执{next(_ids)}号",
        )
        if q > self.avail(acc):
            self.expect_refusal(self.svc.freeze_units(self.reg, req, None), "insufficient-available")
            return
        tx = self.run(self.svc.freeze_units(self.reg, req, None))
        self.held[acc] += q
        self.freezes.append((tx.id, acc, q))

    @precondition(lambda self: bool(self.freezes))
    @rule(data=st.data(), twice=st.booleans())
    def unfreeze(self, data: st.DataObject, twice: bool) -> None:
        item = data.draw(st.sampled_from(self.freezes))
        self.run(self.svc.unfreeze_units(self.reg, item[0], s.Unfreeze(reason="解除")))
        if twice:  # releasing again is a no-op, never a second release
            self.run(self.svc.unfreeze_units(self.reg, item[0], s.Unfreeze(reason="解除")))
        self.freezes.remove(item)
        self.held[item[1]] -= item[2]

    @rule(i=st.integers(0, 2), q=st.integers(1, 80), retire=st.booleans())
    def surrender_or_retire(self, i: int, q: int, retire: bool) -> None:
        acc = self.accounts[i]
        who = self.owner[acc]
        if retire:
            call = self.svc.retire_units(
                who,
                s.RetireUnits(account_id=acc, instrument_id=self.inst, quantity=str(q), beneficiary="自愿注销"),
                None,
            )
        else:
            call = self.svc.surrender_units(
                who, s.SurrenderUnits(account_id=acc, instrument_id=self.inst, quantity=str(q), period="2025"), None
            )
        if q > self.avail(acc):
            self.expect_refusal(call, "insufficient-available")
            return
        self.run(call)
        self.balance[acc] -= q

    @invariant()
    def ledger_holds(self) -> None:
        async def check(uow: UnitOfWork) -> list[str]:
            return await ledger.check_invariants(uow.session)

        assert self.run(self.db.read(check)) == []

    @invariant()
    def units_in_circulation_reconcile(self) -> None:
        """held = issued - surrendered - retired - cancelled - expired per instrument (registry/domain/circulation)."""

        async def check(uow: UnitOfWork) -> list[str]:
            return [u.line() for u in await unit_circulation(uow.session) if not u.ok]

        assert self.run(self.db.read(check)) == []

    @invariant()
    def balances_match_model(self) -> None:
        for acc in self.balance:
            who = self.reg if acc == self.alloc else self.owner[acc]
            holdings = self.run(self.svc.list_holdings(who, acc))
            bal = sum(h.balance_base for h in holdings if h.instrument.id == self.inst)
            avail = sum(h.available_base for h in holdings if h.instrument.id == self.inst)
            assert (bal, avail) == (self.balance[acc], self.avail(acc)), acc

    def teardown(self) -> None:
        ok, _, message = self.run(link_and_verify(self.db))
        assert ok, message


@pytest.mark.parametrize("backend", BACKENDS)
def test_registry_state_machine(backend: str, tmp_path: Path) -> None:
    url = schema_database_url(backend, tmp_path)
    loop = asyncio.new_event_loop()
    clock = FixedClock(START)
    app = create_app(Settings(database_url=url, scheduler_embedded=False), clock)
    svc: RegistryService = app.state.registry
    # This machine checks the ledger's promises; the compliance cycle's surrender rules (periods, vintages,
    # offset caps) have their own tests in tests/registry/compliance.
    svc.surrender_policy = None
    loop.run_until_complete(svc.bootstrap())
    RegistryMachine.loop = loop
    RegistryMachine.db = app.state.db
    RegistryMachine.svc = svc
    RegistryMachine.clock = clock
    try:
        run_state_machine_as_test(
            RegistryMachine,
            settings=settings(
                max_examples=12 if backend == "sqlite" else 8,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        loop.run_until_complete(app.state.db.dispose())
        loop.close()
