"""Freezes: an authority holds units of an account against the freeze account on a stated legal basis (the units
stay in the account but are not available), and releases them later. Both are idempotent.

Who may: the authority of the instrument's kind (the regulator for allowances, offsets and discharge permits, the
energy authority for energy-use rights, the certificate issuer for green certificates) freezes; a freeze is
released only by the organisation that placed it, so one authority can never lift another's.
"""

from __future__ import annotations

import json

from core import ledger
from core.db import UnitOfWork
from core.errors import Conflict, Forbidden
from core.identity import Identity
from core.quantity import parse_quantity
from core.text import clean_text
from registry import schemas as s
from registry._common import move, tx_out
from registry.context import RegistryContext
from registry.domain.instruments import KIND_RULES, Kind
from registry.models import RegistryTransaction
from registry.queries import any_user_account, by_request_key, instrument, system_account, visible_tx


async def freeze_units(
    ctx: RegistryContext, who: Identity, req: s.FreezeUnits, request_key: str | None
) -> s.TransactionOut:
    authority = clean_text(req.authority, "authority", max_len=200)
    reference = clean_text(req.reference, "reference", max_len=100)

    async def work(uow: UnitOfWork) -> s.TransactionOut:
        ses = uow.session
        if (prior := await by_request_key(ses, request_key)) is not None:
            return await tx_out(ses, prior)
        acc = await any_user_account(ses, req.account_id, "account_id")
        inst = await instrument(ses, req.instrument_id)
        issuer_role = KIND_RULES[Kind(inst.kind)].issuer_role
        if who.role.value != issuer_role:
            raise Forbidden(f"Only the {issuer_role} freezes {inst.kind} units.")
        quantity = parse_quantity(req.quantity, scale=KIND_RULES[Kind(inst.kind)].scale)
        now = ctx.clock.now()
        target = await system_account(ses, "freeze")
        tx = RegistryTransaction(
            code="freeze",
            status="active",
            instrument_id=inst.id or 0,
            from_account_id=acc.id,
            to_account_id=target.id,
            quantity=quantity,
            initiated_by=who.principal_id,
            initiator_organisation_id=who.organisation_id,
            request_key=request_key,
            details=json.dumps(
                {"legal_basis": req.legal_basis, "authority": authority, "reference": reference}, ensure_ascii=False
            ),
            created_at=now,
        )
        ses.add(tx)
        await ses.flush()
        tx.hold_transfer_id = await move(ses, tx, inst, acc, target, quantity, now, pending=True)
        uow.audit(
            who.actor,
            "units.freeze",
            "transaction",
            str(tx.id),
            {"account": acc.id, "instrument": inst.code, "quantity": quantity, "legal_basis": req.legal_basis},
        )
        return await tx_out(ses, tx)

    return await ctx.db.run(work)


async def unfreeze_units(ctx: RegistryContext, who: Identity, tx_id: int, req: s.Unfreeze) -> s.TransactionOut:
    reason = clean_text(req.reason, "reason", max_len=500, required=False)

    async def work(uow: UnitOfWork) -> s.TransactionOut:
        ses = uow.session
        tx = await visible_tx(ses, who, tx_id)
        if tx.code != "freeze":
            raise Conflict("invalid-state", f"Transaction {tx.id} is a {tx.code}, not a freeze.")
        if tx.status == "released":
            return await tx_out(ses, tx)
        if tx.initiator_organisation_id != who.organisation_id:
            raise Forbidden("Only the authority that placed a freeze releases it.")
        now = ctx.clock.now()
        await ledger.resolve_pending(
            ses,
            client_id=f"rtx:{tx.id}:void",
            pending_id=tx.hold_transfer_id or 0,
            now=now,
            post=False,
            code="unfreeze",
        )
        tx.status = "released"
        tx.completed_at = now
        details = json.loads(tx.details)
        details["release_reason"] = reason
        tx.details = json.dumps(details, ensure_ascii=False)
        uow.audit(who.actor, "units.unfreeze", "transaction", str(tx.id), {"reason": reason})
        return await tx_out(ses, tx)

    return await ctx.db.run(work)
