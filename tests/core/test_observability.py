"""Request ids and metrics: every answer carries X-Request-Id (the caller's when it is a short token), problem
bodies carry it too, and /metrics counts requests by operation and the ledger transfers that committed."""

from __future__ import annotations

import json
import logging

from core.identity import Role
from core.observability import configure_logging


async def test_request_id_is_answered_and_in_problem_bodies(env) -> None:
    r = await env.client.get("/health", headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await env.client.get("/health", headers={"X-Request-Id": "bad id with spaces" * 10})
    assert r.headers["x-request-id"] != "bad id with spaces" * 10 and len(r.headers["x-request-id"]) == 32
    key = await env.key(Role.REGULATOR)
    r = await env.client.get("/api/v1/transactions/999999", headers={"Authorization": f"Bearer {key}",
                                                                  "X-Request-Id": "trace-1"})  # fmt: skip
    assert r.status_code == 404
    assert r.json()["request_id"] == "trace-1" and r.headers["x-request-id"] == "trace-1"


async def test_metrics_count_requests_by_operation_and_committed_transfers(env) -> None:
    from tests.helpers import world

    before = await env.client.get("/metrics")
    assert before.status_code == 200
    w = await world(env, n_enterprises=2, issue=1_000)
    a, b = w.enterprises
    r = await env.post("/api/v1/accounts", w.regulator, {"type": "allocation"})
    text = (await env.client.get("/metrics")).text
    assert 'operation="openAccount"' in text and "greenrights_http_requests_total" in text
    assert "greenrights_ledger_transfers_total" in text
    issued = [ln for ln in text.splitlines() if ln.startswith('greenrights_ledger_transfers_total{code="issuance"}')]
    assert issued and float(issued[0].split()[-1]) >= 1
    assert r.status_code == 201 and a and b


def test_json_logs_carry_the_request_id(capsys) -> None:
    import structlog

    configure_logging(json_logs=True)
    try:
        structlog.contextvars.bind_contextvars(request_id="rid-7")
        logging.getLogger("greenrights.test").info("hello %s", "there")
        structlog.contextvars.unbind_contextvars("request_id")
        line = capsys.readouterr().err.strip().splitlines()[-1]
        entry = json.loads(line)
        assert entry["event"] == "hello there" and entry["request_id"] == "rid-7" and entry["level"] == "info"
    finally:
        configure_logging(json_logs=False)
        logging.getLogger().handlers = []
