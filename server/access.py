"""Managing credentials over the API: list an organisation's API keys and revoke one (`listApiKeys`,
`revokeApiKey`); lift a staff user's sign-in lock (`unlockUser`, an administrator: the regulator). Keys are created at
the command line (`greenrights apikey create [--expires-on DATE]`), where the key is shown once; a listing shows each
key's expiry. `greenrights user unlock USERNAME` is the operator's unlock."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from sqlalchemy import select

from core.db import UnitOfWork
from core.errors import InvalidInput
from core.http import IDEMPOTENT, allow, problem_responses
from core.identity import Identity, Role, revoke_api_key, unlock_user
from core.models import Principal
from core.schema import CodePath, NamePath

ALL_ROLES = tuple(Role)


class ApiKeyOut(msgspec.Struct, kw_only=True):
    """An API key (never its secret): its role, label, and when it was revoked or expires."""

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


class UnlockOut(msgspec.Struct, kw_only=True):
    """A user unlocked."""

    username: str
    organisation_id: int
    role: str
    # The lock this unlock lifted (null: the user was not locked) and the wrong passwords it forgot.
    was_locked_until: dt.datetime | None
    failed_logins_cleared: int


class UserController(Controller):
    path = "/api/v1/users"
    tags = ["access"]

    @post(
        "/{username:str}/unlock",
        operation_id="unlockUser",
        guards=[allow(Role.REGULATOR)],
        status_code=200,
        opt=IDEMPOTENT,
        responses=problem_responses(400, 401, 403, 404, 422),
    )
    async def unlock(self, request: Request[Identity, Any, Any], username: NamePath) -> UnlockOut:
        """Lift a staff user's sign-in lock and clear the count of wrong passwords (an administrator: the regulator;
        audited as `user.unlock`). A lock on a client address is not lifted: it ends by itself."""
        who = request.user
        state = request.app.state
        if not username or len(username) > 100:
            raise InvalidInput("username", "A username has 1 to 100 characters.")

        async def work(uow: UnitOfWork) -> UnlockOut:
            done = await unlock_user(uow.session, username, who, state.clock.now())
            p = done.principal
            was = done.was_locked_until
            facts = {
                "username": username,
                "was_locked_until": was.isoformat() if was else None,
                "failed_logins": done.failed_logins,
            }
            uow.audit(who.actor, "user.unlock", "principal", str(p.id), facts)
            return UnlockOut(
                username=username,
                organisation_id=p.organisation_id,
                role=p.role,
                was_locked_until=was,
                failed_logins_cleared=done.failed_logins,
            )

        return await state.db.run(work)


CONTROLLERS = [ApiKeyController, UserController]
