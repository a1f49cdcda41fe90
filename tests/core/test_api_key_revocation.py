"""API keys can be revoked, by API (your organisation's keys; a regulator any) and at the command line; a revoked
key authenticates nobody, and another organisation's key reads like a missing one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.identity import Role
from server.migrate import upgrade

REPO = Path(__file__).resolve().parents[2]


async def test_revoke_by_api(env) -> None:
    emitter = await env.key(Role.EMITTER)
    other = await env.key(Role.EMITTER)
    regulator = await env.key(Role.REGULATOR)
    mine = (await env.get("/api/v1/api-keys", emitter)).json()
    assert [k["prefix"] for k in mine] == [emitter.split("_")[1]] and "key_hash" not in mine[0]
    other_prefix = other.split("_")[1]
    r = await env.post(f"/api/v1/api-keys/{other_prefix}/revocation", emitter, None)
    assert r.status_code == 404 and r.json()["field"] == "prefix"
    assert (await env.get("/api/v1/api-keys", other)).status_code == 200  # still works
    r = await env.post(f"/api/v1/api-keys/{other_prefix}/revocation", regulator, None)
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert (await env.get("/api/v1/api-keys", other)).status_code == 401
    again = await env.post(f"/api/v1/api-keys/{other_prefix}/revocation", regulator, None)
    assert again.status_code == 200 and again.json()["revoked_at"] == r.json()["revoked_at"]
    r = await env.post("/api/v1/api-keys/not-a-prefix!/revocation", regulator, None)
    assert r.status_code in (404, 422)


def test_revoke_at_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"
    upgrade(url)
    env = {**os.environ, "GREENRIGHTS_DATABASE_URL": url}
    cli = [sys.executable, "-m", "server.cli", "apikey"]
    made = subprocess.run([*cli, "create", "--role", "auditor"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    key = made.stdout.strip().splitlines()[-1]
    done = subprocess.run([*cli, "revoke", key], cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip
    assert done.returncode == 0 and "revoked" in done.stdout, done.stderr
    missing = subprocess.run([*cli, "revoke", "000000000000"], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=60, check=False)  # fmt: skip
    assert missing.returncode == 1 and "No API key" in missing.stderr
