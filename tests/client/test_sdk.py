"""The SDK against the live app: `greenrights demo` seeds a database, `greenrights serve` runs as a subprocess, and
the SDK does what a client program would. The last test kills the server after it committed a transfer but before
the answer reached the client, restarts it, and checks that the SDK's retry (same Idempotency-Key) got the first
answer back and moved the units exactly once."""

from __future__ import annotations

import re
import signal
import socket
import threading
from pathlib import Path

import httpx
import pytest

from greenrights.client import (
    AsyncClient,
    BadRequest,
    Client,
    Forbidden,
    NotFound,
    RetryPolicy,
    Unauthenticated,
    operations,
)
from registry.schemas import IssueUnits, MoveUnits
from tests.client.conftest import Demo
from tests.e2e.conftest import Server, start_server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_the_operation_table_is_the_apis_own() -> None:
    ops = operations()
    t = ops["createTransfer"]
    assert (t.method, t.path, t.body_type, t.idempotent) == ("POST", "/api/v1/transfers", MoveUnits, True)
    assert ops["listAccountTransactions"].path_params == ("account_id",)
    assert ops["getDailyBars"].method == "GET" and not ops["getDailyBars"].idempotent


def test_transfers_pages_and_typed_refusals(demo: tuple[Demo, Server]) -> None:
    d, _ = demo
    power, cement = d.accounts
    with Client(d.url, api_key=d.keys["power"]) as gr:
        before = sum(h.balance_base for h in gr.holdings(power))
        tx = gr.create_transfer(
            MoveUnits(from_account_id=power, to_account_id=cement, instrument_id=d.instrument_id, quantity="25")
        )
        assert tx.status == "completed" and tx.quantity == "25"
        for _ in range(2):
            gr.create_transfer(
                MoveUnits(from_account_id=power, to_account_id=cement, instrument_id=d.instrument_id, quantity="1")
            )
        assert sum(h.balance_base for h in gr.holdings(power)) == before - 27
        one_by_one = [t.id for t in gr.account_transactions(power, page_size=1)]
        at_once = [t.id for t in gr.call("listAccountTransactions", query={"limit": 100}, account_id=power).items]
        assert one_by_one == at_once and len(one_by_one) >= 4  # allocation + three transfers, across pages

        with pytest.raises(BadRequest) as bad:
            gr.create_transfer(
                MoveUnits(from_account_id=power, to_account_id=cement, instrument_id=d.instrument_id, quantity="-1")
            )
        assert bad.value.status == 422 and bad.value.field == "quantity" and bad.value.code
        with pytest.raises(NotFound) as missing:
            gr.get_transaction(987_654)
        assert missing.value.slug == "not-found"
        with pytest.raises(Forbidden):
            gr.call("issueUnits", IssueUnits(kind="cea", scheme="national", vintage=2025, quantity="1"))
    with Client(d.url, api_key="gr_000000000000_forged") as nobody, pytest.raises(Unauthenticated):
        nobody.holdings(power)


async def test_async_client_signs_in_with_a_password(demo: tuple[Demo, Server]) -> None:
    d, _ = demo
    power, cement = d.accounts
    async with AsyncClient(d.url, username="power", password=d.passwords["power"]) as gr:
        holdings = await gr.holdings(power)
        assert holdings and holdings[0].instrument.id == d.instrument_id
        tx = await gr.create_transfer(
            MoveUnits(from_account_id=power, to_account_id=cement, instrument_id=d.instrument_id, quantity="2")
        )
        assert tx.status == "completed"
        ids = [t.id async for t in gr.account_transactions(power, page_size=2)]
        assert tx.id in ids
    async with AsyncClient(d.url, username="power", password="not-the-password") as wrong:
        with pytest.raises(Unauthenticated):
            await wrong.holdings(power)


class KillingProxy:
    """A loopback proxy in front of the server. Armed, it forwards the next POST /api/v1/transfers, waits for the
    server's whole answer (the transfer is committed), then SIGKILLs the server, drops the client's connection
    without a byte of the answer, and starts a new server on the same database; later requests go to it."""

    def __init__(self, server: Server, restart: callable) -> None:  # type: ignore[valid-type]
        self.server = server
        self.restart = restart
        self.armed = False
        self.killed = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _upstream(self) -> tuple[str, int]:
        host, port = self.server.base_url.removeprefix("http://").split(":")
        return host, int(port)

    @staticmethod
    def _read_message(conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        need = int(m.group(1)) if m else 0
        while len(body) < need:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with client:
                request = self._read_message(client)
                if not request:
                    continue
                try:
                    up = socket.create_connection(self._upstream(), timeout=30)
                except OSError:
                    continue  # the client sees a dropped connection and retries
                with up:
                    up.sendall(request)
                    answer = self._read_message(up)
                if self.armed and request.startswith(b"POST /api/v1/transfers"):
                    self.armed = False
                    self.killed += 1
                    self.server.process.send_signal(signal.SIGKILL)
                    self.server.process.wait(timeout=10)
                    client.close()
                    self.server = self.restart()
                    continue
                client.sendall(answer)

    def close(self) -> None:
        self.sock.close()


def test_a_retry_after_the_server_was_killed_mid_request_moves_the_units_once(
    demo: tuple[Demo, Server], tmp_path: Path
) -> None:
    d, server = demo
    power, cement = d.accounts
    holder = {"server": server}

    def restart() -> Server:
        holder["server"] = start_server(d.db_url, tmp_path / "restarted.log")
        return holder["server"]

    proxy = KillingProxy(server, restart)
    # No keep-alive through the proxy: each attempt is its own connection, as after a real crash.
    transport = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
    try:
        with Client(
            proxy.url,
            api_key=d.keys["power"],
            transport=transport,
            retry=RetryPolicy(attempts=8, first_delay_s=0.2, max_delay_s=1.0),
        ) as gr:
            before = sum(h.balance_base for h in gr.holdings(power))
            proxy.armed = True
            tx = gr.create_transfer(
                MoveUnits(from_account_id=power, to_account_id=cement, instrument_id=d.instrument_id, quantity="137"),
                idempotency_key="sdk-kill-test-1",
            )
            assert proxy.killed == 1  # the first answer was lost with the server
            assert tx.status == "completed" and tx.quantity == "137"
            assert sum(h.balance_base for h in gr.holdings(power)) == before - 137
            moved = [t for t in gr.account_transactions(power) if t.quantity == "137"]
            assert [t.id for t in moved] == [tx.id]  # one transfer, not two
    finally:
        proxy.close()
        # The module's server fixture stops whichever server runs now.
        server.process = holder["server"].process
        server.base_url = holder["server"].base_url
