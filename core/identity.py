"""Identity and access: organisations, staff users, machine clients, roles and guards.

Staff users log in with argon2id-hashed passwords and get short HS256 JWTs; machine clients use API keys
(`gr_<prefix>_<secret>`, 256 random bits), shown once and stored as a SHA-256 hash beside a lookup prefix (a
random 256-bit secret needs no slow hash). Both arrive as `Authorization: Bearer ...`. Deny by default: every
route names the roles it allows, and every query is scoped to the caller's organisation.

An API key's principal is remembered in each server process for a short time (`CredentialCache`,
`GREENRIGHTS_API_KEY_CACHE_TTL_S`, 30 s by default) so that a machine client's every request does not read the
principal table. The cost, stated plainly: a key revoked in the database (by `revokeApiKey` through another process,
`greenrights apikey revoke`, or by hand) keeps working for at most that TTL in a process that accepted it recently,
and never after; the process that revoked it refuses it at once; 0 turns the cache off. Staff JWTs are not cached
(their principal is read on every request; the token lives `jwt_ttl_s`).

An API key may expire (`Principal.expires_at`, set at creation: `greenrights apikey create --expires-on DATE`).
Expiry is checked against the server's clock on every request, the cached ones included (the cached identity
carries the instant), so the cache never keeps an expired key alive. An expired key answers 401 `unauthenticated`
saying it expired: only a caller who holds the whole key (its hash matched) learns that.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.errors import AppError, InvalidInput
from core.models import Organisation, Principal, SignInAddress


class Role(StrEnum):
    REGULATOR = "regulator"
    ENERGY_AUTHORITY = "energy_authority"
    GEC_ISSUER = "gec_issuer"
    VERIFIER = "verifier"
    EMITTER = "emitter"
    MEMBER = "member"
    FINANCE_REVIEWER = "finance_reviewer"
    FINANCE_APPROVER = "finance_approver"
    BANK = "bank"
    AUDITOR = "auditor"


AUTHORITY_ROLES = frozenset({Role.REGULATOR, Role.ENERGY_AUTHORITY, Role.GEC_ISSUER})
# Roles that read across organisations (the schemes' operators and oversight).
READ_ALL_ROLES = frozenset({Role.REGULATOR, Role.ENERGY_AUTHORITY, Role.GEC_ISSUER, Role.AUDITOR})

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Identity:
    """Who is calling: a principal acting for one organisation in one role."""

    principal_id: int
    organisation_id: int
    role: Role
    label: str
    # An API key's expiry (None: a staff user, or a key that does not expire); see `refuse_expired`.
    expires_at: dt.datetime | None = None

    @property
    def actor(self) -> str:
        return f"principal:{self.principal_id}"

    def reads_all(self) -> bool:
        return self.role in READ_ALL_ROLES


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except VerificationError:
        return False


def new_api_key() -> tuple[str, str, str]:
    """(full key shown once, lookup prefix, stored hash)."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = f"gr_{prefix}_{secret}"
    return key, prefix, api_key_digest(key)


async def create_organisation(session: AsyncSession, name: str, kind: str, now: dt.datetime) -> Organisation:
    org = Organisation(name=name, kind=kind, created_at=now)
    session.add(org)
    await session.flush()
    return org


async def create_api_key(
    session: AsyncSession,
    *,
    organisation_id: int,
    role: Role,
    label: str,
    now: dt.datetime,
    expires_at: dt.datetime | None = None,
) -> tuple[Principal, str]:
    """A new API key (the full key is returned once). `expires_at`, when given, is an aware instant after `now`."""
    if expires_at is not None:
        if expires_at.tzinfo is None or expires_at.utcoffset() is None:
            raise InvalidInput("expires_at", "An expiry is an instant with a timezone.")
        expires_at = expires_at.astimezone(dt.UTC)
        if expires_at <= now:
            raise InvalidInput("expires_at", "The expiry must be in the future.")
    key, prefix, digest = new_api_key()
    p = Principal(
        organisation_id=organisation_id,
        role=role.value,
        kind="apikey",
        label=label,
        key_prefix=prefix,
        key_hash=digest,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(p)
    await session.flush()
    return p, key


async def create_user(
    session: AsyncSession, *, organisation_id: int, role: Role, username: str, password: str, now: dt.datetime
) -> Principal:
    if len(password) < 12:
        raise InvalidInput("password", "Use a password of at least 12 characters.")
    p = Principal(
        organisation_id=organisation_id,
        role=role.value,
        kind="user",
        label=username,
        username=username,
        password_hash=hash_password(password),
        created_at=now,
    )
    session.add(p)
    await session.flush()
    return p


async def revoke_api_key(session: AsyncSession, prefix: str, by: Identity | None, now: dt.datetime) -> Principal:
    """Revoke the API key with this lookup prefix: from now on it authenticates nobody (at once for this process;
    other processes drop a cached key within its cache lifetime). `by` is None for an operator at the command line;
    a principal may revoke its own organisation's keys, a regulator any key. Revoking twice keeps the first time."""
    p = (
        await session.execute(select(Principal).where(Principal.key_prefix == prefix, Principal.kind == "apikey"))
    ).scalar_one_or_none()
    if p is None or (by is not None and by.role is not Role.REGULATOR and p.organisation_id != by.organisation_id):
        raise AppError("not-found", "No API key with this prefix is visible to you.", field="prefix")
    if p.revoked_at is None:
        p.revoked_at = now
        session.add(p)
        await session.flush()
    return p


def _identity(p: Principal) -> Identity:
    assert p.id is not None
    return Identity(
        principal_id=p.id, organisation_id=p.organisation_id, role=Role(p.role), label=p.label, expires_at=p.expires_at
    )


def refuse_expired(ident: Identity, now: dt.datetime) -> None:
    """401 `unauthenticated` when this API key's expiry has come (at `expires_at` exactly it no longer works)."""
    if ident.expires_at is not None and ident.expires_at <= now:
        raise AppError(
            "unauthenticated",
            f"This API key expired at {ident.expires_at:%Y-%m-%d %H:%M} UTC; ask for a new one.",
        )


def api_key_digest(key: str) -> str:
    """The stored form of an API key (SHA-256, hex): what the database keeps and what the cache is keyed by."""
    return hashlib.sha256(key.encode()).hexdigest()


class CredentialCache:
    """API-key principals this process authenticated in the last `ttl_s` seconds, keyed by the key's SHA-256.

    Only successes are remembered: an unknown or revoked key is looked up every time, so a flood of bad keys cannot
    fill memory. At most `size_max` entries; every entry lives `ttl_s`, so insertion order is expiry order and the
    oldest goes first. `ttl_s <= 0` turns the cache off."""

    def __init__(self, ttl_s: float = 30.0, size_max: int = 10_000, now: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.size_max = size_max
        self.now = now  # a monotonic clock (tests pass their own)
        self._entries: OrderedDict[str, tuple[float, Identity]] = OrderedDict()

    def get(self, digest: str) -> Identity | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[0] <= self.now():
            del self._entries[digest]
            return None
        return entry[1]

    def put(self, digest: str, ident: Identity) -> None:
        if self.ttl_s <= 0:
            return
        self._entries.pop(digest, None)
        while len(self._entries) >= self.size_max:
            self._entries.popitem(last=False)
        self._entries[digest] = (self.now() + self.ttl_s, ident)

    def forget_principal(self, principal_id: int) -> None:
        """Drop every entry of this principal (its key was revoked through this process): it is refused at once
        here; other processes forget it within `ttl_s`."""
        for digest in [d for d, (_, ident) in self._entries.items() if ident.principal_id == principal_id]:
            del self._entries[digest]

    def __len__(self) -> int:
        return len(self._entries)


async def authenticate_api_key(session: AsyncSession, key: str, now: dt.datetime | None = None) -> Identity | None:
    """The principal of a valid, unrevoked key; None for an unknown, forged or revoked one. A key past its expiry
    (at `now`, by default the system clock) raises 401 saying so."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "gr":
        return None
    p = (await session.execute(select(Principal).where(Principal.key_prefix == parts[1]))).scalar_one_or_none()
    if p is None or p.key_hash is None or p.revoked_at is not None:
        return None
    if not hmac.compare_digest(p.key_hash, api_key_digest(key)):
        return None
    ident = _identity(p)
    refuse_expired(ident, now if now is not None else dt.datetime.now(dt.UTC))
    return ident


def issue_jwt(p: Principal, secret: str, now: dt.datetime, ttl_s: int) -> str:
    claims = {
        "sub": str(p.id),
        "org": p.organisation_id,
        "role": p.role,
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + ttl_s,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


async def authenticate_jwt(session: AsyncSession, token: str, secrets: Sequence[str]) -> Identity | None:
    """The staff user a token names, when it is signed with one of `secrets` (the current one first, then those of
    a rotation still accepted) and unexpired; None otherwise."""
    claims: dict[str, Any] | None = None
    for secret in secrets:
        try:
            # Only HS256: `alg=none` and algorithm confusion are refused by naming the one we accept.
            claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
            break
        except jwt.PyJWTError:
            continue
    if claims is None:
        return None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.isascii() or not sub.isdigit() or len(sub) > 10:
        return None
    p = (await session.execute(select(Principal).where(Principal.id == int(sub)))).scalar_one_or_none()
    if p is None or p.revoked_at is not None or p.kind != "user":
        return None
    return _identity(p)


# Sign-in throttling (the API's token route and the browser's sign-in share it), with limits from settings
# (`SignInLimits.of`). Per user: after `user_failures_max` consecutive wrong passwords (LOCK_AFTER by default) the user
# is locked for `user_lock_s` (LOCK_S); a right password resets the count. Per client address: `address_failures_max`
# failed sign-ins (any usernames, known or not: password spraying) within `address_window_s` of the first lock the
# address for `address_lock_s`; while it is locked no password from it is checked, a right one included, and a success
# does not reset its count (a sprayer holding one good account must not be able to wipe the count with it).
LOCK_AFTER = 5
LOCK_S = 900


@dataclass(frozen=True)
class SignInLimits:
    user_failures_max: int = LOCK_AFTER
    user_lock_s: int = LOCK_S
    address_failures_max: int = 20  # 0: no per-address limit
    address_window_s: int = 900
    address_lock_s: int = 900

    @classmethod
    def of(cls, settings: Any) -> SignInLimits:
        """The limits an operator set (`GREENRIGHTS_SIGN_IN_*`, core/settings.py)."""
        return cls(
            user_failures_max=settings.sign_in_user_failures_max,
            user_lock_s=settings.sign_in_user_lock_s,
            address_failures_max=settings.sign_in_address_failures_max,
            address_window_s=settings.sign_in_address_window_s,
            address_lock_s=settings.sign_in_address_lock_s,
        )


@dataclass(frozen=True)
class LoginResult:
    principal: Principal | None
    locked_until: dt.datetime | None = None
    # The lock is the client address's (many failures from it), not the user's.
    by_address: bool = False


def _insert_for(session: AsyncSession) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return pg_insert if dialect == "postgresql" else sqlite_insert


async def _address_row(session: AsyncSession, address: str, now: dt.datetime) -> SignInAddress:
    """The address's row, created if need be and locked for this transaction (FOR UPDATE on PostgreSQL; SQLite's
    BEGIN IMMEDIATE already serialises writers), so that concurrent attempts from one address are counted one after
    another and a burst cannot all pass a count read before any was recorded."""
    table = SignInAddress.__table__
    ins = _insert_for(session)(table).values(address=address, failures=0, window_started_at=now)
    await session.execute(ins.on_conflict_do_nothing(index_elements=["address"]))
    q = select(SignInAddress).where(SignInAddress.address == address).with_for_update()
    return (await session.execute(q)).scalar_one()


async def _address_failed(
    session: AsyncSession, row: SignInAddress, now: dt.datetime, limits: SignInLimits
) -> dt.datetime | None:
    """Count one failed sign-in from the row's address; the lock's end when this failure sets it."""
    window = dt.timedelta(seconds=limits.address_window_s)
    if row.window_started_at + window <= now:
        row.failures, row.window_started_at = 0, now
    row.failures += 1
    locked = None
    if row.failures >= limits.address_failures_max:
        locked = row.locked_until = now + dt.timedelta(seconds=limits.address_lock_s)
        row.failures, row.window_started_at = 0, now
    session.add(row)
    # Tidy up other addresses' rows that count nothing any more (rows another attempt holds are skipped).
    stale = (
        select(SignInAddress.address)
        .where(
            SignInAddress.address != row.address,
            SignInAddress.window_started_at <= now - window,
            or_(col(SignInAddress.locked_until).is_(None), col(SignInAddress.locked_until) <= now),
        )
        .limit(100)
        .with_for_update(skip_locked=True)
    )
    await session.execute(delete(SignInAddress).where(SignInAddress.address.in_(stale)))
    return locked


async def check_login(
    session: AsyncSession,
    username: str,
    password: str,
    now: dt.datetime,
    *,
    address: str | None = None,
    limits: SignInLimits | None = None,
) -> LoginResult:
    """Check a username and password from a client `address` and record the outcome (the user's failure count and
    lock, the address's). Run it in a unit of work that commits, and refuse afterwards (`refuse_login`): raising
    inside would roll the counts back.

    Every call verifies exactly one argon2id hash made with the same parameters (the user's, or `dummy_hash()` for an
    unknown, revoked or locked user, or a locked address), so the time a refusal takes does not say whether the
    username exists."""
    limits = limits or SignInLimits()
    row = None
    if address is not None and limits.address_failures_max > 0:
        row = await _address_row(session, address, now)
        if row.locked_until is not None and row.locked_until > now:
            verify_password(dummy_hash(), password)  # the same work as any other attempt
            return LoginResult(None, row.locked_until, by_address=True)

    async def failed(user_locked: dt.datetime | None) -> LoginResult:
        address_locked = await _address_failed(session, row, now, limits) if row is not None else None
        if address_locked is not None:
            return LoginResult(None, address_locked, by_address=True)
        return LoginResult(None, user_locked)

    # FOR UPDATE: concurrent wrong passwords for one user are counted one after another (PostgreSQL's READ COMMITTED
    # would otherwise let a burst of them all read the same count and lock).
    q = select(Principal).where(Principal.username == username).with_for_update()
    p = (await session.execute(q)).scalar_one_or_none()
    if p is None or p.password_hash is None or p.revoked_at is not None:
        verify_password(dummy_hash(), password)  # the same work as for a known user: no timing oracle
        return await failed(None)
    if p.locked_until is not None and p.locked_until > now:
        # Locked: the password is not checked, but hashed all the same, so a lock does not tell that the user exists.
        verify_password(dummy_hash(), password)
        return await failed(p.locked_until)
    if not verify_password(p.password_hash, password):
        p.failed_logins += 1
        if p.failed_logins >= limits.user_failures_max:
            p.locked_until = now + dt.timedelta(seconds=limits.user_lock_s)
            p.failed_logins = 0
        session.add(p)
        return await failed(p.locked_until if p.locked_until and p.locked_until > now else None)
    if p.failed_logins or p.locked_until is not None:
        p.failed_logins = 0
        p.locked_until = None
        session.add(p)
    return LoginResult(p)


def refuse_login(result: LoginResult, now: dt.datetime) -> Principal:
    """The principal of a successful check, or the refusal: 429 with Retry-After while locked, else 401."""
    if result.principal is not None:
        return result.principal
    if result.locked_until is not None:
        wait = max(1, int((result.locked_until - now).total_seconds()))
        minutes = (wait + 59) // 60
        detail = (
            f"Too many failed sign-ins from your network address: try again in {minutes} minutes."
            if result.by_address
            else f"Too many wrong passwords: try again in {minutes} minutes."
        )
        raise AppError("sign-in-locked", detail, headers={"Retry-After": str(wait)})
    raise AppError("unauthenticated", "Unknown user or wrong password.")


@dataclass(frozen=True)
class Unlocked:
    principal: Principal
    was_locked_until: dt.datetime | None
    failed_logins: int


async def unlock_user(session: AsyncSession, username: str, by: Identity | None, now: dt.datetime) -> Unlocked:
    """Lift a staff user's sign-in lock and clear the failure count. `by` is None for an operator at the command
    line; over the API only an administrator may (the regulator, as for revoking any organisation's API key). It
    does not lift a lock on a client address (that ends by itself). Unlocking an unlocked user changes nothing."""
    if by is not None and by.role is not Role.REGULATOR:
        raise AppError("forbidden", "Only an administrator (regulator) may unlock a user.")
    q = select(Principal).where(Principal.username == username, Principal.kind == "user").with_for_update()
    p = (await session.execute(q)).scalar_one_or_none()
    if p is None:
        raise AppError("not-found", "No user with this username.", field="username")
    was = p.locked_until if p.locked_until is not None and p.locked_until > now else None
    done = Unlocked(p, was, p.failed_logins)
    if p.failed_logins or p.locked_until is not None:
        p.failed_logins = 0
        p.locked_until = None
        session.add(p)
        await session.flush()
    return done


@functools.cache
def dummy_hash() -> str:
    """The hash a refused sign-in verifies instead of a user's (same parameters, so the same work). Made once per
    process on first use, not at import: a command-line run that signs nobody in does not pay for it; the server
    makes it at startup (`server.app`), so no sign-in waits for it."""
    return hash_password("not-a-password-of-anyone")
