"""Fixtures for the workbench: people who sign in (users with passwords), an in-process client that signs in
with the CSRF token as a browser would, and a live server (uvicorn in a thread) for Playwright with Debian's
chromium. Screenshots go to var/screenshots/ (test artefacts; the docs' pictures are copied from there)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from litestar.testing import AsyncTestClient

from core.clock import FixedClock
from core.db import UnitOfWork
from core.identity import Role, create_organisation, create_user
from core.settings import Settings
from server.app import create_app
from server.migrate import create_schema
from tests.conftest import START, Env, fresh_database_url, make_env, schema_database_url

CHROMIUM = os.environ.get("GREENRIGHTS_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
PASSWORD = "correct-horse-battery-9"


async def make_user(
    env_or_db: Any, role: Role, organisation_id: int | None = None, username: str | None = None, now: Any = None
) -> tuple[str, int]:
    """A staff user with PASSWORD; returns (username, organisation id)."""
    db = env_or_db.db if isinstance(env_or_db, Env) else env_or_db
    now = now or (env_or_db.clock.now() if isinstance(env_or_db, Env) else START)
    name = username or f"{role.value}-{uuid.uuid4().hex[:6]}"

    async def work(uow: UnitOfWork) -> int:
        org_id = organisation_id
        if org_id is None:
            org = await create_organisation(uow.session, f"{role.value} org", role.value, now)
            org_id = org.id or 0
        await create_user(uow.session, organisation_id=org_id, role=role, username=name, password=PASSWORD, now=now)
        return org_id

    return name, await db.run(work)


CSRF_FIELD = re.compile(r'name="_csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = CSRF_FIELD.search(html)
    assert m, "page has no CSRF field"
    return m.group(1)


async def sign_in(client: AsyncTestClient[Any], username: str, password: str = PASSWORD) -> Any:
    """Sign in through the form, as a browser does: GET /login (CSRF cookie and field), then POST it."""
    page = await client.get("/login")
    token = csrf_of(page.text)
    return await client.post(
        "/login", data={"username": username, "password": password, "_csrf_token": token}, follow_redirects=False
    )


async def form_post(client: AsyncTestClient[Any], path: str, page_path: str, data: dict[str, Any]) -> Any:
    """POST a form with the CSRF token taken from the page that carries the form."""
    page = await client.get(page_path)
    return await client.post(path, data={**data, "_csrf_token": csrf_of(page.text)}, follow_redirects=False)


@pytest.fixture
async def web_env(tmp_path: Path) -> AsyncIterator[Env]:
    """The app on SQLite with a fixed clock (pages are the same on both databases: the services are tested there)."""
    e, client = await make_env(schema_database_url("sqlite", tmp_path), build=False)
    try:
        yield e
    finally:
        await client.__aexit__(None, None, None)
        await e.db.dispose()


# ---------------------------------------------------------------- live server and browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The real app served by uvicorn on 127.0.0.1 in a thread with its own event loop. `call` runs a coroutine on
    that loop against the app's own services (seeding data exactly as the app would)."""

    def __init__(self, url: str) -> None:
        create_schema(url)
        self.clock = FixedClock(START)
        self.app = create_app(Settings(database_url=url, scheduler_embedded=False), self.clock)
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())

    def start(self) -> None:
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            threading.Event().wait(0.05)
        assert self.server.started, "live server did not start"
        self.call(lambda state: state.registry.bootstrap())

    def call(self, make: Callable[[Any], Awaitable[Any]]) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(make(self.app.state), self.loop).result(timeout=120)

    async def acall(self, make: Callable[[Any], Awaitable[Any]]) -> Any:
        assert self.loop is not None
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(make(self.app.state), self.loop))

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(fresh_database_url("sqlite", tmp_path))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _chromium_or_skip() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"CI must have Debian's chromium at {CHROMIUM} (.ci/run installs it)")
    pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set GREENRIGHTS_CHROMIUM)")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    path = _chromium_or_skip()
    from playwright.async_api import async_playwright

    pw = await async_playwright().start()
    b = await pw.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"])
    try:
        yield b
    finally:
        await b.close()
        await pw.stop()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    """A fresh browser context (no cookies) at 1280x900, failing the test on any script error or failed asset."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    p = await context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    # A page's own status is the test's business; a script, stylesheet or fetch that fails is a broken page.
    p.on(
        "response",
        lambda r: (
            errors.append(f"{r.status} {r.url}") if r.status >= 400 and r.request.resource_type != "document" else None
        ),
    )
    try:
        yield p
    finally:
        await context.close()
    assert not errors, f"the page reported errors: {errors}"


async def browser_sign_in(page: Any, base_url: str, username: str, password: str = PASSWORD) -> None:
    await page.goto(f"{base_url}/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await submit(page, "button[type=submit]")


async def submit(page: Any, selector: str) -> None:
    """Click what posts a form and wait for the page the post leads to: a bare click returns before the
    navigation starts, and a check made then reads the old page (a flake CI showed once)."""
    async with page.expect_navigation(wait_until="load"):
        await page.click(selector)


async def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as a test artefact: var/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(autouse=True)
def signing_key_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Each workbench test signs (bank answers, checkpoints) with its own key, never ./var of the checkout."""
    from core.signing import SIGNING_KEY_ENV

    path = tmp_path / "keys" / "signing-key.pem"
    monkeypatch.setenv(SIGNING_KEY_ENV, str(path))
    return path
