"""The audit log is hash-chained: `greenrights audit verify` passes on an intact chain and detects an edited,
a deleted or a reordered entry."""

from __future__ import annotations

from sqlalchemy import delete, update

from core.audit import link_and_verify, verify_chain
from core.db import UnitOfWork
from core.models import AuditEntry
from tests.helpers import allocate, world


async def _verify(env):  # type: ignore[no-untyped-def]
    async def work(uow: UnitOfWork):  # type: ignore[no-untyped-def]
        return await verify_chain(uow.session)

    return await env.db.read(work)


async def _link(env) -> None:  # type: ignore[no-untyped-def]
    ok, _, message = await link_and_verify(env.db)
    assert ok, message


async def _tamper(env, stmt) -> None:  # type: ignore[no-untyped-def]
    async def work(uow: UnitOfWork) -> None:
        await uow.session.execute(stmt)

    await env.db.run(work)


async def test_every_change_is_chained_and_verifies(env) -> None:
    w = await world(env, n_enterprises=1, issue=100)
    await allocate(env, w, w.enterprises[0]["account_id"], 10)
    ok, count, message = await _verify(env)
    assert ok and count == 0 and "not linked yet" in message  # appended, not chained before the linker runs
    ok, count, _ = await link_and_verify(env.db)
    assert ok and count >= 6


async def test_an_edited_entry_breaks_the_chain(env) -> None:
    await world(env, n_enterprises=1, issue=100)
    await _link(env)
    await _tamper(env, update(AuditEntry).where(AuditEntry.seq == 2).values(data='{"quantity": 1000000}'))
    ok, _, message = await _verify(env)
    assert not ok and "entry 2" in message


async def test_a_deleted_last_entry_is_detected_by_the_head(env) -> None:
    await world(env, n_enterprises=1, issue=100)
    await _link(env)
    ok, count, _ = await _verify(env)
    assert ok
    await _tamper(env, delete(AuditEntry).where(AuditEntry.seq == count))
    ok, _, message = await _verify(env)
    assert not ok and "head" in message


async def test_a_deleted_middle_entry_is_a_gap(env) -> None:
    await world(env, n_enterprises=1, issue=100)
    await _link(env)
    await _tamper(env, delete(AuditEntry).where(AuditEntry.seq == 3))
    ok, _, message = await _verify(env)
    assert not ok and "gap" in message


async def test_entries_committed_later_are_linked_after_the_earlier_ones_and_the_linker_is_idempotent(env) -> None:
    w = await world(env, n_enterprises=1, issue=100)
    ok, first, _ = await link_and_verify(env.db)
    assert ok and first > 0
    ok, again, _ = await link_and_verify(env.db)
    assert ok and again == first  # nothing new, nothing relinked
    await allocate(env, w, w.enterprises[0]["account_id"], 10)
    ok, after, _ = await link_and_verify(env.db)
    assert ok and after > first
