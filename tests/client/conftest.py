"""A demo database (`greenrights demo`, as a newcomer gets it) served by `greenrights serve` in a subprocess, for the
SDK's tests and the docs/sdk.md walk-through."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, Server, start_server


@dataclass
class Demo:
    url: str
    db_url: str
    keys: dict[str, str]
    accounts: list[int]
    instrument_id: int
    passwords: dict[str, str]
    tmp: Path


def seed_demo(tmp: Path) -> Demo:
    db_url = f"sqlite+aiosqlite:///{tmp / 'sdk.db'}"
    # The checkout under test, not whichever one the virtualenv was installed from.
    env = {**os.environ, "GREENRIGHTS_DATABASE_URL": db_url, "PYTHONPATH": str(REPO)}
    cli = [sys.executable, "-m", "server.cli"]
    subprocess.run([*cli, "db", "upgrade"], cwd=tmp, env=env, check=True, capture_output=True, timeout=120)
    out = subprocess.run([*cli, "demo"], cwd=tmp, env=env, check=True, capture_output=True, text=True, timeout=120)
    text = out.stdout
    keys = dict(re.findall(r"(regulator|regulator-2|auditor) key:\s+(gr_\S+)", text))
    accounts = [int(a) for a in re.findall(r"holding account (\d+), emitter key", text)]
    emitter_keys = re.findall(r"emitter key: (gr_\S+)", text)
    keys["power"], keys["cement"] = emitter_keys
    keys["bank"] = re.search(r"bank key:\s+(gr_\S+)", text).group(1)  # type: ignore[union-attr]
    instrument = int(re.search(r"\(instrument (\d+),", text).group(1))  # type: ignore[union-attr]
    passwords = dict(re.findall(r"^\s+(\w+)\s+(\S+)\s+\w+$", text.split("username / password", 1)[1], re.M))
    return Demo("", db_url, keys, accounts, instrument, passwords, tmp)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Demo, Server]]:
    tmp = tmp_path_factory.mktemp("sdk")
    d = seed_demo(tmp)
    server = start_server(d.db_url, tmp / "server.log")
    d.url = server.base_url
    try:
        yield d, server
    finally:
        server.stop()
