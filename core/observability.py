"""Observability: one log pipeline (structlog over the standard library, so the app, uvicorn and APScheduler log
the same way, as JSON when `log_json` is set), a request id on every request, and Prometheus metrics.

- Request id: `X-Request-Id` from the caller when it is a short token, else a new one; it is answered in the same
  header, bound into every log line of the request and put into every problem body (`request_id`).
- Metrics: Litestar's Prometheus middleware counts requests by operation id, method, route and status, with latency
  histograms; the counters below count what the business cares about, each when its transaction commits. With
  several worker processes set PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import collections
import logging
import re
import sys
import uuid
from contextvars import ContextVar
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.plugins.prometheus import PrometheusConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
_TOKEN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

LEDGER_TRANSFERS = Counter("greenrights_ledger_transfers", "Ledger transfers committed", ["code"])
TRADES = Counter("greenrights_trades", "Trades committed", ["venue"])
ORDERS_ACCEPTED = Counter(
    "greenrights_orders_accepted", "Orders an order book accepted and sequenced, committed", ["side", "kind"]
)
JOB_RUNS = Counter("greenrights_job_runs", "Scheduler job runs finished", ["job", "outcome"])
# Counted by core.http when a request with an Idempotency-Key seen before is answered with the stored answer.
IDEMPOTENT_REPLAYS = Counter("greenrights_idempotency_replays", "Requests answered from a stored first answer")


def count_on_commit(ses: AsyncSession, counter: Counter, **labels: str) -> None:
    """Add one to `counter` when the session's transaction commits (nothing when it rolls back)."""
    sync = ses.sync_session
    pending: list[tuple[Counter, tuple[tuple[str, str], ...]]] | None = sync.info.get("metrics_pending")
    if pending is None:
        pending = sync.info["metrics_pending"] = []

        def flush(session: Any) -> None:
            if session.in_nested_transaction():
                return
            # Summed per counter and labels first (by `collections.Counter`, in C): a batch of orders counts the
            # same few series hundreds of times.
            for (c, lab_items), n in collections.Counter(session.info.pop("metrics_pending", [])).items():
                (c.labels(**dict(lab_items)) if lab_items else c).inc(n)

        def drop(session: Any) -> None:
            if not session.in_nested_transaction():
                session.info.pop("metrics_pending", None)

        event.listen(sync, "after_commit", flush, once=True)
        event.listen(sync, "after_rollback", drop, once=True)
    pending.append((counter, tuple(labels.items())))


def pending_counts(ses: AsyncSession) -> int:
    """How many counts wait for the session's commit: a mark to pass to `forget_counts_since` when a savepoint
    that counted something rolls back (the session's own rollback drops them all by itself)."""
    return len(ses.sync_session.info.get("metrics_pending", ()))


def forget_counts_since(ses: AsyncSession, mark: int) -> None:
    """Drop the counts added after `mark` (a rolled-back savepoint's): they never happened."""
    pending = ses.sync_session.info.get("metrics_pending")
    if pending is not None:
        del pending[mark:]


def prometheus_config() -> PrometheusConfig:
    def operation(request: Any) -> str:
        handler = request.scope.get("route_handler")
        op = getattr(handler, "operation_id", None)
        return op if isinstance(op, str) else "-"

    return PrometheusConfig(
        app_name="greenrights",
        prefix="greenrights_http",
        group_path=True,
        labels={"operation": operation},
        exclude=["^/metrics", "^/static"],
        excluded_http_methods=["OPTIONS", "HEAD"],
    )


class RequestId:
    """Give every request an id (the caller's `X-Request-Id` when it is a short token), bind it for the logs and
    problem bodies, and answer it in `X-Request-Id`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        rid = given if _TOKEN.match(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(rid)
        structlog.contextvars.bind_contextvars(request_id=rid)

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
            REQUEST_ID.reset(token)


def current_request_id() -> str | None:
    return REQUEST_ID.get()


_configured: dict[str, bool] = {}


def configure_logging(json_logs: bool, level: int = logging.INFO) -> None:
    """Route the standard library's loggers (app, uvicorn, APScheduler, SQLAlchemy) through structlog's formatter:
    one format, the request id on each line, JSON when asked. Idempotent."""
    if _configured.get("json") is json_logs:
        return
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    # APScheduler's executor says "Running job ..." at INFO for every run (the audit linker runs each second, the
    # webhook sender every 5 s); each run is recorded in the job-run table, so only its warnings are logged.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
    _configured["json"] = json_logs
