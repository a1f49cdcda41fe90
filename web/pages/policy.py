"""The policy page for the finance bureau and the authorities: every dated parameter the incentive engine uses, with
its history (validity, publication date, value, citation), and what was in force on a chosen day as known then.
Read-only here: publishing a new value (with a second person's confirmation) is not built yet."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Request, get
from litestar.params import FromQuery
from litestar.response import Template

from core.errors import InvalidInput
from core.identity import Role
from incentives import catalogue
from web.app import page
from web.auth import page_for

READERS = (Role.REGULATOR, Role.ENERGY_AUTHORITY, Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER, Role.AUDITOR)


@get("/policy", guards=[page_for(*READERS)], include_in_schema=False)
async def policy(
    request: Request[Any, Any, Any], name: FromQuery[str | None] = None, on: FromQuery[str | None] = None
) -> Template:
    params = catalogue.list_parameters()
    detail = None
    day = None
    if on:
        try:
            day = dt.date.fromisoformat(on)
        except ValueError:
            raise InvalidInput("on", "Give the day as YYYY-MM-DD.") from None
    if name:
        detail = catalogue.parameter_history(name[:100], on=day, known_on=day)
    return page(request, "policy/index.html", params=params, detail=detail, on=on or "")


ROUTES: list[Any] = [policy]
