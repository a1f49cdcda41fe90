"""Webhooks: an organisation's endpoints receive the outbox events addressed to it (core/events.py).

Conventions are Standard Webhooks (https://www.standardwebhooks.com): a POST of the event's JSON with headers
`webhook-id` (the event id: the receiver's de-duplication key), `webhook-timestamp` (Unix seconds) and
`webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` with the endpoint's `whsec_` secret; during a
rotation's overlap also signed with the previous secret, space-separated). The `standardwebhooks` library signs;
receivers verify with it or any other implementation.

Delivery is at least once, never inside a request: the `webhooks` sweep of the scheduler (every few seconds)
1. fans out: for each enabled endpoint, the events addressed to its organisation after its cursor, of the types it
   asked for, become delivery rows (unique per endpoint and event, so a second sweep adds nothing);
2. sends the due ones: each is leased by a conditional UPDATE (two schedulers never send one delivery at the same
   time), POSTed with a short timeout and no redirects followed, and recorded: a 2xx is delivered; anything else
   is retried with exponential backoff and full jitter (5 s doubling, at most an hour apart) until
   `webhook_retry_for_s` after the first attempt (a day by default), then parked as `dead`, which the owner lists
   and can replay.

Server-side request forgery: an endpoint's URL must be https (http only when `GREENRIGHTS_WEBHOOK_ALLOW_HTTP` is
set, for tests and local development), carry no user name or password, and its host must resolve only to public
addresses; loopback, private, link-local, multicast and reserved addresses are refused unless the host or address
is in the operator's allow-list (`GREENRIGHTS_WEBHOOK_ALLOWED_HOSTS`: host names, addresses or CIDR ranges). The
check runs when the endpoint is registered and again at every delivery, and the request goes to the address that
was checked (the TLS name is still the host's), so a DNS answer that changes in between cannot redirect it.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import json
import random
import secrets
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Index, Integer, Text, UniqueConstraint, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, SQLModel, col
from standardwebhooks.webhooks import Webhook

from core.clock import Clock
from core.db import Database, UnitOfWork
from core.errors import InvalidInput
from core.events import EVENT_TYPES, OutboxEvent, event_out

_ID = BigInteger().with_variant(Integer(), "sqlite")

FANOUT_BATCH = 500
SEND_BATCH = 50
TIMEOUT_S = 10.0
LEASE_S = 60
BACKOFF_BASE_S = 5.0
BACKOFF_MAX_S = 3600.0
ROTATION_OVERLAP = dt.timedelta(hours=24)
USER_AGENT = "greenrights-webhooks/1"


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoint"
    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    url: str = Field(max_length=2000)
    # JSON list of event types; ["*"] is every type.
    event_types: str = Field(sa_type=Text)
    description: str = Field(default="", max_length=200)
    secret: str = Field(max_length=80)
    previous_secret: str | None = Field(default=None, max_length=80)
    previous_until: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC(timezone=True))
    enabled: bool = Field(default=True)
    # The last outbox event (its row id) considered for this endpoint.
    cursor: int = Field(default=0, sa_type=BigInteger)
    created_by: int = Field(sa_type=BigInteger)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC(timezone=True))
    disabled_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC(timezone=True))


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_seq", name="uq_webhook_delivery_endpoint_event"),
        Index("ix_webhook_delivery_due", "state", "next_attempt_at"),
    )
    id: int | None = Field(default=None, primary_key=True, sa_type=_ID)
    endpoint_id: int = Field(foreign_key="webhook_endpoint.id", index=True)
    event_seq: int = Field(foreign_key="outbox_event.id", sa_type=_ID)
    state: str = Field(default="pending", max_length=12)  # pending | delivered | dead
    attempts: int = Field(default=0)
    next_attempt_at: dt.datetime = Field(sa_type=DateTimeUTC(timezone=True))
    lease_until: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC(timezone=True))
    first_attempt_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC(timezone=True))
    last_status: int | None = Field(default=None)
    last_error: str | None = Field(default=None, max_length=500)
    delivered_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC(timezone=True))
    created_at: dt.datetime = Field(sa_type=DateTimeUTC(timezone=True))


# ------------------------------------------------------------------------------------------------ the URL
@dataclass(frozen=True)
class Policy:
    """What the operator allows (core.settings: webhook_allow_http, webhook_allowed_hosts)."""

    allow_http: bool = False
    allowed_hosts: tuple[str, ...] = ()

    def allows(self, host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        for entry in self.allowed_hosts:
            if entry.lower() == host.lower():
                return True
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        return False


@dataclass(frozen=True)
class Target:
    url: str  # as registered
    pinned_url: str  # the same with the checked address in place of the host
    host: str
    address: str


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def check_url(url: str, policy: Policy, *, field: str = "url") -> Target:
    """The URL's target, or a 422 naming `field` (the URL is refused, with the reason)."""
    if len(url) > 2000:
        raise InvalidInput(field, "Send a URL of at most 2000 characters.")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not policy.allow_http):
        raise InvalidInput(field, "A webhook URL must use https.")
    if parts.username or parts.password:
        raise InvalidInput(field, "A webhook URL must not carry a user name or password.")
    host = parts.hostname or ""
    if not host:
        raise InvalidInput(field, "A webhook URL needs a host.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidInput(field, "The URL's port is not a number from 1 to 65535.") from None
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise InvalidInput(field, f"The host {host!r} does not resolve.") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    for address in addresses:
        if not _public(address) and not policy.allows(host, address):
            raise InvalidInput(
                field,
                f"The host {host!r} resolves to {address}, a private, loopback, link-local or reserved address; "
                "webhooks go to public addresses only (an operator can allow a host).",
            )
    address = addresses[0]
    shown = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{shown}:{parts.port}" if parts.port else shown
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return Target(url=url, pinned_url=pinned, host=host, address=str(address))


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def signature(endpoint: WebhookEndpoint, msg_id: str, at: dt.datetime, body: str) -> str:
    """The `webhook-signature` header: v1 with the current secret, and with the previous one while it overlaps."""
    utc = at.astimezone(dt.UTC)
    sigs = [Webhook(endpoint.secret).sign(msg_id, utc, body)]
    if endpoint.previous_secret and endpoint.previous_until and endpoint.previous_until > at:
        sigs.append(Webhook(endpoint.previous_secret).sign(msg_id, utc, body))
    return " ".join(sigs)


def backoff_s(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds before attempt `attempts + 1`: full jitter over an exponential ceiling."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


def wants(endpoint: WebhookEndpoint, event_type: str) -> bool:
    types = json.loads(endpoint.event_types)
    return "*" in types or event_type in types


def valid_types(types: list[str], field: str = "event_types") -> list[str]:
    if not types:
        raise InvalidInput(field, "Name at least one event type, or \"*\" for every type.")
    for t in types:
        if t != "*" and t not in EVENT_TYPES:
            raise InvalidInput(field, f"Unknown event type {t!r}; the types are listed in docs/events.md.")
    return sorted(set(types))


# ------------------------------------------------------------------------------------------------ the sweep
@dataclass
class SweepResult:
    fanned_out: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0


async def fan_out(db: Database, now: dt.datetime) -> int:
    """New deliveries for the events after each enabled endpoint's cursor; returns how many were added."""

    async def work(uow: UnitOfWork) -> int:
        ses = uow.session
        endpoints = (await ses.execute(select(WebhookEndpoint).where(col(WebhookEndpoint.enabled)))).scalars().all()
        added = 0
        dialect = ses.bind.dialect.name if ses.bind is not None else "sqlite"
        ins = pg_insert if dialect == "postgresql" else sqlite_insert
        for ep in endpoints:
            org = ep.organisation_id
            events = (
                await ses.execute(
                    select(col(OutboxEvent.id), col(OutboxEvent.type))
                    .where(
                        col(OutboxEvent.id) > ep.cursor,
                        or_(col(OutboxEvent.recipient_a) == org, col(OutboxEvent.recipient_b) == org),
                    )
                    .order_by(col(OutboxEvent.id))
                    .limit(FANOUT_BATCH)
                )
            ).all()
            if not events:
                continue
            rows = [
                {"endpoint_id": ep.id, "event_seq": seq, "state": "pending", "attempts": 0,
                 "next_attempt_at": now, "created_at": now}
                for seq, type_ in events
                if wants(ep, type_)
            ]  # fmt: skip
            if rows:
                stmt = ins(WebhookDelivery.__table__).values(rows)  # type: ignore[attr-defined]
                await ses.execute(stmt.on_conflict_do_nothing(index_elements=["endpoint_id", "event_seq"]))
                added += len(rows)
            await ses.execute(
                update(WebhookEndpoint)
                .where(col(WebhookEndpoint.id) == ep.id, col(WebhookEndpoint.cursor) == ep.cursor)
                .values(cursor=events[-1][0])
            )
        return added

    return await db.run(work)


async def _lease_due(db: Database, now: dt.datetime) -> list[tuple[int, int]]:
    """Lease up to SEND_BATCH due deliveries of enabled endpoints; their (delivery id, attempts)."""

    async def work(uow: UnitOfWork) -> list[tuple[int, int]]:
        ses = uow.session
        due = (
            await ses.execute(
                select(col(WebhookDelivery.id), col(WebhookDelivery.attempts), col(WebhookDelivery.lease_until))
                .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
                .where(
                    col(WebhookDelivery.state) == "pending",
                    col(WebhookDelivery.next_attempt_at) <= now,
                    or_(col(WebhookDelivery.lease_until).is_(None), col(WebhookDelivery.lease_until) < now),
                    col(WebhookEndpoint.enabled),
                )
                .order_by(col(WebhookDelivery.next_attempt_at), col(WebhookDelivery.id))
                .limit(SEND_BATCH)
            )
        ).all()
        leased = []
        for delivery_id, attempts, lease in due:
            lease_col = col(WebhookDelivery.lease_until)
            cond = lease_col.is_(None) if lease is None else lease_col == lease
            got = await ses.execute(
                update(WebhookDelivery)
                .where(col(WebhookDelivery.id) == delivery_id, col(WebhookDelivery.state) == "pending", cond)
                .values(lease_until=now + dt.timedelta(seconds=LEASE_S))
            )
            if got.rowcount == 1:  # type: ignore[attr-defined]
                leased.append((delivery_id or 0, attempts))
        return leased

    return await db.run(work)


async def _load(db: Database, delivery_id: int) -> tuple[WebhookDelivery, WebhookEndpoint, OutboxEvent]:
    async def work(uow: UnitOfWork) -> tuple[WebhookDelivery, WebhookEndpoint, OutboxEvent]:
        ses = uow.session
        d = await ses.get_one(WebhookDelivery, delivery_id)
        return d, await ses.get_one(WebhookEndpoint, d.endpoint_id), await ses.get_one(OutboxEvent, d.event_seq)

    return await db.read(work)


async def _send(
    client: httpx.AsyncClient, endpoint: WebhookEndpoint, event: OutboxEvent, policy: Policy, now: dt.datetime
) -> tuple[int | None, str | None]:
    """POST one event; (HTTP status, error) — a 2xx status with no error is a delivery."""
    try:
        target = await check_url(endpoint.url, policy)
    except InvalidInput as exc:
        return None, f"refused: {exc.detail}"[:500]
    body = json.dumps(event_out(event), ensure_ascii=False, separators=(",", ":"))
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": urlsplit(endpoint.url).netloc,
        "webhook-id": event.event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature(endpoint, event.event_id, now, body),
    }
    extensions = {"sni_hostname": target.host} if target.pinned_url.startswith("https") else {}
    try:
        response = await client.post(target.pinned_url, content=body.encode(), headers=headers, extensions=extensions)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
    if 300 <= response.status_code < 400:
        return response.status_code, "redirects are not followed"
    if not 200 <= response.status_code < 300:
        return response.status_code, f"answered {response.status_code}"
    return response.status_code, None


async def _record(
    db: Database, delivery_id: int, status: int | None, error: str | None, now: dt.datetime, retry_for_s: float,
    rng: random.Random | None,
) -> str:
    async def work(uow: UnitOfWork) -> str:
        d = await uow.session.get_one(WebhookDelivery, delivery_id)
        d.attempts += 1
        d.first_attempt_at = d.first_attempt_at or now
        d.last_status = status
        d.last_error = error
        d.lease_until = None
        if error is None:
            d.state = "delivered"
            d.delivered_at = now
        else:
            later = now + dt.timedelta(seconds=backoff_s(d.attempts, rng))
            if later > d.first_attempt_at + dt.timedelta(seconds=retry_for_s):
                d.state = "dead"
            else:
                d.next_attempt_at = later
        uow.session.add(d)
        return d.state

    return await db.run(work)


async def sweep(
    db: Database,
    clock: Clock,
    policy: Policy,
    *,
    retry_for_s: float = 86_400.0,
    client: httpx.AsyncClient | None = None,
    rng: random.Random | None = None,
) -> SweepResult:
    """One round: fan out new events, then send what is due (at most SEND_BATCH, concurrently)."""
    out = SweepResult(fanned_out=await fan_out(db, clock.now()))
    now = clock.now()
    leased = await _lease_due(db, now)
    if not leased:
        return out
    own = client is None
    http = client or httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False, trust_env=False)
    try:

        async def one(delivery_id: int) -> str:
            d, ep, ev = await _load(db, delivery_id)
            status, error = await _send(http, ep, ev, policy, now)
            return await _record(db, d.id or 0, status, error, now, retry_for_s, rng)

        states = await asyncio.gather(*(one(i) for i, _ in leased))
    finally:
        if own:
            await http.aclose()
    out.delivered = states.count("delivered")
    out.dead = states.count("dead")
    out.failed = len(states) - out.delivered
    return out


def policy_of(settings: Any) -> Policy:
    hosts = tuple(h.strip() for h in str(getattr(settings, "webhook_allowed_hosts", "") or "").split(",") if h.strip())
    return Policy(allow_http=bool(getattr(settings, "webhook_allow_http", False)), allowed_hosts=hosts)

