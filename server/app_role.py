"""The application's own PostgreSQL role: `greenrights db grant ROLE`, and the startup warning when the app runs as
the schema's owner or a superuser instead (docs/operations.md, "The application role").

The migrations run as the owner of the schema; the app should connect as a login role that owns nothing and holds
exactly what the code uses. The owner can drop the append-only triggers of migration 0006 and rewrite the audit
log (caught then only by `audit verify` against a signed checkpoint, docs/audit.md); the role cannot: it holds
no DELETE, TRUNCATE, TRIGGER or REFERENCES on the append-only tables, UPDATE there only on the columns the audit
linker fills, and ALTER/DROP need ownership.

`grant` is exact: in one transaction it revokes everything the role holds in the schema (table, column, sequence
and schema privileges) and grants the set below again, so running it twice leaves the same privileges, and a
table added by a later migration gets its grant when it is run again after `greenrights db upgrade`.
"""

from __future__ import annotations

import logging

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

from core.db import is_sqlite, sync_url

# Tables the code only ever inserts into and reads: what the role gets on each, and the columns it may UPDATE (the
# audit linker's). Found by reading every writer: no UPDATE or DELETE statement, ORM change or ON CONFLICT DO UPDATE
# touches them otherwise.
APPEND = "SELECT, INSERT"
APPEND_ONLY: dict[str, tuple[str, tuple[str, ...]]] = {
    "audit_entry": (APPEND, ("seq", "prev_hash", "hash")),  # core.audit.link_pending fills the chain fields once
    "audit_head": ("SELECT", ("seq", "hash")),  # and moves the head forward; its one row is made by `db upgrade`
    "ledger_transfer": (APPEND, ()),  # "an immutable movement" (core/models.py); a hold resolves by a new transfer
    "outbox_event": (APPEND, ()),  # core/events.py; webhook deliveries keep their state in webhook_delivery
    "finance_claim_event": (APPEND, ()),  # one transition of a claim, in order
    "incentives_credit_position": (APPEND, ()),  # a later approval supersedes with a new row
    "compliance_report_version": (APPEND, ()),  # a correction is a new version
    "trading_journal": (APPEND, ()),  # a book's accepted commands; replaying them rebuilds the book
    "trading_trade": (APPEND, ()),  # an executed trade
    "issued_document": (APPEND, ()),  # core/documents.py: a statement or report as issued; a newer one supersedes
}
# Read by the app (the startup check of the schema's version), written only by `greenrights db upgrade`.
READ_ONLY = ("alembic_version",)
FULL = "SELECT, INSERT, UPDATE, DELETE"


class GrantRefused(Exception):
    """The grant cannot be made as asked; the message says why and what to do."""


SQLITE_REFUSAL = (
    "SQLite has no roles or grants: whoever can write the database file can change anything in it. There the audit "
    "log is protected by the append-only triggers of migration 0006 (which anyone with the file can drop), by the "
    "signed checkpoints written outside the database (`greenrights audit verify` reports a truncated or rewritten "
    "chain) and by the file's own permissions: let only the user that runs greenrights read and write it. Use "
    "PostgreSQL for a grant-enforced application role (docs/operations.md)."
)


def _one(conn: Connection, sql: str, **params: object) -> object:
    return conn.execute(text(sql), params).scalar()


def _check_role(conn: Connection, role: str, schema: str) -> None:
    row = conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = :r"), {"r": role}).one_or_none()
    if row is None:
        raise GrantRefused(
            f"no role {role!r}: create it first, e.g. CREATE ROLE {role} LOGIN PASSWORD '...' (docs/operations.md)"
        )
    if row.rolsuper:
        raise GrantRefused(f"role {role!r} is a superuser: no grant or trigger binds it; use a role without SUPERUSER")
    if role == _one(conn, "SELECT current_user"):
        raise GrantRefused(f"role {role!r} is the role running this command: grant to a role that owns nothing")
    owners = conn.execute(
        text(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :s AND c.relkind IN ('r', 'p', 'S', 'v', 'm') "
            "UNION SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = :s"
        ),
        {"s": schema},
    ).scalars()
    for owner in owners:
        if _one(conn, "SELECT pg_has_role(:r, :o, 'MEMBER')", r=role, o=owner):
            raise GrantRefused(
                f"role {role!r} is (or is a member of) {owner!r}, which owns schema {schema!r} or objects in it: "
                "an owner can drop the triggers and alter the tables; use a role that owns nothing"
            )


def grant(url: str, role: str) -> list[str]:
    """Grant `role` exactly what the app needs on the database at `url` (connected as the schema's owner or a
    superuser); returns one line per kind of grant. Raises GrantRefused (SQLite, unknown role, superuser, owner)."""
    if is_sqlite(url):
        raise GrantRefused(SQLITE_REFUSAL)
    from server.migrate import schema_problem

    problem = schema_problem(url)
    if problem:
        raise GrantRefused(problem)
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as conn:
            return _grant(conn, role)
    finally:
        engine.dispose()


def _grant(conn: Connection, role: str) -> list[str]:
    schema = str(_one(conn, "SELECT current_schema()"))
    _check_role(conn, role, schema)
    q = conn.dialect.identifier_preparer.quote
    r, s, database = q(role), q(schema), q(str(_one(conn, "SELECT current_database()")))
    tables = list(
        conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY tablename"), {"s": schema}
        ).scalars()
    )
    missing = [t for t in [*APPEND_ONLY, *READ_ONLY] if t not in tables]
    if missing:
        raise GrantRefused(f"tables missing from schema {schema!r}: {', '.join(missing)}; run `greenrights db upgrade`")
    # Start from nothing: a table-level REVOKE also drops the column-level grants on its columns.
    for statement in (
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {r}",
        f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {s} FROM {r}",
        f"REVOKE ALL ON SCHEMA {s} FROM {r}",
        f"REVOKE ALL ON DATABASE {database} FROM {r}",
        f"GRANT CONNECT ON DATABASE {database} TO {r}",
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
    ):
        conn.execute(text(statement))
    ordinary = [t for t in tables if t not in APPEND_ONLY and t not in READ_ONLY]
    for table in ordinary:
        conn.execute(text(f"GRANT {FULL} ON TABLE {s}.{q(table)} TO {r}"))
    for table in READ_ONLY:
        conn.execute(text(f"GRANT SELECT ON TABLE {s}.{q(table)} TO {r}"))
    for table, (privileges, columns) in APPEND_ONLY.items():
        conn.execute(text(f"GRANT {privileges} ON TABLE {s}.{q(table)} TO {r}"))
        if columns:
            conn.execute(text(f"GRANT UPDATE ({', '.join(q(c) for c in columns)}) ON TABLE {s}.{q(table)} TO {r}"))
    linker = ", ".join(f"{t} ({', '.join(c)})" for t, (_, c) in APPEND_ONLY.items() if c)
    return [
        f"role {role}: CONNECT on database {database}, USAGE on schema {schema}, USAGE and SELECT on its sequences",
        f"{FULL} on {len(ordinary)} tables",
        f"SELECT only on {', '.join(READ_ONLY)}",
        f"append-only tables ({', '.join(APPEND_ONLY)}): SELECT, INSERT (audit_head: SELECT); UPDATE only of "
        f"{linker}; no DELETE, TRUNCATE, TRIGGER or REFERENCES",
    ]


def privileged_connection(url: str) -> str | None:
    """Why the connection at `url` can rewrite the audit log past its triggers (a superuser, or the owner of the
    audit table), or None: a role as `greenrights db grant` leaves it, or SQLite (no roles)."""
    if is_sqlite(url):
        return None
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            user = str(_one(conn, "SELECT current_user"))
            if _one(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
                return f"connected as {user}, a superuser"
            owner = _one(conn, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass('audit_entry')")
            if owner is not None and _one(conn, "SELECT pg_has_role(current_user, :o, 'USAGE')", o=owner):
                whose = "the owner" if owner == user else f"a member of {owner}, the owner"
                return f"connected as {user}, {whose} of the audit table"
            return None
    finally:
        engine.dispose()


def warn_if_privileged(url: str, log: logging.Logger, process: str) -> str | None:
    """Log a WARNING at startup when the app connects as a superuser or the audit table's owner; the app still
    starts (the test suite and `make run` connect as the owner). Returns the warning, or None."""
    why = privileged_connection(url)
    if why is None:
        return None
    message = (
        f"greenrights {process}: {why}: it can drop the append-only triggers and rewrite the "
        "audit log. Connect as an application role that owns nothing: create one and run "
        "`greenrights db grant ROLE` (docs/operations.md, 'The application role')."
    )
    log.warning(message)
    return message
