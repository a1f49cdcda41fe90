"""The finance context's units of work: subsidy claims, programme budgets on the ledger, disbursement batches,
decision letters and their public verification, consent to bank green-credit queries, the queries themselves
(signed answers), and penalty notices for compliance fines.

One public method is one transaction (`Database.run`); controllers and scheduler jobs call these methods and
nothing else commits. Reads of other contexts (the registry's enterprises, the compliance status and fines)
go through their services and happen before this context's own transaction opens, so no write lock is held
while another transaction runs. Money moves only through `core.ledger`:

    appropriation (issuance role) ──appropriation──▶ budget ──commitment (pending)──▶ payee (enterprise)
                                                        ▲  approval holds; disbursement posts; rejection voids
                                                        └──────────── clawback (posted, payee → budget)
    fine payer (issuance role) ──penalty_payment──▶ fine revenue

Guarantees:
- a claim moves only along `finance.domain.workflow.TRANSITIONS`; each transition is a conditional UPDATE on the
  claim's version, taken before any money moves, so two concurrent actions on one claim cannot both succeed;
- four-eyes: the approver is a finance approver who neither submitted nor reviewed the claim (here and by a
  database CHECK);
- no budget is ever overspent: the commitment is a pending ledger transfer from an account that may not go
  below zero, under any concurrency; every hold is posted or voided exactly once (ledger client ids);
- a bank sees an enterprise only under its active consent; otherwise the answer is the same 404 as for an
  unknown enterprise; every query is logged and visible to the enterprise;
- green-credit answers are signed with Ed25519 over their canonical JSON; the public key is published at
  `/verify/public-key`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import ledger
from core.capitals import format_fen
from core.clock import Clock, business_date
from core.db import Database, UnitOfWork
from core.errors import AppError, Conflict, Forbidden, InvalidInput, NotFound
from core.identity import Identity, Role
from core.models import LedgerAccount, LedgerAsset, LedgerTransfer, Organisation, Principal
from core.parameters import DatedParameters
from core.pdf import canonical_json, normalize_verification_code, verification_code, verification_code_matches
from core.quantity import parse_money_fen
from core.text import clean_text
from core.workdays import is_working_day
from finance import schemas as s
from finance.domain import payments, rules
from finance.domain import workflow as wf
from finance.domain.workflow import Action, State
from finance.models import (
    FinanceBudget,
    FinanceClaim,
    FinanceClaimEvent,
    FinanceConsent,
    FinanceDisbursementBatch,
    FinanceDocument,
    FinanceGreenCreditQuery,
    FinancePenalty,
)
from incentives import engine
from incentives.service import IncentivesService, facts_problem
from registry.compliance.service import ComplianceService
from registry.service import RegistryService, validate_uscc

PARAMS = DatedParameters.load(Path(__file__).with_name("parameters.yaml"))
CNY = "CNY"
ISSUER = "江西省财政厅"
SIGNING_KEY_ENV = "GREENRIGHTS_SIGNING_KEY_PATH"
DEFAULT_SIGNING_KEY_PATH = Path("var") / "signing-key.pem"
ANSWER_SCHEMA = "greenrights.green-credit-answer/1"
GREEN_LOAN = "green_loan"
CARBON_TOOL = "carbon_reduction_tool"
BATCH_SIZE_MAX = 500
LIST_LIMIT_MAX = 500

# Ledger owners of this context (owner_kind, role).
APPROPRIATION = ("finance_appropriation", ledger.ROLE_ISSUANCE)
BUDGET = ("finance_budget", "budget")
PAYEE = ("finance_payee", "payee")
FINE_PAYER = ("finance_fine_payer", ledger.ROLE_ISSUANCE)
FINE_REVENUE = ("finance_fine_revenue", "revenue")

FINANCE_STAFF = frozenset({Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER})
SEES_ALL_CLAIMS = frozenset({Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER, Role.AUDITOR})

# The registry answers enterprise look-ups for an identity; this context reads as a read-all principal. It is
# never an API caller and never acts: it only lets this service ask the registry about an enterprise by id.
_READER = Identity(principal_id=0, organisation_id=0, role=Role.AUDITOR, label="finance-service")


def param(name: str, on: dt.date) -> Any:
    return PARAMS.value(name, on)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _loads(text: str | None, default: Any = None) -> Any:
    return default if text is None else json.loads(text)


def _refused(exc: wf.TransitionRefused) -> AppError:
    return AppError(
        "claim-transition-refused",
        str(exc),
        extra={
            "current_state": exc.state.value,
            "action": exc.action.value,
            "allowed_actions": [a.value for a in exc.allowed],
        },
    )


def _facts_problem(exc: engine.FactsError, prefix: str) -> AppError:
    """The incentives context's own problem for bad facts (422 facts-invalid naming every fact)."""
    return facts_problem(exc.problems, prefix=f"{prefix}.")


def _require(who: Identity, *roles: Role) -> None:
    if who.role not in roles:
        raise Forbidden()


# ===================================================================================================== signing


class Signer:
    """The Ed25519 key that signs green-credit answers.

    The private key is read from `GREENRIGHTS_SIGNING_KEY_PATH` (PEM, PKCS#8), or generated on first use into
    `./var/signing-key.pem` with mode 0600. Generation writes a temporary file and links it into place, which
    fails if another process got there first; the loser then reads the winner's key, so two processes never
    sign with different keys.
    """

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._key: Ed25519PrivateKey | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        if self._path is not None:
            return self._path
        configured = os.environ.get(SIGNING_KEY_ENV, "").strip()
        return Path(configured) if configured else DEFAULT_SIGNING_KEY_PATH

    def key(self) -> Ed25519PrivateKey:
        with self._lock:
            if self._key is None:
                self._key = self._load_or_create(self.path)
            return self._key

    @staticmethod
    def _load(path: Path) -> Ed25519PrivateKey:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise RuntimeError(f"{path} holds a {type(loaded).__name__}, not an Ed25519 private key")
        return loaded

    def _load_or_create(self, path: Path) -> Ed25519PrivateKey:
        if path.exists():
            return self._load(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                return self._load(path)
        finally:
            tmp.unlink(missing_ok=True)
        return key

    def public_key(self) -> Ed25519PublicKey:
        return self.key().public_key()

    def public_raw(self) -> bytes:
        return self.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def public_pem(self) -> str:
        return (
            self.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode("ascii")
        )

    def key_id(self) -> str:
        """The first 16 hex digits of the SHA-256 of the raw public key: names the key in every signature."""
        return hashlib.sha256(self.public_raw()).hexdigest()[:16]

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.key().sign(data)).decode("ascii")


# ===================================================================================================== service


@dataclass
class FinanceService:
    db: Database
    clock: Clock
    registry: RegistryService
    compliance: ComplianceService
    incentives: IncentivesService
    signer: Signer = field(default_factory=Signer)

    # ------------------------------------------------------------------------------------------ helpers
    def _today(self) -> dt.date:
        return business_date(self.clock.now())

    async def _enterprise(self, who: Identity, enterprise_id: int, field_name: str = "enterprise_id") -> Any:
        """The enterprise as the registry shows it to `who` (an emitter sees only its own): 404 otherwise."""
        reader = who if who.role == Role.EMITTER else _READER
        try:
            return await self.registry.get_enterprise(reader, enterprise_id)
        except AppError as exc:
            if exc.problem.slug == "not-found":
                raise NotFound("enterprise", field=field_name) from None
            raise

    def _programme_facts(self, programme: str) -> set[str]:
        described = engine.get_programme(programme)
        return {str(f["name"]) for f in described["facts"]}  # type: ignore[index, union-attr]

    def _check_claim_facts(self, programme: str, facts: dict[str, Any], on: dt.date) -> None:
        """The facts must be the programme's own and well-formed; the review recomputes the determination."""
        if programme not in param("claimable_programmes", on):
            raise InvalidInput(
                "programme",
                f"Claims are taken for {', '.join(param('claimable_programmes', on))}; {programme!r} is not one.",
            )
        known = self._programme_facts(programme)
        unknown = sorted(set(facts) - known)
        if unknown:
            raise facts_problem([(k, f"is not a fact of {programme}") for k in unknown])
        try:
            self.incentives.evaluate(programme, facts, on, known_on=on)
        except engine.FactsError as exc:
            raise _facts_problem(exc, "facts") from None
        except engine.NotInForce as exc:
            raise InvalidInput("programme", f"{programme} cannot be evaluated on {on.isoformat()}: {exc}.") from None

    async def _cny(self, ses: AsyncSession) -> LedgerAsset:
        return await ledger.ensure_asset(ses, CNY, scale=2, serialised=False)

    async def _account(self, ses: AsyncSession, owner: tuple[str, str], owner_id: int) -> LedgerAccount:
        asset = await self._cny(ses)
        return await ledger.ensure_account(
            ses, asset_id=asset.id or 0, owner_kind=owner[0], owner_id=owner_id, role=owner[1]
        )

    # ------------------------------------------------------------------------------------------ claims: reads
    def _visible(self, who: Identity, claim: FinanceClaim) -> bool:
        if who.role in SEES_ALL_CLAIMS:
            return True
        return who.role == Role.EMITTER and claim.enterprise_organisation_id == who.organisation_id

    async def _claim(self, ses: AsyncSession, who: Identity | None, claim_id: int) -> FinanceClaim:
        claim = await ses.get(FinanceClaim, claim_id, populate_existing=True)
        if claim is None or (who is not None and not self._visible(who, claim)):
            raise NotFound("claim")
        return claim

    def _claim_out(
        self,
        claim: FinanceClaim,
        today: dt.date,
        *,
        events: list[FinanceClaimEvent] | None = None,
        documents: list[FinanceDocument] | None = None,
        detail: bool = False,
    ) -> s.ClaimOut:
        determination = _loads(claim.determination)
        changes = _loads(claim.changes, [])
        return s.ClaimOut(
            id=claim.id or 0,
            claim_no=_claim_no(claim),
            enterprise_id=claim.enterprise_id,
            enterprise_name=claim.enterprise_name,
            enterprise_uscc=claim.enterprise_uscc,
            programme=claim.programme,
            project_ref=claim.project_ref,
            period=claim.period,
            facts=_loads(claim.facts, {}),
            payee_bank=claim.payee_bank,
            payee_account_no=claim.payee_account_no,
            state=claim.state,
            allowed_actions=[a.value for a in wf.allowed_actions(State(claim.state))],
            version=claim.version,
            cycle=claim.cycle,
            due_on=claim.due_on,
            overdue=claim.due_on is not None and today > claim.due_on,
            submitted_by=claim.submitted_by,
            submitted_at=claim.submitted_at,
            checked_by=claim.checked_by,
            reviewed_by=claim.reviewed_by,
            reviewed_at=claim.reviewed_at,
            eligible=claim.eligible,
            failed_gates=list(determination.get("failed_gates", [])) if determination else [],
            amount_fen=claim.amount_fen,
            amount_yuan=format_fen(claim.amount_fen),
            approved_by=claim.approved_by,
            approved_at=claim.approved_at,
            notice_first_day=claim.notice_first_day,
            notice_last_day=claim.notice_last_day,
            budget_id=claim.budget_id,
            decided_by=claim.decided_by,
            decided_at=claim.decided_at,
            reason=claim.reason,
            changes_since_last_decision=[s.FactChangeOut(**c) for c in changes],
            disbursement_batch_id=claim.disbursement_batch_id,
            disbursed_at=claim.disbursed_at,
            clawed_back_fen=claim.clawed_back_fen,
            created_at=claim.created_at,
            determination=determination if detail else None,
            history=[
                s.ClaimEventOut(
                    seq=e.seq,
                    action=e.action,
                    from_state=e.from_state,
                    to_state=e.to_state,
                    actor_id=e.actor_id,
                    actor_role=e.actor_role,
                    at=e.at,
                    note=e.note,
                )
                for e in events or []
            ],
            documents=[
                s.DocumentRef(kind=d.kind, document_no=d.document_no, verification_code=d.code, issued_at=d.issued_at)
                for d in documents or []
            ],
        )

    async def _detail(self, ses: AsyncSession, claim: FinanceClaim, today: dt.date) -> s.ClaimOut:
        events = list(
            (
                await ses.execute(
                    select(FinanceClaimEvent)
                    .where(FinanceClaimEvent.claim_id == claim.id)
                    .order_by(FinanceClaimEvent.seq)
                )
            ).scalars()
        )
        docs = list(
            (
                await ses.execute(
                    select(FinanceDocument).where(FinanceDocument.claim_id == claim.id).order_by(FinanceDocument.id)
                )
            ).scalars()
        )
        return self._claim_out(claim, today, events=events, documents=docs, detail=True)

    async def get_claim(self, who: Identity, claim_id: int) -> s.ClaimOut:
        today = self._today()

        async def work(uow: UnitOfWork) -> s.ClaimOut:
            return await self._detail(uow.session, await self._claim(uow.session, who, claim_id), today)

        return await self.db.read(work)

    async def list_claims(
        self,
        who: Identity,
        *,
        state: str | None = None,
        programme: str | None = None,
        enterprise_id: int | None = None,
        overdue: bool | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> s.ClaimPage:
        today = self._today()
        limit = max(1, min(limit, LIST_LIMIT_MAX))

        async def work(uow: UnitOfWork) -> s.ClaimPage:
            q = select(FinanceClaim)
            if who.role not in SEES_ALL_CLAIMS:
                q = q.where(FinanceClaim.enterprise_organisation_id == who.organisation_id)
            if state is not None:
                q = q.where(FinanceClaim.state == state)
            if programme is not None:
                q = q.where(FinanceClaim.programme == programme)
            if enterprise_id is not None:
                q = q.where(FinanceClaim.enterprise_id == enterprise_id)
            if overdue is True:
                q = q.where(FinanceClaim.due_on.is_not(None), FinanceClaim.due_on < today)  # type: ignore[union-attr]
            elif overdue is False:
                q = q.where(or_(FinanceClaim.due_on.is_(None), FinanceClaim.due_on >= today))  # type: ignore[union-attr]
            if before_id is not None:
                q = q.where(FinanceClaim.id < before_id)  # type: ignore[operator]
            rows = list((await uow.session.execute(q.order_by(FinanceClaim.id.desc()).limit(limit + 1))).scalars())  # type: ignore[union-attr]
            more = len(rows) > limit
            rows = rows[:limit]
            return s.ClaimPage(
                items=[self._claim_out(c, today) for c in rows],
                next_before_id=(rows[-1].id if more and rows else None),
            )

        return await self.db.read(work)

    # ------------------------------------------------------------------------------------------ claims: moves
    def _actor(self, who: Identity | None) -> tuple[int, str, str]:
        if who is None:
            return 0, "system", "system:scheduler"
        return who.principal_id, who.role.value, who.actor

    async def _transition(
        self,
        uow: UnitOfWork,
        claim: FinanceClaim,
        action: Action,
        who: Identity | None,
        now: dt.datetime,
        *,
        note: str = "",
        data: dict[str, Any] | None = None,
        **values: Any,
    ) -> State:
        """Move the claim by `action` with a conditional UPDATE on its version (taken before any money moves).
        Refused with 409 naming the current state when the table does not allow it or someone moved it first."""
        ses = uow.session
        try:
            target = wf.next_state(claim.state, action)
        except wf.TransitionRefused as exc:
            raise _refused(exc) from None
        today = business_date(now)
        if "due_on" not in values:
            values["due_on"] = rules.stage_due_on(target, today, self._stage_days(today), is_working_day)
        seen = claim.version
        result = await ses.execute(
            update(FinanceClaim)
            .where(FinanceClaim.id == claim.id, FinanceClaim.version == seen)
            .values(state=target.value, version=seen + 1, state_changed_at=now, **values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            current = (
                await ses.execute(
                    select(FinanceClaim.state)
                    .where(FinanceClaim.id == claim.id)
                    .execution_options(populate_existing=True)
                )
            ).scalar_one()
            exc = wf.TransitionRefused(State(current), action)
            raise AppError(
                "claim-transition-refused",
                f"The claim was changed by someone else and is now {current}; reload it and try again.",
                extra={
                    "current_state": current,
                    "action": action.value,
                    "allowed_actions": [a.value for a in exc.allowed],
                },
            )
        actor_id, actor_role, actor = self._actor(who)
        ses.add(
            FinanceClaimEvent(
                claim_id=claim.id or 0,
                seq=seen + 1,
                action=action.value,
                from_state=claim.state,
                to_state=target.value,
                actor_id=actor_id,
                actor_role=actor_role,
                at=now,
                note=note[:1000],
                data=_json(data or {}),
            )
        )
        await ses.flush()
        uow.audit(
            actor,
            f"claim.{action.value}",
            "finance_claim",
            str(claim.id),
            {"from": claim.state, "to": target.value, "version": seen + 1, **(data or {})},
        )
        await ses.refresh(claim)
        return target

    def _stage_days(self, on: dt.date) -> dict[str, int]:
        return {
            name: int(param(name, on))
            for name in (
                "formal_check_working_days",
                "review_working_days",
                "approval_working_days",
                "disbursement_working_days",
            )
        }

    async def submit_claim(self, who: Identity, req: s.SubmitClaim, request_key: str | None = None) -> s.ClaimOut:
        _require(who, Role.EMITTER, *FINANCE_STAFF)
        now = self.clock.now()
        today = business_date(now)
        project_ref = clean_text(req.project_ref, "project_ref", max_len=100)
        period = clean_text(req.period, "period", max_len=20)
        payee_bank = clean_text(req.payee_bank, "payee_bank", max_len=200)
        account_no = _account_no(req.payee_account_no)
        self._check_claim_facts(req.programme, req.facts, today)
        ent = await self._enterprise(who, req.enterprise_id)

        async def work(uow: UnitOfWork) -> s.ClaimOut:
            ses = uow.session
            claim = FinanceClaim(
                enterprise_id=ent.id,
                enterprise_organisation_id=ent.organisation_id,
                enterprise_name=ent.name,
                enterprise_uscc=ent.uscc,
                programme=req.programme,
                project_ref=project_ref,
                period=period,
                facts=_json(req.facts),
                payee_bank=payee_bank,
                payee_account_no=account_no,
                state=State.DRAFT.value,
                state_changed_at=now,
                submitted_by=who.principal_id,
                created_at=now,
            )
            try:
                async with ses.begin_nested():
                    ses.add(claim)
                    await ses.flush()
            except IntegrityError:
                raise Conflict(
                    "duplicate",
                    f"{ent.name} already has a {req.programme} claim for project {project_ref} and period {period}.",
                    field="project_ref",
                ) from None
            uow.audit(
                who.actor,
                "claim.create",
                "finance_claim",
                str(claim.id),
                {"programme": req.programme, "enterprise_id": ent.id, "project_ref": project_ref, "period": period},
            )
            if not req.draft:
                await self._transition(
                    uow,
                    claim,
                    Action.SUBMIT,
                    who,
                    now,
                    submitted_at=now,
                    evaluation_on=today,
                    submitted_by=who.principal_id,
                )
            return await self._detail(ses, claim, today)

        return await self.db.run(work)

    async def resubmit_claim(self, who: Identity, claim_id: int, req: s.ResubmitClaim) -> s.ClaimOut:
        _require(who, Role.EMITTER, *FINANCE_STAFF)
        now = self.clock.now()
        today = business_date(now)
        note = clean_text(req.note, "note", max_len=1000, required=False)
        payee_bank = clean_text(req.payee_bank, "payee_bank", max_len=200) if req.payee_bank is not None else None
        account_no = _account_no(req.payee_account_no) if req.payee_account_no is not None else None

        async def work(uow: UnitOfWork) -> s.ClaimOut:
            ses = uow.session
            claim = await self._claim(ses, who, claim_id)
            wf_state = State(claim.state)
            try:
                wf.next_state(wf_state, Action.SUBMIT)
            except wf.TransitionRefused as exc:
                raise _refused(exc) from None
            facts = req.facts if req.facts is not None else _loads(claim.facts, {})
            self._check_claim_facts(claim.programme, facts, today)
            before = _loads(claim.decision_facts)
            changes = [c.to_dict() for c in rules.facts_diff(before, facts)] if before is not None else []
            values: dict[str, Any] = {
                "facts": _json(facts),
                "changes": _json(changes),
                "submitted_by": who.principal_id,
                "submitted_at": now,
                "evaluation_on": today,
            }
            if payee_bank is not None:
                values["payee_bank"] = payee_bank
            if account_no is not None:
                values["payee_account_no"] = account_no
            if wf_state != State.DRAFT:
                # A new round: the previous round's check, review, approval and budget hold belong to history
                # (the events and documents keep them), and the new round's ledger ids carry the new cycle.
                values.update(
                    cycle=claim.cycle + 1,
                    checked_by=None,
                    reviewed_by=None,
                    reviewed_at=None,
                    determination=None,
                    determination_digest=None,
                    eligible=None,
                    amount_fen=0,
                    approved_by=None,
                    approved_at=None,
                    notice_first_day=None,
                    notice_last_day=None,
                    budget_id=None,
                    hold_transfer_id=None,
                    reason="",
                )
            await self._transition(
                uow,
                claim,
                Action.SUBMIT,
                who,
                now,
                note=note,
                data={"resubmission": wf_state != State.DRAFT, "changes": changes},
                **values,
            )
            return await self._detail(ses, claim, today)

        return await self.db.run(work)

    async def formal_check(self, who: Identity, claim_id: int, req: s.FormalCheck) -> s.ClaimOut:
        _require(who, *FINANCE_STAFF)
        now = self.clock.now()
        today = business_date(now)
        reason = clean_text(req.reason, "reason", max_len=1000, required=not req.passed)

        async def work(uow: UnitOfWork) -> s.ClaimOut:
            ses = uow.session
            claim = await self._claim(ses, who, claim_id)
            if req.passed:
                await self._transition(
                    uow, claim, Action.PASS_FORMAL_CHECK, who, now, note=reason, checked_by=who.principal_id
                )
            else:
                await self._transition(
                    uow,
                    claim,
                    Action.RETURN_FOR_CORRECTION,
                    who,
                    now,
                    note=reason,
                    checked_by=who.principal_id,
                    reason=reason,
                    decided_by=who.principal_id,
                    decided_at=now,
                    decision_facts=claim.facts,
                )
            return await self._detail(ses, claim, today)

        return await self.db.run(work)

    async def review_claim(self, who: Identity, claim_id: int, req: s.Note) -> s.ClaimOut:
        """Recompute the determination with the incentives engine (as the law stood on the submission day, as
        known today) and attach it; the amount is the programme's headline output."""
        _require(who, *FINANCE_STAFF)
        now = self.clock.now()
        today = business_date(now)
        note = clean_text(req.note, "note", max_len=1000, required=False)

        async def work(uow: UnitOfWork) -> s.ClaimOut:
            ses = uow.session
            claim = await self._claim(ses, who, claim_id)
            try:
                wf.next_state(claim.state, Action.REVIEW)
            except wf.TransitionRefused as exc:
                raise _refused(exc) from None
            on = claim.evaluation_on or today
            try:
                det = self.incentives.evaluate(claim.programme, _loads(claim.facts, {}), on, known_on=today)
            except engine.FactsError as exc:
                raise _facts_problem(exc, "facts") from None
            except engine.NotInForce as exc:
                raise Conflict(
                    "invalid-state", f"The determination cannot be computed: {exc}. Reject the claim with this reason."
                ) from None
            record = det.to_dict()
            amount = int(det.headline_fen) if det.eligible else 0
            await self._transition(
                uow,
                claim,
                Action.REVIEW,
                who,
                now,
                note=note,
                data={"eligible": det.eligible, "amount_fen": amount, "digest": det.digest()},
                reviewed_by=who.principal_id,
                reviewed_at=now,
                determination=_json(record),
                determination_digest=det.digest(),
                eligible=bool(det.eligible),
                amount_fen=amount,
            )
            return await self._detail(ses, claim, today)

        return await self.db.run(work)

    async def _budget_for(self, ses: AsyncSession, programme: str, year: int) -> FinanceBudget:
        budget = (
            await ses.execute(
                select(FinanceBudget).where(FinanceBudget.programme == programme, FinanceBudget.fiscal_year == year)
            )
        ).scalar_one_or_none()
        if budget is None:
            raise Conflict(
                "budget-missing",
                f"There is no {programme} budget for fiscal year {year}; create and appropriate it first.",
            )
        return budget

    async def approve_claim(self, who: Identity, claim_id: int, req: s.Note) -> s.ClaimOut:
        """Four-eyes approval: commit the amount on the programme's budget (a pending ledger transfer) and open
        the public notice. Refused when the approver submitted or reviewed the claim, when the determination is
        not eligible, or when the budget has not enough available."""
        _require(who, Role.FINANCE_APPROVER)
        now = self.clock.now()
        today = business_date(now)
        note = clean_text(req.note, "note", max_len=1000, required=False)

        async def work(uow: UnitOfWork) -> s.ClaimOut:
            ses = uow.session
            claim = await self._claim(ses, who, claim_id)
            try:
                wf.next_state(claim.state, Action.APPROVE)
            except wf.TransitionRefused as exc:
                raise _refused(exc) from None
            if who.principal_id in (claim.submitted_by, claim.reviewed_by):
                raise AppError(
                    "four-eyes-required",
                    "The approver must be a different person from the one who submitted and the one who reviewed "
                    "this claim.",
                )
            if not claim.eligible or claim.amount_fen <= 0:
                raise Conflict(
                    "claim-not-eligible",
                    "The reviewed determination is not eligible (or pays nothing); reject the claim with a reason.",
                    extra={"failed_gates": (_loads(claim.determination, {}) or {}).get("failed_gates", [])},
                )
            budget = await self._budget_for(ses, claim.programme, today.year)
            window = rules.notice_window(today, int(param("notice_working_days", today)), is_working_day)
            await self._transition(
                uow,
                claim,
                Action.APPROVE,
                who,
                now,
                note=note,
                data={"amount_fen": claim.amount_fen, "budget_id": budget.id},
                approved_by=who.principal_id,
                approved_at=now,
                notice_first_day=window.first_day,
                notice_last_day=window.last_day,
                due_on=window.last_day,
                budget_id=budget.id,
            )
            source = await self._account(ses, BUDGET, budget.id or 0)
            payee = await self._account(ses, PAYEE, claim.enterprise_id)
            try:
                hold = await ledger.create_transfer(
                    ses,
                    client_id=f"fin:claim:{claim.id}:c{claim.cycle}:commit",
                    debit_account_id=source.id or 0,
                    credit_account_id=payee.id or 0,
                    asset_id=source.asset_id,
                    amount=claim.amount_fen,
                    code="subsidy_commitment",
                    now=now,
                    pending=True,
                    ref=f"finance_claim:{claim.id}",
                    field="amount_fen",
                )
            except AppError as exc:
                if exc.problem.slug != "insufficient-available":
                    raise
                available = int(exc.extra.get("available", 0))
                raise Conflict(
                    "budget-insufficient",
                    f"The {claim.programme} budget for {today.year} has {format_fen(available)} yuan available; "
                    f"this approval needs {format_fen(claim.amount_fen)} yuan. Appropriate more or approve later.",
                    field="amount_fen",
                    extra={
                        "budget_id": budget.id,
                        "available_fen": available,
                        "requested_fen": claim.amount_fen,
                    },
                ) from None
            await ses.execute(
                update(FinanceClaim)
                .where(FinanceClaim.id == claim.id)
                .values(hold_transfer_id=hold.transfer.id)
                .execution_options(synchronize_session=False)
            )
            await ses.refresh(claim)
            return await self._detail(ses, claim, today)

        return await self.db.run(work)

    async def finalise_claim(self, who: Identity | None, claim_id: int) -> s.ClaimOut:
        """After the public notice has passed without an upheld objection the approval becomes final and the
        decision letter (决定书) is issued."""
        if who is not None:
            _require(who, *FINANCE_STAFF)
        now = self.clock.now()
        today = business_date(now)

        async def work(uow: UnitOfWork) -> s.ClaimOut:
            ses = uow.session
            claim = await self._claim(ses, who, claim_id)
            await self._finalise(uow, claim, who, now)
            return await self._detail(ses, claim, today)

        return await self.db.run(work)

    async def _finalise(self, uow: UnitOfWork, claim: FinanceClaim, who: Identity | None, now: dt.datetime) -> None:
        today = business_date(now)
        try:
            wf.next_state(claim.state, Action.FINALISE)
        except wf.TransitionRefused as exc:
            raise _refused(exc) from None
        last = claim.notice_last_day
        if last is not None and not today > last:
            raise Conflict(
                "notice-period-running",
                f"The public notice runs until {last.isoformat()}; the approval can be made final from the next day.",
                extra={"notice_last_day": last.isoformat()},
            )
        actor_id = self._actor(who)[0]
        await self._transition(
            uow,
            claim,
            Action.FINALISE,
            who,
            now,
            decided_by=actor_id,
            decided_at=now,
            decision_facts=claim.facts,
        )
        await self._issue_decision(uow.session, claim, "decision_letter", "approved", now)

    async def finalise_due_claims(self, limit: int = BATCH_SIZE_MAX) -> dict[str, int]:
        """The scheduler's sweep: make final every approval whose notice period has ended."""
        today = self._today()

        async def ids(uow: UnitOfWork) -> list[int]:
            q = (
                select(FinanceClaim.id)
                .where(FinanceClaim.state == State.IN_NOTICE.value, FinanceClaim.notice_last_day < today)  # type: ignore[operator]
                .order_by(FinanceClaim.id)
                .limit(limit)
            )
            return [int(i) for i in (await uow.session.execute(q)).scalars()]

        done = skipped = 0
        for claim_id in await self.db.read(ids):
            try:
                await self.finalise_claim(None, claim_id)
                done += 1
            except AppError:
                # Someone rejected or finalised it in between: that claim is settled either way.
                skipped += 1
        return {"finalised": done, "skipped": skipped}

    async def reject_claim(self, who: Identity, claim_id: int, req: s.Reason) -> s.ClaimOut:
        _require(who, *FINANCE_STAFF)
        now = self.clock.now()
        today = business_date(now)
        reason = clean_text(req.reason, "reason", max_len=1000)

        async def work(uow: UnitOfWork) -> s.ClaimOut:
            ses = uow.session
            claim = await self._claim(ses, who, claim_id)
            held = State(claim.state) in wf.HOLDS_BUDGET and claim.hold_transfer_id is not None
            hold_id = claim.hold_transfer_id
            await self._transition(
                uow,
                claim,
                Action.REJECT,
                who,
                now,
                note=reason,
                data={"released_fen": claim.amount_fen if held else 0},
                reason=reason,
                decided_by=who.principal_id,
                decided_at=now,
                decision_facts=claim.facts,
            )
            if held and hold_id is not None:
                await ledger.resolve_pending(
                    ses,
                    client_id=f"fin:claim:{claim.id}:c{claim.cycle}:void",
                    pending_id=hold_id,
                    now=now,
                    post=False,
                    code="subsidy_void",
                )
            await self._issue_decision(ses, claim, "decision_letter", "rejected", now)
            return await self._detail(ses, claim, today)

        return await self.db.run(work)

    async def clawback_claim(self, who: Identity, claim_id: int, req: s.Clawback) -> s.ClaimOut:
        """Recover a disbursed subsidy (in full, or `amount_yuan` of it) within the clawback window: a posted
        ledger transfer from the enterprise's payee account back to the budget, and a clawback decision."""
        _require(who, Role.FINANCE_APPROVER)
        now = self.clock.now()
        today = business_date(now)
        reason = clean_text(req.reason, "reason", max_len=1000)
        amount_req = parse_money_fen(req.amount_yuan, field="amount_yuan") if req.amount_yuan is not None else None

        async def work(uow: UnitOfWork) -> s.ClaimOut:
            ses = uow.session
            claim = await self._claim(ses, who, claim_id)
            try:
                wf.next_state(claim.state, Action.CLAWBACK)
            except wf.TransitionRefused as exc:
                raise _refused(exc) from None
            amount = claim.amount_fen if amount_req is None else amount_req
            if amount > claim.amount_fen:
                raise InvalidInput(
                    "amount_yuan", f"At most the {format_fen(claim.amount_fen)} yuan paid can be recovered."
                )
            window = int(param("clawback_window_years", today))
            paid_on = business_date(claim.disbursed_at) if claim.disbursed_at else today
            if not rules.clawback_open(paid_on, today, window):
                raise Conflict(
                    "clawback-window-closed",
                    f"The subsidy was paid on {paid_on.isoformat()}; it can be recovered for {window} years only.",
                )
            await self._transition(
                uow,
                claim,
                Action.CLAWBACK,
                who,
                now,
                note=reason,
                data={"amount_fen": amount},
                clawed_back_fen=amount,
                reason=reason,
                decided_by=who.principal_id,
                decided_at=now,
            )
            budget = await ses.get(FinanceBudget, claim.budget_id)
            assert budget is not None
            payee = await self._account(ses, PAYEE, claim.enterprise_id)
            target = await self._account(ses, BUDGET, budget.id or 0)
            await ledger.create_transfer(
                ses,
                client_id=f"fin:claim:{claim.id}:c{claim.cycle}:clawback",
                debit_account_id=payee.id or 0,
                credit_account_id=target.id or 0,
                asset_id=payee.asset_id,
                amount=amount,
                code="clawback",
                now=now,
                ref=f"finance_claim:{claim.id}",
                field="amount_yuan",
            )
            await self._issue_decision(ses, claim, "clawback_decision", "clawback", now)
            return await self._detail(ses, claim, today)

        return await self.db.run(work)

    # ------------------------------------------------------------------------------------------ documents
    async def _issue_decision(
        self, ses: AsyncSession, claim: FinanceClaim, kind: str, decision: str, now: dt.datetime
    ) -> FinanceDocument:
        today = business_date(now)
        count = (
            await ses.execute(
                select(func.count()).select_from(FinanceDocument).where(FinanceDocument.claim_id == claim.id)
            )
        ).scalar_one()
        number = rules.document_no(kind, today.year, claim.id or 0, int(count) + 1)
        determination = _loads(claim.determination)
        amount = (
            claim.clawed_back_fen if decision == "clawback" else (claim.amount_fen if decision == "approved" else 0)
        )
        record: dict[str, Any] = {
            "type": kind,
            "document_no": number,
            "issued_by": ISSUER,
            "claim_id": claim.id,
            "claim_no": _claim_no(claim),
            "cycle": claim.cycle,
            "enterprise_name": claim.enterprise_name,
            "enterprise_uscc": claim.enterprise_uscc,
            "programme": claim.programme,
            "programme_name_zh": (determination or {}).get("programme_name_zh", claim.programme),
            "project_ref": claim.project_ref,
            "period": claim.period,
            "decision": decision,
            "amount_fen": amount,
            "claim_amount_fen": claim.amount_fen,
            "decided_on": today.isoformat(),
            "reason": claim.reason,
            "notice_first_day": claim.notice_first_day.isoformat() if claim.notice_first_day else None,
            "notice_last_day": claim.notice_last_day.isoformat() if claim.notice_last_day else None,
            "determination_digest": claim.determination_digest,
            "determination": determination,
        }
        doc = FinanceDocument(
            code=verification_code(record),
            kind=kind,
            document_no=number,
            claim_id=claim.id,
            record=canonical_json(record).decode("utf-8"),
            issued_at=now,
        )
        ses.add(doc)
        await ses.flush()
        return doc

    async def decision_letter(self, who: Identity, claim_id: int) -> tuple[dict[str, Any], str, dt.datetime]:
        """The latest decision document of a claim: (record, verification code, issued at); 404 if none yet."""

        async def work(uow: UnitOfWork) -> tuple[dict[str, Any], str, dt.datetime]:
            ses = uow.session
            await self._claim(ses, who, claim_id)
            doc = (
                await ses.execute(
                    select(FinanceDocument)
                    .where(FinanceDocument.claim_id == claim_id)
                    .order_by(FinanceDocument.id.desc())  # type: ignore[union-attr]
                    .limit(1)
                )
            ).scalar_one_or_none()
            if doc is None:
                raise NotFound("decision letter")
            return json.loads(doc.record), doc.code, doc.issued_at

        return await self.db.read(work)

    async def verify_document(self, code: str) -> s.VerificationOut:
        """What the document with this verification code says; 404 for any code that matches no record."""
        normalised = normalize_verification_code(code[:64])
        if normalised is None:
            raise NotFound("document", field="code")

        async def work(uow: UnitOfWork) -> s.VerificationOut:
            ses = uow.session
            doc = (
                await ses.execute(select(FinanceDocument).where(FinanceDocument.code == normalised))
            ).scalar_one_or_none()
            if doc is None:
                raise NotFound("document", field="code")
            record = json.loads(doc.record)
            # A stored record that no longer hashes to its code was altered: never vouch for it.
            if not verification_code_matches(record, normalised):
                raise NotFound("document", field="code")
            details: dict[str, Any] = {}
            if doc.claim_id is not None:
                claim = await ses.get(FinanceClaim, doc.claim_id)
                details = {
                    "claim_no": record.get("claim_no"),
                    "programme": record.get("programme_name_zh"),
                    "project_ref": record.get("project_ref"),
                    "period": record.get("period"),
                    "decision": record.get("decision"),
                    "reason": record.get("reason"),
                    "determination_digest": record.get("determination_digest"),
                    "claim_state_now": claim.state if claim else None,
                }
                amount = record.get("amount_fen")
                title = {
                    "decision_letter": "财政补贴资金审核决定书",
                    "clawback_decision": "财政补贴资金追回决定书",
                }.get(doc.kind, "决定书")
                date = str(record.get("decided_on"))
            else:
                details = {
                    "bank": record.get("bank_name"),
                    "query_id": record.get("query_id"),
                    "answer_sha256": record.get("answer_sha256"),
                    "signature_key_id": record.get("key_id"),
                }
                amount = record.get("amount_fen")
                title = "绿色信贷查询报告"
                date = str(record.get("answered_on"))
            return s.VerificationOut(
                valid=True,
                verification_code=doc.code,
                type=doc.kind,
                title=title,
                document_no=doc.document_no,
                enterprise_name=str(record.get("enterprise_name", "")),
                enterprise_uscc=str(record.get("enterprise_uscc", "")),
                amount_fen=amount if isinstance(amount, int) else None,
                amount_yuan=format_fen(amount) if isinstance(amount, int) else None,
                date=date,
                issued_by=str(record.get("issued_by", ISSUER)),
                details=details,
            )

        return await self.db.read(work)

    def public_key(self) -> s.PublicKeyOut:
        return s.PublicKeyOut(
            algorithm="Ed25519",
            key_id=self.signer.key_id(),
            public_key_pem=self.signer.public_pem(),
            public_key_base64=base64.b64encode(self.signer.public_raw()).decode("ascii"),
            signs="the canonical JSON of a green-credit answer: sorted keys, no whitespace, UTF-8 (not \\u escapes)",
        )

    # ------------------------------------------------------------------------------------------ disbursement
    async def disburse_claims(
        self, who: Identity | None, req: s.DisburseClaims, batch_key: str | None
    ) -> s.DisbursementOut:
        """Pay every finally approved claim (or the ones named) in one batch: post each commitment and write
        the payment file. A batch key names the run, so the same request or the same scheduler day pays once;
        each claim is paid once whatever batch finds it first (its transition is conditional)."""
        if who is not None:
            _require(who, Role.FINANCE_APPROVER)
        now = self.clock.now()
        today = business_date(now)
        key = batch_key or f"adhoc:{secrets.token_hex(8)}"
        actor = self._actor(who)[2]

        async def work(uow: UnitOfWork) -> s.DisbursementOut:
            ses = uow.session
            prior = (
                await ses.execute(select(FinanceDisbursementBatch).where(FinanceDisbursementBatch.batch_key == key))
            ).scalar_one_or_none()
            if prior is not None:
                return await self._batch_out(ses, prior)
            q = select(FinanceClaim).where(FinanceClaim.state == State.APPROVED.value)
            if req.claim_ids is not None:
                # Named claims must all be payable: each one not finally approved is refused naming its state.
                for claim_id in sorted(set(req.claim_ids)):
                    named = await self._claim(ses, who, claim_id)
                    if named.state != State.APPROVED.value:
                        problem = _refused(wf.TransitionRefused(State(named.state), Action.DISBURSE))
                        problem.extra["claim_id"] = claim_id
                        raise problem
                q = q.where(FinanceClaim.id.in_(req.claim_ids))  # type: ignore[union-attr]
            claims = list((await ses.execute(q.order_by(FinanceClaim.id).limit(BATCH_SIZE_MAX))).scalars())
            if not claims:
                return s.DisbursementOut(
                    id=0,
                    batch_no="",
                    created_at=now,
                    created_by=actor,
                    line_count=0,
                    total_fen=0,
                    total_yuan="0.00",
                    claim_ids=[],
                )
            batch = FinanceDisbursementBatch(batch_key=key, created_by=actor, created_at=now)
            ses.add(batch)
            await ses.flush()
            batch.batch_no = f"FB{today:%Y%m%d}-{batch.id:05d}"
            lines: list[payments.PaymentLine] = []
            total = 0
            for claim in claims:
                hold_id = claim.hold_transfer_id
                assert hold_id is not None
                try:
                    await self._transition(
                        uow,
                        claim,
                        Action.DISBURSE,
                        who,
                        now,
                        data={"batch_id": batch.id},
                        disbursement_batch_id=batch.id,
                        disbursed_at=now,
                    )
                except AppError as exc:
                    # Rejected (or paid by another batch) since it was read: that claim is not this batch's.
                    if exc.problem.slug != "claim-transition-refused":
                        raise
                    continue
                await ledger.resolve_pending(
                    ses,
                    client_id=f"fin:claim:{claim.id}:c{claim.cycle}:disburse",
                    pending_id=hold_id,
                    now=now,
                    post=True,
                    code="subsidy_disbursement",
                )
                name = (_loads(claim.determination, {}) or {}).get("programme_name_zh", claim.programme)
                number = _claim_no(claim)
                lines.append(
                    payments.PaymentLine(
                        claim_no=number,
                        payee_name=claim.enterprise_name,
                        payee_uscc=claim.enterprise_uscc,
                        payee_bank=claim.payee_bank,
                        payee_account_no=claim.payee_account_no,
                        amount_fen=claim.amount_fen,
                        purpose=f"{number} {name}",
                    )
                )
                total += claim.amount_fen
            if not lines:
                # Every claim was paid by a concurrent batch: this run made no payment and leaves no batch.
                await ses.delete(batch)
                await ses.flush()
                return s.DisbursementOut(
                    id=0,
                    batch_no="",
                    created_at=now,
                    created_by=actor,
                    line_count=0,
                    total_fen=0,
                    total_yuan="0.00",
                    claim_ids=[],
                )
            batch.line_count = len(lines)
            batch.total_fen = total
            batch.payment_file = payments.payment_file(batch.batch_no, lines)
            await ses.flush()
            uow.audit(
                actor,
                "disbursement.batch",
                "finance_disbursement_batch",
                str(batch.id),
                {"batch_no": batch.batch_no, "lines": len(lines), "total_fen": total},
            )
            return await self._batch_out(ses, batch)

        return await self.db.run(work)

    async def _batch_out(self, ses: AsyncSession, batch: FinanceDisbursementBatch) -> s.DisbursementOut:
        ids = [
            int(i)
            for i in (
                await ses.execute(
                    select(FinanceClaim.id)
                    .where(FinanceClaim.disbursement_batch_id == batch.id)
                    .order_by(FinanceClaim.id)
                )
            ).scalars()
        ]
        return s.DisbursementOut(
            id=batch.id or 0,
            batch_no=batch.batch_no,
            created_at=batch.created_at,
            created_by=batch.created_by,
            line_count=batch.line_count,
            total_fen=batch.total_fen,
            total_yuan=format_fen(batch.total_fen),
            claim_ids=ids,
        )

    async def run_disbursement_batch(self, day_key: str) -> dict[str, Any]:
        """The scheduler's daily payment run (working days only), keyed by the day."""
        day = dt.date.fromisoformat(day_key)
        if not is_working_day(day):
            return {"skipped": f"{day_key} is not a working day"}
        out = await self.disburse_claims(None, s.DisburseClaims(), f"job:{day_key}")
        return {"batch_id": out.id, "batch_no": out.batch_no, "lines": out.line_count, "total_fen": out.total_fen}

    async def list_disbursements(self, who: Identity, limit: int = 50) -> list[s.DisbursementOut]:
        async def work(uow: UnitOfWork) -> list[s.DisbursementOut]:
            rows = (
                await uow.session.execute(
                    select(FinanceDisbursementBatch)
                    .order_by(FinanceDisbursementBatch.id.desc())  # type: ignore[union-attr]
                    .limit(max(1, min(limit, LIST_LIMIT_MAX)))
                )
            ).scalars()
            return [await self._batch_out(uow.session, b) for b in list(rows)]

        return await self.db.read(work)

    async def payment_file(self, who: Identity, batch_id: int) -> tuple[str, str]:
        async def work(uow: UnitOfWork) -> tuple[str, str]:
            batch = await uow.session.get(FinanceDisbursementBatch, batch_id)
            if batch is None:
                raise NotFound("disbursement batch")
            return batch.batch_no, batch.payment_file

        return await self.db.read(work)

    # ------------------------------------------------------------------------------------------ budgets
    async def create_budget(self, who: Identity, req: s.CreateBudget) -> s.BudgetOut:
        _require(who, Role.FINANCE_APPROVER)
        now = self.clock.now()
        today = business_date(now)
        if req.programme not in param("claimable_programmes", today):
            raise InvalidInput("programme", f"Budgets are kept for {', '.join(param('claimable_programmes', today))}.")
        if not 2000 <= req.fiscal_year <= 2200:
            raise InvalidInput("fiscal_year", "Give a fiscal year between 2000 and 2200.")
        name = clean_text(req.name, "name", max_len=200, required=False) or f"{req.programme} {req.fiscal_year}"

        async def work(uow: UnitOfWork) -> s.BudgetOut:
            ses = uow.session
            budget = FinanceBudget(
                programme=req.programme,
                fiscal_year=req.fiscal_year,
                name=name,
                created_by=who.principal_id,
                created_at=now,
            )
            try:
                async with ses.begin_nested():
                    ses.add(budget)
                    await ses.flush()
            except IntegrityError:
                raise Conflict(
                    "duplicate", f"A {req.programme} budget for {req.fiscal_year} exists.", field="fiscal_year"
                ) from None
            await self._account(ses, BUDGET, budget.id or 0)
            uow.audit(
                who.actor,
                "budget.create",
                "finance_budget",
                str(budget.id),
                {"programme": req.programme, "fiscal_year": req.fiscal_year},
            )
            return await self._budget_out(ses, budget)

        return await self.db.run(work)

    async def appropriate_budget(
        self, who: Identity, budget_id: int, req: s.Appropriate, request_key: str | None
    ) -> s.BudgetOut:
        """Post an appropriation into the budget (from the appropriation's issuance-role source account)."""
        _require(who, Role.FINANCE_APPROVER)
        now = self.clock.now()
        amount = parse_money_fen(req.amount_yuan, field="amount_yuan")
        reference = clean_text(req.reference, "reference", max_len=64, required=False)
        client_id = f"fin:appr:{hashlib.sha256((request_key or secrets.token_hex(16)).encode()).hexdigest()[:40]}"

        async def work(uow: UnitOfWork) -> s.BudgetOut:
            ses = uow.session
            budget = await ses.get(FinanceBudget, budget_id)
            if budget is None:
                raise NotFound("budget")
            source = await self._account(ses, APPROPRIATION, budget.id or 0)
            target = await self._account(ses, BUDGET, budget.id or 0)
            result = await ledger.create_transfer(
                ses,
                client_id=client_id,
                debit_account_id=source.id or 0,
                credit_account_id=target.id or 0,
                asset_id=source.asset_id,
                amount=amount,
                code="appropriation",
                now=now,
                ref=reference or f"finance_budget:{budget.id}",
                field="amount_yuan",
            )
            if result.created:
                uow.audit(
                    who.actor,
                    "budget.appropriate",
                    "finance_budget",
                    str(budget.id),
                    {"amount_fen": amount, "reference": reference},
                )
            return await self._budget_out(ses, budget)

        return await self.db.run(work)

    async def _budget_out(self, ses: AsyncSession, budget: FinanceBudget) -> s.BudgetOut:
        asset_id = (await ses.execute(select(LedgerAsset.id).where(LedgerAsset.code == CNY))).scalar_one_or_none()
        acc = None
        if asset_id is not None:
            acc = (
                await ses.execute(
                    select(LedgerAccount)
                    .where(
                        LedgerAccount.owner_kind == BUDGET[0],
                        LedgerAccount.owner_id == budget.id,
                        LedgerAccount.asset_id == asset_id,
                    )
                    .execution_options(populate_existing=True)
                )
            ).scalar_one_or_none()
        appropriated = clawed = 0
        if acc is not None:
            sums = dict(
                (
                    await ses.execute(
                        select(LedgerTransfer.code, func.coalesce(func.sum(LedgerTransfer.amount), 0))
                        .where(LedgerTransfer.credit_account_id == acc.id, LedgerTransfer.kind == ledger.POSTED)
                        .group_by(LedgerTransfer.code)
                    )
                ).all()
            )
            appropriated = int(sums.get("appropriation", 0))
            clawed = int(sums.get("clawback", 0))
        figures = rules.BudgetFigures(
            appropriated_fen=appropriated,
            committed_fen=acc.debits_pending if acc else 0,
            disbursed_fen=acc.debits_posted if acc else 0,
            clawed_back_fen=clawed,
        )
        # The ledger's own available balance and the budget's arithmetic must agree; a difference is a bug.
        assert acc is None or figures.available_fen == ledger.available(acc), (figures, acc)
        return s.BudgetOut(
            id=budget.id or 0,
            programme=budget.programme,
            fiscal_year=budget.fiscal_year,
            name=budget.name,
            appropriated_fen=figures.appropriated_fen,
            committed_fen=figures.committed_fen,
            disbursed_fen=figures.disbursed_fen,
            clawed_back_fen=figures.clawed_back_fen,
            available_fen=figures.available_fen,
            available_yuan=format_fen(figures.available_fen),
            created_at=budget.created_at,
        )

    async def get_budget(self, who: Identity, budget_id: int) -> s.BudgetOut:
        async def work(uow: UnitOfWork) -> s.BudgetOut:
            budget = await uow.session.get(FinanceBudget, budget_id)
            if budget is None:
                raise NotFound("budget")
            return await self._budget_out(uow.session, budget)

        return await self.db.read(work)

    async def list_budgets(self, who: Identity, fiscal_year: int | None = None) -> list[s.BudgetOut]:
        async def work(uow: UnitOfWork) -> list[s.BudgetOut]:
            q = select(FinanceBudget)
            if fiscal_year is not None:
                q = q.where(FinanceBudget.fiscal_year == fiscal_year)
            rows = list((await uow.session.execute(q.order_by(FinanceBudget.id))).scalars())
            return [await self._budget_out(uow.session, b) for b in rows]

        return await self.db.read(work)

    # ------------------------------------------------------------------------------------------ consent
    async def _bank(self, ses: AsyncSession, organisation_id: int) -> Organisation | None:
        org = await ses.get(Organisation, organisation_id)
        if org is None:
            return None
        if org.kind == Role.BANK.value:
            return org
        has_bank = (
            await ses.execute(
                select(Principal.id)
                .where(Principal.organisation_id == organisation_id, Principal.role == Role.BANK.value)
                .limit(1)
            )
        ).first()
        return org if has_bank else None

    async def list_banks(self, who: Identity) -> list[s.BankOut]:
        """The banks an enterprise can name in a consent (organisations of kind bank, or with a bank principal)."""

        async def work(uow: UnitOfWork) -> list[s.BankOut]:
            with_principal = select(Principal.organisation_id).where(Principal.role == Role.BANK.value)
            rows = (
                await uow.session.execute(
                    select(Organisation)
                    .where(or_(Organisation.kind == Role.BANK.value, Organisation.id.in_(with_principal)))  # type: ignore[union-attr]
                    .order_by(Organisation.id)
                )
            ).scalars()
            return [s.BankOut(organisation_id=o.id or 0, name=o.name) for o in rows]

        return await self.db.read(work)

    def _consent_out(self, c: FinanceConsent, today: dt.date) -> s.ConsentOut:
        return s.ConsentOut(
            id=c.id or 0,
            enterprise_id=c.enterprise_id,
            enterprise_name=c.enterprise_name,
            bank_organisation_id=c.bank_organisation_id,
            bank_name=c.bank_name,
            purpose=c.purpose,
            status=c.status,
            active=_consent_active(c, today),
            valid_until=c.valid_until,
            granted_at=c.granted_at,
            revoked_at=c.revoked_at,
        )

    async def grant_consent(self, who: Identity, req: s.GrantConsent) -> s.ConsentOut:
        _require(who, Role.EMITTER)
        now = self.clock.now()
        today = business_date(now)
        purpose = clean_text(req.purpose, "purpose", max_len=500)
        if req.valid_until is not None and req.valid_until < today:
            raise InvalidInput("valid_until", "A consent cannot end before today.")
        ent = await self._enterprise(who, req.enterprise_id)

        async def work(uow: UnitOfWork) -> s.ConsentOut:
            ses = uow.session
            bank = await self._bank(ses, req.bank_organisation_id)
            if bank is None:
                raise NotFound("bank", field="bank_organisation_id")
            lookup = select(FinanceConsent).where(
                FinanceConsent.enterprise_id == ent.id, FinanceConsent.bank_organisation_id == bank.id
            )
            consent = (await ses.execute(lookup)).scalar_one_or_none()
            if consent is None:
                consent = await ledger.insert_or_get(
                    ses,
                    FinanceConsent(
                        enterprise_id=ent.id,
                        enterprise_organisation_id=ent.organisation_id,
                        enterprise_name=ent.name,
                        bank_organisation_id=bank.id or 0,
                        bank_name=bank.name,
                        purpose=purpose,
                        status="active",
                        valid_until=req.valid_until,
                        granted_by=who.principal_id,
                        granted_at=now,
                    ),
                    lookup,
                )
            consent.status = "active"
            consent.purpose = purpose
            consent.valid_until = req.valid_until
            consent.granted_by = who.principal_id
            consent.granted_at = now
            consent.revoked_by = None
            consent.revoked_at = None
            await ses.flush()
            uow.audit(
                who.actor,
                "consent.grant",
                "finance_consent",
                str(consent.id),
                {
                    "enterprise_id": ent.id,
                    "bank_organisation_id": bank.id,
                    "purpose": purpose,
                    "valid_until": req.valid_until.isoformat() if req.valid_until else None,
                },
            )
            return self._consent_out(consent, today)

        return await self.db.run(work)

    async def revoke_consent(self, who: Identity, consent_id: int) -> s.ConsentOut:
        _require(who, Role.EMITTER)
        now = self.clock.now()
        today = business_date(now)

        async def work(uow: UnitOfWork) -> s.ConsentOut:
            ses = uow.session
            consent = await ses.get(FinanceConsent, consent_id)
            if consent is None or consent.enterprise_organisation_id != who.organisation_id:
                raise NotFound("consent")
            result = await ses.execute(
                update(FinanceConsent)
                .where(FinanceConsent.id == consent_id, FinanceConsent.status == "active")
                .values(status="revoked", revoked_by=who.principal_id, revoked_at=now)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                raise Conflict(
                    "invalid-state",
                    "This consent is already revoked; grant it again to restore it.",
                    extra={"current_state": "revoked"},
                )
            await ses.refresh(consent)
            uow.audit(
                who.actor,
                "consent.revoke",
                "finance_consent",
                str(consent.id),
                {"enterprise_id": consent.enterprise_id, "bank_organisation_id": consent.bank_organisation_id},
            )
            return self._consent_out(consent, today)

        return await self.db.run(work)

    async def list_consents(self, who: Identity) -> list[s.ConsentOut]:
        today = self._today()

        async def work(uow: UnitOfWork) -> list[s.ConsentOut]:
            q = select(FinanceConsent)
            if who.role == Role.EMITTER:
                q = q.where(FinanceConsent.enterprise_organisation_id == who.organisation_id)
            elif who.role == Role.BANK:
                q = q.where(FinanceConsent.bank_organisation_id == who.organisation_id)
            rows = (await uow.session.execute(q.order_by(FinanceConsent.id))).scalars()
            return [self._consent_out(c, today) for c in rows]

        return await self.db.read(work)

    # ------------------------------------------------------------------------------------------ green credit
    async def _find_for_bank(self, req: s.GreenCreditQuery) -> Any:
        if (req.enterprise_id is None) == (req.uscc is None):
            raise InvalidInput("enterprise_id", "Name the enterprise by enterprise_id or by uscc (one of them).")
        if req.enterprise_id is not None:
            try:
                return await self.registry.get_enterprise(_READER, req.enterprise_id)
            except AppError as exc:
                if exc.problem.slug == "not-found":
                    return None
                raise
        return await self.registry.enterprise_by_uscc(validate_uscc(req.uscc or ""))

    async def _active_consent(
        self, ses: AsyncSession, enterprise_id: int, bank_org: int, today: dt.date
    ) -> FinanceConsent | None:
        consent = (
            await ses.execute(
                select(FinanceConsent).where(
                    FinanceConsent.enterprise_id == enterprise_id,
                    FinanceConsent.bank_organisation_id == bank_org,
                    FinanceConsent.status == "active",
                )
            )
        ).scalar_one_or_none()
        return consent if consent is not None and _consent_active(consent, today) else None

    def _evaluate_for_bank(self, programme: str, facts: dict[str, Any], on: dt.date) -> tuple[Any, dict[str, Any]]:
        """(determination or None, section of the answer). Missing facts leave the programme unevaluated;
        malformed facts are the bank's error (422)."""
        described = engine.get_programme(programme)
        required = [str(f["name"]) for f in described["facts"] if f["required"]]  # type: ignore[index, union-attr]
        missing = [n for n in required if facts.get(n) is None]
        if missing:
            return None, {"evaluated": False, "reason": "missing facts", "missing_facts": missing}
        try:
            det = self.incentives.evaluate(programme, facts, on, known_on=on)
        except engine.FactsError as exc:
            raise _facts_problem(exc, "project_facts") from None
        except engine.NotInForce as exc:
            return None, {"evaluated": False, "reason": str(exc), "missing_facts": []}
        section: dict[str, Any] = {
            "evaluated": True,
            "programme": det.programme,
            "programme_name_zh": det.programme_name_zh,
            "rule_pack_version": det.rule_pack_version,
            "on": det.on.isoformat(),
            "eligible": bool(det.eligible),
            "failed_gates": list(det.failed_gates),
            "outputs": dict(det.outputs),
            "gates": [
                {
                    "code": g.code,
                    "label_zh": g.label_zh,
                    "measured": g.measured,
                    "comparator": g.comparator,
                    "threshold": g.threshold,
                    "unit": g.unit,
                    "passed": g.passed,
                    "citation": g.citation.to_dict(),
                    "remedy_zh": g.remedy_zh,
                }
                for g in det.gates
            ],
            "determination_digest": det.digest(),
        }
        return det, section

    async def query_green_credit(self, who: Identity, req: s.GreenCreditQuery) -> s.GreenCreditAnswer:
        """A bank's signed green-credit answer about an enterprise that consented to this bank; otherwise the
        same 404 as for an unknown enterprise. The query is logged either way (visible to the enterprise)."""
        _require(who, Role.BANK)
        now = self.clock.now()
        today = business_date(now)
        purpose = clean_text(req.purpose, "purpose", max_len=500)
        project_ref = clean_text(req.project_ref, "project_ref", max_len=100, required=False)
        facts = dict(req.project_facts or {})
        _check_bank_facts(facts)
        if "carbon_open_shortfall_t" in facts:
            raise InvalidInput(
                "project_facts.carbon_open_shortfall_t",
                "The compliance shortfall is taken from the registry; do not send it.",
            )
        not_found_field = "enterprise_id" if req.enterprise_id is not None else "uscc"
        ent = await self._find_for_bank(req)
        if ent is None:
            raise NotFound("enterprise", field=not_found_field)

        async def log_refusal(uow: UnitOfWork) -> None:
            ses = uow.session
            bank = await ses.get(Organisation, who.organisation_id)
            ses.add(
                FinanceGreenCreditQuery(
                    bank_organisation_id=who.organisation_id,
                    bank_name=bank.name if bank else "",
                    asked_by=who.principal_id,
                    enterprise_id=ent.id,
                    enterprise_organisation_id=ent.organisation_id,
                    outcome="refused_no_consent",
                    purpose=purpose,
                    project_ref=project_ref,
                    asked_at=now,
                )
            )
            uow.audit(
                who.actor,
                "green_credit.refused",
                "finance_green_credit_query",
                str(ent.id),
                {"bank_organisation_id": who.organisation_id},
            )

        async def consented(uow: UnitOfWork) -> bool:
            return await self._active_consent(uow.session, ent.id, who.organisation_id, today) is not None

        if not await self.db.read(consented):
            await self.db.run(log_refusal)
            raise NotFound("enterprise", field=not_found_field)

        status = await self.compliance.compliance_status(ent.id)
        facts_with_registry = {**facts, "carbon_open_shortfall_t": int(status.get("carbon_open_shortfall_t", 0))}
        loan_det, loan = self._evaluate_for_bank(GREEN_LOAN, facts_with_registry, today)
        _, tool = self._evaluate_for_bank(CARBON_TOOL, facts, today)
        if loan_det is not None:
            findings = dict(loan_det.findings)
            loan["catalogue_edition"] = findings.get("catalogue_edition", "")
            loan["catalogue_code"] = findings.get("catalogue_code", "")
            loan["catalogue_codes"] = {
                k[len("code[") : -1]: v for k, v in findings.items() if k.startswith("code[") and k.endswith("]")
            }
            loan["benchmark_status"] = findings.get("benchmark_status", "未提供能效数据")
            loan["co2_method"] = findings.get("co2_method", "")
            gate = next((g for g in loan_det.gates if g.code == "no_major_violation"), None)
            violations = {
                "checked": True,
                "passed": bool(gate.passed) if gate else True,
                "last_major_env_violation_on": facts.get("last_major_env_violation_on"),
                "lookback": gate.threshold if gate else None,
                "citation": gate.citation.to_dict() if gate else None,
                "source": "the bank's project facts (the registry keeps no record of environmental violations)",
            }
        else:
            violations = {"checked": False, "reason": "the green-loan facts were not all given"}
        compliance = {
            "open_shortfall": bool(status.get("open_shortfall", False)),
            "carbon_open_shortfall_t": int(status.get("carbon_open_shortfall_t", 0)),
            "owed": status.get("owed", []),
            "latest": status.get("latest", []),
            "not_reported": [x for x in status.get("latest", []) if x.get("status") == "C"],
        }

        async def answer_work(uow: UnitOfWork) -> s.GreenCreditAnswer | None:
            ses = uow.session
            consent = await self._active_consent(ses, ent.id, who.organisation_id, today)
            if consent is None:
                return None  # revoked in between: refused below, as if never consented
            bank = await ses.get(Organisation, who.organisation_id)
            row = FinanceGreenCreditQuery(
                bank_organisation_id=who.organisation_id,
                bank_name=bank.name if bank else "",
                asked_by=who.principal_id,
                enterprise_id=ent.id,
                enterprise_organisation_id=ent.organisation_id,
                consent_id=consent.id,
                outcome="answered",
                purpose=purpose,
                project_ref=project_ref,
                asked_at=now,
            )
            ses.add(row)
            await ses.flush()
            answer: dict[str, Any] = {
                "schema": ANSWER_SCHEMA,
                "query_id": row.id,
                "answered_at": now.isoformat(),
                "as_of": today.isoformat(),
                "issued_by": "greenrights 江西省环境权益登记簿",
                "bank": {"organisation_id": who.organisation_id, "name": row.bank_name},
                "purpose": purpose,
                "consent": {
                    "id": consent.id,
                    "granted_at": consent.granted_at.isoformat(),
                    "valid_until": consent.valid_until.isoformat() if consent.valid_until else None,
                },
                "enterprise": {
                    "id": ent.id,
                    "uscc": ent.uscc,
                    "name": ent.name,
                    "city": ent.city,
                    "industry_code": ent.industry_code,
                },
                "project_ref": project_ref,
                "project_facts": facts,
                "compliance": compliance,
                "green_loan": loan,
                "violations_check": violations,
                "carbon_tool": tool,
            }
            body = canonical_json(answer)
            signature = {
                "algorithm": "Ed25519",
                "key_id": self.signer.key_id(),
                "value": self.signer.sign(body),
                "signed": "canonical JSON of `answer`: sorted keys, no whitespace, UTF-8",
            }
            row.answer = body.decode("utf-8")
            row.signature = signature["value"]
            row.key_id = signature["key_id"]
            principal = (loan.get("outputs") or {}).get("eligible_principal_fen") if loan.get("evaluated") else None
            record: dict[str, Any] = {
                "type": "green_credit_report",
                "document_no": f"GC{today.year}-{row.id:06d}",
                "issued_by": "greenrights 江西省环境权益登记簿",
                "query_id": row.id,
                "bank_name": row.bank_name,
                "enterprise_name": ent.name,
                "enterprise_uscc": ent.uscc,
                "answered_on": today.isoformat(),
                "amount_fen": principal if isinstance(principal, int) else None,
                "answer_sha256": hashlib.sha256(body).hexdigest(),
                "key_id": signature["key_id"],
            }
            ses.add(
                FinanceDocument(
                    code=verification_code(record),
                    kind="green_credit_report",
                    document_no=str(record["document_no"]),
                    query_id=row.id,
                    record=canonical_json(record).decode("utf-8"),
                    issued_at=now,
                )
            )
            await ses.flush()
            uow.audit(
                who.actor,
                "green_credit.answered",
                "finance_green_credit_query",
                str(row.id),
                {"enterprise_id": ent.id, "answer_sha256": record["answer_sha256"]},
            )
            return s.GreenCreditAnswer(query_id=row.id or 0, answer=answer, signature=signature)

        out = await self.db.run(answer_work)
        if out is None:
            await self.db.run(log_refusal)
            raise NotFound("enterprise", field=not_found_field)
        return out

    async def list_queries(self, who: Identity, limit: int = 100) -> list[s.QueryLogOut]:
        async def work(uow: UnitOfWork) -> list[s.QueryLogOut]:
            q = select(FinanceGreenCreditQuery)
            if who.role == Role.EMITTER:
                q = q.where(FinanceGreenCreditQuery.enterprise_organisation_id == who.organisation_id)
            elif who.role == Role.BANK:
                # A bank sees only what it was answered: its refused attempts would tell it who exists.
                q = q.where(
                    FinanceGreenCreditQuery.bank_organisation_id == who.organisation_id,
                    FinanceGreenCreditQuery.outcome == "answered",
                )
            rows = (
                await uow.session.execute(
                    q.order_by(FinanceGreenCreditQuery.id.desc()).limit(max(1, min(limit, LIST_LIMIT_MAX)))  # type: ignore[union-attr]
                )
            ).scalars()
            return [
                s.QueryLogOut(
                    id=r.id or 0,
                    bank_organisation_id=r.bank_organisation_id,
                    bank_name=r.bank_name,
                    enterprise_id=r.enterprise_id,
                    outcome=r.outcome,
                    purpose=r.purpose,
                    project_ref=r.project_ref,
                    asked_at=r.asked_at,
                    has_report=r.answer is not None,
                )
                for r in rows
            ]

        return await self.db.read(work)

    async def green_credit_report(self, who: Identity, query_id: int) -> dict[str, Any]:
        """What the PDF report prints: the signed answer, its signature and verification code."""

        async def work(uow: UnitOfWork) -> dict[str, Any]:
            ses = uow.session
            row = await ses.get(FinanceGreenCreditQuery, query_id)
            visible = (
                row is not None
                and row.answer is not None
                and (
                    who.role == Role.AUDITOR
                    or (who.role == Role.BANK and row.bank_organisation_id == who.organisation_id)
                    or (who.role == Role.EMITTER and row.enterprise_organisation_id == who.organisation_id)
                )
            )
            if row is None or not visible:
                raise NotFound("green-credit query")
            doc = (await ses.execute(select(FinanceDocument).where(FinanceDocument.query_id == row.id))).scalar_one()
            return {
                "answer": json.loads(row.answer or "{}"),
                "signature": {"algorithm": "Ed25519", "key_id": row.key_id or "", "value": row.signature or ""},
                "code": doc.code,
                "document_no": doc.document_no,
                "issued_at": doc.issued_at,
            }

        return await self.db.read(work)

    # ------------------------------------------------------------------------------------------ penalties
    async def issue_penalty_notices(self, who: Identity | None, period_id: int | None = None) -> s.IssueOut:
        """Turn every settled compliance fine (of one period, or all) into a payable notice, once per obligation.
        The due day is N working days after issue, and never earlier than the day the settlement set."""
        if who is not None:
            _require(who, *FINANCE_STAFF)
        now = self.clock.now()
        today = business_date(now)
        fines = await self.compliance.list_fines(period_id)
        actor = self._actor(who)[2]

        async def existing(uow: UnitOfWork) -> set[tuple[int, int]]:
            rows = await uow.session.execute(select(FinancePenalty.period_id, FinancePenalty.obligation_id))
            return {(int(p), int(o)) for p, o in rows.all()}

        have = await self.db.read(existing)
        new = [f for f in fines if (f.period_id, f.obligation_id) not in have]
        orgs: dict[int, int] = {}
        for f in new:
            if f.enterprise_id not in orgs:
                ent = await self.registry.get_enterprise(_READER, f.enterprise_id)
                orgs[f.enterprise_id] = ent.organisation_id
        days = int(param("penalty_payment_working_days", today))
        due = rules.add_working_days(today, days, is_working_day)

        async def work(uow: UnitOfWork) -> s.IssueOut:
            ses = uow.session
            issued: list[int] = []
            already = len(fines) - len(new)
            for f in new:
                lookup = select(FinancePenalty).where(
                    FinancePenalty.period_id == f.period_id, FinancePenalty.obligation_id == f.obligation_id
                )
                row = FinancePenalty(
                    notice_no=f"FK{today:%Y%m%d}-{secrets.token_hex(4).upper()}",
                    enterprise_id=f.enterprise_id,
                    enterprise_organisation_id=orgs[f.enterprise_id],
                    enterprise_name=f.enterprise_name,
                    enterprise_uscc=f.uscc,
                    period_id=f.period_id,
                    period_code=f.period_code,
                    scheme_code=f.scheme_code,
                    obligation_id=f.obligation_id,
                    shortfall=f.shortfall_at_deadline,
                    fine_fen=f.fine_fen,
                    fine_formula=f.fine_formula[:500],
                    citation=f.citation[:500],
                    issued_on=today,
                    due_on=max(due, f.due_on) if f.due_on else due,
                    created_at=now,
                )
                got = await ledger.insert_or_get(ses, row, lookup)
                if got is row:
                    issued.append(row.id or 0)
                    uow.audit(
                        actor,
                        "penalty.issue",
                        "finance_penalty",
                        str(row.id),
                        {"notice_no": row.notice_no, "fine_fen": row.fine_fen, "due_on": row.due_on.isoformat()},
                    )
                else:
                    already += 1
            return s.IssueOut(issued=len(issued), already_issued=already, notices=issued)

        return await self.db.run(work)

    def _penalty_out(self, p: FinancePenalty, today: dt.date) -> s.PenaltyOut:
        bp = int(param("late_surcharge_bp_per_day", today))
        if p.status == "paid":
            due = rules.AmountDue(p.fine_fen, p.surcharge_fen, 0)
            on_paid = business_date(p.paid_at) if p.paid_at else today
            days_late = max(0, (on_paid - p.due_on).days)
        else:
            due = rules.amount_due(p.fine_fen, p.due_on, today, bp)
            days_late = due.days_late
        return s.PenaltyOut(
            id=p.id or 0,
            notice_no=p.notice_no,
            enterprise_id=p.enterprise_id,
            enterprise_name=p.enterprise_name,
            enterprise_uscc=p.enterprise_uscc,
            period_id=p.period_id,
            period_code=p.period_code,
            scheme_code=p.scheme_code,
            shortfall=p.shortfall,
            fine_fen=p.fine_fen,
            fine_yuan=format_fen(p.fine_fen),
            fine_formula=p.fine_formula,
            citation=p.citation,
            issued_on=p.issued_on,
            due_on=p.due_on,
            status=rules.penalty_status(p.status == "paid", p.due_on, today),
            days_late=days_late,
            surcharge_fen=due.surcharge_fen,
            amount_due_fen=0 if p.status == "paid" else due.total_fen,
            amount_due_yuan=format_fen(0 if p.status == "paid" else due.total_fen),
            paid_fen=p.paid_fen,
            paid_at=p.paid_at,
            bank_reference=p.bank_reference,
        )

    async def list_penalties(
        self, who: Identity, *, status: str | None = None, period_id: int | None = None, limit: int = 200
    ) -> list[s.PenaltyOut]:
        today = self._today()

        async def work(uow: UnitOfWork) -> list[s.PenaltyOut]:
            q = select(FinancePenalty)
            if who.role == Role.EMITTER:
                q = q.where(FinancePenalty.enterprise_organisation_id == who.organisation_id)
            if period_id is not None:
                q = q.where(FinancePenalty.period_id == period_id)
            if status == "paid":
                q = q.where(FinancePenalty.status == "paid")
            elif status == "overdue":
                q = q.where(FinancePenalty.status == "unpaid", FinancePenalty.due_on < today)
            elif status == "unpaid":
                q = q.where(FinancePenalty.status == "unpaid", FinancePenalty.due_on >= today)
            rows = (
                await uow.session.execute(q.order_by(FinancePenalty.id).limit(max(1, min(limit, LIST_LIMIT_MAX))))
            ).scalars()
            return [self._penalty_out(p, today) for p in rows]

        return await self.db.read(work)

    async def record_penalty_payment(
        self, who: Identity, penalty_id: int, req: s.RecordPayment, request_key: str | None = None
    ) -> s.PenaltyOut:
        """A bank records that the enterprise paid a notice: exactly the amount due today (fine and late
        surcharge), once. The notice number must match, so a bank cannot pay (or read) notices by guessing ids."""
        _require(who, Role.BANK)
        now = self.clock.now()
        today = business_date(now)
        amount = parse_money_fen(req.amount_yuan, field="amount_yuan")
        reference = clean_text(req.bank_reference, "bank_reference", max_len=100)

        async def work(uow: UnitOfWork) -> s.PenaltyOut:
            ses = uow.session
            p = await ses.get(FinancePenalty, penalty_id)
            if p is None or not secrets.compare_digest(p.notice_no.encode(), req.notice_no.strip()[:40].encode()):
                raise NotFound("penalty notice")
            if p.status == "paid":
                raise Conflict(
                    "penalty-already-paid",
                    f"Notice {p.notice_no} was paid on {p.paid_at}.",
                    extra={"current_state": "paid"},
                )
            due = rules.amount_due(p.fine_fen, p.due_on, today, int(param("late_surcharge_bp_per_day", today)))
            if amount != due.total_fen:
                raise AppError(
                    "payment-amount-mismatch",
                    f"Today {format_fen(due.total_fen)} yuan is due (fine {format_fen(due.fine_fen)}, late surcharge "
                    f"{format_fen(due.surcharge_fen)} for {due.days_late} days); {format_fen(amount)} was given.",
                    field="amount_yuan",
                    extra={"amount_due_fen": due.total_fen, "surcharge_fen": due.surcharge_fen},
                )
            result = await ses.execute(
                update(FinancePenalty)
                .where(FinancePenalty.id == p.id, FinancePenalty.status == "unpaid")
                .values(
                    status="paid",
                    paid_fen=amount,
                    surcharge_fen=due.surcharge_fen,
                    paid_at=now,
                    paid_recorded_by=who.principal_id,
                    paid_bank_organisation_id=who.organisation_id,
                    bank_reference=reference,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:
                raise Conflict(
                    "penalty-already-paid", f"Notice {p.notice_no} was just paid.", extra={"current_state": "paid"}
                )
            payer = await self._account(ses, FINE_PAYER, p.enterprise_id)
            revenue = await self._account(ses, FINE_REVENUE, 0)
            await ledger.create_transfer(
                ses,
                client_id=f"fin:penalty:{p.id}:payment",
                debit_account_id=payer.id or 0,
                credit_account_id=revenue.id or 0,
                asset_id=payer.asset_id,
                amount=amount,
                code="penalty_payment",
                now=now,
                ref=f"finance_penalty:{p.id}",
                field="amount_yuan",
            )
            await ses.refresh(p)
            uow.audit(
                who.actor,
                "penalty.paid",
                "finance_penalty",
                str(p.id),
                {"notice_no": p.notice_no, "paid_fen": amount, "bank_reference": reference},
            )
            return self._penalty_out(p, today)

        return await self.db.run(work)

    async def mark_overdue_penalties(self, day_key: str | None = None) -> dict[str, Any]:
        """The scheduler's daily pass: flag every unpaid notice past its due day (once), for the reminders."""
        today = dt.date.fromisoformat(day_key) if day_key else self._today()

        async def work(uow: UnitOfWork) -> dict[str, Any]:
            ses = uow.session
            ids = [
                int(i)
                for i in (
                    await ses.execute(
                        select(FinancePenalty.id).where(
                            FinancePenalty.status == "unpaid",
                            FinancePenalty.due_on < today,
                            FinancePenalty.overdue_marked_on.is_(None),  # type: ignore[union-attr]
                        )
                    )
                ).scalars()
            ]
            if ids:
                await ses.execute(
                    update(FinancePenalty)
                    .where(FinancePenalty.id.in_(ids), FinancePenalty.overdue_marked_on.is_(None))  # type: ignore[union-attr]
                    .values(overdue_marked_on=today)
                    .execution_options(synchronize_session=False)
                )
                uow.audit(
                    "system:scheduler",
                    "penalty.overdue",
                    "finance_penalty",
                    ",".join(map(str, ids))[:64],
                    {"ids": ids, "on": today.isoformat()},
                )
            return {"marked_overdue": len(ids)}

        return await self.db.run(work)


def _claim_no(claim: FinanceClaim) -> str:
    return rules.claim_no(business_date(claim.created_at).year, claim.id or 0)


def _consent_active(c: FinanceConsent, today: dt.date) -> bool:
    return c.status == "active" and (c.valid_until is None or today <= c.valid_until)


def _check_bank_facts(facts: dict[str, Any]) -> None:
    """Only the green-loan and carbon-tool facts, each a JSON string, whole number, true/false or null: the
    answer is signed over canonical JSON, which has no single form for a float."""
    known: set[str] = set()
    for programme in (GREEN_LOAN, CARBON_TOOL):
        known |= {str(f["name"]) for f in engine.get_programme(programme)["facts"]}  # type: ignore[index, union-attr]
    problems = [(k, "is not a green-loan or carbon-tool fact") for k in sorted(facts) if k not in known]
    problems += [
        (k, "must be text, a whole number, true/false or null")
        for k, v in sorted(facts.items())
        if k in known and not (v is None or isinstance(v, (str, int, bool)))
    ]
    if problems:
        raise facts_problem(problems, prefix="project_facts.")


def _account_no(value: str) -> str:
    """A bank account number as printed: 8 to 32 ASCII digits, optionally grouped by single spaces."""
    compact = value.replace(" ", "")
    if not (8 <= len(compact) <= 32 and compact.isascii() and compact.isdigit()):
        raise InvalidInput("payee_account_no", "Give the bank account number as 8 to 32 digits.")
    return compact
