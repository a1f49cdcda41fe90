"""The registry's units of work. One public method is one transaction (run through `Database.run`); controllers
and jobs call these methods and nothing else commits. Every movement of units goes through `core.ledger`.

Status of a registry transaction: `completed`, `awaiting_approval` (four-eyes: issuance, transfers to untrusted
accounts), `approved` (waiting for its execution time), `rejected`, `active` / `released` (freezes).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from stdnum.cn import uscc as uscc_std
from stdnum.exceptions import ValidationError as StdnumError

from core import ledger
from core.clock import Clock, business_date, shanghai_time
from core.db import Database, UnitOfWork
from core.errors import AppError, Conflict, Forbidden, InvalidInput, NotFound
from core.identity import AUTHORITY_ROLES, Identity, Role, create_organisation
from core.models import LedgerAccount, LedgerAsset, Organisation, SerialBlock
from core.parameters import DatedParameters
from core.quantity import format_amount, parse_quantity
from core.text import clean_text
from core.workdays import add_working_days, next_working_day
from registry import schemas as s
from registry.domain import checks
from registry.domain.instruments import KIND_RULES, Kind, UnitClass, unit_identifier, valid_until, validate_unit_class
from registry.models import Enterprise, Instrument, RegistryAccount, RegistryTransaction, TrustedAccount

JIANGXI_CITIES = ("南昌", "九江", "景德镇", "萍乡", "新余", "鹰潭", "赣州", "吉安", "宜春", "抚州", "上饶")
SYSTEM_ORG = "registry-operator"
PARAMS = DatedParameters.load(Path(__file__).with_name("parameters.yaml"))
OWNER = "registry"


class SurrenderPolicy(Protocol):
    async def __call__(
        self,
        ses: AsyncSession,
        who: Identity,
        account: RegistryAccount,
        instrument: Instrument,
        quantity: int,
        period: str,
        now: dt.datetime,
    ) -> None: ...


def _raise_first(failures: list[checks.Failure]) -> None:
    if failures:
        slug, field, msg = failures[0]
        extra = (
            {"errors": [{"type": f, "field": fl, "detail": m} for f, fl, m in failures]} if len(failures) > 1 else None
        )
        raise AppError(slug, msg, field=field, extra=extra)


def validate_uscc(value: str) -> str:
    # stdnum would tidy up spaces, dashes and full-width digits; a registry takes the code exactly as printed.
    if not re.fullmatch(r"[0-9A-HJ-NPQRTUWXY]{18}", value, re.ASCII):
        raise InvalidInput(
            "uscc", "Give the 18-character code in upper case ASCII without spaces (letters I, O, S, V, Z never occur)."
        )
    try:
        return str(uscc_std.validate(value))
    except StdnumError as exc:
        raise InvalidInput("uscc", f"Not a valid unified social credit code (GB 32100-2015): {exc}.") from exc


@dataclass
class RegistryService:
    db: Database
    clock: Clock
    # The compliance cycle installs its surrender rules here (period open, eligible vintages, offset cap, ...).
    # It is called inside the surrender's unit of work, after the generic checks and before units move.
    surrender_policy: SurrenderPolicy | None = None

    # ------------------------------------------------------------------ bootstrap
    async def bootstrap(self) -> None:
        """Create the registry operator and its system accounts once (idempotent)."""
        await self.db.run(self._bootstrap)

    async def _bootstrap(self, uow: UnitOfWork) -> None:
        ses = uow.session
        org = (await ses.execute(select(Organisation).where(Organisation.kind == "system"))).scalar_one_or_none()
        if org is None:
            org = await create_organisation(ses, SYSTEM_ORG, "system", self.clock.now())
        have = set(
            (await ses.execute(select(RegistryAccount.type).where(RegistryAccount.organisation_id == org.id))).scalars()
        )
        for t in checks.SYSTEM_ACCOUNT_TYPES:
            if t not in have:
                ses.add(
                    RegistryAccount(organisation_id=org.id, type=t, status="open", label=t, created_at=self.clock.now())
                )
        await ses.flush()

    # ------------------------------------------------------------------ enterprises and accounts
    async def create_enterprise(self, who: Identity, req: s.CreateEnterprise) -> s.EnterpriseOut:
        code = validate_uscc(req.uscc)
        name = clean_text(req.name, "name", max_len=200)
        if req.city not in JIANGXI_CITIES:
            raise InvalidInput("city", f"Give one of Jiangxi's cities: {' '.join(JIANGXI_CITIES)}.")
        if not re.fullmatch(r"[A-T](?:[0-9]{2,4})?", req.industry_code, re.ASCII):
            raise InvalidInput(
                "industry_code", "Give a GB/T 4754-2017 code: a section letter and 2 to 4 digits, e.g. C3011."
            )

        async def work(uow: UnitOfWork) -> s.EnterpriseOut:
            ses = uow.session
            if (await ses.execute(select(Enterprise.id).where(Enterprise.uscc == code))).first():
                raise Conflict("duplicate", f"An enterprise with code {code} exists.", field="uscc")
            now = self.clock.now()
            org = await create_organisation(ses, name, "enterprise", now)
            ent = Enterprise(
                organisation_id=org.id,
                uscc=code,
                name=name,
                city=req.city,
                industry_code=req.industry_code,
                is_key_emitter=req.is_key_emitter,
                is_sme=req.is_sme,
                is_high_tech=req.is_high_tech,
                created_at=now,
            )
            ses.add(ent)
            await ses.flush()
            uow.audit(who.actor, "enterprise.create", "enterprise", str(ent.id), {"uscc": code, "name": name})
            return _enterprise_out(ent)

        return await self.db.run(work)

    async def get_enterprise(self, who: Identity, enterprise_id: int) -> s.EnterpriseOut:
        async def work(uow: UnitOfWork) -> s.EnterpriseOut:
            ent = await uow.session.get(Enterprise, enterprise_id)
            if ent is None or not (
                who.reads_all()
                or who.role in (Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER)
                or ent.organisation_id == who.organisation_id
            ):
                raise NotFound("enterprise")
            return _enterprise_out(ent)

        return await self.db.read(work)

    async def enterprise_by_uscc(self, code: str) -> Enterprise | None:
        async def work(uow: UnitOfWork) -> Enterprise | None:
            return (await uow.session.execute(select(Enterprise).where(Enterprise.uscc == code))).scalar_one_or_none()

        return await self.db.read(work)

    async def open_account(self, who: Identity, req: s.OpenAccount) -> s.AccountOut:
        label = clean_text(req.label, "label", max_len=200, required=False)

        async def work(uow: UnitOfWork) -> s.AccountOut:
            ses = uow.session
            if req.type == checks.ALLOCATION:
                if who.role not in AUTHORITY_ROLES:
                    raise Forbidden("Only an issuing authority opens an allocation account, for itself.")
                org_id = who.organisation_id
            else:
                if req.enterprise_id is None:
                    raise InvalidInput("enterprise_id", "Name the enterprise that will hold the account.")
                ent = await ses.get(Enterprise, req.enterprise_id)
                if ent is None:
                    raise NotFound("enterprise", field="enterprise_id")
                org_id = ent.organisation_id
            acc = RegistryAccount(
                organisation_id=org_id, type=req.type, status="open", label=label, created_at=self.clock.now()
            )
            ses.add(acc)
            await ses.flush()
            uow.audit(who.actor, "account.open", "account", str(acc.id), {"type": req.type, "organisation": org_id})
            return _account_out(acc)

        return await self.db.run(work)

    async def get_account(self, who: Identity, account_id: int) -> s.AccountOut:
        async def work(uow: UnitOfWork) -> s.AccountOut:
            return _account_out(await self._visible_account(uow.session, who, account_id))

        return await self.db.read(work)

    async def add_trusted(self, who: Identity, account_id: int, req: s.TrustAccount) -> dict[str, Any]:
        async def work(uow: UnitOfWork) -> dict[str, Any]:
            ses = uow.session
            acc = await self._own_account(ses, who, account_id, "account_id")
            other = await ses.get(RegistryAccount, req.trusted_account_id)
            if other is None or other.type not in checks.USER_ACCOUNT_TYPES:
                raise AppError("unknown-account", "No such account.", field="trusted_account_id")
            if other.id == acc.id:
                raise AppError("accounts-must-differ", "An account need not trust itself.", field="trusted_account_id")
            now = self.clock.now()
            delay = int(PARAMS.value("trusted_list_delay_working_days", business_date(now)))
            effective = shanghai_time(add_working_days(business_date(now), delay))
            exists = (
                await ses.execute(
                    select(TrustedAccount).where(
                        TrustedAccount.account_id == acc.id, TrustedAccount.trusted_account_id == other.id
                    )
                )
            ).scalar_one_or_none()
            if exists is None:
                exists = TrustedAccount(
                    account_id=acc.id or 0,
                    trusted_account_id=other.id or 0,
                    effective_from=effective,
                    added_by=who.principal_id,
                )
                ses.add(exists)
                await ses.flush()
                uow.audit(
                    who.actor,
                    "account.trust",
                    "account",
                    str(acc.id),
                    {"trusted": other.id, "effective_from": effective.isoformat()},
                )
            return {"account_id": acc.id, "trusted_account_id": other.id, "effective_from": exists.effective_from}

        return await self.db.run(work)

    # ------------------------------------------------------------------ issuance and allocation
    async def issue_units(self, who: Identity, req: s.IssueUnits, request_key: str | None) -> s.TransactionOut:
        kind = Kind(req.kind)
        rule = KIND_RULES[kind]
        if who.role.value != rule.issuer_role:
            raise Forbidden(f"Only the {rule.issuer_role} issues {kind.value}.")
        uc = UnitClass(
            kind=kind,
            scheme=req.scheme,
            vintage=req.vintage,
            project_id=req.project_id,
            region=req.region,
            pollutant=req.pollutant,
            technology=req.technology,
            production_month=req.production_month,
            generator=req.generator,
            tradable=req.tradable,
        )
        errors = validate_unit_class(uc)
        if errors:
            field, msg = next(iter(errors.items()))
            raise InvalidInput(field, msg, extra={"errors": [{"field": f, "detail": m} for f, m in errors.items()]})
        quantity = parse_quantity(req.quantity, scale=rule.scale)

        async def work(uow: UnitOfWork) -> s.TransactionOut:
            ses = uow.session
            if (prior := await self._by_request_key(ses, request_key)) is not None:
                return await self._tx_out(ses, prior)
            now = self.clock.now()
            inst = await self._ensure_instrument(ses, uc, who.organisation_id, now)
            if req.to_account_id is None:
                dest = await self._allocation_account(ses, who)
            else:
                dest = await ses.get(RegistryAccount, req.to_account_id)
                if dest is None or dest.type not in checks.USER_ACCOUNT_TYPES:
                    raise AppError("unknown-account", "No such account.", field="to_account_id")
            _raise_first(checks.check_status(_facts(dest), "to_account_id", acquiring=True))
            source = await self._system_account(ses, "issuance")
            tx = RegistryTransaction(
                code="issuance",
                status="awaiting_approval",
                instrument_id=inst.id or 0,
                from_account_id=source.id,
                to_account_id=dest.id,
                quantity=quantity,
                initiated_by=who.principal_id,
                initiator_organisation_id=who.organisation_id,
                request_key=request_key,
                created_at=now,
            )
            ses.add(tx)
            await ses.flush()
            # The hold reserves nothing real (issuance accounts are sources) but makes the approval a ledger fact.
            tx.hold_transfer_id = await self._move(ses, tx, inst, source, dest, quantity, now, pending=True)
            uow.audit(
                who.actor,
                "units.issue.propose",
                "transaction",
                str(tx.id),
                {"instrument": inst.code, "quantity": quantity, "to": dest.id},
            )
            return await self._tx_out(ses, tx)

        return await self.db.run(work)

    async def allocate_units(self, who: Identity, req: s.AllocateUnits, request_key: str | None) -> s.TransactionOut:
        async def work(uow: UnitOfWork) -> s.TransactionOut:
            ses = uow.session
            if (prior := await self._by_request_key(ses, request_key)) is not None:
                return await self._tx_out(ses, prior)
            inst = await self._instrument(ses, req.instrument_id)
            if KIND_RULES[Kind(inst.kind)].issuer_role != who.role.value:
                raise Forbidden(f"Only the {KIND_RULES[Kind(inst.kind)].issuer_role} allocates {inst.kind}.")
            quantity = parse_quantity(req.quantity, scale=KIND_RULES[Kind(inst.kind)].scale)
            if req.from_account_id is None:
                source = await self._allocation_account(ses, who)
            else:
                source = await self._own_account(ses, who, req.from_account_id, "from_account_id")
            dest = await self._any_user_account(ses, req.to_account_id, "to_account_id")
            now = self.clock.now()
            _raise_first(
                checks.check_transfer(
                    _facts(source),
                    _facts(dest),
                    Kind(inst.kind),
                    tradable=True,
                    expires_on=inst.valid_until,
                    today=business_date(now),
                )
            )
            tx = await self.record_and_move(
                ses,
                RegistryTransaction(
                    code="allocation",
                    instrument_id=inst.id or 0,
                    from_account_id=source.id,
                    to_account_id=dest.id,
                    quantity=quantity,
                    initiated_by=who.principal_id,
                    initiator_organisation_id=who.organisation_id,
                    request_key=request_key,
                    created_at=now,
                ),
                inst,
                source,
                dest,
                now,
            )
            uow.audit(
                who.actor,
                "units.allocate",
                "transaction",
                str(tx.id),
                {"instrument": inst.code, "quantity": quantity, "from": source.id, "to": dest.id},
            )
            return await self._tx_out(ses, tx)

        return await self.db.run(work)

    # ------------------------------------------------------------------ transfers
    async def create_transfer(self, who: Identity, req: s.MoveUnits, request_key: str | None) -> s.TransactionOut:
        async def work(uow: UnitOfWork) -> s.TransactionOut:
            ses = uow.session
            if (prior := await self._by_request_key(ses, request_key)) is not None:
                return await self._tx_out(ses, prior)
            source = await self._own_account(ses, who, req.from_account_id, "from_account_id")
            inst = await self._instrument(ses, req.instrument_id)
            quantity = parse_quantity(req.quantity, scale=KIND_RULES[Kind(inst.kind)].scale)
            dest = await self._any_user_account(ses, req.to_account_id, "to_account_id")
            now = self.clock.now()
            today = business_date(now)
            _raise_first(
                checks.check_transfer(
                    _facts(source),
                    _facts(dest),
                    Kind(inst.kind),
                    tradable=inst.tradable,
                    expires_on=inst.valid_until,
                    today=today,
                )
            )
            trusted = (
                dest.organisation_id == source.organisation_id
                or (
                    await ses.execute(
                        select(TrustedAccount.id).where(
                            TrustedAccount.account_id == source.id,
                            TrustedAccount.trusted_account_id == dest.id,
                            TrustedAccount.effective_from <= now,
                        )
                    )
                ).first()
                is not None
            )
            if not trusted:
                _raise_first(checks.check_untrusted_cap(quantity, int(PARAMS.value("untrusted_transfer_cap", today))))
            tx = RegistryTransaction(
                code="transfer",
                status="completed" if trusted else "awaiting_approval",
                instrument_id=inst.id or 0,
                from_account_id=source.id,
                to_account_id=dest.id,
                quantity=quantity,
                initiated_by=who.principal_id,
                initiator_organisation_id=who.organisation_id,
                request_key=request_key,
                created_at=now,
                completed_at=now if trusted else None,
            )
            ses.add(tx)
            await ses.flush()
            held = await self._move(ses, tx, inst, source, dest, quantity, now, pending=not trusted)
            if not trusted:
                tx.hold_transfer_id = held
            uow.audit(
                who.actor,
                "units.transfer",
                "transaction",
                str(tx.id),
                {"instrument": inst.code, "quantity": quantity, "from": source.id, "to": dest.id, "trusted": trusted},
            )
            return await self._tx_out(ses, tx)

        return await self.db.run(work)

    async def approve_transfer(self, who: Identity, tx_id: int, req: s.Decision) -> s.TransactionOut:
        reason = clean_text(req.reason, "reason", max_len=500, required=req.decision == "reject")

        async def work(uow: UnitOfWork) -> s.TransactionOut:
            ses = uow.session
            tx = await self._visible_tx(ses, who, tx_id)
            if tx.status != "awaiting_approval":
                if tx.approved_by == who.principal_id or (tx.status == "rejected" and req.decision == "reject"):
                    return await self._tx_out(ses, tx)
                raise Conflict(
                    "invalid-state", f"Transaction {tx.id} is {tx.status}; only one awaiting approval can be decided."
                )
            if tx.initiator_organisation_id != who.organisation_id:
                raise NotFound("transaction")
            if tx.initiated_by == who.principal_id:
                raise AppError(
                    "four-eyes-required", "The initiator may not approve its own request; ask a second person."
                )
            if (
                tx.code == "issuance"
                and who.role.value != KIND_RULES[Kind((await self._instrument(ses, tx.instrument_id)).kind)].issuer_role
            ):
                raise Forbidden()
            now = self.clock.now()
            tx.approved_by = who.principal_id
            details = json.loads(tx.details)
            if req.decision == "reject":
                tx.status = "rejected"
                details["rejection_reason"] = reason
                tx.details = json.dumps(details, ensure_ascii=False)
                await ledger.resolve_pending(
                    ses, client_id=f"rtx:{tx.id}:void", pending_id=tx.hold_transfer_id or 0, now=now, post=False
                )
                tx.completed_at = now
            elif tx.code == "issuance":
                await ledger.resolve_pending(
                    ses, client_id=f"rtx:{tx.id}:post", pending_id=tx.hold_transfer_id or 0, now=now, post=True
                )
                tx.status = "completed"
                tx.completed_at = now
            else:
                # Union Registry: an approved transfer to an untrusted account executes at noon the next working day.
                hour = int(PARAMS.value("untrusted_execution_hour", business_date(now)))
                tx.execute_after = shanghai_time(next_working_day(business_date(now)), hour)
                tx.status = "approved"
            await ses.flush()
            uow.audit(who.actor, f"transaction.{req.decision}", "transaction", str(tx.id), {"status": tx.status})
            return await self._tx_out(ses, tx)

        return await self.db.run(work)

    async def execute_due_transfers(self, limit: int = 1000) -> int:
        """Post approved transfers whose time has come; each by its own hold, so a second run changes nothing."""

        async def work(uow: UnitOfWork) -> int:
            ses = uow.session
            now = self.clock.now()
            due = (
                (
                    await ses.execute(
                        select(RegistryTransaction)
                        .where(RegistryTransaction.status == "approved", RegistryTransaction.execute_after <= now)
                        .order_by(RegistryTransaction.id)
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
            for tx in due:
                inst = await self._instrument(ses, tx.instrument_id)
                if inst.valid_until is not None and business_date(now) > inst.valid_until:
                    await ledger.resolve_pending(
                        ses, client_id=f"rtx:{tx.id}:void", pending_id=tx.hold_transfer_id or 0, now=now, post=False
                    )
                    tx.status = "cancelled"
                else:
                    await ledger.resolve_pending(
                        ses, client_id=f"rtx:{tx.id}:post", pending_id=tx.hold_transfer_id or 0, now=now, post=True
                    )
                    tx.status = "completed"
                tx.completed_at = now
                uow.audit("system:scheduler", "transaction.execute", "transaction", str(tx.id), {"status": tx.status})
            return len(due)

        return await self.db.run(work)

    # ------------------------------------------------------------------ freeze, surrender, retirement, cancellation
    async def freeze_units(self, who: Identity, req: s.FreezeUnits, request_key: str | None) -> s.TransactionOut:
        authority = clean_text(req.authority, "authority", max_len=200)
        reference = clean_text(req.reference, "reference", max_len=100)

        async def work(uow: UnitOfWork) -> s.TransactionOut:
            ses = uow.session
            if (prior := await self._by_request_key(ses, request_key)) is not None:
                return await self._tx_out(ses, prior)
            acc = await self._any_user_account(ses, req.account_id, "account_id")
            inst = await self._instrument(ses, req.instrument_id)
            quantity = parse_quantity(req.quantity, scale=KIND_RULES[Kind(inst.kind)].scale)
            now = self.clock.now()
            target = await self._system_account(ses, "freeze")
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
            tx.hold_transfer_id = await self._move(ses, tx, inst, acc, target, quantity, now, pending=True)
            uow.audit(
                who.actor,
                "units.freeze",
                "transaction",
                str(tx.id),
                {"account": acc.id, "instrument": inst.code, "quantity": quantity, "legal_basis": req.legal_basis},
            )
            return await self._tx_out(ses, tx)

        return await self.db.run(work)

    async def unfreeze_units(self, who: Identity, tx_id: int, req: s.Unfreeze) -> s.TransactionOut:
        reason = clean_text(req.reason, "reason", max_len=500, required=False)

        async def work(uow: UnitOfWork) -> s.TransactionOut:
            ses = uow.session
            tx = await self._visible_tx(ses, who, tx_id)
            if tx.code != "freeze":
                raise Conflict("invalid-state", f"Transaction {tx.id} is a {tx.code}, not a freeze.")
            if tx.status == "released":
                return await self._tx_out(ses, tx)
            now = self.clock.now()
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
            return await self._tx_out(ses, tx)

        return await self.db.run(work)

    async def surrender_units(self, who: Identity, req: s.SurrenderUnits, request_key: str | None) -> s.TransactionOut:
        period = clean_text(req.period, "period", max_len=16)
        return await self._to_system(
            who, "surrender", req.account_id, req.instrument_id, req.quantity, request_key, period=period, details={}
        )

    async def retire_units(self, who: Identity, req: s.RetireUnits, request_key: str | None) -> s.TransactionOut:
        beneficiary = clean_text(req.beneficiary, "beneficiary", max_len=200)
        purpose = clean_text(req.purpose, "purpose", max_len=500, required=False)
        return await self._to_system(
            who,
            "retirement",
            req.account_id,
            req.instrument_id,
            req.quantity,
            request_key,
            period=None,
            details={"beneficiary": beneficiary, "purpose": purpose},
        )

    async def _to_system(
        self,
        who: Identity,
        code: str,
        account_id: int,
        instrument_id: int,
        raw_quantity: object,
        request_key: str | None,
        *,
        period: str | None,
        details: dict[str, str],
    ) -> s.TransactionOut:
        async def work(uow: UnitOfWork) -> s.TransactionOut:
            ses = uow.session
            if (prior := await self._by_request_key(ses, request_key)) is not None:
                return await self._tx_out(ses, prior)
            if who.role == Role.REGULATOR and code == "surrender":
                acc = await self._any_user_account(ses, account_id, "account_id")
            else:
                acc = await self._own_account(ses, who, account_id, "account_id")
            inst = await self._instrument(ses, instrument_id)
            kind = Kind(inst.kind)
            quantity = parse_quantity(raw_quantity, scale=KIND_RULES[kind].scale)
            now = self.clock.now()
            _raise_first(
                checks.check_status(_facts(acc), "account_id", acquiring=False)
                + checks.check_not_expired(inst.valid_until, business_date(now))
            )
            if code == "surrender" and not KIND_RULES[kind].surrenderable:
                raise InvalidInput("instrument_id", "Green certificates are retired (claimed), not surrendered.")
            if code == "surrender" and self.surrender_policy is not None:
                await self.surrender_policy(ses, who, acc, inst, quantity, period or "", now)
            target = await self._system_account(ses, code)
            tx = await self.record_and_move(
                ses,
                RegistryTransaction(
                    code=code,
                    instrument_id=inst.id or 0,
                    from_account_id=acc.id,
                    to_account_id=target.id,
                    quantity=quantity,
                    initiated_by=who.principal_id,
                    initiator_organisation_id=who.organisation_id,
                    request_key=request_key,
                    period=period,
                    details=json.dumps(details, ensure_ascii=False),
                    created_at=now,
                ),
                inst,
                acc,
                target,
                now,
            )
            uow.audit(
                who.actor,
                f"units.{code}",
                "transaction",
                str(tx.id),
                {"account": acc.id, "instrument": inst.code, "quantity": quantity, "period": period, **details},
            )
            return await self._tx_out(ses, tx)

        return await self.db.run(work)

    async def expire_certificates(self) -> int:
        """Move every holding of expired units to the expiry account (核销). Idempotent: expired holdings are empty."""

        async def work(uow: UnitOfWork) -> int:
            ses = uow.session
            now = self.clock.now()
            today = business_date(now)
            expired = (await ses.execute(select(Instrument).where(Instrument.valid_until < today))).scalars().all()
            count = 0
            target = await self._system_account(ses, "expiry")
            for inst in expired:
                rows = (
                    await ses.execute(
                        select(LedgerAccount, RegistryAccount)
                        .join(RegistryAccount, RegistryAccount.id == LedgerAccount.owner_id)
                        .where(
                            LedgerAccount.owner_kind == OWNER,
                            LedgerAccount.asset_id == inst.asset_id,
                            RegistryAccount.type.in_(checks.USER_ACCOUNT_TYPES),  # type: ignore[attr-defined]
                            LedgerAccount.credits_posted > LedgerAccount.debits_posted + LedgerAccount.debits_pending,
                        )
                        .order_by(LedgerAccount.id)
                    )
                ).all()
                for la, acc in rows:
                    qty = ledger.available(la)
                    tx = await self.record_and_move(
                        ses,
                        RegistryTransaction(
                            code="expiry",
                            instrument_id=inst.id or 0,
                            from_account_id=acc.id,
                            to_account_id=target.id,
                            quantity=qty,
                            initiated_by=0,
                            initiator_organisation_id=acc.organisation_id,
                            created_at=now,
                        ),
                        inst,
                        acc,
                        target,
                        now,
                    )
                    uow.audit(
                        "system:scheduler",
                        "units.expire",
                        "transaction",
                        str(tx.id),
                        {"account": acc.id, "instrument": inst.code, "quantity": qty},
                    )
                    count += 1
            return count

        return await self.db.run(work)

    # ------------------------------------------------------------------ reads
    async def list_holdings(self, who: Identity, account_id: int) -> list[s.HoldingOut]:
        return await self.db.read(lambda uow: self._holdings(uow.session, who, account_id))

    async def _holdings(self, ses: AsyncSession, who: Identity, account_id: int) -> list[s.HoldingOut]:
        acc = await self._visible_account(ses, who, account_id)
        rows = (
            await ses.execute(
                select(LedgerAccount, Instrument)
                .join(Instrument, Instrument.asset_id == LedgerAccount.asset_id)
                .where(LedgerAccount.owner_kind == OWNER, LedgerAccount.owner_id == acc.id)
                .order_by(Instrument.code)
            )
        ).all()
        out = []
        for la, inst in rows:
            blocks = (
                (
                    await ses.execute(
                        select(SerialBlock)
                        .where(SerialBlock.ledger_account_id == la.id)
                        .order_by(SerialBlock.serial_start)
                        .limit(100)
                    )
                )
                .scalars()
                .all()
            )
            scale = KIND_RULES[Kind(inst.kind)].scale
            balance = la.credits_posted - la.debits_posted
            out.append(
                s.HoldingOut(
                    instrument=_instrument_out(inst),
                    balance=format_amount(balance, scale),
                    available=format_amount(ledger.available(la), scale),
                    held=format_amount(la.debits_pending, scale),
                    balance_base=balance,
                    available_base=ledger.available(la),
                    serial_blocks=[
                        s.SerialRange(
                            first=unit_identifier(inst.code, b.serial_start),
                            last=unit_identifier(inst.code, b.serial_end - 1),
                            quantity=b.quantity,
                        )
                        for b in blocks
                    ],
                )
            )
        return out

    async def list_account_transactions(
        self, who: Identity, account_id: int, *, limit: int, before_id: int | None
    ) -> s.Page:
        return await self.db.read(
            lambda uow: self._transactions(uow.session, who, account_id, limit=limit, before_id=before_id)
        )

    async def _transactions(
        self, ses: AsyncSession, who: Identity, account_id: int, *, limit: int, before_id: int | None
    ) -> s.Page:
        acc = await self._visible_account(ses, who, account_id)
        q = select(RegistryTransaction).where(
            or_(RegistryTransaction.from_account_id == acc.id, RegistryTransaction.to_account_id == acc.id)
        )
        if before_id is not None:
            q = q.where(RegistryTransaction.id < before_id)
        rows = (await ses.execute(q.order_by(RegistryTransaction.id.desc()).limit(limit + 1))).scalars().all()  # type: ignore[union-attr]
        items = [await self._tx_out(ses, t) for t in rows[:limit]]
        return s.Page(items=items, next_before_id=items[-1].id if len(rows) > limit else None)

    async def get_transaction(self, who: Identity, tx_id: int) -> s.TransactionOut:
        async def work(uow: UnitOfWork) -> s.TransactionOut:
            return await self._tx_out(uow.session, await self._visible_tx(uow.session, who, tx_id))

        return await self.db.read(work)

    async def statement_data(self, who: Identity, account_id: int) -> dict[str, Any]:
        """Everything an account statement prints, read in one snapshot."""

        async def work(uow: UnitOfWork) -> dict[str, Any]:
            ses = uow.session
            acc = await self._visible_account(ses, who, account_id)
            org = await ses.get(Organisation, acc.organisation_id)
            ent = (
                await ses.execute(select(Enterprise).where(Enterprise.organisation_id == acc.organisation_id))
            ).scalar_one_or_none()
            holdings = await self._holdings(ses, who, account_id)
            page = await self._transactions(ses, who, account_id, limit=200, before_id=None)
            return {
                "account": acc,
                "organisation": org,
                "enterprise": ent,
                "holdings": holdings,
                "transactions": page.items,
            }

        return await self.db.read(work)

    async def list_instruments(self) -> list[s.InstrumentOut]:
        async def work(uow: UnitOfWork) -> list[s.InstrumentOut]:
            rows = (await uow.session.execute(select(Instrument).order_by(Instrument.id))).scalars().all()
            return [_instrument_out(i) for i in rows]

        return await self.db.read(work)

    # ------------------------------------------------------------------ helpers (inside a unit of work)
    async def _by_request_key(self, ses: AsyncSession, key: str | None) -> RegistryTransaction | None:
        if key is None:
            return None
        return (
            await ses.execute(select(RegistryTransaction).where(RegistryTransaction.request_key == key))
        ).scalar_one_or_none()

    async def _visible_account(self, ses: AsyncSession, who: Identity, account_id: int) -> RegistryAccount:
        acc = await ses.get(RegistryAccount, account_id)
        if (
            acc is None
            or acc.type not in checks.USER_ACCOUNT_TYPES
            or not (who.reads_all() or acc.organisation_id == who.organisation_id)
        ):
            raise AppError("unknown-account", "No account with this id is visible to you.", field="account_id")
        return acc

    async def _own_account(self, ses: AsyncSession, who: Identity, account_id: int, field: str) -> RegistryAccount:
        acc = await ses.get(RegistryAccount, account_id)
        if acc is None or acc.type not in checks.USER_ACCOUNT_TYPES or acc.organisation_id != who.organisation_id:
            raise AppError("unknown-account", "No account with this id is yours.", field=field)
        return acc

    async def _any_user_account(self, ses: AsyncSession, account_id: int, field: str) -> RegistryAccount:
        acc = await ses.get(RegistryAccount, account_id)
        if acc is None or acc.type not in checks.USER_ACCOUNT_TYPES:
            raise AppError("unknown-account", "No such account.", field=field)
        return acc

    async def _visible_tx(self, ses: AsyncSession, who: Identity, tx_id: int) -> RegistryTransaction:
        tx = await ses.get(RegistryTransaction, tx_id)
        if tx is None:
            raise NotFound("transaction")
        if who.reads_all() or tx.initiator_organisation_id == who.organisation_id:
            return tx
        orgs = set()
        for acc_id in (tx.from_account_id, tx.to_account_id):
            if acc_id is not None and (acc := await ses.get(RegistryAccount, acc_id)) is not None:
                orgs.add(acc.organisation_id)
        if who.organisation_id not in orgs:
            raise NotFound("transaction")
        return tx

    async def _instrument(self, ses: AsyncSession, instrument_id: int) -> Instrument:
        inst = await ses.get(Instrument, instrument_id)
        if inst is None:
            raise NotFound("instrument", field="instrument_id")
        return inst

    async def _system_account(self, ses: AsyncSession, type_: str) -> RegistryAccount:
        acc = (
            await ses.execute(
                select(RegistryAccount)
                .join(Organisation, Organisation.id == RegistryAccount.organisation_id)
                .where(Organisation.kind == "system", RegistryAccount.type == type_)
            )
        ).scalar_one_or_none()
        if acc is None:
            raise AssertionError("registry not bootstrapped: run `greenrights db upgrade`")
        return acc

    async def _allocation_account(self, ses: AsyncSession, who: Identity) -> RegistryAccount:
        acc = (
            (
                await ses.execute(
                    select(RegistryAccount)
                    .where(
                        RegistryAccount.organisation_id == who.organisation_id,
                        RegistryAccount.type == checks.ALLOCATION,
                    )
                    .order_by(RegistryAccount.id)
                )
            )
            .scalars()
            .first()
        )
        if acc is None:
            raise AppError(
                "unknown-account",
                "Open an allocation account first (openAccount with type 'allocation').",
                field="from_account_id",
            )
        return acc

    async def _ensure_instrument(
        self, ses: AsyncSession, uc: UnitClass, issuer_org: int, now: dt.datetime
    ) -> Instrument:
        code = uc.code()
        lookup = select(Instrument).where(Instrument.code == code)
        inst = (await ses.execute(lookup)).scalar_one_or_none()
        if inst is not None:
            return inst
        rule = KIND_RULES[uc.kind]
        asset = await ledger.ensure_asset(ses, code, scale=rule.scale, serialised=True)
        inst = Instrument(
            code=code,
            asset_id=asset.id or 0,
            kind=uc.kind.value,
            scheme=uc.scheme,
            vintage=uc.vintage,
            project_id=uc.project_id,
            region=uc.region,
            pollutant=uc.pollutant,
            technology=uc.technology,
            production_month=uc.production_month,
            generator=uc.generator,
            tradable=uc.tradable,
            valid_until=valid_until(uc),
            issuer_organisation_id=issuer_org,
            created_at=now,
        )
        return await ledger.insert_or_get(ses, inst, lookup)

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
        caller's unit of work (allocation, surrender, retirement, expiry, reserve funding, forced surrender)."""
        tx.status = "completed"
        tx.completed_at = now
        ses.add(tx)
        await ses.flush()
        await self._move(ses, tx, inst, source, dest, tx.quantity, now)
        return tx

    async def ledger_account(self, ses: AsyncSession, acc: RegistryAccount, inst: Instrument) -> LedgerAccount:
        return await ledger.ensure_account(
            ses, asset_id=inst.asset_id, owner_kind=OWNER, owner_id=acc.id or 0, role=acc.type
        )

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
        debit = await self.ledger_account(ses, source, inst)
        credit = await self.ledger_account(ses, dest, inst)
        result = await ledger.create_transfer(
            ses,
            client_id=f"rtx:{tx.id}",
            debit_account_id=debit.id or 0,
            credit_account_id=credit.id or 0,
            asset_id=inst.asset_id,
            amount=quantity,
            code=tx.code,
            now=now,
            pending=pending,
            ref=f"rtx:{tx.id}",
            accounts=(debit, credit),
            serialised=True,
            fresh_client_id=True,
        )
        return result.transfer.id or 0

    async def _tx_out(self, ses: AsyncSession, tx: RegistryTransaction) -> s.TransactionOut:
        inst = await self._instrument(ses, tx.instrument_id)
        return s.TransactionOut(
            id=tx.id or 0,
            code=tx.code,
            status=tx.status,
            instrument_id=inst.id or 0,
            instrument_code=inst.code,
            from_account_id=tx.from_account_id,
            to_account_id=tx.to_account_id,
            quantity=format_amount(tx.quantity, KIND_RULES[Kind(inst.kind)].scale),
            quantity_base=tx.quantity,
            initiated_by=tx.initiated_by,
            approved_by=tx.approved_by,
            execute_after=tx.execute_after,
            period=tx.period,
            details={k: str(v) for k, v in json.loads(tx.details).items()},
            created_at=tx.created_at,
            completed_at=tx.completed_at,
        )


def _facts(acc: RegistryAccount) -> checks.AccountFacts:
    return checks.AccountFacts(id=acc.id or 0, type=acc.type, status=acc.status)


def _enterprise_out(e: Enterprise) -> s.EnterpriseOut:
    return s.EnterpriseOut(
        id=e.id or 0,
        organisation_id=e.organisation_id,
        uscc=e.uscc,
        name=e.name,
        city=e.city,
        industry_code=e.industry_code,
        is_key_emitter=e.is_key_emitter,
        is_sme=e.is_sme,
        is_high_tech=e.is_high_tech,
        created_at=e.created_at,
    )


def _account_out(a: RegistryAccount) -> s.AccountOut:
    return s.AccountOut(
        id=a.id or 0,
        organisation_id=a.organisation_id,
        type=a.type,
        status=a.status,
        label=a.label,
        created_at=a.created_at,
    )


def _instrument_out(i: Instrument) -> s.InstrumentOut:
    rule = KIND_RULES[Kind(i.kind)]
    return s.InstrumentOut(
        id=i.id or 0,
        code=i.code,
        kind=i.kind,
        label_zh=rule.label_zh,
        display_unit=rule.display_unit,
        scale=rule.scale,
        scheme=i.scheme,
        vintage=i.vintage,
        project_id=i.project_id,
        region=i.region,
        pollutant=i.pollutant,
        technology=i.technology,
        production_month=i.production_month,
        generator=i.generator,
        tradable=i.tradable,
        valid_until=i.valid_until,
    )


__all__ = ["JIANGXI_CITIES", "LedgerAsset", "RegistryService", "validate_uscc"]
