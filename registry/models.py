"""Tables of the registry: enterprises, registry accounts, unit classes (instruments), the trusted list, and
registry transactions (the Union Registry's transaction log: what was asked, by whom, approved by whom)."""

from __future__ import annotations

import datetime as dt

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, CheckConstraint, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class Enterprise(SQLModel, table=True):
    __tablename__ = "registry_enterprise"
    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", unique=True)
    uscc: str = Field(max_length=18, unique=True)
    name: str = Field(max_length=200)
    city: str = Field(max_length=8)
    industry_code: str = Field(max_length=8)
    is_key_emitter: bool = Field(default=False)
    is_sme: bool = Field(default=False)
    is_high_tech: bool = Field(default=False)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)


class RegistryAccount(SQLModel, table=True):
    __tablename__ = "registry_account"
    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    type: str = Field(max_length=24)
    status: str = Field(max_length=24, default="open")
    label: str = Field(max_length=200, default="")
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)


class Instrument(SQLModel, table=True):
    """A unit class: one kind with fixed attributes. Its ledger asset has the same code."""

    __tablename__ = "registry_instrument"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=120, unique=True)
    asset_id: int = Field(foreign_key="ledger_asset.id", unique=True)
    kind: str = Field(max_length=16)
    scheme: str | None = Field(default=None, max_length=16)
    vintage: int | None = Field(default=None)
    project_id: str | None = Field(default=None, max_length=40)
    region: str | None = Field(default=None, max_length=40)
    pollutant: str | None = Field(default=None, max_length=8)
    technology: str | None = Field(default=None, max_length=16)
    production_month: str | None = Field(default=None, max_length=7)
    generator: str | None = Field(default=None, max_length=40)
    tradable: bool = Field(default=True)
    valid_until: dt.date | None = Field(default=None)
    issuer_organisation_id: int = Field(foreign_key="organisation.id")
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)


class TrustedAccount(SQLModel, table=True):
    __tablename__ = "registry_trusted_account"
    __table_args__ = (UniqueConstraint("account_id", "trusted_account_id", name="uq_trusted_pair"),)
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="registry_account.id")
    trusted_account_id: int = Field(foreign_key="registry_account.id")
    effective_from: dt.datetime = Field(sa_type=DateTimeUTC)
    added_by: int = Field(sa_type=BigInteger)


class RegistryTransaction(SQLModel, table=True):
    """One registry operation. `request_key` (principal:Idempotency-Key) is unique, so a retried request finds
    its first effect instead of making a second; the initiator and approver must differ (checked in the service
    and by a database CHECK)."""

    __tablename__ = "registry_transaction"
    __table_args__ = (
        Index("ix_registry_tx_from", "from_account_id", "id"),
        Index("ix_registry_tx_to", "to_account_id", "id"),
        Index("ix_registry_tx_due", "status", "execute_after"),
        CheckConstraint("approved_by IS NULL OR approved_by <> initiated_by", name="ck_registry_tx_four_eyes"),
    )
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=24)
    status: str = Field(max_length=24)
    instrument_id: int = Field(foreign_key="registry_instrument.id")
    from_account_id: int | None = Field(default=None, foreign_key="registry_account.id")
    to_account_id: int | None = Field(default=None, foreign_key="registry_account.id")
    quantity: int = Field(sa_type=BigInteger)
    initiated_by: int = Field(sa_type=BigInteger)
    initiator_organisation_id: int = Field(foreign_key="organisation.id")
    approved_by: int | None = Field(default=None, sa_type=BigInteger)
    execute_after: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)
    hold_transfer_id: int | None = Field(default=None, foreign_key="ledger_transfer.id")
    request_key: str | None = Field(default=None, max_length=240, unique=True)
    period: str | None = Field(default=None, max_length=16)
    details: str = Field(default="{}", sa_type=Text)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)
    completed_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)
