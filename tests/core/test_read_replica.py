"""Reads of GET requests from the PostgreSQL streaming replica (core/replica.py), on the real replica that .ci/replica
starts at port 5433: GET reads are served by it, a writer reads its own writes from the primary, a lagging replica
(replay paused) is left for the primary, and a replica that goes away (a TCP relay to it is shut) is too, with no 5xx.

Which database answered is observable twice: the `greenrights_db_reads_total` counter of /metrics, and the data:
while the replica's replay is paused, a row written since exists on the primary only, so a 404 for it came from the
replica and a 200 from the primary (each checked against both databases directly).

The replica replicates the whole cluster, so these tests use a database of their own (`greenrights_rr_<worker>`),
created on the primary and waited for on the replica. Skipped unless GREENRIGHTS_TEST_DATABASE_URL and
GREENRIGHTS_TEST_READ_DATABASE_URL are set."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from sqlalchemy import Engine, create_engine, make_url, text

from core.clock import FixedClock
from core.db import Database, sync_url
from core.identity import Role
from core.settings import Settings
from server.app import create_app
from server.migrate import create_schema
from tests.conftest import START, Env
from tests.helpers import make_uscc

_PRIMARY = os.environ.get("GREENRIGHTS_TEST_DATABASE_URL")
_REPLICA = os.environ.get("GREENRIGHTS_TEST_READ_DATABASE_URL")
needs_replica = pytest.mark.skipif(
    not (_PRIMARY and _REPLICA), reason="GREENRIGHTS_TEST_DATABASE_URL and GREENRIGHTS_TEST_READ_DATABASE_URL not set"
)
NAME = f"greenrights_rr_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
ENTERPRISES = "/api/v1/enterprises"


def _url(base: str, database: str) -> str:
    return make_url(base).set(database=database).render_as_string(hide_password=False)


def _scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


@pytest.fixture(scope="module")
def databases() -> Iterator[tuple[str, str, Engine, Engine]]:
    """This module's database on the primary, once it exists on the replica: (primary url, replica url, sync engines
    on each, autocommit)."""
    assert _PRIMARY and _REPLICA
    admin = create_engine(sync_url(_PRIMARY), isolation_level="AUTOCOMMIT")
    if _scalar(admin, "SELECT 1 FROM pg_database WHERE datname = :n", n=NAME) is None:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{NAME}"'))
    admin.dispose()
    replica_admin = create_engine(sync_url(_REPLICA), isolation_level="AUTOCOMMIT")
    for _ in range(600):
        if _scalar(replica_admin, "SELECT 1 FROM pg_database WHERE datname = :n", n=NAME):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"database {NAME} never reached the replica")
    # A run that died with replay paused would leave it so.
    _scalar(replica_admin, "SELECT pg_wal_replay_resume() WHERE pg_is_wal_replay_paused()")
    replica_admin.dispose()
    primary_url, replica_url = _url(_PRIMARY, NAME), _url(_REPLICA, NAME)
    primary = create_engine(sync_url(primary_url), isolation_level="AUTOCOMMIT")
    replica = create_engine(sync_url(replica_url), isolation_level="AUTOCOMMIT")
    try:
        yield primary_url, replica_url, primary, replica
    finally:
        primary.dispose()
        replica.dispose()


@contextlib.asynccontextmanager
async def app_env(primary_url: str, read_url: str, **replica_settings: float) -> AsyncIterator[Env]:
    """A fresh schema on the module's database and an app whose GET reads may go to `read_url`."""
    engine = create_engine(sync_url(primary_url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    create_schema(primary_url)
    clock = FixedClock(START)
    settings = Settings(
        database_url=primary_url,
        read_database_url=read_url,
        scheduler_embedded=False,
        api_rate_limit_per_minute=0,
        **replica_settings,
    )
    app = create_app(settings, clock)
    db: Database = app.state.db
    await app.state.registry.bootstrap()
    client = AsyncTestClient(app=app)
    await client.__aenter__()
    try:
        yield Env(url=primary_url, client=client, db=db, clock=clock, app=app)
    finally:
        await client.__aexit__(None, None, None)
        await db.dispose()


async def caught_up(env: Env) -> None:
    """Check the replica (the real check the app runs) until it is within the app's lag bound."""
    replica = env.db.replica
    assert replica is not None
    for _ in range(300):
        await replica.refresh(env.db)
        staleness = replica.staleness_s()
        if staleness is not None and staleness <= replica.max_lag_s:
            return
        await asyncio.sleep(0.1)
    pytest.fail("the replica never caught up")


def reads(metrics_text: str, served_by: str, reason: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "greenrights_db_reads":
            for sample in family.samples:
                if sample.labels == {"served_by": served_by, "reason": reason} and sample.name.endswith("_total"):
                    return sample.value
    return 0.0


async def metric(env: Env, served_by: str, reason: str) -> float:
    r = await env.client.get("/metrics")
    assert r.status_code == 200
    return reads(r.text, served_by, reason)


async def new_enterprise(env: Env, key: str, name: str) -> int:
    r = await env.post(ENTERPRISES, key, {"uscc": make_uscc(), "name": name, "city": "南昌", "industry_code": "D4411"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def on(engine: Engine, enterprise_id: int) -> bool:
    return bool(_scalar(engine, "SELECT count(*) FROM registry_enterprise WHERE id = :i", i=enterprise_id))


@contextlib.contextmanager
def replay_paused(primary: Engine, replica: Engine) -> Iterator[None]:
    """Pause the replica's WAL replay (it keeps receiving), until the block ends.

    First the replica replays everything the primary has written so far: replay paused in the middle of the schema's
    reset (`app_env`'s DROP SCHEMA) would keep its table locks held on the replica, and a read there would wait
    for them forever."""
    target = str(_scalar(primary, "SELECT pg_current_wal_lsn()"))
    for _ in range(600):
        if _scalar(replica, "SELECT pg_last_wal_replay_lsn() >= CAST(:target AS pg_lsn)", target=target):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the replica never replayed the primary's writes")
    _scalar(replica, "SELECT pg_wal_replay_pause()")
    try:
        for _ in range(300):
            if _scalar(replica, "SELECT pg_get_wal_replay_pause_state()") == "paused":
                break
            # Replay pauses at its next WAL record: give it one.
            _scalar(primary, "SELECT txid_current()")
            time.sleep(0.05)
        else:
            pytest.fail("replay never paused")
        yield
    finally:
        _scalar(replica, "SELECT pg_wal_replay_resume()")


# Bounds so wide that only the test's own checks (`caught_up`) change what the app knows of the replica.
STILL = {"read_max_lag_s": 3600.0, "read_your_writes_s": 3600.0, "replica_check_interval_s": 3600.0}


@needs_replica
async def test_get_reads_are_served_by_the_replica(databases) -> None:
    primary_url, replica_url, primary, replica = databases
    async with app_env(primary_url, replica_url, **STILL) as env:
        writer, reader = await env.key(Role.REGULATOR), await env.key(Role.REGULATOR)
        first = await new_enterprise(env, writer, "南昌电厂")
        await caught_up(env)
        assert (await env.client.get("/ready")).json()["read_replica"] == "ok"
        before = await metric(env, "replica", "replica")
        r = await env.get(f"{ENTERPRISES}/{first}", reader)
        assert r.status_code == 200 and r.json()["name"] == "南昌电厂"
        assert await metric(env, "replica", "replica") > before
        with replay_paused(primary, replica):
            second = await new_enterprise(env, writer, "九江水泥")
            assert on(primary, second) and not on(replica, second)
            # Only the replica lacks it: the reader's GETs were answered there.
            assert (await env.get(f"{ENTERPRISES}/{second}", reader)).status_code == 404
            listed = (await env.get(ENTERPRISES, reader)).json()["items"]
            assert [e["id"] for e in listed] == [first]


@needs_replica
async def test_a_writer_reads_its_own_writes(databases) -> None:
    primary_url, replica_url, primary, replica = databases
    async with app_env(primary_url, replica_url, **STILL) as env:
        writer, reader = await env.key(Role.REGULATOR), await env.key(Role.REGULATOR)
        await caught_up(env)
        with replay_paused(primary, replica):
            before = await metric(env, "primary", "own-write")
            made = await new_enterprise(env, writer, "南昌电厂")
            assert not on(replica, made)
            r = await env.get(f"{ENTERPRISES}/{made}", writer)
            assert r.status_code == 200 and r.json()["name"] == "南昌电厂"
            assert [e["id"] for e in (await env.get(ENTERPRISES, writer)).json()["items"]] == [made]
            assert await metric(env, "primary", "own-write") >= before + 2
            # Another principal is not the writer: it reads the (paused) replica.
            assert (await env.get(f"{ENTERPRISES}/{made}", reader)).status_code == 404


@needs_replica
async def test_a_lagging_replica_is_left_for_the_primary(databases) -> None:
    primary_url, replica_url, primary, replica = databases
    lag = {"read_max_lag_s": 0.5, "read_your_writes_s": 0.5, "replica_check_interval_s": 0.1}
    async with app_env(primary_url, replica_url, **lag) as env:
        writer, reader = await env.key(Role.REGULATOR), await env.key(Role.REGULATOR)
        await caught_up(env)
        with replay_paused(primary, replica):
            before = await metric(env, "primary", "lag")
            made = await new_enterprise(env, writer, "南昌电厂")
            # Within the bound the reader may still get the replica's 404; past it, the primary's answer.
            for _ in range(200):
                r = await env.get(f"{ENTERPRISES}/{made}", reader)
                if r.status_code == 200:
                    break
                assert r.status_code == 404, r.text
                await asyncio.sleep(0.05)
            assert r.status_code == 200 and r.json()["name"] == "南昌电厂"
            assert not on(replica, made)  # so the primary answered
            assert await metric(env, "primary", "lag") > before
            staleness = env.db.replica.staleness_s() if env.db.replica else None
            assert staleness is None or staleness > 0.5
        # Replay resumed: the replica catches up and serves again, with the row. Once the check says so, the bound is
        # widened (and the app's own checks stopped): on a loaded machine more than 0.5 s can pass between that check
        # and the read, which then rightly goes to the primary.
        await caught_up(env)
        assert env.db.replica is not None
        env.db.replica.max_lag_s = env.db.replica.check_interval_s = 3600.0
        before = await metric(env, "replica", "replica")
        r = await env.get(f"{ENTERPRISES}/{made}", reader)
        assert r.status_code == 200 and on(replica, made)
        assert await metric(env, "replica", "replica") > before


class Relay:
    """A TCP relay on 127.0.0.1 to the replica's port, shut at will: the replica goes away as a network would. It runs
    in threads of its own (the in-process test client serves the app on another thread's event loop while the
    test's loop waits for the answer)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # shut
            if not self.open:
                client.close()
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_RDWR)

    def shut(self) -> None:
        self.open = False
        # shutdown() wakes the thread blocked in accept(); close() alone would leave it accepting.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@needs_replica
async def test_a_replica_that_goes_down_leaves_reads_on_the_primary(databases) -> None:
    primary_url, replica_url, primary, replica = databases
    relay = Relay(make_url(replica_url).port or 5433)
    relayed = make_url(replica_url).set(port=relay.port).render_as_string(hide_password=False)
    async with app_env(primary_url, relayed, **STILL) as env:
        writer, reader = await env.key(Role.REGULATOR), await env.key(Role.REGULATOR)
        first = await new_enterprise(env, writer, "南昌电厂")
        await caught_up(env)
        before = await metric(env, "replica", "replica")
        assert (await env.get(f"{ENTERPRISES}/{first}", reader)).status_code == 200
        assert await metric(env, "replica", "replica") > before  # through the relay

        relay.shut()
        errors, down = await metric(env, "primary", "replica-error"), await metric(env, "primary", "down")
        r = await env.get(f"{ENTERPRISES}/{first}", reader)
        assert r.status_code == 200 and r.json()["name"] == "南昌电厂"
        assert await metric(env, "primary", "replica-error") > errors  # tried, failed, read again on the primary
        with replay_paused(primary, replica):
            second = await new_enterprise(env, writer, "九江水泥")
            r = await env.get(f"{ENTERPRISES}/{second}", reader)
            assert r.status_code == 200 and r.json()["name"] == "九江水泥"
            assert not on(replica, second)  # so the primary answered
        assert env.db.replica is not None
        await env.db.replica.refresh(env.db)  # the check finds it down too
        assert env.db.replica.staleness_s() is None
        assert (await env.client.get("/ready")).json()["read_replica"].startswith("down")
        listed = (await env.get(ENTERPRISES, reader)).json()["items"]
        assert [e["id"] for e in listed] == [first, second]
        assert await metric(env, "primary", "down") > down


def test_the_read_your_writes_window_covers_the_lag_bound() -> None:
    with pytest.raises(ValidationError, match="read_your_writes_s"):
        Settings(read_database_url="postgresql://x@127.0.0.1:5433/x", read_max_lag_s=10, read_your_writes_s=5)
    assert Settings(read_max_lag_s=2, read_your_writes_s=5).read_database_url is None


def test_a_read_replica_is_refused_beside_sqlite(tmp_path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", read_database_url="postgresql://x@127.0.0.1:5433/x"
    )
    with pytest.raises(ValueError, match="PostgreSQL primary"):
        create_app(settings)
