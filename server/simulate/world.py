"""The simulated province-year's world: a fresh sandbox database with the scenario loaded and the real app served
in this process (the default), or a running server whose sandbox database was loaded with the scenario before
(`--url`). Either way the rest of the simulation sees only a base URL, the keys of the scenario's actors and what
the API answers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenrights.client import AsyncClient
from server.scenario import Scenario, keys_file, read_scenario


@dataclass(frozen=True)
class Actor:
    """One API key of the scenario: its role, who it is (a USCC, a bank name, an authority's label) and the account
    (an enterprise) or organisation (an authority, a bank) the keys file names."""

    role: str
    who: str
    ref: int
    key: str


@dataclass
class Keys:
    authorities: dict[str, list[Actor]] = field(default_factory=dict)  # role -> keys, in file order
    banks: dict[str, Actor] = field(default_factory=dict)  # bank name -> key
    enterprises: dict[str, Actor] = field(default_factory=dict)  # USCC -> emitter key (ref: holding account)


def read_keys(path: Path) -> Keys:
    """The keys file a scenario load writes (`server.scenario.write_secrets`): tab-separated `kind role who account
    secret`."""
    out = Keys()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        kind, role, who, ref, secret = line.split("\t")
        if kind != "apikey":
            continue
        actor = Actor(role, who, int(ref.split()[-1]), secret)
        if role == "emitter":
            out.enterprises[who.split()[0]] = actor
        elif role == "bank":
            out.banks[who] = actor
        else:
            out.authorities.setdefault(role, []).append(actor)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class World:
    """What the driver works with: where the API is, the scenario's files and its actors' keys."""

    base_url: str
    sc: Scenario
    keys: Keys
    folder: Path | None = None  # the embedded run's folder (database, keys)
    database_url: str | None = None
    load_lines: list[str] = field(default_factory=list)
    _server: Any = None
    _task: asyncio.Task[Any] | None = None
    _clients: dict[str, AsyncClient] = field(default_factory=dict)

    def client(self, key: str) -> AsyncClient:
        """One SDK client per key (its connection pool reused)."""
        if key not in self._clients:
            self._clients[key] = AsyncClient(self.base_url, api_key=key, timeout_s=120.0)
        return self._clients[key]

    def authority(self, role: str, n: int = 0) -> AsyncClient:
        return self.client(self.keys.authorities[role][n].key)

    def enterprise(self, uscc: str) -> AsyncClient:
        return self.client(self.keys.enterprises[uscc].key)

    def bank(self, code: str) -> AsyncClient:
        return self.client(self.keys.banks[self.sc.banks[code]].key)

    async def close(self) -> None:
        for c in self._clients.values():
            await c.aclose()
        self._clients.clear()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def prepare_database(scenario: str, year: int, seed: int, enterprises: int | None) -> tuple[Path, str, list[str]]:
    """A fresh SQLite sandbox under var/simulate-<year>-<seed>/ (an earlier run's folder is replaced), migrated,
    marked a sandbox and loaded with the scenario through the services (`server.scenario.seed_scenario`). Runs
    before any event loop (the upgrade uses its own)."""
    from server.cli import db_upgrade
    from server.scenario import seed_scenario

    folder = Path("var") / f"simulate-{year}-{seed}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    url = f"sqlite+aiosqlite:///{folder / 'greenrights.db'}"
    _use_database(url)
    db_upgrade(url, sandbox=True)
    loaded, lines = asyncio.run(seed_scenario(scenario, url, folder / keys_file(scenario).name, enterprises))
    if loaded is None:
        raise SystemExit("\n".join(lines))
    return folder, url, lines


def _use_database(url: str) -> None:
    """The settings every part of this process reads (the app, the audit checks) point at `url`."""
    from core.settings import get_settings

    os.environ["GREENRIGHTS_DATABASE_URL"] = url
    # One client drives every actor: the per-key limit would make the simulation wait, not test anything.
    os.environ["GREENRIGHTS_API_RATE_LIMIT_PER_MINUTE"] = "0"
    get_settings.cache_clear()


async def start_embedded(scenario: str, folder: Path, url: str, enterprises: int | None, lines: list[str]) -> World:
    """Serve the real app (`server.app:create_served_app`, as `greenrights serve` does, the scheduler embedded) with
    uvicorn in this process on a free port, and wait until it answers /health."""
    import httpx
    import uvicorn

    from core.secrets import jwt_secrets
    from core.settings import get_settings

    _use_database(url)
    jwt_secrets(get_settings())
    port = free_port()
    config = uvicorn.Config(
        "server.app:create_served_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as probe:
        for _ in range(600):
            if task.done():
                task.result()
                raise SystemExit("the embedded server stopped before it answered")
            try:
                if (await probe.get(f"{base}/health", timeout=1.0)).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        else:
            raise SystemExit("the embedded server did not answer /health within 60 s")
    keys = read_keys(folder / keys_file(scenario).name)
    sc = read_scenario(scenario, enterprises)
    return World(base, sc, keys, folder, url, lines, server, task)


async def attach(scenario: str, base_url: str, enterprises: int | None) -> World:
    """A running server (`--url`) whose database is a sandbox loaded with the scenario: keys from
    var/scenario-<name>-keys.txt. Refused unless the server says it is a sandbox."""
    path = keys_file(scenario)
    if not path.is_file():
        raise SystemExit(f"--url: no keys file {path}; load the scenario into the server's sandbox database first")
    keys = read_keys(path)
    world = World(base_url.rstrip("/"), read_scenario(scenario, enterprises), keys)
    clock = await world.authority("regulator").call("getSandboxClock")
    if not clock.sandbox:
        await world.close()
        raise SystemExit(f"--url: {base_url} serves a production database; simulate runs only on a sandbox")
    missing = [e.uscc for e in world.sc.emitters if e.uscc not in keys.enterprises]
    if missing:
        await world.close()
        raise SystemExit(f"--url: {len(missing)} emitters of the scenario have no key in {path}")
    return world
