"""Shared shapes for request bodies and path parameters of every context.

Ids are bounded to the 32-bit range of the id columns, so an absurd id is a 422, never a database overflow.
Request structs forbid unknown fields, so a body that tries to set server-owned fields (status, balance,
approved_by, organisation) is refused; the edge decodes them strictly (no float for an int, no "12" for 12).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.params import PathParameter

MAX_ID = 2**31 - 1

Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
IdPath = Annotated[int, PathParameter(ge=1, le=MAX_ID)]
# A quantity or amount: a decimal string in the display unit, or a JSON integer (parsed by core.quantity).
Amount = str | int


class Req(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body."""
