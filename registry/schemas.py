"""Request and response shapes of the registry API. Requests forbid unknown fields, so a body that tries to set
server-owned fields (status, balance, approved_by, organisation) is refused with 422."""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec

from core.schema import Amount, Id, Req


class CreateEnterprise(Req):
    uscc: str
    name: str
    city: str
    industry_code: str
    is_key_emitter: bool = False
    is_sme: bool = False
    is_high_tech: bool = False


class EnterpriseOut(msgspec.Struct, kw_only=True):
    id: int
    organisation_id: int
    uscc: str
    name: str
    city: str
    industry_code: str
    is_key_emitter: bool
    is_sme: bool
    is_high_tech: bool
    created_at: dt.datetime


class EnterprisePage(msgspec.Struct, kw_only=True):
    items: list[EnterpriseOut]
    next_offset: int | None


class OpenAccount(Req):
    type: Literal["holding", "trading", "allocation"]
    enterprise_id: Id | None = None
    label: str = ""


class AccountOut(msgspec.Struct, kw_only=True):
    id: int
    organisation_id: int
    type: str
    status: str
    label: str
    created_at: dt.datetime


class IssueUnits(Req):
    kind: Literal["cea", "ccer", "energy_use", "gec", "discharge"]
    quantity: Amount
    to_account_id: Id | None = None
    scheme: str | None = None
    vintage: int | None = None
    project_id: str | None = None
    region: str | None = None
    pollutant: str | None = None
    technology: str | None = None
    production_month: str | None = None
    generator: str | None = None
    tradable: bool = True


class MoveUnits(Req):
    from_account_id: Id
    to_account_id: Id
    instrument_id: Id
    quantity: Amount


class AllocateUnits(Req):
    to_account_id: Id
    instrument_id: Id
    quantity: Amount
    from_account_id: Id | None = None


class Decision(Req):
    """A second person's decision: approve or reject, always said explicitly (a reason is required to reject)."""

    decision: Literal["approve", "reject"]
    reason: str = ""


class FreezeUnits(Req):
    account_id: Id
    instrument_id: Id
    quantity: Amount
    legal_basis: Literal["judicial", "administrative", "pledge"]
    authority: str
    reference: str


class Unfreeze(Req):
    reason: str = ""


class SurrenderUnits(Req):
    account_id: Id
    instrument_id: Id
    quantity: Amount
    period: str


class RetireUnits(Req):
    account_id: Id
    instrument_id: Id
    quantity: Amount
    beneficiary: str
    purpose: str = ""


class TrustAccount(Req):
    trusted_account_id: Id


class InstrumentOut(msgspec.Struct, kw_only=True):
    id: int
    code: str
    kind: str
    label_zh: str
    display_unit: str
    scale: int
    scheme: str | None
    vintage: int | None
    project_id: str | None
    region: str | None
    pollutant: str | None
    technology: str | None
    production_month: str | None
    generator: str | None
    tradable: bool
    valid_until: dt.date | None


class SerialRange(msgspec.Struct, kw_only=True):
    first: str
    last: str
    quantity: int


class HoldingOut(msgspec.Struct, kw_only=True):
    instrument: InstrumentOut
    balance: str
    available: str
    held: str
    balance_base: int
    available_base: int
    serial_blocks: list[SerialRange]


class TransactionOut(msgspec.Struct, kw_only=True):
    id: int
    code: str
    status: str
    instrument_id: Id
    instrument_code: str
    from_account_id: Id | None
    to_account_id: Id | None
    quantity: str
    quantity_base: int
    initiated_by: int
    approved_by: int | None
    execute_after: dt.datetime | None
    period: str | None
    details: dict[str, str]
    created_at: dt.datetime
    completed_at: dt.datetime | None


class Page(msgspec.Struct, kw_only=True):
    items: list[TransactionOut]
    next_before_id: int | None
