"""The signing secrets a server starts with, refused when they are guessable.

A staff token is an HS256 JWT: whoever knows the secret can act as any staff user. So a server never starts
with a secret that is published (the old demo default, kept here only to refuse it) or shorter than 32 bytes.
The embedded SQLite default, meant for one machine, needs no setting: on first start it writes a random secret
to `jwt-secret` beside the database file (mode 0600) and reuses it, so tokens survive a restart. Every other
database (PostgreSQL) must be given `GREENRIGHTS_JWT_SECRET`. Rotation: set the new secret and move the old one
to `GREENRIGHTS_JWT_PREVIOUS_SECRET` for at least a token lifetime; tokens are signed with the new one and
accepted under either. No secret is ever logged or put in an error message.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy.engine import make_url

from core.db import async_url, is_sqlite
from core.settings import Settings

SECRET_BYTES_MIN = 32
# Shipped as the default before 0.1.0 was hardened: anyone who read the source could sign tokens with it.
PUBLISHED = frozenset({"dev-only-change-me-dev-only-change-me"})
SECRET_FILE = "jwt-secret"  # noqa: S105 - a file name, not a secret


class InsecureSecret(SystemExit):
    """Raised at start; a SystemExit so that `greenrights serve` prints the reason and exits non-zero."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"greenrights: refusing to start: {reason}")


def _check(value: str, name: str) -> str:
    if value in PUBLISHED:
        raise InsecureSecret(f"{name} is a published default; set a random value of {SECRET_BYTES_MIN}+ bytes")
    if len(value.encode()) < SECRET_BYTES_MIN:
        raise InsecureSecret(f"{name} is shorter than {SECRET_BYTES_MIN} bytes")
    return value


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL (None for any other database or an in-memory one)."""
    if not is_sqlite(url):
        return None
    database = make_url(async_url(url)).database
    return None if not database or database == ":memory:" else Path(database)


def jwt_secrets(settings: Settings) -> tuple[str, ...]:
    """(signing secret, *secrets also accepted): checked, or generated for the embedded SQLite default."""
    old = settings.jwt_previous_secret
    previous = () if not old else (_check(old, "GREENRIGHTS_JWT_PREVIOUS_SECRET"),)
    if settings.jwt_secret:
        return (_check(settings.jwt_secret, "GREENRIGHTS_JWT_SECRET"), *previous)
    db_file = sqlite_file(settings.database_url)
    if db_file is None:
        raise InsecureSecret(
            "GREENRIGHTS_JWT_SECRET is not set; only the embedded SQLite database generates its own "
            f"(set a random value of at least {SECRET_BYTES_MIN} bytes, e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`)"
        )
    path = db_file.parent / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting at once keep the first one's secret.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48))
    return (_check(path.read_text().strip(), str(path)), *previous)
