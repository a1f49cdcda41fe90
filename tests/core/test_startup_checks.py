"""A server refuses a database whose schema is missing or behind, naming the command to run; /ready reports the
database, the migrations and the scheduler, and answers 503 when one of them is not right."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

from server.migrate import schema_problem, upgrade

REPO = Path(__file__).resolve().parents[2]


def test_serve_refuses_an_empty_database_and_names_the_command(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    env = {**os.environ, "GREENRIGHTS_DATABASE_URL": url}
    run = subprocess.run([sys.executable, "-m", "server.cli", "serve", "--port", "1"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert run.returncode == 1
    assert "greenrights db upgrade" in run.stderr and "no greenrights schema" in run.stderr


def test_a_schema_behind_the_code_is_named(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    upgrade(url)
    assert schema_problem(url) is None
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    engine.dispose()
    problem = schema_problem(url)
    assert problem and "0005" in problem and "greenrights db upgrade" in problem


async def test_ready_reports_each_check(env) -> None:
    r = await env.client.get("/ready")
    # The test fixtures build the schema from the models, without Alembic's version row: not at head.
    assert r.status_code == 503
    body = r.json()
    assert body["checks"]["database"] == "ok" and "greenrights db upgrade" in body["checks"]["migrations"]
    assert body["checks"]["scheduler"] == "external (greenrights scheduler)"  # the fixtures do not embed it


async def test_ready_on_a_migrated_database(tmp_path: Path) -> None:
    from litestar.testing import AsyncTestClient

    from core.settings import Settings
    from server.app import create_app

    url = f"sqlite+aiosqlite:///{tmp_path / 'ok.db'}"
    upgrade(url)
    app = create_app(Settings(database_url=url, scheduler_embedded=False))
    async with AsyncTestClient(app=app) as client:
        r = await client.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "scheduler": "external (greenrights scheduler)"},
        "sandbox": False,  # a production database: real time (tests/core/test_sandbox_clock.py)
    }


def test_ready_declares_its_503(tmp_path: Path) -> None:
    """A load balancer reads the 503 as documented (the fuzzer found it undeclared): its body has the checks too."""
    from litestar.testing import TestClient

    from core.settings import Settings
    from server.app import create_app

    url = f"sqlite+aiosqlite:///{tmp_path / 'doc.db'}"
    upgrade(url)
    with TestClient(app=create_app(Settings(database_url=url, scheduler_embedded=False))) as client:
        responses = client.get("/schema/openapi.json").json()["paths"]["/ready"]["get"]["responses"]
    assert set(responses) == {"200", "503"}
    assert "application/json" in responses["503"]["content"]
