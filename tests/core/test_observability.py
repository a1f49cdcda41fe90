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


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a /metrics page (0 when the labelled series does not exist yet)."""
    want = {f'{k}="{v}"' for k, v in labels.items()}
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        got_name, _, got_labels = series.partition("{")
        if got_name == name and set(filter(None, got_labels.rstrip("}").split(","))) == want:
            return float(value)
    return 0.0


async def test_a_replayed_post_counts_a_replay_and_a_fresh_one_does_not(env) -> None:
    key = await env.key(Role.REGULATOR)
    body = {"type": "allocation"}
    before = metric((await env.client.get("/metrics")).text, "greenrights_idempotency_replays_total")
    first = await env.post("/api/v1/accounts", key, body, idem="replay-me")
    assert first.status_code == 201, first.text
    fresh = metric((await env.client.get("/metrics")).text, "greenrights_idempotency_replays_total")
    assert fresh == before
    again = await env.post("/api/v1/accounts", key, body, idem="replay-me")
    assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
    after = metric((await env.client.get("/metrics")).text, "greenrights_idempotency_replays_total")
    assert after == before + 1
    other = await env.post("/api/v1/accounts", key, {"type": "holding"}, idem="replay-me")
    assert other.status_code == 422  # same key, other body: a refusal, not a replay
    assert metric((await env.client.get("/metrics")).text, "greenrights_idempotency_replays_total") == after


async def test_orders_accepted_and_trades_executed_are_counted_once_committed(env) -> None:
    from tests.trading.conftest import trading_world

    tw = await trading_world(env, mode="continuous")
    text = (await env.client.get("/metrics")).text
    sells = metric(text, "greenrights_orders_accepted_total", side="sell", kind="limit")
    buys = metric(text, "greenrights_orders_accepted_total", side="buy", kind="limit")
    trades = metric(text, "greenrights_trades_total", venue="continuous")
    r = await tw.order(0, {"side": "sell", "price": "50.00", "quantity": "100"}, idem="ask")
    assert r.status_code == 201, r.text
    r = await tw.order(1, {"side": "buy", "price": "50.00", "quantity": "60"})
    assert r.status_code == 201 and r.json()["status"] == "filled", r.text
    refused = await tw.order(1, {"side": "buy", "price": "50.001", "quantity": "1"})
    assert refused.status_code == 422  # refused: no order, no count
    replay = await tw.order(0, {"side": "sell", "price": "50.00", "quantity": "100"}, idem="ask")
    assert replay.headers.get("idempotent-replayed") == "true"  # answered from the stored reply: not a new order
    text = (await env.client.get("/metrics")).text
    assert metric(text, "greenrights_orders_accepted_total", side="sell", kind="limit") == sells + 1
    assert metric(text, "greenrights_orders_accepted_total", side="buy", kind="limit") == buys + 1
    assert metric(text, "greenrights_trades_total", venue="continuous") == trades + 1


async def test_counts_of_a_rolled_back_savepoint_are_forgotten_and_the_rest_count_at_commit(env) -> None:
    """What trading's group commit does for a command whose savepoint rolled back (trading/books.py)."""
    from prometheus_client import CollectorRegistry, Counter

    from core.observability import count_on_commit, forget_counts_since, pending_counts

    counter = Counter("t_things", "things", ["what"], registry=CollectorRegistry())

    async def work(uow) -> None:
        ses = uow.session
        count_on_commit(ses, counter, what="kept")
        mark = pending_counts(ses)
        try:
            async with ses.begin_nested():
                count_on_commit(ses, counter, what="undone")
                raise RuntimeError("the command failed")
        except RuntimeError:
            forget_counts_since(ses, mark)
        assert counter.labels(what="kept")._value.get() == 0  # nothing before the commit

    await env.db.run(work)
    assert counter.labels(what="kept")._value.get() == 1
    assert counter.labels(what="undone")._value.get() == 0
