"""Request and response shapes of the registry API. Requests forbid unknown fields, so a body that tries to set
server-owned fields (status, balance, approved_by, organisation) is refused with 422."""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec

from core.schema import Amount, Code, Id, Name, Note, Reference, Req, Year


class CreateEnterprise(Req):
    uscc: Code
    name: Name
    city: Name
    industry_code: Code
    is_key_emitter: bool = False
    is_sme: bool = False
    is_high_tech: bool = False


class EnterpriseOut(msgspec.Struct, kw_only=True):
    id: int
    organisation_id: int
    uscc: Code
    name: Name
    city: Name
    industry_code: Code
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
    label: Name = ""


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
    scheme: Code | None = None
    vintage: Year | None = None
    project_id: Reference | None = None
    region: Code | None = None
    pollutant: Code | None = None
    technology: Code | None = None
    production_month: Code | None = None
    generator: Name | None = None
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
    reason: Note = ""


class FreezeUnits(Req):
    account_id: Id
    instrument_id: Id
    quantity: Amount
    legal_basis: Literal["judicial", "administrative", "pledge"]
    authority: Name
    reference: Reference


class Unfreeze(Req):
    reason: Note = ""


class SurrenderUnits(Req):
    account_id: Id
    instrument_id: Id
    quantity: Amount
    period: Code


class RetireUnits(Req):
    account_id: Id
    instrument_id: Id
    quantity: Amount
    beneficiary: Name
    purpose: Note = ""


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
