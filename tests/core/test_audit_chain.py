"""The audit log is hash-chained and append-only: `greenrights audit verify` passes on an intact chain; the database
refuses to edit or delete entries; and someone who can drop those triggers (the database owner) and then deletes,
edits, truncates or rewrites the chain with the project's own hash function is caught, by the chain itself or by
the latest checkpoint signed with a key that is not in the database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from core.audit import Checkpoints, entry_hash, link_and_verify, verify_chain
from core.db import UnitOfWork
from core.models import AuditEntry, AuditHead
from core.signing import Signer
from tests.helpers import allocate, world


async def _verify(env):  # type: ignore[no-untyped-def]
    async def work(uow: UnitOfWork):  # type: ignore[no-untyped-def]
        return await verify_chain(uow.session)

    return await env.db.read(work)


async def _link(env) -> None:  # type: ignore[no-untyped-def]
    ok, _, message = await link_and_verify(env.db)
    assert ok, message


async def _tamper(env, *stmts) -> None:  # type: ignore[no-untyped-def]
    """As the database owner would: drop the append-only triggers first, then change the rows."""

    async def work(uow: UnitOfWork) -> None:
        if env.db.sqlite:
            for name in (
                "audit_entry_no_delete",
                "audit_entry_link_only",
                "audit_head_no_delete",
                "audit_head_forward_only",
            ):
                await uow.session.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
        else:
            await uow.session.execute(text("DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_entry"))
            await uow.session.execute(text("DROP TRIGGER IF EXISTS audit_head_append_only ON audit_head"))
        for stmt in stmts:
            await uow.session.execute(stmt)

    await env.db.run(work)


async def _as_the_application(env, stmt) -> None:  # type: ignore[no-untyped-def]
    async def work(uow: UnitOfWork) -> None:
        await uow.session.execute(stmt)

    await env.db.run(work)


def _checkpoints(tmp_path: Path) -> Checkpoints:
    return Checkpoints(tmp_path / "checkpoints.jsonl", Signer(tmp_path / "signing-key.pem"))


async def _checkpoint(env, cps: Checkpoints) -> int:  # type: ignore[no-untyped-def]
    async def work(uow: UnitOfWork) -> int:
        cp = await cps.maybe_write(uow.session, env.clock.now(), force=True)
        assert cp is not None
        return cp.seq

    return await env.db.read(work)


async def test_the_database_refuses_to_edit_or_delete_entries_or_move_the_head_back(env) -> None:
    await world(env, n_enterprises=1, issue=100)
    await _link(env)
    for stmt in (
        update(AuditEntry).where(AuditEntry.seq == 2).values(data='{"quantity": 1000000}'),
        update(AuditEntry).where(AuditEntry.seq == 2).values(seq=None),
        delete(AuditEntry).where(AuditEntry.seq == 1),
        update(AuditHead).where(AuditHead.id == 1).values(seq=0),
        delete(AuditHead),
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            await _as_the_application(env, stmt)
    assert (await link_and_verify(env.db))[0]


async def test_truncating_the_chain_and_moving_the_head_back_is_caught_by_the_signed_checkpoint(
    env, tmp_path: Path
) -> None:
    await world(env, n_enterprises=1, issue=100)
    await _link(env)
    cps = _checkpoints(tmp_path)
    last = await _checkpoint(env, cps)

    async def previous_hash(uow: UnitOfWork) -> str:
        return (await uow.session.execute(select(AuditEntry.hash).where(AuditEntry.seq == last - 1))).scalar_one()

    prev = await env.db.read(previous_hash)
    await _tamper(
        env,
        delete(AuditEntry).where(AuditEntry.seq == last),
        update(AuditHead).where(AuditHead.id == 1).values(seq=last - 1, hash=prev),
    )
    assert (await link_and_verify(env.db))[0]  # the chain alone cannot tell
    ok, _, message = await link_and_verify(env.db, cps)
    assert not ok and "truncated" in message


async def test_an_edit_with_every_later_hash_recomputed_is_caught_by_the_signed_checkpoint(env, tmp_path: Path) -> None:
    await world(env, n_enterprises=1, issue=100)
    await _link(env)
    cps = _checkpoints(tmp_path)
    await _checkpoint(env, cps)

    async def rows(uow: UnitOfWork) -> list[AuditEntry]:
        return list((await uow.session.execute(select(AuditEntry).order_by(AuditEntry.seq))).scalars())

    entries = await env.db.read(rows)
    stmts = []
    prev = "0" * 64
    for e in entries:
        data = '{"quantity":1000000}' if e.seq == 2 else e.data
        h = entry_hash(e.seq or 0, e.at, e.actor, e.action, e.entity, e.entity_id, data, prev)
        stmts.append(update(AuditEntry).where(AuditEntry.id == e.id).values(data=data, prev_hash=prev, hash=h))
        prev = h
    stmts.append(update(AuditHead).where(AuditHead.id == 1).values(hash=prev))
    await _tamper(env, *stmts)
    assert (await link_and_verify(env.db))[0]  # consistent again, by the project's own hash function
    ok, _, message = await link_and_verify(env.db, cps)
    assert not ok and "rewritten" in message


async def test_a_checkpoint_signed_with_another_key_is_refused(env, tmp_path: Path) -> None:
    await world(env, n_enterprises=1, issue=100)
    await _link(env)
    await _checkpoint(env, Checkpoints(tmp_path / "checkpoints.jsonl", Signer(tmp_path / "other-key.pem")))
    ok, _, message = await link_and_verify(env.db, _checkpoints(tmp_path))
    assert not ok and "not signed" in message


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
