"""HTTP throughput: POST /api/v1/transfers and GET holdings through the real server, against a bare Litestar app.

What a client sees is the whole HTTP path: uvicorn, authentication, the edge middleware (body checks,
Idempotency-Key claim and stored answer), the service's unit of work and the answer's serialisation. This
benchmark starts the real app exactly as `greenrights serve` does (the same command, as a subprocess on a free
loopback port) and, in the same run, a bare Litestar app under the same uvicorn settings on the same database
and `core.db.Database` (same pragmas, pool and unit of work) whose POST does one INSERT + one UPDATE and whose GET
reads one balance row. Both are driven by one `httpx.AsyncClient` with 16 connections (16 requests in flight), a
fixed number of requests per phase and a time bound, loopback only. Phases alternate (real, bare, bare, real, ...)
so that drifting machine load hits both alike.

Transfers move 1 tCO2e between two holding accounts of one enterprise (trusted, so each completes at once), each
with a fresh Idempotency-Key. At the end the benchmark checks its own answers: units moved equal the successful
transfers, the ledger's invariants hold, and the bare balance equals the bare requests.

The embedded scheduler is switched off in the served app (GREENRIGHTS_SCHEDULER_EMBEDDED=false), as the
end-to-end tests do, so its periodic sweeps do not add noise.

Usage: `python -m bench.http_path [--transfers N] [--holdings N] [--rounds R] [--connections C] [--workers W]
[--pg-url URL]`. SQLite (a temporary file) by default; with `--pg-url` the PostgreSQL database given (rows are
added to it; only the benchmark's own scratch tables are dropped). The last line is
`http_transfers_per_s=<n> http_vs_bare=<x> http_holdings_vs_bare=<y> p99_ms=<n>`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script (`python bench/http_path.py`), the repository is not on the path

import httpx  # noqa: E402
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, insert, select, update  # noqa: E402

HOST = "127.0.0.1"  # loopback only: the benchmark never talks to another machine
START_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0

# The bare app's tables: an append-only journal and one balance row, the least a durable transfer writes.
_scratch_md = MetaData()
_id_type = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY.
SCRATCH = Table(
    "bench_http_scratch",
    _scratch_md,
    Column("id", _id_type, primary_key=True, autoincrement=True),
    Column("account_id", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("ref", String(200), nullable=False),
)
BALANCE = Table(
    "bench_http_balance",
    _scratch_md,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("balance", BigInteger, nullable=False),
)


# ---------------------------------------------------------------------------------------------- the bare app
def bare_app(url: str) -> Any:
    """The least an HTTP write and read can cost on this database: a JSON body in, one INSERT + one UPDATE in one
    unit of work (or one SELECT), a JSON answer out."""
    from litestar import Litestar, get, post

    from core.db import Database, UnitOfWork
    from core.settings import get_settings

    settings = get_settings()
    db = Database(url, retries_max=settings.db_retries_max, busy_timeout_ms=settings.sqlite_busy_timeout_ms)

    @post("/bare/transfers", status_code=201)
    async def bare_transfer(data: dict[str, Any]) -> dict[str, Any]:
        async def work(uow: UnitOfWork) -> int:
            res = await uow.session.execute(
                insert(SCRATCH).values(account_id=1, amount=int(data["quantity"]), ref=str(data.get("ref", "")))
            )
            await uow.session.execute(
                update(BALANCE).where(BALANCE.c.id == 1).values(balance=BALANCE.c.balance + int(data["quantity"]))
            )
            return int(res.inserted_primary_key[0]) if res.inserted_primary_key else 0

        return {"id": await db.run(work), "status": "completed"}

    @get("/bare/holdings")
    async def bare_holdings() -> dict[str, Any]:
        async def work(uow: UnitOfWork) -> int:
            return int((await uow.session.execute(select(BALANCE.c.balance).where(BALANCE.c.id == 1))).scalar_one())

        return {"balance_base": await db.read(work)}

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    async def on_shutdown() -> None:
        await db.dispose()

    return Litestar([bare_transfer, bare_holdings, health], on_shutdown=[on_shutdown], debug=False)


def serve_bare(url: str, port: int) -> int:
    import uvicorn

    # The same uvicorn settings `greenrights serve` uses.
    uvicorn.run(bare_app(url), host=HOST, port=port, log_level="info")
    return 0


# ---------------------------------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def start(name: str, argv: list[str], env: dict[str, str], port: int, log_dir: Path) -> Proc:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        # Our own interpreter and scripts, with arguments built here.
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    proc = Proc(name, process, f"http://{HOST}:{port}", log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{proc.tail()}")
        try:
            if httpx.get(f"{proc.base_url}/health", timeout=1.0, trust_env=False).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"{name} did not answer /health within {START_TIMEOUT_S} s:\n{proc.tail()}")


# ---------------------------------------------------------------------------------------------- the world
@dataclass
class World:
    emitter_key: str
    source: int
    dest: int
    instrument_id: int
    opening: int


async def prepare(url: str, units: int) -> World:
    """Through the services, as an operator would: a regulator issues `units` CEA (approved by a second key) and
    allocates them to an enterprise's first holding account; the enterprise has a second one and an API key."""
    from bench.ledger import random_uscc
    from core.audit import make_flusher
    from core.clock import SystemClock
    from core.db import Database, UnitOfWork
    from core.identity import Identity, Role, create_api_key, create_organisation
    from registry import schemas as s
    from registry.service import RegistryService
    from server.migrate import upgrade

    upgrade(url)
    clock = SystemClock()
    db = Database(url)
    db.audit_flusher = make_flusher(clock)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: _scratch_md.drop_all(c, checkfirst=True))
            await conn.run_sync(_scratch_md.create_all)
            await conn.execute(insert(BALANCE).values(id=1, balance=0))
        svc = RegistryService(db, clock)
        await svc.bootstrap()

        async def principal(org_id: int, role: Role) -> tuple[Identity, str]:
            async def work(uow: UnitOfWork) -> tuple[Identity, str]:
                p, key = await create_api_key(
                    uow.session, organisation_id=org_id, role=role, label="bench-http", now=clock.now()
                )
                return Identity(principal_id=p.id or 0, organisation_id=org_id, role=role, label="bench-http"), key

            return await db.run(work)

        async def org(uow: UnitOfWork) -> int:
            return (
                await create_organisation(uow.session, "江西省生态环境厅（HTTP 基准）", "regulator", clock.now())
            ).id or 0

        reg_org = await db.run(org)
        (reg, _), (reg2, _) = await principal(reg_org, Role.REGULATOR), await principal(reg_org, Role.REGULATOR)
        run = secrets.token_hex(4)
        await svc.open_account(reg, s.OpenAccount(type="allocation"))
        issued = await svc.issue_units(
            reg, s.IssueUnits(kind="cea", scheme="national", vintage=2025, quantity=str(units)), f"bench-http:{run}:i"
        )
        await svc.approve_transfer(reg2, issued.id, s.Decision(decision="approve"))
        ent = await svc.create_enterprise(
            reg,
            s.CreateEnterprise(
                uscc=random_uscc(), name="HTTP基准企业", city="南昌", industry_code="D4411", is_key_emitter=True
            ),
        )
        source = await svc.open_account(reg, s.OpenAccount(type="holding", enterprise_id=ent.id))
        dest = await svc.open_account(reg, s.OpenAccount(type="holding", enterprise_id=ent.id))
        await svc.allocate_units(
            reg,
            s.AllocateUnits(to_account_id=source.id, instrument_id=issued.instrument_id, quantity=str(units)),
            f"bench-http:{run}:a",
        )
        _, key = await principal(ent.organisation_id, Role.EMITTER)
        return World(key, source.id, dest.id, issued.instrument_id, units)
    finally:
        await db.dispose()


async def check_invariants(url: str) -> tuple[list[str], int]:
    from core import ledger
    from core.db import Database, UnitOfWork

    db = Database(url)

    async def work(uow: UnitOfWork) -> tuple[list[str], int]:
        problems = await ledger.check_invariants(uow.session)
        bare = (await uow.session.execute(select(BALANCE.c.balance).where(BALANCE.c.id == 1))).scalar_one()
        return problems, int(bare)

    try:
        return await db.read(work)
    finally:
        await db.dispose()


# ---------------------------------------------------------------------------------------------- the load
@dataclass
class Phase:
    name: str
    requests: int
    elapsed_s: float
    latencies_s: list[float]
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def per_s(self) -> float:
        return self.requests / self.elapsed_s

    def pct_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


async def drive(
    client: httpx.AsyncClient, name: str, count: int, connections: int, deadline_s: float, request: Request
) -> Phase:
    """`count` requests with `connections` in flight at all times; refuses to run past `deadline_s`."""
    counter = iter(range(count))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            r = await request(client, i)
            latencies.append(time.perf_counter() - t0)
            statuses[r.status_code] += 1

    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(connections))), timeout=deadline_s)
    return Phase(name, count, time.perf_counter() - t0, latencies, statuses)


@dataclass
class Totals:
    phases: list[Phase] = field(default_factory=list)

    def of(self, name: str) -> list[Phase]:
        return [p for p in self.phases if p.name == name]

    def per_s(self, name: str) -> float:
        ps = self.of(name)
        return sum(p.requests for p in ps) / sum(p.elapsed_s for p in ps)

    def pct_ms(self, name: str, q: float) -> float:
        lat = sorted(x for p in self.of(name) for x in p.latencies_s)
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000

    def statuses(self, name: str) -> Counter[int]:
        out: Counter[int] = Counter()
        for p in self.of(name):
            out.update(p.statuses)
        return out


async def measure(url: str, args: argparse.Namespace, log_dir: Path) -> int:
    per_round_t = max(1, args.transfers // args.rounds)
    per_round_h = max(1, args.holdings // args.rounds)
    warm = max(args.connections * 2, 32)
    units = per_round_t * args.rounds + warm + 10
    world = await prepare(url, units)

    env = {
        **os.environ,
        "GREENRIGHTS_DATABASE_URL": url,
        "GREENRIGHTS_SCHEDULER_EMBEDDED": "false",
        # Load from one key well over 600 requests a minute: the per-key rate limit would answer 429 (a load test
        # measures the server, not the limiter; tests/core/test_rate_limit.py tests that).
        "GREENRIGHTS_API_RATE_LIMIT_PER_MINUTE": "0",
        # A server on anything but the embedded SQLite default refuses to start without a strong secret.
        "GREENRIGHTS_JWT_SECRET": os.environ.get("GREENRIGHTS_JWT_SECRET") or secrets.token_urlsafe(48),
        "PYTHONUNBUFFERED": "1",
    }
    real_port, bare_port = free_port(), free_port()
    serve = [sys.executable, "-m", "server.cli", "serve", "--host", HOST, "--port", str(real_port)]
    if args.workers != 1:
        serve += ["--workers", str(args.workers)]
    bare_argv = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", url, "--port", str(bare_port)]
    real = start("greenrights-serve", serve, env, real_port, log_dir)
    try:
        bare = start("bare-litestar", bare_argv, env, bare_port, log_dir)
    except BaseException:
        real.stop()
        raise
    run = secrets.token_hex(4)
    auth = {"Authorization": f"Bearer {world.emitter_key}"}
    body = {
        "from_account_id": world.source,
        "to_account_id": world.dest,
        "instrument_id": world.instrument_id,
        "quantity": "1",
    }
    completed = 0
    bare_ok = 0
    bad: list[str] = []

    async def real_transfer(c: httpx.AsyncClient, i: int) -> httpx.Response:
        nonlocal completed
        r = await c.post(
            f"{real.base_url}/api/v1/transfers",
            json=body,
            headers={**auth, "Idempotency-Key": f"bench-http-{run}-{i}-{secrets.token_hex(4)}"},
        )
        if r.status_code == 201 and r.json().get("status") == "completed":
            completed += 1
        elif len(bad) < 5:
            bad.append(f"transfer {r.status_code}: {r.text[:300]}")
        return r

    async def bare_transfer(c: httpx.AsyncClient, i: int) -> httpx.Response:
        nonlocal bare_ok
        r = await c.post(f"{bare.base_url}/bare/transfers", json={"quantity": "1", "ref": f"bench-http-{run}-{i}"})
        if r.status_code == 201:
            bare_ok += 1
        elif len(bad) < 5:
            bad.append(f"bare {r.status_code}: {r.text[:300]}")
        return r

    async def real_holdings(c: httpx.AsyncClient, _i: int) -> httpx.Response:
        r = await c.get(f"{real.base_url}/api/v1/accounts/{world.source}/holdings", headers=auth)
        if r.status_code != 200 and len(bad) < 5:
            bad.append(f"holdings {r.status_code}: {r.text[:300]}")
        return r

    async def bare_holdings(c: httpx.AsyncClient, _i: int) -> httpx.Response:
        r = await c.get(f"{bare.base_url}/bare/holdings")
        if r.status_code != 200 and len(bad) < 5:
            bad.append(f"bare holdings {r.status_code}: {r.text[:300]}")
        return r

    totals = Totals()
    deadline = time.monotonic() + args.max_seconds
    limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
    try:
        async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S, trust_env=False) as client:

            async def phase(name: str, count: int, req: Request) -> Phase:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the benchmark ran past --max-seconds={args.max_seconds}")
                return await drive(client, name, count, args.connections, left, req)

            # Warm both servers (connections, statement caches, the destination's ledger account) untimed.
            for name, req in (
                ("warm", real_transfer),
                ("warm", bare_transfer),
                ("warm", real_holdings),
                ("warm", bare_holdings),
            ):
                await phase(name, warm, req)
            for r in range(args.rounds):
                pairs: list[tuple[str, int, Request]] = [
                    ("http_transfers", per_round_t, real_transfer),
                    ("bare_transfers", per_round_t, bare_transfer),
                    ("http_holdings", per_round_h, real_holdings),
                    ("bare_holdings", per_round_h, bare_holdings),
                ]
                if r % 2:
                    pairs = [pairs[1], pairs[0], pairs[3], pairs[2]]
                for name, count, req in pairs:
                    totals.phases.append(await phase(name, count, req))
            final = await client.get(f"{real.base_url}/api/v1/accounts/{world.dest}/holdings", headers=auth)
    finally:
        bare.stop()
        real.stop()

    # A benchmark of wrong answers is worthless: every successful transfer moved exactly one unit.
    if bad:
        raise AssertionError("requests failed:\n" + "\n".join(bad))
    final.raise_for_status()
    moved = sum(h["balance_base"] for h in final.json() if h["instrument"]["id"] == world.instrument_id)
    if moved != completed:
        raise AssertionError(f"destination holds {moved} units, but {completed} transfers succeeded")
    problems, bare_balance = await check_invariants(url)
    if problems:
        raise AssertionError(f"ledger invariants broken: {problems[:5]}")
    if bare_balance != bare_ok:
        raise AssertionError(f"bare balance is {bare_balance}, but {bare_ok} bare requests succeeded")

    backend = "postgres" if not url.startswith("sqlite") else "sqlite"
    for name in ("http_transfers", "bare_transfers", "http_holdings", "bare_holdings"):
        lat = [x for p in totals.of(name) for x in p.latencies_s]
        print(
            f"{backend} {name}: {totals.per_s(name):.0f}/s over {len(lat)} requests, "
            f"p50 {totals.pct_ms(name, 0.5):.0f} ms, p99 {totals.pct_ms(name, 0.99):.0f} ms, "
            f"mean {statistics.fmean(lat) * 1000:.0f} ms, statuses {dict(totals.statuses(name))}",
            flush=True,
        )
    print(
        f"verified: {completed} transfers completed (incl. {warm} warm-up), destination holds {moved}; "
        f"bare balance {bare_balance}; ledger invariants hold; workers={args.workers} connections={args.connections}",
        flush=True,
    )
    t_ratio = totals.per_s("http_transfers") / totals.per_s("bare_transfers")
    h_ratio = totals.per_s("http_holdings") / totals.per_s("bare_holdings")
    print(
        f"http_transfers_per_s={totals.per_s('http_transfers'):.0f} http_vs_bare={t_ratio:.3f} "
        f"http_holdings_vs_bare={h_ratio:.3f} p99_ms={totals.pct_ms('http_transfers', 0.99):.0f}",
        flush=True,
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--transfers", type=int, default=800, help="timed transfers per server (split over rounds)")
    parser.add_argument("--holdings", type=int, default=1600, help="timed holdings reads per server")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the real and the bare server")
    parser.add_argument("--connections", type=int, default=16, help="connections, hence requests in flight")
    parser.add_argument("--workers", type=int, default=1, help="`greenrights serve --workers` (PostgreSQL only)")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="give up after this long")
    parser.add_argument("--pg-url", default=None, help="measure this PostgreSQL database instead of SQLite")
    parser.add_argument("--keep-logs", action="store_true", help="print where the server logs are kept")
    parser.add_argument("--serve-bare", default=None, metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        return serve_bare(args.serve_bare, args.port)
    if min(args.transfers, args.holdings, args.rounds, args.connections, args.workers) < 1:
        parser.error("counts must be positive")
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="greenrights-bench-http-") as tmp:
        url = args.pg_url or f"sqlite+aiosqlite:///{Path(tmp) / 'http.db'}"
        log_dir = Path(tempfile.mkdtemp(prefix="greenrights-bench-http-logs-")) if args.keep_logs else Path(tmp)
        if args.keep_logs:
            print(f"server logs in {log_dir}", flush=True)
        return asyncio.run(measure(url, args, log_dir))


if __name__ == "__main__":
    sys.exit(main())
