"""Request and response shapes of the registry API. Requests forbid unknown fields, so a body that tries to set
server-owned fields (status, balance, approved_by, organisation) is refused with 422."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from core.schema import Amount, Code, Id, Name, Note, Reference, Req, Year, about


class CreateEnterprise(Req):
    """An enterprise to register, known by its unified social credit code (统一社会信用代码)."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "uscc": "91360100000000001Q",
        "name": "南昌示范水泥有限公司",
        "city": "南昌",
        "industry_code": "C3011",
        "is_key_emitter": True,
    }

    uscc: Annotated[
        Code, about("Unified social credit code: 18 characters with a valid GB 32100-2015 check character.")
    ]
    name: Annotated[Name, about("The enterprise's registered name.")]
    city: Annotated[Name, about("The city (prefecture) where the enterprise is registered, e.g. 南昌.")]
    industry_code: Annotated[Code, about("Industry code of GB/T 4754 (e.g. C3011 cement, D4411 power generation).")]
    is_key_emitter: Annotated[bool, about("A key emitting unit (重点排放单位) that takes part in compliance.")] = False
    is_sme: Annotated[bool, about("A small or medium-sized enterprise (for incentive programmes).")] = False
    is_high_tech: Annotated[bool, about("A certified high-tech enterprise (for incentive programmes).")] = False


class EnterpriseOut(msgspec.Struct, kw_only=True):
    """A registered enterprise."""

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
    """A page of enterprises; `next_offset` fetches the next page (null on the last)."""

    items: list[EnterpriseOut]
    next_offset: int | None


class OpenAccount(Req):
    """A registry account to open."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"type": "allocation", "label": "2026 allocation"}

    type: Annotated[
        Literal["holding", "trading", "allocation"],
        about("holding: an enterprise's units; trading: units on the market; allocation: the authority's own."),
    ]
    enterprise_id: (
        Annotated[Id, about("The enterprise that holds the account (holding and trading accounts).")] | None
    ) = None
    label: Annotated[Name, about("A label to tell the account apart.")] = ""


class AccountOut(msgspec.Struct, kw_only=True):
    """A registry account."""

    id: int
    organisation_id: int
    type: str
    status: str
    label: str
    created_at: dt.datetime


class IssueUnits(Req):
    """New units of a unit class to issue; the instrument is created on first issue. A second person of the same
    authority approves the issuance (approveTransfer) before the units exist."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"kind": "cea", "quantity": "100000", "scheme": "provincial", "vintage": 2025}

    kind: Annotated[
        Literal["cea", "ccer", "energy_use", "gec", "discharge"],
        about(
            "cea: carbon emission allowances; ccer: certified voluntary reductions; energy_use: energy-use rights; "
            "gec: green electricity certificates; discharge: pollutant discharge permits. Each kind has its issuer."
        ),
    ]
    quantity: Annotated[Amount, about("How much, in the kind's display unit (tCO2e, tce, MWh, t) or base units.")]
    to_account_id: (
        Annotated[Id, about("The account to issue into; the issuer's allocation account if omitted.")] | None
    ) = None
    scheme: Annotated[Code, about("For cea: national or provincial.")] | None = None
    vintage: Annotated[Year, about("The year the units belong to (cea, ccer, energy_use, discharge).")] | None = None
    project_id: Annotated[Reference, about("For ccer: the registered project (letters, digits, '.', '-').")] | None = (
        None
    )
    region: Annotated[Code, about("For energy_use and discharge: the region the right is valid in.")] | None = None
    pollutant: Annotated[Code, about("For discharge: SO2, NOx, COD, NH3-N or VOCs.")] | None = None
    technology: Annotated[Code, about("For gec: wind, solar, biomass, geothermal, ocean or hydro.")] | None = None
    production_month: Annotated[Code, about("For gec: the month the electricity was produced (YYYY-MM).")] | None = None
    generator: Annotated[Name, about("For gec: the generating plant's code.")] | None = None
    tradable: Annotated[bool, about("Whether the units may be traded (a gec may be issued as not tradable).")] = True


class MoveUnits(Req):
    """Units to move from one of your accounts to another account."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "from_account_id": 11,
        "to_account_id": 12,
        "instrument_id": 1,
        "quantity": "500",
    }

    from_account_id: Annotated[Id, about("Your account the units leave.")]
    to_account_id: Annotated[Id, about("The account the units go to (a trusted account, or approval is needed).")]
    instrument_id: Annotated[Id, about("The instrument (unit class) to move.")]
    quantity: Annotated[Amount, about("How much, in the instrument's display unit or base units.")]


class AllocateUnits(Req):
    """Units to allocate at once from an authority's allocation account to a holder."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"to_account_id": 11, "instrument_id": 1, "quantity": "30000"}

    to_account_id: Annotated[Id, about("The holder's account that receives the units.")]
    instrument_id: Annotated[Id, about("The instrument (unit class) to allocate.")]
    quantity: Annotated[Amount, about("How much, in the instrument's display unit or base units.")]
    from_account_id: Annotated[Id, about("The allocation account to take them from; your own if omitted.")] | None = (
        None
    )


class Decision(Req):
    """A second person's decision: approve or reject, always said explicitly (a reason is required to reject)."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"decision": "approve", "reason": "Checked against the allocation plan."}

    decision: Annotated[Literal["approve", "reject"], about("approve or reject: there is no default.")]
    reason: Annotated[Note, about("Why; required to reject.")] = ""


class FreezeUnits(Req):
    """Units to freeze on an account under a legal order; they stay on the account but cannot be used."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "account_id": 11,
        "instrument_id": 1,
        "quantity": "1000",
        "legal_basis": "judicial",
        "authority": "南昌市中级人民法院",
        "reference": "（2026）赣01执保12号",
    }

    account_id: Annotated[Id, about("The account holding the units.")]
    instrument_id: Annotated[Id, about("The instrument (unit class) to freeze.")]
    quantity: Annotated[Amount, about("How much, in the instrument's display unit or base units.")]
    legal_basis: Annotated[
        Literal["judicial", "administrative", "pledge"],
        about("judicial: a court order; administrative: an authority's decision; pledge: units pledged as security."),
    ]
    authority: Annotated[Name, about("The court or authority that ordered the freeze.")]
    reference: Annotated[Reference, about("The order's document number (文号).")]


class Unfreeze(Req):
    """The release of a freeze."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"reason": "The court lifted the order."}

    reason: Annotated[Note, about("Why the freeze is released, for the audit trail.")] = ""


class SurrenderUnits(Req):
    """Units to surrender against a compliance period's obligation."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"account_id": 11, "instrument_id": 1, "quantity": "25000", "period": "2025"}

    account_id: Annotated[Id, about("The holding account the units leave.")]
    instrument_id: Annotated[Id, about("The instrument (unit class) to surrender.")]
    quantity: Annotated[Amount, about("How much, in the instrument's display unit or base units.")]
    period: Annotated[Code, about("The compliance period the surrender counts towards (its code, e.g. 2025).")]


class RetireUnits(Req):
    """Units to retire for good in someone's name (voluntary cancellation)."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "account_id": 11,
        "instrument_id": 1,
        "quantity": "100",
        "beneficiary": "南昌示范水泥有限公司",
        "purpose": "2025 年度碳中和",
    }

    account_id: Annotated[Id, about("The account the units leave.")]
    instrument_id: Annotated[Id, about("The instrument (unit class) to retire.")]
    quantity: Annotated[Amount, about("How much, in the instrument's display unit or base units.")]
    beneficiary: Annotated[Name, about("In whose name the units are retired.")]
    purpose: Annotated[Note, about("What the retirement is for (shown on the certificate).")] = ""


class TrustAccount(Req):
    """An account to trust: transfers to it need no second approval."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"trusted_account_id": 12}

    trusted_account_id: Annotated[Id, about("The account to add to this account's trusted list.")]


class InstrumentOut(msgspec.Struct, kw_only=True):
    """An instrument: one unit class (kind, scheme, vintage and the kind's other attributes)."""

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
    """A block of consecutive serial numbers held."""

    first: str
    last: str
    quantity: int


class HoldingOut(msgspec.Struct, kw_only=True):
    """What an account holds of one instrument: balance, what is available, what is held (frozen or pending)."""

    instrument: InstrumentOut
    balance: str
    available: str
    held: str
    balance_base: int
    available_base: int
    serial_blocks: list[SerialRange]


class TransactionOut(msgspec.Struct, kw_only=True):
    """A registry transaction: every movement of units, with its code and status."""

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
    """A page of transactions, newest first; `next_before_id` fetches the next page (null on the last)."""

    items: list[TransactionOut]
    next_before_id: int | None
