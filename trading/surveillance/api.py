"""The regulator's surveillance API: alerts with their evidence, their resolution, and a scan on demand."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import FromQuery, JSONBody, QueryParameter

from core.http import READ_PROBLEMS, WRITE_PROBLEMS, allow
from core.identity import Identity, Role
from core.schema import MAX_ID, IdPath, about
from trading.context import TradingContext
from trading.surveillance import service as sv

Pattern = Literal["wash_trade", "layering", "marking_the_close", "concentration", "price_against_band"]


class ScanRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A trading day to scan now."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"trade_date": "2026-03-02"}

    trade_date: Annotated[dt.date, about("The trading day to scan (Asia/Shanghai).")]


def ctx(request: Request[Any, Any, Any]) -> TradingContext:
    return request.app.state.trading.ctx  # type: ignore[no-any-return]


class SurveillanceController(Controller):
    path = "/api/v1/surveillance"
    tags = ["surveillance"]

    @get(
        "/alerts",
        operation_id="listSurveillanceAlerts",
        guards=[allow(Role.REGULATOR, Role.AUDITOR)],
        responses=READ_PROBLEMS,
    )
    async def alerts(
        self,
        request: Request[Identity, Any, Any],
        status: FromQuery[Literal["open", "investigating", "dismissed", "confirmed"] | None] = None,
        pattern: FromQuery[Pattern | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        before_id: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
    ) -> list[sv.AlertOut]:
        """Alerts newest first, each with its evidence (trade and order ids, the figures the rule measured)."""
        return await sv.list_alerts(
            ctx(request), request.user, status=status, pattern=pattern, limit=limit, before_id=before_id
        )

    @post(
        "/alerts/{alert_id:int}/resolution",
        operation_id="resolveSurveillanceAlert",
        guards=[allow(Role.REGULATOR)],
        status_code=200,
        responses=WRITE_PROBLEMS,
    )
    async def resolve(
        self, request: Request[Identity, Any, Any], alert_id: IdPath, data: JSONBody[sv.ResolveAlert]
    ) -> sv.AlertOut:
        """Move an alert to investigating, dismissed or confirmed; dismissing or confirming needs a note."""
        return await sv.resolve_alert(ctx(request), request.user, alert_id, data)

    @post(
        "/scans",
        operation_id="runSurveillanceScan",
        guards=[allow(Role.REGULATOR)],
        status_code=200,
        responses=WRITE_PROBLEMS,
    )
    async def scan(self, request: Request[Identity, Any, Any], data: JSONBody[ScanRequest]) -> sv.ScanOut:
        """Scan one trading day now (the nightly job does it after the close); alerts already found are kept once."""
        return await sv.scan_day(ctx(request), data.trade_date)


CONTROLLERS = [SurveillanceController]
