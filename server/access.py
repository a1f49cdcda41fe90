"""Managing machine credentials over the API: list an organisation's API keys and revoke one (`listApiKeys`,
`revokeApiKey`). Keys are created at the command line (`greenrights apikey create [--expires-on DATE]`), where the
key is shown once; a listing shows each key's expiry."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from sqlalchemy import select

from core.db import UnitOfWork
from core.errors import InvalidInput
from core.http import IDEMPOTENT, allow, problem_responses
from core.identity import Identity, Role, revoke_api_key
from core.models import Principal
from core.schema import CodePath

ALL_ROLES = tuple(Role)


class ApiKeyOut(msgspec.Struct, kw_only=True):
    prefix: str
    organisation_id: int
    role: str
    label: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    # From this instant on the key authenticates nobody (null: it does not expire).
    expires_at: dt.datetime | None = None


def key_out(p: Principal) -> ApiKeyOut:
    return ApiKeyOut(
        prefix=p.key_prefix or "",
        organisation_id=p.organisation_id,
        role=p.role,
        label=p.label,
        created_at=p.created_at,
        revoked_at=p.revoked_at,
        expires_at=p.expires_at,
    )


class ApiKeyController(Controller):
    path = "/api/v1/api-keys"
    tags = ["access"]

    @get("/", operation_id="listApiKeys", guards=[allow(*ALL_ROLES)], responses=problem_responses(401, 403))
    async def list_keys(self, request: Request[Identity, Any, Any]) -> list[ApiKeyOut]:
        """Your organisation's API keys (a regulator sees every key), without their secrets."""
        who = request.user

        async def work(uow: UnitOfWork) -> list[ApiKeyOut]:
            q = select(Principal).where(Principal.kind == "apikey")
            if who.role is not Role.REGULATOR:
                q = q.where(Principal.organisation_id == who.organisation_id)
            rows = (await uow.session.execute(q.order_by(Principal.id))).scalars()
            return [key_out(p) for p in rows]

        return await request.app.state.db.read(work)

    @post(
        "/{prefix:str}/revocation",
        operation_id="revokeApiKey",
        guards=[allow(*ALL_ROLES)],
        status_code=200,
        opt=IDEMPOTENT,
        responses=problem_responses(400, 401, 403, 404, 422),
    )
    async def revoke(self, request: Request[Identity, Any, Any], prefix: CodePath) -> ApiKeyOut:
        """Revoke an API key of your organisation (a regulator: any key). It stops working at once on this server
        and within the key cache's lifetime on the others; revoking again answers the first revocation."""
        who = request.user
        state = request.app.state
        if not (prefix.isascii() and prefix.isalnum() and len(prefix) <= 16):
            raise InvalidInput("prefix", "An API key's prefix is the 12 hexadecimal characters after gr_.")

        async def work(uow: UnitOfWork) -> tuple[int, ApiKeyOut]:
            p = await revoke_api_key(uow.session, prefix, who, state.clock.now())
            assert p.id is not None
            uow.audit(who.actor, "apikey.revoke", "principal", str(p.id), {"prefix": prefix})
            return p.id, key_out(p)

        principal_id, out = await state.db.run(work)
        state.credentials.forget_principal(principal_id)
        return out


CONTROLLERS = [ApiKeyController]
