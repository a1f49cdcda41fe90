"""The outbox and webhooks: an event commits with its change (and never without it), each organisation sees only
its own events, a registered endpoint receives them signed (Standard Webhooks), survives being down (delivered once
after it comes back), a dead delivery is listed and replayed, a rotation signs with both secrets, and a URL that
points at a private, loopback or link-local address is refused."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from core.clock import FixedClock
from core.db import UnitOfWork
from core.events import EVENT_TYPES
from core.identity import Role
from core.settings import Settings
from core.webhooks import Policy, backoff_s, check_url, sweep
from registry.compliance.reminders import step_for
from registry.models import TrustedAccount
from server.app import create_app
from tests.conftest import BACKENDS, START, Env, schema_database_url
from tests.finance.kit import BASE, finance_world, to_reviewed
from tests.helpers import allocate, world

REPO = Path(__file__).resolve().parents[2]
ENDPOINTS = "/api/v1/webhook-endpoints"


# ------------------------------------------------------------------------------------------- a receiver
@dataclass
class Receiver:
    """A real HTTP endpoint on 127.0.0.1: records every POST; answers `status` (503 while "down")."""

    status: int = 200
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0
    server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        if self.status < 300:
            self.got.append((headers, body))
        writer.write(f"HTTP/1.1 {self.status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/greenrights"

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(b) for _, b in self.got]


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks verification by hand (the receiver's side): any v1 signature over id.timestamp.body."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{body.decode()}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(sig == f"v1,{expected}" for sig in headers["webhook-signature"].split(" "))


@pytest.fixture(params=BACKENDS)
async def hook_env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    url = schema_database_url(request.param, tmp_path)
    clock = FixedClock(START)
    settings = Settings(
        database_url=url, scheduler_embedded=False, webhook_allow_http=True, webhook_allowed_hosts="127.0.0.1"
    )
    app = create_app(settings, clock)
    await app.state.registry.bootstrap()
    client = AsyncTestClient(app=app)
    await client.__aenter__()
    env = Env(url=url, client=client, db=app.state.db, clock=clock, app=app)
    try:
        yield env
    finally:
        await client.__aexit__(None, None, None)
        await env.db.dispose()


async def run_sweep(env: Env, retry_for_s: float = 86_400.0) -> Any:
    return await sweep(env.db, env.clock, Policy(allow_http=True, allowed_hosts=("127.0.0.1",)),
                       retry_for_s=retry_for_s, rng=random.Random(7))  # fmt: skip


async def trust(env: Env, a: int, b: int) -> None:
    async def work(uow: UnitOfWork) -> None:
        uow.session.add(
            TrustedAccount(
                account_id=a, trusted_account_id=b, added_by=0, effective_from=env.clock.now() - dt.timedelta(days=7)
            )
        )

    await env.db.run(work)


async def inbox(env: Env, key: str, **params: Any) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    r = await env.get(f"/api/v1/events?{query}", key)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------- the outbox
async def test_a_transfer_emits_one_event_to_both_sides_and_a_refused_one_none(env: Env) -> None:
    w = await world(env, n_enterprises=3)
    a, b, c = w.enterprises
    await allocate(env, w, a["account_id"], 100)
    await trust(env, a["account_id"], b["account_id"])
    body = {"from_account_id": a["account_id"], "to_account_id": b["account_id"],
            "instrument_id": w.instrument_id, "quantity": "40"}  # fmt: skip
    r = await env.post("/api/v1/transfers", a["key"], body)
    assert r.status_code == 201 and r.json()["status"] == "completed", r.text
    mine = [e for e in await inbox(env, a["key"]) if e["type"] == "transfer.completed"]
    theirs = [e for e in await inbox(env, b["key"]) if e["type"] == "transfer.completed"]
    assert len(mine) == len(theirs) == 1 and mine[0]["id"] == theirs[0]["id"]
    data = mine[0]["data"]
    assert data == {
        "transaction_id": r.json()["id"], "instrument_code": r.json()["instrument_code"], "quantity": "40",
        "from_account_id": a["account_id"], "to_account_id": b["account_id"],
        "completed_at": data["completed_at"],
    }  # fmt: skip
    assert mine[0]["id"].startswith("evt_") and mine[0]["version"] == 1 and mine[0]["occurred_at"].endswith("Z")
    # The third enterprise sees none of it; the regulator sees everything.
    assert [e for e in await inbox(env, c["key"]) if e["type"] == "transfer.completed"] == []
    assert mine[0]["id"] in {e["id"] for e in await inbox(env, w.regulator)}
    # A refused transfer (more than the balance) leaves no event behind.
    before = len(await inbox(env, a["key"]))
    r = await env.post("/api/v1/transfers", a["key"], {**body, "quantity": "1000"})
    assert r.status_code == 409, r.text
    assert len(await inbox(env, a["key"])) == before
    # Paging: after the last seq there is nothing new.
    assert await inbox(env, a["key"], after=max(e["seq"] for e in await inbox(env, a["key"]))) == []
    r = await env.get("/api/v1/events?type=no.such", a["key"])
    assert r.status_code == 422 and r.json()["field"] == "type"


async def test_an_approved_transfer_to_an_untrusted_account_emits_when_it_executes(env: Env) -> None:
    w = await world(env, n_enterprises=2)
    a, b = w.enterprises
    await allocate(env, w, a["account_id"], 10)
    body = {"from_account_id": a["account_id"], "to_account_id": b["account_id"],
            "instrument_id": w.instrument_id, "quantity": "5"}  # fmt: skip
    tx = (await env.post("/api/v1/transfers", a["key"], body)).json()
    assert tx["status"] == "awaiting_approval"
    r = await env.post(f"/api/v1/transactions/{tx['id']}/approval", a["key2"], {"decision": "approve"})
    assert r.status_code == 200, r.text
    assert [e for e in await inbox(env, b["key"]) if e["type"] == "transfer.completed"] == []
    env.clock.advance(dt.timedelta(days=3))
    assert await env.app.state.registry.execute_due_transfers() == 1
    got = [e for e in await inbox(env, b["key"]) if e["type"] == "transfer.completed"]
    assert [e["data"]["transaction_id"] for e in got] == [tx["id"]]


def test_every_event_type_and_field_is_documented() -> None:
    doc = (REPO / "docs" / "events.md").read_text(encoding="utf-8")
    for name, spec in EVENT_TYPES.items():
        section = doc.split(f"### `{name}`", 1)
        assert len(section) == 2, f"docs/events.md has no section for {name}"
        body = section[1].split("\n### ", 1)[0]
        assert f"version {spec.version}" in body, name
        for f in spec.fields:
            assert f"`{f}`" in body, f"docs/events.md: {name} does not document {f}"


# ------------------------------------------------------------------------------------------- webhooks
async def test_an_endpoint_receives_signed_events_for_a_transfer_a_claim_decision_and_a_consent_revocation(
    hook_env: Env,
) -> None:
    env = hook_env
    fw = await finance_world(env, n_enterprises=1)
    ent = fw.ents[0]
    receiver = Receiver()
    await receiver.start()
    try:
        r = await env.post(ENDPOINTS, ent["key"], {"url": receiver.url, "event_types": ["*"], "description": "ERP"})
        assert r.status_code == 201, r.text
        endpoint = r.json()
        secret = endpoint["secret"]
        assert secret.startswith("whsec_")
        listed = (await env.get(ENDPOINTS, ent["key"])).json()
        assert [e["id"] for e in listed] == [endpoint["id"]] and listed[0]["secret"] is None

        # A transfer (the enterprise's own two accounts: completes at once), a claim decision, a consent revocation.
        w_inst = await _units_for(env, fw, ent)
        r = await env.post("/api/v1/accounts", fw.regulator, {"type": "holding", "enterprise_id": ent["id"]})
        second = r.json()["id"]
        r = await env.post("/api/v1/transfers", ent["key"], {"from_account_id": ent["account_id"],
                           "to_account_id": second, "instrument_id": w_inst, "quantity": "3"})  # fmt: skip
        assert r.status_code == 201 and r.json()["status"] == "completed", r.text
        c = await to_reviewed(fw, ent)
        r = await env.post(f"{BASE}/claims/{c['id']}/rejection", fw.approver, {"reason": "材料不全"})
        assert r.status_code == 200, r.text
        grant = {"enterprise_id": ent["id"], "bank_organisation_id": fw.bank_org, "purpose": "贷前审查"}
        r = await env.post(f"{BASE}/consents", ent["key"], grant)
        assert r.status_code in (200, 201), r.text
        r = await env.post(f"{BASE}/consents/{r.json()['id']}/revocation", ent["key"], {})
        assert r.status_code == 200, r.text

        out = await run_sweep(env)
        assert out.delivered == out.fanned_out >= 4 and out.failed == 0
        types = [e["type"] for e in receiver.events()]
        for t in ("transfer.completed", "claim.submitted", "claim.decided", "consent.granted", "consent.revoked"):
            assert t in types, (t, types)
        decided = next(e for e in receiver.events() if e["type"] == "claim.decided")
        assert decided["data"]["decision"] == "rejected" and decided["data"]["reason"] == "材料不全"
        for headers, body in receiver.got:
            assert verify(secret, headers, body)
            assert headers["webhook-id"] == json.loads(body)["id"]
            assert int(headers["webhook-timestamp"]) == int(env.clock.now().timestamp())
        # A second sweep sends nothing again.
        again = await run_sweep(env)
        assert (again.fanned_out, again.delivered) == (0, 0) and len(receiver.got) == len(types)
        # Another organisation cannot see or touch this endpoint.
        r = await env.post(f"{ENDPOINTS}/{endpoint['id']}/disable", fw.bank, {})
        assert r.status_code == 404 and r.json()["field"] == "endpoint_id"
    finally:
        await receiver.stop()


async def _units_for(env: Env, fw: Any, ent: dict[str, Any]) -> int:
    """Issue (four-eyes) and allocate 10 allowances to the enterprise; the instrument id."""
    reg2 = await env.key(Role.REGULATOR, (await env.get("/api/v1/api-keys", fw.regulator)).json()[0]["organisation_id"])
    r = await env.post("/api/v1/accounts", fw.regulator, {"type": "allocation"})
    assert r.status_code == 201, r.text
    alloc = r.json()["id"]
    r = await env.post("/api/v1/issuances", fw.regulator, {"kind": "cea", "scheme": "national", "vintage": 2025,
                       "quantity": "100"})  # fmt: skip
    tx = r.json()
    r = await env.post(f"/api/v1/transactions/{tx['id']}/approval", reg2, {"decision": "approve"})
    assert r.status_code == 200, r.text
    r = await env.post("/api/v1/allocations", fw.regulator, {"to_account_id": ent["account_id"],
                       "instrument_id": tx["instrument_id"], "quantity": "10", "from_account_id": alloc})  # fmt: skip
    assert r.status_code == 201, r.text
    return int(tx["instrument_id"])


async def test_an_endpoint_that_was_down_gets_each_event_once_after_it_comes_back(hook_env: Env) -> None:
    env = hook_env
    w = await world(env, n_enterprises=2)
    a, b = w.enterprises
    receiver = Receiver(status=503)
    await receiver.start()
    try:
        r = await env.post(ENDPOINTS, b["key"], {"url": receiver.url, "event_types": ["transfer.completed"]})
        assert r.status_code == 201, r.text
        ep = r.json()
        await allocate(env, w, a["account_id"], 10)
        await trust(env, a["account_id"], b["account_id"])
        for q in ("1", "2"):
            move = {"from_account_id": a["account_id"], "to_account_id": b["account_id"],
                    "instrument_id": w.instrument_id, "quantity": q}  # fmt: skip
            r = await env.post("/api/v1/transfers", a["key"], move)
            assert r.status_code == 201, r.text
        first = await run_sweep(env)
        assert (first.fanned_out, first.delivered, first.failed) == (2, 0, 2)
        pending = (await env.get(f"{ENDPOINTS}/{ep['id']}/deliveries?state=pending", b["key"])).json()
        assert len(pending) == 2 and all(d["attempts"] == 1 and d["last_status"] == 503 for d in pending)
        # Not due yet: nothing is sent before the backoff has passed.
        assert (await run_sweep(env)).failed == 0
        # Connection refused while the receiver is gone altogether.
        await receiver.stop()
        env.clock.advance(dt.timedelta(seconds=backoff_s(1) * 2 + 1))
        assert (await run_sweep(env)).failed == 2
        receiver.status = 200
        await receiver.start()
        env.clock.advance(dt.timedelta(minutes=5))
        back = await run_sweep(env)
        assert back.delivered == 2
        assert (await run_sweep(env)).delivered == 0
        ids = [h["webhook-id"] for h, _ in receiver.got]
        assert len(ids) == len(set(ids)) == 2
        assert sorted(e["data"]["quantity"] for e in receiver.events()) == ["1", "2"]
        done = (await env.get(f"{ENDPOINTS}/{ep['id']}/deliveries?state=delivered", b["key"])).json()
        assert len(done) == 2 and all(d["attempts"] == 3 for d in done)
    finally:
        if receiver.server is not None and receiver.server.is_serving():
            await receiver.stop()


async def test_a_delivery_that_keeps_failing_is_parked_dead_and_a_replay_delivers_it(hook_env: Env) -> None:
    env = hook_env
    w = await world(env, n_enterprises=1)
    (a,) = w.enterprises
    receiver = Receiver(status=500)
    await receiver.start()
    try:
        ep = (await env.post(ENDPOINTS, a["key"], {"url": receiver.url, "event_types": ["allocation.posted",
                              "transfer.completed"]})).json()  # fmt: skip
        r = await env.post("/api/v1/accounts", w.regulator, {"type": "holding", "enterprise_id": a["id"]})
        await allocate(env, w, a["account_id"], 5)
        move = {"from_account_id": a["account_id"], "to_account_id": r.json()["id"],
                "instrument_id": w.instrument_id, "quantity": "5"}  # fmt: skip
        r = await env.post("/api/v1/transfers", a["key"], move)
        assert r.status_code == 201, r.text
        for _ in range(6):
            await run_sweep(env, retry_for_s=60)
            env.clock.advance(dt.timedelta(seconds=40))
        dead = (await env.get(f"{ENDPOINTS}/{ep['id']}/deliveries?state=dead", a["key"])).json()
        assert len(dead) == 1 and dead[0]["event_type"] == "transfer.completed" and dead[0]["last_status"] == 500
        receiver.status = 200
        r = await env.post(f"{ENDPOINTS}/{ep['id']}/replay", a["key"], {"from_event_id": dead[0]["event_id"]})
        assert r.status_code == 200 and r.json()["requeued"] == 1, r.text
        assert (await run_sweep(env)).delivered == 1
        assert [h["webhook-id"] for h, _ in receiver.got] == [dead[0]["event_id"]]
        r = await env.post(f"{ENDPOINTS}/{ep['id']}/replay", a["key"], {"from_event_id": "evt_" + "0" * 32})
        assert r.status_code == 404 and r.json()["field"] == "from_event_id"
    finally:
        await receiver.stop()


async def test_a_rotated_secret_signs_beside_the_old_one_for_a_day(hook_env: Env) -> None:
    env = hook_env
    w = await world(env, n_enterprises=1)
    (a,) = w.enterprises
    receiver = Receiver()
    await receiver.start()
    try:
        ep = (await env.post(ENDPOINTS, a["key"], {"url": receiver.url, "event_types": ["*"]})).json()
        r = await env.post(f"{ENDPOINTS}/{ep['id']}/secret", a["key"], {})
        assert r.status_code == 200, r.text
        new = r.json()["secret"]
        assert new != ep["secret"]
        await allocate(env, w, a["account_id"], 5)
        second = (await env.post("/api/v1/accounts", w.regulator, {"type": "holding", "enterprise_id": a["id"]})).json()
        move = {"from_account_id": a["account_id"], "to_account_id": second["id"], "instrument_id": w.instrument_id,
                "quantity": "1"}  # fmt: skip
        assert (await env.post("/api/v1/transfers", a["key"], move)).status_code == 201
        await run_sweep(env)
        headers, body = receiver.got[-1]
        assert verify(new, headers, body) and verify(ep["secret"], headers, body)
        assert len(headers["webhook-signature"].split(" ")) == 2
        env.clock.advance(dt.timedelta(hours=25))
        assert (await env.post("/api/v1/transfers", a["key"], move)).status_code == 201
        await run_sweep(env)
        headers, body = receiver.got[-1]
        assert verify(new, headers, body) and not verify(ep["secret"], headers, body)
        # A disabled endpoint gets nothing more.
        r = await env.post(f"{ENDPOINTS}/{ep['id']}/disable", a["key"], {})
        assert r.status_code == 200 and r.json()["enabled"] is False
        n = len(receiver.got)
        assert (await env.post("/api/v1/transfers", a["key"], move)).status_code == 201
        await run_sweep(env)
        assert len(receiver.got) == n
    finally:
        await receiver.stop()


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.7/hook",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:192.168.1.1]/hook",
        "https://user:pw@example.com/hook",
        "http://203.0.113.9/hook",
        "ftp://example.com/hook",
    ],
)
async def test_a_private_or_unsafe_url_is_refused(url: str) -> None:
    from core.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        await check_url(url, Policy())
    assert refused.value.field == "url"


async def test_the_operator_allow_list_admits_a_named_private_host_only() -> None:
    target = await check_url("http://127.0.0.1:9000/x?y=1", Policy(allow_http=True, allowed_hosts=("127.0.0.0/8",)))
    assert target.pinned_url == "http://127.0.0.1:9000/x?y=1" and target.address == "127.0.0.1"
    public = await check_url("https://93.184.215.14/hook", Policy())
    assert public.address == "93.184.215.14"


async def test_registering_a_private_endpoint_is_a_422_naming_the_url(env: Env) -> None:
    w = await world(env, n_enterprises=1)
    key = w.enterprises[0]["key"]
    for url in ("https://10.1.2.3/h", "http://127.0.0.1:8000/h"):
        r = await env.post(ENDPOINTS, key, {"url": url, "event_types": ["*"]})
        assert r.status_code == 422 and r.json()["field"] == "url", r.text
    r = await env.post(ENDPOINTS, key, {"url": "https://93.184.215.14/h", "event_types": ["no.such"]})
    assert r.status_code == 422 and r.json()["field"] == "event_types", r.text
    assert (await env.get(ENDPOINTS, key)).json() == []


def test_reminder_steps_send_only_the_closest_one() -> None:
    assert [step_for(d) for d in (45, 30, 29, 8, 7, 2, 1, 0, -1)] == [None, 30, 30, 30, 7, 7, 1, 1, None]
