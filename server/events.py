"""Events the outside world acts on, over the API: an organisation's inbox (`listEvents`) and its webhook endpoints
(`createWebhookEndpoint`, `listWebhookEndpoints`, `disableWebhookEndpoint`, `rotateWebhookSecret`,
`replayWebhookEvents`, `listWebhookDeliveries`). What an event is: core/events.py; how it is delivered:
core/webhooks.py; the types and their bodies: docs/events.md."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import JSONBody, QueryParameter
from sqlalchemy import or_, select, update

from core.db import UnitOfWork
from core.errors import Conflict, InvalidInput, NotFound
from core.events import EVENT_TYPES, OutboxEvent, event_out, inbox
from core.http import IDEMPOTENT, READ_PROBLEMS, WRITE_PROBLEMS, allow
from core.identity import Identity, Role
from core.schema import IdPath, Req, about
from core.webhooks import (
    ROTATION_OVERLAP,
    WebhookDelivery,
    WebhookEndpoint,
    check_url,
    new_secret,
    policy_of,
    valid_types,
)

SEQ_MAX = 2**53
# Everyone but the auditor (who reads, and registers nothing) may receive its organisation's events.
RECEIVERS = tuple(r for r in Role if r is not Role.AUDITOR)
EVENT_TYPE_MAX = 60
EventType = Annotated[str, msgspec.Meta(min_length=1, max_length=EVENT_TYPE_MAX)]


class EventOut(msgspec.Struct, kw_only=True):
    """An event of your organisation, as delivered to webhooks."""

    seq: int
    id: str
    type: str
    version: int
    occurred_at: str
    subject: str
    data: dict[str, Any]


class CreateEndpoint(Req):
    """A webhook endpoint of your organisation: its events are delivered there, signed (Standard Webhooks)."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "url": "https://erp.example.com/hooks/greenrights",
        "event_types": ["transfer.completed", "claim.decided"],
        "description": "ERP",
    }

    url: Annotated[
        str, msgspec.Meta(min_length=8, max_length=2000), about("An https URL whose host resolves to a public address.")
    ]
    event_types: Annotated[
        list[EventType],
        msgspec.Meta(
            min_length=1,
            max_length=len(EVENT_TYPES) + 1,
            extra_json_schema={"extra": {"items": {"type": "string", "minLength": 1, "maxLength": EVENT_TYPE_MAX}}},
        ),
        about('The event types delivered (docs/events.md), or ["*"] for every type.'),
    ]
    description: Annotated[str, msgspec.Meta(max_length=200), about("What the endpoint is for.")] = ""


class Replay(Req):
    """Events to deliver again to an endpoint."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"from_event_id": "evt_5b0c2f9e"}

    from_event_id: Annotated[
        str,
        msgspec.Meta(min_length=5, max_length=40),
        about("The event id to start from (included); every later event of the endpoint's types follows."),
    ]


class EndpointOut(msgspec.Struct, kw_only=True):
    """A webhook endpoint; `secret` is shown only when it is created or rotated."""

    id: int
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    created_at: dt.datetime
    disabled_at: dt.datetime | None
    # Shown only when the endpoint is created and when its secret is rotated.
    secret: str | None = None


class DeliveryOut(msgspec.Struct, kw_only=True):
    """One delivery of an event to an endpoint: its state, attempts and last error."""

    id: int
    event_id: str
    event_type: str
    state: str
    attempts: int
    next_attempt_at: dt.datetime
    last_status: int | None
    last_error: str | None
    delivered_at: dt.datetime | None


class ReplayOut(msgspec.Struct, kw_only=True):
    """How many deliveries were queued again."""

    endpoint_id: int
    from_event_id: str
    requeued: int


def _endpoint_out(ep: WebhookEndpoint, secret: str | None = None) -> EndpointOut:
    return EndpointOut(
        id=ep.id or 0,
        url=ep.url,
        event_types=json.loads(ep.event_types),
        description=ep.description,
        enabled=ep.enabled,
        created_at=ep.created_at,
        disabled_at=ep.disabled_at,
        secret=secret,
    )


def _to_event(row: OutboxEvent) -> EventOut:
    return EventOut(seq=row.id or 0, **event_out(row))


async def _own_endpoint(uow: UnitOfWork, who: Identity, endpoint_id: int) -> WebhookEndpoint:
    ep = await uow.session.get(WebhookEndpoint, endpoint_id)
    if ep is None or ep.organisation_id != who.organisation_id:
        raise NotFound("webhook endpoint", field="endpoint_id")
    return ep


class EventsController(Controller):
    path = "/api/v1/events"
    tags = ["events"]

    @get("/", operation_id="listEvents", guards=[allow(*Role)], responses=READ_PROBLEMS)
    async def list_events(
        self,
        request: Request[Identity, Any, Any],
        after: Annotated[int, QueryParameter(ge=0, le=SEQ_MAX)] = 0,
        type: Annotated[str | None, QueryParameter(min_length=1, max_length=EVENT_TYPE_MAX)] = None,
        organisation_id: Annotated[int | None, QueryParameter(ge=1, le=2**31 - 1)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[EventOut]:
        """Your organisation's events, oldest first after `after` (the `seq` of the last one you have): the inbox.
        Regulators and auditors read every organisation's (or one's, with `organisation_id`)."""
        who = request.user
        if type is not None and type not in EVENT_TYPES:
            raise InvalidInput("type", f"Unknown event type {type!r}; the types are listed in docs/events.md.")
        org = organisation_id if who.reads_all() else who.organisation_id

        async def work(uow: UnitOfWork) -> list[EventOut]:
            rows = await inbox(uow.session, org, after=after, type_=type, limit=limit)
            return [_to_event(r) for r in rows]

        return await request.app.state.db.read(work)


class WebhookController(Controller):
    path = "/api/v1/webhook-endpoints"
    tags = ["events"]

    @post(
        "/",
        operation_id="createWebhookEndpoint",
        guards=[allow(*RECEIVERS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
    )
    async def create(self, request: Request[Identity, Any, Any], data: JSONBody[CreateEndpoint]) -> EndpointOut:
        """Register an https endpoint for event types of your organisation (`["*"]` for all). The answer shows the
        signing secret once (Standard Webhooks, `whsec_…`); deliveries start with the next event."""
        who = request.user
        state = request.app.state
        await check_url(data.url, policy_of(state.settings))
        types = valid_types(list(data.event_types))
        if "\x00" in data.description:
            raise InvalidInput("description", "Send text without null bytes.")
        secret = new_secret()
        now = state.clock.now()

        async def work(uow: UnitOfWork) -> EndpointOut:
            ses = uow.session
            last = (await ses.execute(select(OutboxEvent.id).order_by(OutboxEvent.id.desc()).limit(1))).scalar()  # type: ignore[union-attr]
            ep = WebhookEndpoint(
                organisation_id=who.organisation_id,
                url=data.url,
                event_types=json.dumps(types),
                description=data.description,
                secret=secret,
                cursor=last or 0,
                created_by=who.principal_id,
                created_at=now,
            )
            ses.add(ep)
            await ses.flush()
            uow.audit(who.actor, "webhook.create", "webhook_endpoint", str(ep.id), {"url": data.url, "types": types})
            return _endpoint_out(ep, secret)

        return await state.db.run(work)

    @get("/", operation_id="listWebhookEndpoints", guards=[allow(*Role)], responses=READ_PROBLEMS)
    async def list_endpoints(self, request: Request[Identity, Any, Any]) -> list[EndpointOut]:
        """Your organisation's endpoints (without their secrets)."""
        who = request.user

        async def work(uow: UnitOfWork) -> list[EndpointOut]:
            q = select(WebhookEndpoint).where(WebhookEndpoint.organisation_id == who.organisation_id)
            return [_endpoint_out(ep) for ep in (await uow.session.execute(q.order_by(WebhookEndpoint.id))).scalars()]

        return await request.app.state.db.read(work)

    @post(
        "/{endpoint_id:int}/disable",
        operation_id="disableWebhookEndpoint",
        guards=[allow(*RECEIVERS)],
        status_code=200,
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
    )
    async def disable(self, request: Request[Identity, Any, Any], endpoint_id: IdPath) -> EndpointOut:
        """Stop deliveries to this endpoint (its pending deliveries wait; nothing new is fanned out to it)."""
        who = request.user
        now = request.app.state.clock.now()

        async def work(uow: UnitOfWork) -> EndpointOut:
            ep = await _own_endpoint(uow, who, endpoint_id)
            if ep.enabled:
                ep.enabled = False
                ep.disabled_at = now
                uow.session.add(ep)
                uow.audit(who.actor, "webhook.disable", "webhook_endpoint", str(ep.id), {})
            return _endpoint_out(ep)

        return await request.app.state.db.run(work)

    @post(
        "/{endpoint_id:int}/secret",
        operation_id="rotateWebhookSecret",
        guards=[allow(*RECEIVERS)],
        status_code=200,
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
    )
    async def rotate(self, request: Request[Identity, Any, Any], endpoint_id: IdPath) -> EndpointOut:
        """A new signing secret, shown once. For 24 hours deliveries carry signatures with both the new and the
        previous secret, so the receiver can switch without losing one."""
        who = request.user
        now = request.app.state.clock.now()
        secret = new_secret()

        async def work(uow: UnitOfWork) -> EndpointOut:
            ep = await _own_endpoint(uow, who, endpoint_id)
            ep.previous_secret, ep.previous_until, ep.secret = ep.secret, now + ROTATION_OVERLAP, secret
            uow.session.add(ep)
            uow.audit(who.actor, "webhook.rotate", "webhook_endpoint", str(ep.id), {})
            return _endpoint_out(ep, secret)

        return await request.app.state.db.run(work)

    @post(
        "/{endpoint_id:int}/replay",
        operation_id="replayWebhookEvents",
        guards=[allow(*RECEIVERS)],
        status_code=200,
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
    )
    async def replay(
        self, request: Request[Identity, Any, Any], endpoint_id: IdPath, data: JSONBody[Replay]
    ) -> ReplayOut:
        """Deliver again every event of this endpoint's types from `from_event_id` on (that one included): the
        delivered and the dead ones go back to pending, those never fanned out are added by the next sweep."""
        who = request.user
        now = request.app.state.clock.now()

        async def work(uow: UnitOfWork) -> ReplayOut:
            ses = uow.session
            ep = await _own_endpoint(uow, who, endpoint_id)
            if not ep.enabled:
                raise Conflict("invalid-state", "This endpoint is disabled; register a new one.", field="endpoint_id")
            org = ep.organisation_id
            seq = (
                await ses.execute(
                    select(OutboxEvent.id).where(
                        OutboxEvent.event_id == data.from_event_id,
                        or_(OutboxEvent.recipient_a == org, OutboxEvent.recipient_b == org),
                    )
                )
            ).scalar()
            if seq is None:
                raise NotFound("event", field="from_event_id")
            requeued = await ses.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.endpoint_id == ep.id, WebhookDelivery.event_seq >= seq)
                .values(state="pending", attempts=0, next_attempt_at=now, lease_until=None, first_attempt_at=None)
            )
            ep.cursor = min(ep.cursor, seq - 1)
            ses.add(ep)
            uow.audit(who.actor, "webhook.replay", "webhook_endpoint", str(ep.id), {"from": data.from_event_id})
            return ReplayOut(endpoint_id=ep.id or 0, from_event_id=data.from_event_id, requeued=requeued.rowcount)  # type: ignore[attr-defined]

        return await request.app.state.db.run(work)

    @get(
        "/{endpoint_id:int}/deliveries",
        operation_id="listWebhookDeliveries",
        guards=[allow(*Role)],
        responses=READ_PROBLEMS,
    )
    async def deliveries(
        self,
        request: Request[Identity, Any, Any],
        endpoint_id: IdPath,
        delivery_state: Annotated[Literal["pending", "delivered", "dead"] | None, QueryParameter(query="state")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[DeliveryOut]:
        """This endpoint's deliveries, newest first; `state=dead` is the dead-letter list (replay them with
        `replayWebhookEvents`)."""
        who = request.user

        async def work(uow: UnitOfWork) -> list[DeliveryOut]:
            await _own_endpoint(uow, who, endpoint_id)
            q = (
                select(WebhookDelivery, OutboxEvent.event_id, OutboxEvent.type)
                .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_seq)
                .where(WebhookDelivery.endpoint_id == endpoint_id)
            )
            if delivery_state is not None:
                q = q.where(WebhookDelivery.state == delivery_state)
            rows = (await uow.session.execute(q.order_by(WebhookDelivery.id.desc()).limit(limit))).all()  # type: ignore[union-attr]
            return [
                DeliveryOut(
                    id=d.id or 0,
                    event_id=event_id,
                    event_type=type_,
                    state=d.state,
                    attempts=d.attempts,
                    next_attempt_at=d.next_attempt_at,
                    last_status=d.last_status,
                    last_error=d.last_error,
                    delivered_at=d.delivered_at,
                )
                for d, event_id, type_ in rows
            ]

        return await request.app.state.db.read(work)


CONTROLLERS = [EventsController, WebhookController]
