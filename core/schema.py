"""Shared shapes for request bodies and path parameters of every context.

Ids are bounded to the 32-bit range of the id columns, so an absurd id is a 422, never a database overflow.
Every other input is bounded too (tests/test_openapi_bounds.py walks the OpenAPI document): amounts by what a
64-bit balance holds, texts by their meaning (the aliases below), lists and free objects by a count.
Request structs forbid unknown fields, so a body that tries to set server-owned fields (status, balance,
approved_by, organisation) is refused; the edge decodes them strictly (no float for an int, no "12" for 12).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar.params import PathParameter

from core.quantity import AMOUNT_TEXT_MAX, INT64_MAX

MAX_ID = 2**31 - 1


def about(text: str) -> msgspec.Meta:
    """A field's description in the OpenAPI document: `name: Annotated[Name, about("...")]`. Put it around the
    bounded type and `| None` outside (`Annotated[Code, about("...")] | None`): an outer Meta around an optional
    alias hides the alias's bounds from the document."""
    return msgspec.Meta(description=text)


Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
IdPath = Annotated[int, PathParameter(ge=1, le=MAX_ID)]

# A quantity or amount: a decimal string in the display unit, or a JSON integer (parsed by core.quantity, which
# refuses a negative or zero amount and one that does not fit a 64-bit balance). Litestar does not document the
# bounds of the arms of a union, so the schema of the arms is stated beside them (from the same constants).
AmountText = Annotated[str, msgspec.Meta(max_length=AMOUNT_TEXT_MAX)]
AmountInt = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
_AMOUNT_ARMS = [
    {"type": "string", "maxLength": AMOUNT_TEXT_MAX},
    {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
]
Amount = Annotated[AmountText | AmountInt, msgspec.Meta(extra_json_schema={"extra": {"oneOf": _AMOUNT_ARMS}})]
OptAmount = Annotated[
    AmountText | AmountInt | None,
    msgspec.Meta(extra_json_schema={"extra": {"oneOf": [*_AMOUNT_ARMS, {"type": "null"}]}}),
]
"""An optional amount (`Amount | None` would lose the documented bounds)."""


def int_range(low: int, high: int) -> msgspec.Meta:
    """An integer in [low, high], the bounds also stated for the document (Litestar drops a minimum of 0 from an
    optional field)."""
    return msgspec.Meta(ge=low, le=high, extra_json_schema={"extra": {"minimum": low, "maximum": high}})


# Texts, bounded by what they are.
CODE_MAX = 64
NAME_MAX = 200
REFERENCE_MAX = 200
NOTE_MAX = 2000
Code = Annotated[str, msgspec.Meta(max_length=CODE_MAX)]
"""A short identifier: a scheme, pollutant, programme, period, region or job code, a status."""
Name = Annotated[str, msgspec.Meta(max_length=NAME_MAX)]
"""A name or label of a person, organisation, authority, beneficiary, bank."""
Reference = Annotated[str, msgspec.Meta(max_length=REFERENCE_MAX)]
"""A document, notice, bank or project reference, an account number."""
Note = Annotated[str, msgspec.Meta(max_length=NOTE_MAX)]
"""Free text: a reason, a note, a purpose."""
CodePath = Annotated[str, PathParameter(max_length=CODE_MAX)]
NamePath = Annotated[str, PathParameter(max_length=NAME_MAX)]

# A free object (facts, overrides, a calendar): at most this many keys.
FREE_KEYS_MAX = 256
YEAR_MIN = 1900
YEAR_MAX = 2200
Year = Annotated[int, int_range(YEAR_MIN, YEAR_MAX)]
BP_MAX = 10_000
Bps = Annotated[int, int_range(0, BP_MAX)]
"""A share in basis points (0 to 100 %)."""


class Req(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body."""


FreeObject = Annotated[
    dict[str, Any],
    msgspec.Meta(max_length=FREE_KEYS_MAX, extra_json_schema={"extra": {"maxProperties": FREE_KEYS_MAX}}),
]
"""A free object of at most FREE_KEYS_MAX keys (the count is documented beside it: Litestar does not)."""

# Lists in a body: at most ROWS_MAX items (an allocation table, a register of obligations, report lines, claims).
# Litestar drops the bounds of a list's items from the document, so they are stated beside the list.
ROWS_MAX = 100_000
SHORT_LIST_MAX = 64
IdList = Annotated[
    list[Id],
    msgspec.Meta(
        max_length=ROWS_MAX,
        extra_json_schema={"extra": {"items": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}},
    ),
]
YearList = Annotated[
    list[Year],
    msgspec.Meta(
        max_length=SHORT_LIST_MAX,
        extra_json_schema={"extra": {"items": {"type": "integer", "minimum": YEAR_MIN, "maximum": YEAR_MAX}}},
    ),
]
NoteList = Annotated[
    list[Note],
    msgspec.Meta(
        max_length=SHORT_LIST_MAX, extra_json_schema={"extra": {"items": {"type": "string", "maxLength": NOTE_MAX}}}
    ),
]
