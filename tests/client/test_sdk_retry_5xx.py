"""The SDK re-sends a value-moving request that got a 5xx with the same Idempotency-Key, and the units move once.

The faults are injected into the SDK's own transport hook (`Client(transport=...)`) in front of the live app
(`greenrights serve` on the demo database): a gateway that answers 503 *after* the app committed the transfer (the
answer is lost; the retry must get the stored answer back, `Idempotent-Replayed: true`), and one that answers 503
*before* the request reaches the app (the retry is the first the app sees). Two checks without a server: retries
are bounded, and a write that carries no Idempotency-Key is never re-sent after a 5xx.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from greenrights.client import Client, RetryPolicy, ServerError, operations
from registry.schemas import MoveUnits
from tests.client.conftest import Demo
from tests.e2e.conftest import Server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

GATEWAY_503 = {"type": "/problems/service-unavailable", "title": "Service Unavailable", "status": 503}


class FaultyGateway(httpx.BaseTransport):
    """Passes every request to the real app; the first `faults` POST /api/v1/transfers are answered 503, either
    after the app answered (`when="after"`: its answer is dropped) or without asking the app (`when="before"`)."""

    def __init__(self, when: str, faults: int = 1) -> None:
        self.inner = httpx.HTTPTransport()
        self.when = when
        self.faults = faults
        self.sent: list[tuple[str | None, bytes]] = []  # (Idempotency-Key, body) of every transfer request
        self.app_answers: list[httpx.Response] = []  # what the app answered to each transfer it saw

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not (request.method == "POST" and request.url.path == "/api/v1/transfers"):
            return self.inner.handle_request(request)
        self.sent.append((request.headers.get("Idempotency-Key"), request.read()))
        fault = self.faults > 0
        self.faults -= 1
        if fault and self.when == "before":
            return httpx.Response(503, json=GATEWAY_503, headers={"Retry-After": "0"})
        response = self.inner.handle_request(request)
        response.read()
        self.app_answers.append(response)
        if fault:
            return httpx.Response(503, json=GATEWAY_503, headers={"Retry-After": "0"})
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("when", ["after", "before"])
def test_a_503_is_retried_with_the_same_idempotency_key_and_the_units_move_once(
    demo: tuple[Demo, Server], when: str
) -> None:
    d, _ = demo
    power, cement = d.accounts
    gateway = FaultyGateway(when)
    quantity = "41" if when == "after" else "43"
    with (
        Client(d.url, api_key=d.keys["power"], transport=gateway, retry=RetryPolicy(attempts=3)) as gr,
        Client(d.url, api_key=d.keys["cement"]) as receiver,
    ):

        def balances() -> tuple[int, int]:
            return sum(h.balance_base for h in gr.holdings(power)), sum(
                h.balance_base for h in receiver.holdings(cement)
            )

        before = balances()
        tx = gr.create_transfer(
            MoveUnits(from_account_id=power, to_account_id=cement, instrument_id=d.instrument_id, quantity=quantity)
        )
        assert tx.status == "completed" and tx.quantity == quantity
        # Two sends of one request: the same key (the SDK's own, not one the caller gave) and the same body.
        assert len(gateway.sent) == 2 and gateway.sent[0] == gateway.sent[1], gateway.sent
        key = gateway.sent[0][0]
        assert key is not None and key.startswith("sdk-")
        if when == "after":
            # The app saw both: it did the transfer on the first and replayed its stored answer on the second.
            first, second = gateway.app_answers
            assert first.status_code == 201 and "idempotent-replayed" not in first.headers
            assert second.status_code == 201 and second.headers["idempotent-replayed"] == "true"
            assert second.json()["id"] == first.json()["id"] == tx.id
        else:
            # The app saw only the retry, which was its first and only effect.
            [only] = gateway.app_answers
            assert only.status_code == 201 and "idempotent-replayed" not in only.headers
        assert balances() == (before[0] - int(quantity), before[1] + int(quantity))
        moved = [t.id for t in gr.account_transactions(power) if t.quantity == quantity]
        assert moved == [tx.id]  # one transfer, not two


def _always_503(log: list[httpx.Request]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        log.append(request)
        return httpx.Response(503, json=GATEWAY_503)

    return httpx.MockTransport(answer)


def test_retries_of_a_5xx_are_bounded_and_end_in_a_server_error() -> None:
    log: list[httpx.Request] = []
    policy = RetryPolicy(attempts=3, first_delay_s=0.001, max_delay_s=0.002)
    with Client("http://sdk.test", api_key="gr_x", transport=_always_503(log), retry=policy) as gr:
        body = MoveUnits(from_account_id=1, to_account_id=2, instrument_id=3, quantity="1")
        with pytest.raises(ServerError) as err:
            gr.create_transfer(body, idempotency_key="k-bounded")
    assert err.value.status == 503
    assert [r.headers["Idempotency-Key"] for r in log] == ["k-bounded"] * 3


def test_a_write_without_an_idempotency_key_is_not_resent_after_a_5xx() -> None:
    op = operations()["evaluateEligibility"]
    assert op.method == "POST" and not op.idempotent
    log: list[httpx.Request] = []
    policy = RetryPolicy(attempts=5, first_delay_s=0.001, max_delay_s=0.002)
    params: dict[str, Any] = dict.fromkeys(op.path_params, 1)
    with (
        Client("http://sdk.test", api_key="gr_x", transport=_always_503(log), retry=policy) as gr,
        pytest.raises(ServerError),
    ):
        gr.call("evaluateEligibility", {"facts": {}}, **params)
    assert len(log) == 1 and "Idempotency-Key" not in log[0].headers
