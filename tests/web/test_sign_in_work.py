"""Sign-in costs the same hash work whoever asks: for an unknown username, a known one with a wrong password, a
locked one and the right password, the API's token route and the web form each verify exactly one argon2id hash,
made with the same parameters. Nothing is timed (timings are noise on a shared machine): the hasher is spied on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import argon2
import pytest

from core import identity
from core.identity import LOCK_AFTER, Role
from tests.conftest import Env
from tests.web.conftest import PASSWORD, make_user, sign_in

SPIED: list[argon2.Parameters] = []


class SpyHasher(argon2.PasswordHasher):
    """The real hasher, recording in SPIED the parameters of every hash it verifies (PasswordHasher has slots, so
    the record lives outside it)."""

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        SPIED.append(argon2.extract_parameters(hash if isinstance(hash, str) else hash.decode()))
        return super().verify(hash, password)


@pytest.fixture
def spied(monkeypatch: pytest.MonkeyPatch) -> list[argon2.Parameters]:
    monkeypatch.setattr(identity, "_hasher", SpyHasher())
    SPIED.clear()
    return SPIED


async def api_sign_in(env: Env, username: str, password: str) -> int:
    r = await env.client.post("/api/v1/auth/token", json={"username": username, "password": password})
    return int(r.status_code)


async def web_sign_in(env: Env, username: str, password: str) -> int:
    return int((await sign_in(env.client, username, password)).status_code)


@pytest.mark.parametrize("route", [api_sign_in, web_sign_in], ids=["api", "web"])
async def test_each_sign_in_verifies_one_hash_of_the_same_cost(
    web_env: Env, spied: list[argon2.Parameters], route: Callable[[Env, str, str], Awaitable[int]]
) -> None:
    user, _ = await make_user(web_env, Role.REGULATOR)
    attempts: list[tuple[str, str, str, int]] = [
        ("unknown user", "nobody-by-this-name", "wrong-password-123", 401),
        ("wrong password", user, "wrong-password-123", 401),
        ("right password", user, PASSWORD, 200 if route is api_sign_in else 303),
    ]
    seen: dict[str, list[Any]] = {}
    for what, name, password, status in attempts:
        spied.clear()
        assert await route(web_env, name, password) == status, what
        seen[what] = list(spied)
    for _ in range(LOCK_AFTER):
        await route(web_env, user, "wrong-password-123")
    spied.clear()
    assert await route(web_env, user, PASSWORD) == 429  # locked: the password is not checked, but hashed
    seen["locked"] = list(spied)
    assert {what: len(calls) for what, calls in seen.items()} == {what: 1 for what in seen}
    costs = [calls[0] for calls in seen.values()]
    assert all(c == costs[0] for c in costs), costs  # one argon2id cost for all: memory, time, parallelism
