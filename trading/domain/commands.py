"""The commands a book accepts, as plain immutable values with a stable serialisation for the journal.

The sequencer (a database table, one per book) stores each command as `to_dict()` output: a flat dict of
JSON-safe primitives with a `type` tag. `command_from_dict` reads it back; replaying the stored commands
in sequence order rebuilds the book exactly (see `journal.replay`). Field names and tags are a storage
format: add fields with defaults, never rename or remove one.

Times are aware datetimes, stored as ISO 8601 strings with their UTC offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from trading.domain.model import OrderKind, Side
from trading.domain.sessions import is_aware

JsonScalar = str | int | None


def _require_int(data: dict[str, JsonScalar], key: str) -> int:
    value = data[key]
    # bool is a subclass of int; a journal row with true/false in a quantity is corrupt, not 1/0.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"journal field {key!r} must be an integer, got {value!r}")
    return value


def _optional_int(data: dict[str, JsonScalar], key: str) -> int | None:
    if data.get(key) is None:
        return None
    return _require_int(data, key)


def _require_str(data: dict[str, JsonScalar], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ValueError(f"journal field {key!r} must be a string, got {value!r}")
    return value


def _optional_str(data: dict[str, JsonScalar], key: str) -> str | None:
    if data.get(key) is None:
        return None
    return _require_str(data, key)


def _require_time(data: dict[str, JsonScalar], key: str) -> datetime:
    at = datetime.fromisoformat(_require_str(data, key))
    if not is_aware(at):
        raise ValueError(f"journal field {key!r} must carry a UTC offset")
    return at


def _check_type(data: dict[str, JsonScalar], tag: str) -> None:
    if data.get("type") != tag:
        raise ValueError(f"expected a {tag!r} command, got {data.get('type')!r}")


@dataclass(frozen=True, slots=True)
class Place:
    """Enter a new order. `price_fen` is None exactly for MARKET orders."""

    TYPE: ClassVar[str] = "place"
    order_id: int
    side: Side
    kind: OrderKind
    price_fen: int | None
    quantity: int
    owner: str
    at: datetime

    def to_dict(self) -> dict[str, JsonScalar]:
        return {
            "type": self.TYPE,
            "order_id": self.order_id,
            "side": self.side.value,
            "kind": self.kind.value,
            "price_fen": self.price_fen,
            "quantity": self.quantity,
            "owner": self.owner,
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, JsonScalar]) -> Place:
        _check_type(data, cls.TYPE)
        return cls(
            order_id=_require_int(data, "order_id"),
            side=Side(_require_str(data, "side")),
            kind=OrderKind(_require_str(data, "kind")),
            price_fen=_optional_int(data, "price_fen"),
            quantity=_require_int(data, "quantity"),
            owner=_require_str(data, "owner"),
            at=_require_time(data, "at"),
        )


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel the remainder of a resting order. `owner=None` is a system cancel (end of day, regulator)."""

    TYPE: ClassVar[str] = "cancel"
    order_id: int
    at: datetime
    owner: str | None = None

    def to_dict(self) -> dict[str, JsonScalar]:
        return {"type": self.TYPE, "order_id": self.order_id, "at": self.at.isoformat(), "owner": self.owner}

    @classmethod
    def from_dict(cls, data: dict[str, JsonScalar]) -> Cancel:
        _check_type(data, cls.TYPE)
        return cls(
            order_id=_require_int(data, "order_id"),
            at=_require_time(data, "at"),
            owner=_optional_str(data, "owner"),
        )


@dataclass(frozen=True, slots=True)
class Reduce:
    """Reduce a resting order BY `quantity`, keeping its time priority; reducing by all of it cancels it."""

    TYPE: ClassVar[str] = "reduce"
    order_id: int
    quantity: int
    at: datetime
    owner: str | None = None

    def to_dict(self) -> dict[str, JsonScalar]:
        return {
            "type": self.TYPE,
            "order_id": self.order_id,
            "quantity": self.quantity,
            "at": self.at.isoformat(),
            "owner": self.owner,
        }

    @classmethod
    def from_dict(cls, data: dict[str, JsonScalar]) -> Reduce:
        _check_type(data, cls.TYPE)
        return cls(
            order_id=_require_int(data, "order_id"),
            quantity=_require_int(data, "quantity"),
            at=_require_time(data, "at"),
            owner=_optional_str(data, "owner"),
        )


@dataclass(frozen=True, slots=True)
class Pick:
    """Take `quantity` of one listing (摘牌) at the listing's price. `side` is the taker's side."""

    TYPE: ClassVar[str] = "pick"
    order_id: int
    side: Side
    listing_id: int
    quantity: int
    owner: str
    at: datetime

    def to_dict(self) -> dict[str, JsonScalar]:
        return {
            "type": self.TYPE,
            "order_id": self.order_id,
            "side": self.side.value,
            "listing_id": self.listing_id,
            "quantity": self.quantity,
            "owner": self.owner,
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, JsonScalar]) -> Pick:
        _check_type(data, cls.TYPE)
        return cls(
            order_id=_require_int(data, "order_id"),
            side=Side(_require_str(data, "side")),
            listing_id=_require_int(data, "listing_id"),
            quantity=_require_int(data, "quantity"),
            owner=_require_str(data, "owner"),
            at=_require_time(data, "at"),
        )


Command = Place | Cancel | Reduce | Pick

_BY_TYPE: dict[str, type[Place] | type[Cancel] | type[Reduce] | type[Pick]] = {
    Place.TYPE: Place,
    Cancel.TYPE: Cancel,
    Reduce.TYPE: Reduce,
    Pick.TYPE: Pick,
}


def command_from_dict(data: dict[str, JsonScalar]) -> Command:
    """Read one journalled command; raises ValueError on a row that is not a valid command."""
    tag = data.get("type")
    if not isinstance(tag, str) or tag not in _BY_TYPE:
        raise ValueError(f"unknown command type {tag!r}")
    return _BY_TYPE[tag].from_dict(data)
