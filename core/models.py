"""Tables of the shared kernel: the ledger, identity, idempotency and the audit chain."""

from __future__ import annotations

import datetime as dt

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

# A 64-bit surrogate key; SQLite autoincrements only an INTEGER PRIMARY KEY (which is 64-bit there anyway).
_ID = BigInteger().with_variant(Integer(), "sqlite")


class LedgerAsset(SQLModel, table=True):
    """What is counted: a unit class or CNY. `scale` is how many decimals its display unit has over the base unit."""

    __tablename__ = "ledger_asset"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=120, unique=True)
    scale: int = Field(default=0)
    serialised: bool = Field(default=False)
    # The next free serial number; only issuance advances it, by a conditional UPDATE.
    next_serial: int = Field(default=0, sa_type=BigInteger)


class LedgerAccount(SQLModel, table=True):
    """One asset held by one owner. Balances change only by transfers, through conditional updates."""

    __tablename__ = "ledger_account"
    __table_args__ = (
        UniqueConstraint("owner_kind", "owner_id", "asset_id", name="uq_ledger_account_owner_asset"),
        CheckConstraint(
            "debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 AND credits_pending >= 0",
            name="ck_ledger_account_nonneg",
        ),
        CheckConstraint(
            "NOT debits_must_not_exceed_credits OR debits_posted + debits_pending <= credits_posted",
            name="ck_ledger_account_dmnec",
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    asset_id: int = Field(foreign_key="ledger_asset.id", index=True)
    owner_kind: str = Field(max_length=24)
    owner_id: int = Field(sa_type=BigInteger)
    role: str = Field(max_length=24)
    debits_must_not_exceed_credits: bool = Field(default=True)
    credits_must_not_exceed_debits: bool = Field(default=False)
    debits_pending: int = Field(default=0, sa_type=BigInteger)
    debits_posted: int = Field(default=0, sa_type=BigInteger)
    credits_pending: int = Field(default=0, sa_type=BigInteger)
    credits_posted: int = Field(default=0, sa_type=BigInteger)


class LedgerTransfer(SQLModel, table=True):
    """An immutable movement. `kind` is posted, pending, post_pending or void_pending; `resolves_id` is unique so
    that a hold is posted or voided exactly once, enforced by the database."""

    __tablename__ = "ledger_transfer"
    __table_args__ = (
        CheckConstraint("amount >= 0", name="ck_ledger_transfer_amount"),
        CheckConstraint("debit_account_id <> credit_account_id", name="ck_ledger_transfer_distinct"),
        Index("ix_ledger_transfer_debit", "debit_account_id", "id"),
        Index("ix_ledger_transfer_credit", "credit_account_id", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(max_length=100, unique=True)
    debit_account_id: int = Field(foreign_key="ledger_account.id")
    credit_account_id: int = Field(foreign_key="ledger_account.id")
    asset_id: int = Field(foreign_key="ledger_asset.id")
    amount: int = Field(sa_type=BigInteger)
    code: str = Field(max_length=32)
    kind: str = Field(max_length=16)
    resolves_id: int | None = Field(default=None, foreign_key="ledger_transfer.id", unique=True)
    ref: str | None = Field(default=None, max_length=64, index=True)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)


class SerialBlock(SQLModel, table=True):
    """A half-open range [serial_start, serial_end) of unit serial numbers held by one ledger account."""

    __tablename__ = "serial_block"
    __table_args__ = (
        CheckConstraint("quantity = serial_end - serial_start", name="ck_serial_block_quantity"),
        CheckConstraint("serial_start >= 0 AND serial_end > serial_start", name="ck_serial_block_range"),
        Index("ix_serial_block_account_start", "ledger_account_id", "serial_start"),
    )
    id: int | None = Field(default=None, primary_key=True)
    ledger_account_id: int = Field(foreign_key="ledger_account.id")
    asset_id: int = Field(foreign_key="ledger_asset.id")
    serial_start: int = Field(sa_type=BigInteger)
    serial_end: int = Field(sa_type=BigInteger)
    quantity: int = Field(sa_type=BigInteger)


class Organisation(SQLModel, table=True):
    """A legal person that principals act for: an authority, an enterprise, a bank, a verifier, a member."""

    __tablename__ = "organisation"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=24)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)


class Principal(SQLModel, table=True):
    """A staff user (username + argon2id password) or a machine client (API key, stored as a hash)."""

    __tablename__ = "principal"
    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    role: str = Field(max_length=24)
    kind: str = Field(max_length=8)
    label: str = Field(default="", max_length=200)
    username: str | None = Field(default=None, max_length=100, unique=True)
    password_hash: str | None = Field(default=None, max_length=200)
    key_prefix: str | None = Field(default=None, max_length=16, unique=True)
    key_hash: str | None = Field(default=None, max_length=64)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)
    revoked_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)
    # An API key may carry an expiry: from this instant on it authenticates nobody (None: until revoked).
    expires_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)
    # Sign-in throttling (core.identity.check_login): consecutive wrong passwords, and the lock they set.
    failed_logins: int = Field(default=0)
    locked_until: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)


class SignInAddress(SQLModel, table=True):
    """Failed sign-ins from one client address (core.identity.check_login): how many since the window began, and the
    lock they set. One row per address that tried recently; stale rows are deleted as failures are recorded."""

    __tablename__ = "sign_in_address"
    address: str = Field(primary_key=True, max_length=64)
    failures: int = Field(default=0)
    window_started_at: dt.datetime = Field(sa_type=DateTimeUTC)
    locked_until: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)


class WebSession(SQLModel, table=True):
    """A signed-in person's browser session (web/). The cookie carries a random token; only its SHA-256 is stored,
    so a copy of the table signs nobody in. Deleted at sign-out; refused after the idle or absolute limit."""

    __tablename__ = "web_session"
    id: str = Field(primary_key=True, max_length=64)
    principal_id: int = Field(foreign_key="principal.id", index=True)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)
    last_seen_at: dt.datetime = Field(sa_type=DateTimeUTC)


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("principal_id", "key", name="uq_idempotency_principal_key"),)
    id: int | None = Field(default=None, primary_key=True)
    principal_id: int = Field(sa_type=BigInteger)
    key: str = Field(max_length=200)
    request_hash: str = Field(max_length=64)
    state: str = Field(max_length=12)
    response_status: int | None = Field(default=None)
    response_body: str | None = Field(default=None, sa_type=Text)
    response_type: str | None = Field(default=None, max_length=100)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)
    lease_until: dt.datetime = Field(sa_type=DateTimeUTC)


class AuditHead(SQLModel, table=True):
    """One row: the linked chain's length and last hash, moved only by the linker (`core.audit.link_pending`)."""

    __tablename__ = "audit_head"
    id: int = Field(default=1, primary_key=True)
    seq: int = Field(default=0, sa_type=BigInteger)
    hash: str = Field(default="0" * 64, max_length=64)


class AuditEntry(SQLModel, table=True):
    """One audited change. Writers insert it with `id` only; the linker gives it its place in the chain (`seq`,
    unique and gapless) and `prev_hash`/`hash`, after it committed (`core.audit`)."""

    __tablename__ = "audit_entry"
    id: int | None = Field(default=None, primary_key=True, sa_type=_ID)
    seq: int | None = Field(default=None, sa_type=BigInteger, unique=True)
    at: dt.datetime = Field(sa_type=DateTimeUTC)
    actor: str = Field(max_length=100)
    action: str = Field(max_length=64)
    entity: str = Field(max_length=64)
    entity_id: str = Field(max_length=64, index=True)
    data: str = Field(sa_type=Text)
    prev_hash: str | None = Field(default=None, max_length=64)
    hash: str | None = Field(default=None, max_length=64)


class IssuedDocument(SQLModel, table=True):
    """A document the registry issued (an account statement, a compliance report): the canonical JSON `record`
    its verification code hashes and the facts the public page shows, so `/verify/{code}` can vouch for it
    without a login. A later document of the same `kind` and `ref` (the same account, the same period) supersedes
    it; both stay on record (`core.documents`)."""

    __tablename__ = "issued_document"
    __table_args__ = (Index("ix_issued_document_kind_ref", "kind", "ref", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=24, unique=True)
    kind: str = Field(max_length=32)
    ref: str = Field(max_length=64)
    title: str = Field(max_length=100)
    subject_name: str = Field(default="", max_length=200)
    subject_uscc: str = Field(default="", max_length=18)
    issued_by: str = Field(max_length=200)
    facts: str = Field(sa_type=Text)
    record: str = Field(sa_type=Text)
    issued_at: dt.datetime = Field(sa_type=DateTimeUTC)


class SandboxClockState(SQLModel, table=True):
    """The sandbox mark and its simulated clock (core/sandbox.py). The row exists only in a database created empty
    with `greenrights db upgrade --sandbox`; no API writes it. A database without it is production: real time.
    The simulated now is system time plus `offset_us` microseconds; the offset only grows."""

    __tablename__ = "sandbox_clock"
    __table_args__ = (
        CheckConstraint("id = 1", name="ck_sandbox_clock_one_row"),
        CheckConstraint("offset_us >= 0", name="ck_sandbox_clock_forward"),
    )
    id: int = Field(default=1, primary_key=True)
    marked_at: dt.datetime = Field(sa_type=DateTimeUTC)
    offset_us: int = Field(default=0, sa_type=BigInteger)
    moves: int = Field(default=0)
    moved_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)


class DocumentSequence(SQLModel, table=True):
    """The last number given in a numbering series per year (the 文号 of the finance bureau's letters:
    赣财建〔2026〕12号). `core.documents.next_number` takes the next one in one atomic upsert, so two letters
    issued at the same moment never share a number."""

    __tablename__ = "document_sequence"
    series: str = Field(primary_key=True, max_length=40)
    year: int = Field(primary_key=True)
    last: int = Field(default=0)
