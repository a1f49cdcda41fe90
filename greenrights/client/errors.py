"""Refusals as typed exceptions: every problem+json answer becomes an ApiError subclass carrying the problem's
`type`, `code`, `field`, `status`, `title` and `detail`; a connection that keeps failing becomes TransportFailed."""

from __future__ import annotations

from typing import Any


class GreenrightsError(Exception):
    """Anything the SDK raises."""


class TransportFailed(GreenrightsError):
    """The server could not be reached (or kept failing) after every retry. A value-moving call may or may not
    have taken effect: call again with the same `idempotency_key` to learn which, without doubling it."""

    def __init__(self, message: str, idempotency_key: str | None) -> None:
        super().__init__(message)
        self.idempotency_key = idempotency_key


class ApiError(GreenrightsError):
    """A problem+json answer (RFC 9457)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type: str = str(problem.get("type", "about:blank"))
        self.code: str | None = problem.get("code")
        self.field: str | None = problem.get("field")
        self.title: str = str(problem.get("title", ""))
        self.detail: str = str(problem.get("detail", ""))
        where = f" (field {self.field})" if self.field else ""
        super().__init__(f"{status} {self.type}: {self.detail}{where}")

    @property
    def slug(self) -> str:
        return self.type.rsplit("/", 1)[-1]


class BadRequest(ApiError):
    """400, 413, 415, 422: the request itself is wrong; `field` names what to fix."""


class Unauthenticated(ApiError):
    """401: no credential, or an unknown, expired or revoked one."""


class Forbidden(ApiError):
    """403: the role may not do this (or four-eyes: another person must)."""


class NotFound(ApiError):
    """404: no such resource visible to the caller."""


class Conflict(ApiError):
    """409: the state does not allow it (insufficient units, closed period, ...)."""


class RateLimited(ApiError):
    """429: too many attempts (sign-in locked); `retry_after` seconds."""

    retry_after: int | None = None


class ServerError(ApiError):
    """5xx that stayed after every retry. A 5xx never changes state."""


def error_for(status: int, problem: dict[str, Any], headers: Any = None) -> ApiError:
    cls: type[ApiError]
    if status == 401:
        cls = Unauthenticated
    elif status == 403:
        cls = Forbidden
    elif status == 404:
        cls = NotFound
    elif status == 409:
        cls = Conflict
    elif status == 429:
        cls = RateLimited
    elif status >= 500:
        cls = ServerError
    else:
        cls = BadRequest
    err = cls(status, problem)
    if isinstance(err, RateLimited) and headers is not None:
        value = headers.get("retry-after")
        err.retry_after = int(value) if value and value.isdigit() else None
    return err
