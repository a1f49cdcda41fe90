"""The `greenrights` command: serve, db upgrade [--sandbox]|grant, clock show|advance, apikey create|revoke, user
create|unlock, audit verify|reconcile, calendar, demo [--scenario NAME], scheduler, simulate, report year."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from core.audit import checkpoints_for, link_and_verify, link_pending, make_flusher
from core.clock import SystemClock, end_of_business_day
from core.db import Database, UnitOfWork
from core.errors import AppError, InvalidInput
from core.identity import Role, create_api_key, create_organisation, create_user
from core.models import Organisation
from core.runtime import tune_gc
from core.settings import get_settings
from registry.models import Enterprise

if TYPE_CHECKING:
    from trading.circulation import Circulation

AUTHORITY_NAMES = {
    Role.REGULATOR: "江西省生态环境厅",
    Role.ENERGY_AUTHORITY: "江西省发展和改革委员会（省能源局）",
    Role.GEC_ISSUER: "国家可再生能源信息管理中心",
    Role.VERIFIER: "江西省碳排放核查机构（示例）",
    Role.FINANCE_REVIEWER: "江西省财政厅",
    Role.FINANCE_APPROVER: "江西省财政厅",
    Role.BANK: "示例银行江西省分行",
    Role.AUDITOR: "江西省审计厅",
    Role.MEMBER: "示例交易会员机构",
}
ENTERPRISE_ROLES = {Role.EMITTER}


def _db() -> Database:
    s = get_settings()
    db = Database(s.database_url, retries_max=s.db_retries_max, busy_timeout_ms=s.sqlite_busy_timeout_ms)
    db.audit_flusher = make_flusher(SystemClock())
    return db


async def org_for(uow: UnitOfWork, role: Role, enterprise_uscc: str | None, organisation: str | None = None) -> int:
    """The organisation a new principal acts for: its enterprise, the named organisation (e.g. one bank among
    several; created on first use), or the authority of its role."""
    ses = uow.session
    if role in ENTERPRISE_ROLES or enterprise_uscc:
        if not enterprise_uscc:
            raise SystemExit(f"--enterprise USCC is required for role {role.value}")
        ent = (await ses.execute(select(Enterprise).where(Enterprise.uscc == enterprise_uscc))).scalar_one_or_none()
        if ent is None:
            raise SystemExit(f"no enterprise with code {enterprise_uscc}")
        return ent.organisation_id
    kind = "finance" if role in (Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER) else role.value
    query = select(Organisation).where(Organisation.kind == kind)
    if organisation:
        query = query.where(Organisation.name == organisation)
    org = (await ses.execute(query.order_by(Organisation.id))).scalars().first()
    if org is None:
        org = await create_organisation(ses, organisation or AUTHORITY_NAMES[role], kind, SystemClock().now())
    assert org.id is not None
    return org.id


def expiry_of(day: str | None) -> dt.datetime | None:
    """`--expires-on YYYY-MM-DD`: the key works through that Shanghai calendar day and stops at 00:00 Shanghai of the
    next (the house's rule for a deadline "on day D"). None: the key does not expire."""
    if day is None:
        return None
    try:
        return end_of_business_day(dt.date.fromisoformat(day))
    except ValueError:
        raise InvalidInput("expires_on", "Give the last day the key works as YYYY-MM-DD (Shanghai).") from None


async def _apikey(
    role: Role,
    enterprise: str | None,
    label: str,
    organisation: str | None = None,
    expires_at: dt.datetime | None = None,
) -> str:
    db = _db()

    async def work(uow: UnitOfWork) -> str:
        org_id = await org_for(uow, role, enterprise, organisation)
        p, key = await create_api_key(
            uow.session, organisation_id=org_id, role=role, label=label, now=SystemClock().now(), expires_at=expires_at
        )
        facts: dict[str, Any] = {"role": role.value, "label": label}
        if expires_at is not None:
            facts["expires_at"] = expires_at.isoformat()
        uow.audit("cli", "apikey.create", "principal", str(p.id), facts)
        return key

    try:
        return await db.run(work)
    finally:
        await db.dispose()


async def _user(username: str, role: Role, enterprise: str | None, password: str) -> int:
    db = _db()

    async def work(uow: UnitOfWork) -> int:
        org_id = await org_for(uow, role, enterprise)
        p = await create_user(
            uow.session,
            organisation_id=org_id,
            role=role,
            username=username,
            password=password,
            now=SystemClock().now(),
        )
        uow.audit("cli", "user.create", "principal", str(p.id), {"role": role.value, "username": username})
        return p.id or 0

    try:
        return await db.run(work)
    finally:
        await db.dispose()


async def _apikey_revoke(prefix: str) -> str:
    from core.identity import revoke_api_key

    db = _db()

    async def work(uow: UnitOfWork) -> str:
        p = await revoke_api_key(uow.session, prefix.removeprefix("gr_").split("_", 1)[0], None, SystemClock().now())
        uow.audit("operator:cli", "apikey.revoke", "principal", str(p.id), {"prefix": p.key_prefix})
        label = p.label or "no label"
        return f"API key {p.key_prefix} ({p.role}, {label}) revoked at {p.revoked_at:%Y-%m-%d %H:%M} UTC"

    try:
        return await db.run(work)
    finally:
        await db.dispose()


async def _user_unlock(username: str) -> str:
    from core.identity import unlock_user

    db = _db()

    async def work(uow: UnitOfWork) -> str:
        done = await unlock_user(uow.session, username, None, SystemClock().now())
        was = done.was_locked_until
        facts = {"username": username, "was_locked_until": was.isoformat() if was else None,
                 "failed_logins": done.failed_logins}  # fmt: skip
        uow.audit("operator:cli", "user.unlock", "principal", str(done.principal.id), facts)
        if was is None:
            return f"user {username} was not locked; {done.failed_logins} wrong passwords forgotten"
        return f"user {username} unlocked (the lock ran until {was:%Y-%m-%d %H:%M} UTC)"

    try:
        return await db.run(work)
    finally:
        await db.dispose()


async def _audit_verify() -> tuple[bool, int, str]:
    db = _db()
    try:
        # Chain what is committed but not linked yet, then check the whole chain from the start and against the
        # latest signed checkpoint.
        return await link_and_verify(db, checkpoints_for(get_settings()))
    finally:
        await db.dispose()


async def _audit_checkpoint() -> str:
    """Link what is pending and write a signed checkpoint of the head now (an operator's `audit checkpoint`)."""
    checkpoints = checkpoints_for(get_settings())
    if checkpoints is None:
        return "no checkpoint file: set GREENRIGHTS_AUDIT_CHECKPOINT_PATH"
    db = _db()

    async def work(uow: UnitOfWork) -> str:
        await link_pending(uow.session, batch_max=10**9)
        cp = await checkpoints.maybe_write(uow.session, SystemClock().now(), force=True)
        return "nothing new since the last checkpoint" if cp is None else f"checkpoint at entry {cp.seq} written"

    try:
        return f"{await db.run(work)} ({checkpoints.path})"
    finally:
        await db.dispose()


async def _audit_reconcile() -> Circulation:
    """Every balance recomputed from the transfers and every holding from its serial blocks (`ledger.check_invariants`),
    then units in circulation per instrument and money in the market against the registry's and the banks' records
    (`trading.circulation`), read in one snapshot."""
    from trading.circulation import reconcile_circulation

    db = _db()
    try:
        return await reconcile_circulation(db)
    finally:
        await db.dispose()


async def _run_scheduler() -> None:
    from core.clock import SandboxClock
    from core.sandbox import clock_for, watch
    from scheduler.runner import Scheduler
    from server.services import build_services

    settings = get_settings()
    clock = clock_for(settings.database_url)  # a sandbox's simulated clock, else system time
    db = _db()
    services = build_services(db, clock, settings)
    services["audit_checkpoints"] = checkpoints_for(settings)
    services["settings"] = settings
    sched = Scheduler(services)
    watcher = asyncio.create_task(watch(db, clock)) if isinstance(clock, SandboxClock) else None
    # Printed before the catch-up of missed slots, which can take long (a settlement). Nothing secret: no database
    # URL, no keys.
    print(
        f"scheduler {sched.owner} starting; lease {sched.runs.lease_s} s; jobs: {', '.join(sorted(sched.jobs))}",
        flush=True,
    )
    await sched.start()
    print(f"scheduler {sched.owner} running", flush=True)
    tune_gc()
    if watcher is not None:
        print(f"sandbox database: simulated now {clock.now().isoformat()}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        sched.shutdown()
        await db.dispose()


def db_upgrade(url: str | None = None, *, sandbox: bool = False) -> str:
    """Migrate to head and bootstrap the registry. With `sandbox`, mark the database a sandbox (core/sandbox.py):
    refused (SystemExit, nothing changed) unless it is empty and was never upgraded without the mark."""
    from core.sandbox import mark_sandbox, sandbox_offset, sandbox_refusal
    from registry.service import RegistryService
    from server.migrate import upgrade

    url = url or get_settings().database_url
    if sandbox:
        refusal = sandbox_refusal(url)
        if refusal:
            raise SystemExit(f"greenrights db upgrade --sandbox refused: {refusal}")
    upgrade(url)
    marked = mark_sandbox(url, SystemClock().now()) if sandbox else False

    async def boot() -> None:
        s = get_settings()
        db = Database(url, retries_max=s.db_retries_max, busy_timeout_ms=s.sqlite_busy_timeout_ms)
        db.audit_flusher = make_flusher(SystemClock())
        try:
            await RegistryService(db, SystemClock()).bootstrap()
        finally:
            await db.dispose()

    asyncio.run(boot())
    if marked:
        return "database upgraded and marked a sandbox: its clock moves with `greenrights clock advance`"
    if sandbox_offset(url) is not None:
        return "database upgraded (a sandbox: its clock moves with `greenrights clock advance`)"
    return "database upgraded"


def _serve(host: str | None, port: int | None, workers: int) -> int:
    """uvicorn with the app factory (`server.app:create_app`), so that each of `workers` processes builds its own
    app, engine and pool. SQLite allows one: its writers queue in one process (core/db.py) and the file has one
    writer at a time anyway, so more processes would only poll each other's locks."""
    import uvicorn

    from core.db import is_sqlite
    from core.observability import configure_logging
    from core.secrets import jwt_secrets
    from server.app_role import warn_if_privileged
    from server.migrate import schema_problem

    s = get_settings()
    host, port = host or s.host, port or s.port
    if workers < 1:
        print("greenrights serve: --workers must be at least 1", file=sys.stderr)
        return 2
    if workers > 1 and is_sqlite(s.database_url):
        print(
            f"greenrights serve: --workers {workers} refused: SQLite serves from one process (one writer at a time, "
            "queued in that process). Run without --workers, or set GREENRIGHTS_DATABASE_URL to PostgreSQL "
            "(docs/scaling.md).",
            file=sys.stderr,
        )
        return 2
    # Refuse a guessable secret and a database behind this version's schema here, once, before any worker starts.
    jwt_secrets(s)
    problem = schema_problem(s.database_url)
    if problem:
        print(f"greenrights serve: {problem}", file=sys.stderr)
        return 1
    if workers > 1 and s.scheduler_embedded:
        print(
            f"greenrights serve: each of the {workers} workers embeds the scheduler (safe: every job run claims a "
            "row, but wasteful); set GREENRIGHTS_SCHEDULER_EMBEDDED=false and run `greenrights scheduler` once.",
            file=sys.stderr,
            flush=True,
        )
    configure_logging(s.log_json)
    warn_if_privileged(s.database_url, logging.getLogger("greenrights.startup"), "serve")
    base = f"http://{host}:{port}"
    print(f"greenrights: workbench at {base}/ , API docs at {base}/schema/swagger", flush=True)
    uvicorn.run(
        "server.app:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        # uvicorn's supervisor kills a worker that does not answer its ping within this many seconds, starting
        # included; its default of 5 s killed workers that were still importing on a loaded machine, over and over.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
    )
    return 0


WORKER_HEALTHCHECK_S = 60


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="greenrights", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_serve = sub.add_parser(
        "serve", help="serve the API (embeds the scheduler unless GREENRIGHTS_SCHEDULER_EMBEDDED=false)"
    )
    p_serve.add_argument("--host", default=None)
    p_serve.add_argument("--port", type=int, default=None)
    p_serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes, each with its own connection pool (PostgreSQL only; SQLite serves with one)",
    )
    p_db = sub.add_parser("db", help="database maintenance")
    p_db.add_argument(
        "action",
        choices=["upgrade", "grant"],
        help="upgrade: run the migrations (as the schema's owner); grant ROLE: give a PostgreSQL login role that owns "
        "nothing exactly the app's privileges (append-only tables without UPDATE/DELETE), idempotently",
    )
    p_db.add_argument("role", nargs="?", default=None, metavar="ROLE", help="grant: the application's role")
    p_db.add_argument(
        "--sandbox",
        action="store_true",
        help="upgrade: mark a new, empty database a sandbox whose clock can be moved forward (refused on any other)",
    )
    p_clock = sub.add_parser(
        "clock", help="the sandbox clock: show it, or advance it (a production database refuses every move)"
    )
    p_clock.add_argument("action", choices=["show", "advance"])
    move = p_clock.add_mutually_exclusive_group()
    move.add_argument("--days", type=int, default=None, help="advance: this many days")
    move.add_argument("--hours", type=int, default=None, help="advance: this many hours")
    move.add_argument("--to", default=None, metavar="YYYY-MM-DD[THH:MM]", help="advance: to this Shanghai time")
    p_key = sub.add_parser("apikey", help="API keys for machine clients")
    p_key.add_argument("action", choices=["create", "revoke"])
    p_key.add_argument("prefix", nargs="?", default=None, help="revoke: the key's prefix (the 12 characters after gr_)")
    p_key.add_argument("--role", default=None, choices=[r.value for r in Role])
    p_key.add_argument("--enterprise", default=None, metavar="USCC")
    p_key.add_argument("--label", default="")
    p_key.add_argument("--organisation", default=None, help="organisation name, e.g. one bank among several")
    p_key.add_argument(
        "--expires-on",
        default=None,
        metavar="YYYY-MM-DD",
        help="create: the last Shanghai day the key works (it stops at 00:00 Shanghai the next day); default: never",
    )
    p_user = sub.add_parser(
        "user",
        help="staff users: create (password from GREENRIGHTS_NEW_PASSWORD or a prompt); unlock USERNAME (lift the "
        "sign-in lock of too many wrong passwords, audited)",
    )
    p_user.add_argument("action", choices=["create", "unlock"])
    p_user.add_argument("name", nargs="?", default=None, metavar="USERNAME", help="unlock: the user to unlock")
    p_user.add_argument("--username", default=None)
    p_user.add_argument("--role", default=None, choices=[r.value for r in Role])
    p_user.add_argument("--enterprise", default=None, metavar="USCC")
    p_audit = sub.add_parser("audit", help="audit log")
    p_audit.add_argument(
        "action",
        choices=["verify", "reconcile", "checkpoint"],
        help="verify: the audit chain and its signed checkpoint; reconcile: balances and holdings against "
        "transfers and serial blocks, units in circulation per instrument against issued - surrendered - retired - "
        "cancelled - expired, and market money against confirmed deposits - withdrawals; checkpoint: sign the "
        "chain's head now",
    )
    sub.add_parser("calendar", help="the published working-day calendar: one line per year with its holiday notice")
    p_demo = sub.add_parser("demo", help="seed a small Jiangxi demo (or a whole scenario) when the database is empty")
    p_demo.add_argument(
        "--scenario",
        default=None,
        metavar="NAME",
        help="load a scenario's data files instead (server/scenarios/NAME: jiangxi, a province-year of 170+ "
        "enterprises); keys and passwords go to var/scenario-NAME-keys.txt",
    )
    sub.add_parser("scheduler", help="run the compliance calendar as its own process")
    p_report = sub.add_parser("report", help="reports: year --year YYYY [--out DIR] writes the year's report")
    p_report.add_argument("action", choices=["year"])
    p_report.add_argument("--year", type=int, required=True)
    p_report.add_argument("--out", default=None, metavar="DIR", help="default: var/reports/<year>/")
    p_sim = sub.add_parser(
        "simulate",
        help="drive a scenario's year through the API on a sandbox clock (docs/scenario.md, Simulating the year)",
    )
    p_sim.add_argument("--scenario", default="jiangxi", metavar="NAME")
    p_sim.add_argument("--year", type=int, default=2025)
    p_sim.add_argument("--seed", type=int, default=1)
    p_sim.add_argument(
        "--url",
        default=None,
        help="a running server on a sandbox database loaded with the scenario (keys from var/scenario-NAME-keys.txt; "
        "GREENRIGHTS_DATABASE_URL names the same database for the final audit); default: a fresh SQLite sandbox "
        "under var/simulate-YEAR-SEED/ served in this process",
    )
    p_sim.add_argument("--enterprises", type=int, default=None, metavar="N", help="only the first N emitters")
    args = parser.parse_args(argv)

    if args.cmd == "serve":
        return _serve(args.host, args.port, args.workers)
    if args.cmd == "db" and args.action == "grant":
        from server.app_role import GrantRefused, grant

        if not args.role:
            print("greenrights db grant ROLE: name the application's role", file=sys.stderr)
            return 2
        try:
            lines = grant(get_settings().database_url, args.role)
        except GrantRefused as exc:
            print(f"greenrights db grant: {exc}", file=sys.stderr)
            return 1
        for line in lines:
            print(line)
        return 0
    if args.cmd == "db":
        print(db_upgrade(sandbox=args.sandbox))
        return 0
    if args.cmd == "clock":
        from server.migrate import schema_problem
        from server.sandbox import clock_command

        problem = schema_problem(get_settings().database_url)
        if problem:
            print(f"greenrights clock: {problem}", file=sys.stderr)
            return 1

        if args.action == "advance" and args.days is None and args.hours is None and args.to is None:
            print("greenrights clock advance: give --days N, --hours N or --to YYYY-MM-DD[THH:MM]", file=sys.stderr)
            return 2
        code, message = clock_command(_db(), args.action, args.days, args.hours, args.to)
        print(message, file=sys.stderr if code else sys.stdout)
        return code
    if args.cmd == "apikey" and args.action == "revoke":
        if not args.prefix:
            print("greenrights apikey revoke PREFIX: name the key's prefix", file=sys.stderr)
            return 2
        try:
            print(asyncio.run(_apikey_revoke(args.prefix)))
        except AppError as exc:
            print(f"greenrights apikey revoke: {exc.detail}", file=sys.stderr)
            return 1
        return 0
    if args.cmd == "apikey":
        if not args.role:
            print("greenrights apikey create: --role is required", file=sys.stderr)
            return 2
        try:
            expires_at = expiry_of(args.expires_on)
            key = asyncio.run(_apikey(Role(args.role), args.enterprise, args.label, args.organisation, expires_at))
        except AppError as exc:
            print(f"greenrights apikey create: {exc.detail}", file=sys.stderr)
            return 2
        until = "" if expires_at is None else f", works until {expires_at:%Y-%m-%d %H:%M} UTC"
        print(f"API key for role {args.role} (shown once; store it now{until}):")
        print(key)
        return 0
    if args.cmd == "user" and args.action == "unlock":
        username = args.name or args.username
        if not username:
            print("greenrights user unlock USERNAME: name the user", file=sys.stderr)
            return 2
        try:
            print(asyncio.run(_user_unlock(username)))
        except AppError as exc:
            print(f"greenrights user unlock: {exc.detail}", file=sys.stderr)
            return 1
        return 0
    if args.cmd == "user":
        if not args.username or not args.role:
            print("greenrights user create: --username and --role are required", file=sys.stderr)
            return 2
        password = os.environ.get("GREENRIGHTS_NEW_PASSWORD") or getpass.getpass("password: ")
        uid = asyncio.run(_user(args.username, Role(args.role), args.enterprise, password))
        print(f"user {args.username} created with id {uid}")
        return 0
    if args.cmd == "audit" and args.action == "checkpoint":
        print(asyncio.run(_audit_checkpoint()))
        return 0
    if args.cmd == "audit" and args.action == "reconcile":
        report = asyncio.run(_audit_reconcile())
        problems = report.ledger_differences
        for line in problems:
            print(f"DIFFERENCE {line}")
        verdict = "ledger reconciled" if not problems else f"ledger NOT reconciled: {len(problems)} differences"
        print(f"{verdict}: {report.accounts} accounts, {report.transfers} transfers checked")
        # Then what a regulator reads: per instrument held = issued - surrendered - retired - cancelled - expired,
        # and money in the market = confirmed deposits - confirmed withdrawals (trading/circulation.py).
        for line in report.lines():
            print(line)
        mismatched = report.mismatched
        print(
            f"circulation reconciled: {len(report.units)} instruments and CNY"
            if not mismatched
            else f"circulation NOT reconciled: MISMATCH in {', '.join(mismatched)}"
        )
        return 0 if report.ok else 1
    if args.cmd == "audit":
        ok, count, message = asyncio.run(_audit_verify())
        print(f"{message}: {count} entries checked")
        return 0 if ok else 1
    if args.cmd == "calendar":
        from core.workdays import calendar

        for year, notice in sorted(calendar().items()):
            source = notice.citation or (f"({notice.note})" if notice.note else "")
            print(
                f"{year}  {len(notice.holidays):3d} days off, {len(notice.workdays)} adjusted working days  "
                f"{notice.notice} {source}".rstrip()
            )
        print(
            f"published through {max(calendar())}; a working-day date after that is refused until its notice is added"
        )
        return 0
    if args.cmd == "scheduler":
        from core.observability import configure_logging
        from server.migrate import schema_problem

        problem = schema_problem(get_settings().database_url)
        if problem:
            print(f"greenrights scheduler: {problem}", file=sys.stderr)
            return 1

        from server.app_role import warn_if_privileged

        configure_logging(get_settings().log_json)
        warn_if_privileged(get_settings().database_url, logging.getLogger("greenrights.startup"), "scheduler")
        asyncio.run(_run_scheduler())
        return 0
    if args.cmd == "report":
        from server.yearreport.cli import report_year

        return report_year(args.year, args.out)
    if args.cmd == "simulate":
        from server.scenario import available
        from server.simulate.run import simulate

        if args.scenario not in available():
            print(
                f"greenrights simulate: no scenario {args.scenario!r}; shipped: {', '.join(available())}",
                file=sys.stderr,
            )
            return 2
        if args.enterprises is not None and args.enterprises < 1:
            print("greenrights simulate: --enterprises must be at least 1", file=sys.stderr)
            return 2
        return simulate(args.scenario, args.year, args.seed, args.url, args.enterprises)
    if args.cmd == "demo" and args.scenario:
        from server.scenario import available, seed_scenario

        if args.scenario not in available():
            print(
                f"greenrights demo: no scenario {args.scenario!r}; shipped: {', '.join(available())}", file=sys.stderr
            )
            return 2
        loaded, lines = asyncio.run(seed_scenario(args.scenario))
        for line in lines:
            print(line, file=sys.stdout if loaded is not None else sys.stderr)
        return 0 if loaded is not None else 1
    if args.cmd == "demo":
        from server.demo import seed_demo

        for line in asyncio.run(seed_demo()):
            print(line)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
