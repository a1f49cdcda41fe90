"""Process settings, read once from ``GREENRIGHTS_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """What an operator can change without touching code. Business rules live in dated parameters instead."""

    model_config = SettingsConfigDict(env_prefix="GREENRIGHTS_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./var/greenrights.db"
    # A PostgreSQL streaming replica of `database_url` for the reads of GET requests (core/replica.py,
    # docs/scaling.md). Unset: every read on the primary. A principal that wrote within `read_your_writes_s` reads the
    # primary; so does everyone while the replica may be more than `read_max_lag_s` behind (measured every
    # `replica_check_interval_s`) or is down. The window must be at least the bound, so a writer reads its writes.
    read_database_url: str | None = None
    read_max_lag_s: float = 2.0
    read_your_writes_s: float = 5.0
    replica_check_interval_s: float = 1.0
    host: str = "127.0.0.1"
    port: int = 8000
    # Secret for staff JWTs (HS256), at least 32 bytes. Unset, the embedded SQLite default keeps a random one in
    # `jwt-secret` beside its database file; any other database refuses to start (`core.secrets`). Rotation: move
    # the old value to `jwt_previous_secret`; tokens signed with it stay valid for their lifetime.
    jwt_secret: str | None = None
    jwt_previous_secret: str | None = None
    jwt_ttl_s: int = 900
    # An API key's principal is remembered this long per process: a key revoked in the database stops working within
    # it (core/identity.py). 0 reads the principal on every request.
    api_key_cache_ttl_s: float = 30.0
    # Sign-in throttling (core/identity.py check_login; the API's token route and the workbench's form alike).
    # Per user: this many wrong passwords in a row lock the user for `sign_in_user_lock_s` (`greenrights user unlock`
    # or `unlockUser` lifts it early). Per client address (the ASGI scope's client; behind a proxy see
    # docs/operations.md): this many failed sign-ins within `sign_in_address_window_s`, whatever the usernames, lock
    # the address for `sign_in_address_lock_s`. Counted in the database, so they hold across processes; 0 turns the
    # per-address limit off.
    sign_in_user_failures_max: int = 5
    sign_in_user_lock_s: int = 900
    sign_in_address_failures_max: int = 20
    sign_in_address_window_s: int = 900
    sign_in_address_lock_s: int = 900
    # Requests per minute per API key or signed-in person (per client address when unauthenticated), counted by
    # Litestar's rate-limit middleware in each process's memory: N processes allow N times this. 0 turns it off.
    api_rate_limit_per_minute: int = 600
    # The scheduler runs inside `greenrights serve` for the single-machine default.
    scheduler_embedded: bool = True
    # How long a claimed job run is the claimer's (scheduler/runs.py; nothing renews it): after a scheduler dies, the
    # next one takes its run over once this has passed. Keep it longer than the longest job run (docs/operations.md).
    scheduler_lease_s: int = Field(default=600, ge=1, le=86_400)
    # Obligations settled per transaction by the settlement job; unset, the dated parameter `settlement_batch_size`.
    settlement_batch_size: int | None = Field(default=None, ge=1, le=100_000)
    pdf_font_path: str | None = None
    max_body_bytes: int = 1_048_576
    max_json_depth: int = 32
    # Unit-of-work retries on serialization failures and deadlocks before answering 503.
    db_retries_max: int = 5
    sqlite_busy_timeout_ms: int = 10_000
    log_json: bool = False
    # Where the audit linker appends signed checkpoints of the chain (keep it off the database's machine, or copy it
    # there). Unset: beside the embedded SQLite database; on PostgreSQL no checkpoints are written until it is set.
    audit_checkpoint_path: str | None = None
    # Browser sessions (web/): signed out after this long without a request, and after the absolute limit anyway.
    web_idle_s: int = 1800
    web_max_s: int = 43_200
    # Mark session and CSRF cookies Secure. Set it when the app is served behind TLS (any real deployment); the
    # embedded default serves plain http on 127.0.0.1, where a Secure cookie would never be sent back.
    cookie_secure: bool = False
    # Where people reach this installation: printed under documents' QR codes (`<public_base_url>/verify/<code>`).
    public_base_url: str = "http://127.0.0.1:8000"
    # Webhooks (core/webhooks.py): plain http endpoints (tests, local development only), hosts or CIDR ranges
    # allowed even though they resolve to private or loopback addresses, and how long a failing delivery is retried
    # before it is parked as dead.
    webhook_allow_http: bool = False
    webhook_allowed_hosts: str = ""
    webhook_retry_for_s: float = 86_400.0
    # A YAML file of holiday notices an operator has published beyond those shipped in core/holidays.yaml.
    holidays_path: str | None = None

    @model_validator(mode="after")
    def _read_replica_bounds(self) -> Settings:
        if self.read_max_lag_s < 0 or self.replica_check_interval_s <= 0:
            raise ValueError("read_max_lag_s must be >= 0 and replica_check_interval_s > 0")
        if self.read_your_writes_s < self.read_max_lag_s:
            raise ValueError(
                "read_your_writes_s must be at least read_max_lag_s, or a writer could read the replica before its "
                "write reached it"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
