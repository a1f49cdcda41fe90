"""The SDK's two clients, `Client` (sync) and `AsyncClient`, on httpx.

Every call names an operation by its API operation id. Bodies are the API's own msgspec structs (or dicts of the
same shape); answers are decoded into the API's own answer types. A value-moving call gets a fresh Idempotency-Key
(or the one you pass), and that same key is re-sent when the connection fails or the server answers 5xx or
"in flight", so a retry never doubles a transfer. Other writes are retried only when the request never left (the
connection was refused); reads are retried on any transport error or 5xx.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from greenrights.client.errors import ApiError, TransportFailed, Unauthenticated, error_for
from greenrights.client.operations import Operation, operations
from registry.schemas import HoldingOut, MoveUnits, TransactionOut

RETRY_STATUSES = frozenset({500, 502, 503, 504})
IN_FLIGHT = "/problems/idempotency-key-in-flight"


@dataclass
class RetryPolicy:
    """How often and how long to retry: attempts in all, then exponential backoff with jitter, capped."""

    attempts: int = 5
    first_delay_s: float = 0.2
    max_delay_s: float = 2.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after and retry_after.isdigit():
            return min(float(retry_after), self.max_delay_s)
        base = min(self.first_delay_s * (2**attempt), self.max_delay_s)
        return base * (0.5 + random.random() / 2)


@dataclass
class _Call:
    op: Operation
    url: str
    headers: dict[str, str]
    content: bytes | None
    params: dict[str, Any]
    idempotency_key: str | None
    files: dict[str, tuple[str, bytes, str]] | None = None


class _Base:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        if api_key is None and (username is None or password is None):
            raise ValueError("give an api_key, or a username and password")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.username = username
        self.password = password
        self.retry = retry or RetryPolicy()
        self._token: str | None = None
        self._token_expires = 0.0

    @staticmethod
    def operation(operation_id: str) -> Operation:
        try:
            return operations()[operation_id]
        except KeyError:
            raise KeyError(f"no API operation {operation_id!r}") from None

    def _prepare(
        self,
        operation_id: str,
        body: Any,
        query: dict[str, Any] | None,
        idempotency_key: str | None,
        path_params: dict[str, Any],
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> _Call:
        op = self.operation(operation_id)
        headers = {"Accept": "application/json, application/problem+json, */*"}
        content = None
        if files is not None and body is not None:
            raise TypeError(f"{operation_id}: send a JSON body or files, not both")
        if body is not None:
            content = msgspec.json.encode(body)
            headers["Content-Type"] = "application/json"
        key = None
        if op.idempotent:
            key = idempotency_key or f"sdk-{uuid.uuid4()}"
            headers["Idempotency-Key"] = key
        params = {k: v for k, v in (query or {}).items() if v is not None}
        return _Call(op, op.url(path_params), headers, content, params, key, files)

    def _retryable(self, call: _Call, exc: Exception | None, response: httpx.Response | None) -> bool:
        safe = call.op.method == "GET" or call.op.idempotent
        if exc is not None:
            # A refused connection never reached the server: any call may go again.
            return safe or isinstance(exc, httpx.ConnectError)
        assert response is not None
        if response.status_code in RETRY_STATUSES:
            return safe
        return response.status_code == 409 and call.op.idempotent and _problem_type(response) == IN_FLIGHT

    @staticmethod
    def _decode(call: _Call, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            problem: dict[str, Any]
            try:
                problem = response.json()
                if not isinstance(problem, dict):
                    problem = {"detail": str(problem)}
            except ValueError:
                problem = {"detail": response.text[:500]}
            raise error_for(response.status_code, problem, response.headers)
        ctype = response.headers.get("content-type", "")
        if "json" not in ctype:
            return response.content  # a PDF, a CSV
        if not response.content:
            return None
        answer = call.op.answer_type
        try:
            return msgspec.json.decode(response.content, type=answer) if answer is not None else response.json()
        except (msgspec.ValidationError, TypeError):
            return msgspec.json.decode(response.content)

    def _token_valid(self) -> bool:
        return self._token is not None and time.monotonic() < self._token_expires - 30

    def _auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key or self._token}"}


def _problem_type(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("type") if isinstance(body, dict) else None


def _items(page: Any) -> tuple[list[Any], int | None]:
    if isinstance(page, dict):
        return list(page.get("items", [])), page.get("next_before_id")
    return list(page.items), getattr(page, "next_before_id", None)


class Client(_Base):
    """The synchronous client. Use it as a context manager, or call `close()`."""

    def __init__(
        self, base_url: str, *, timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None, **kw: Any
    ) -> None:
        super().__init__(base_url, **kw)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def sign_in(self) -> None:
        """Exchange the username and password for a staff token (done by itself on the first call)."""
        answer = self.call("createToken", {"username": self.username, "password": self.password})
        self._token = answer.access_token
        self._token_expires = time.monotonic() + answer.expires_in

    def call(
        self,
        operation_id: str,
        body: Any = None,
        *,
        query: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        **path_params: Any,
    ) -> Any:
        """Run one API operation; returns its decoded answer or raises an ApiError subclass. `files` sends a
        multipart form instead of a JSON body (`{"file": (name, bytes, content type)}`, e.g. `uploadReports`)."""
        call = self._prepare(operation_id, body, query, idempotency_key, path_params, files)
        if operation_id != "createToken" and self.api_key is None and not self._token_valid():
            self.sign_in()
        signed_in_again = False
        for attempt in range(self.retry.attempts):
            headers = call.headers if operation_id == "createToken" else {**call.headers, **self._auth_header()}
            try:
                response = self._http.request(
                    call.op.method,
                    call.url,
                    headers=headers,
                    content=call.content,
                    params=call.params,
                    files=call.files,
                )
            except httpx.TransportError as exc:
                if not self._retryable(call, exc, None) or attempt == self.retry.attempts - 1:
                    raise TransportFailed(f"{operation_id}: {exc!r}", call.idempotency_key) from exc
                time.sleep(self.retry.delay(attempt))
                continue
            if (
                response.status_code == 401
                and operation_id != "createToken"
                and self.api_key is None
                and not signed_in_again
            ):
                signed_in_again = True  # the token expired between the check and the call
                self.sign_in()
                continue
            if self._retryable(call, None, response) and attempt < self.retry.attempts - 1:
                time.sleep(self.retry.delay(attempt, response.headers.get("retry-after")))
                continue
            return self._decode(call, response)
        raise AssertionError("unreachable")

    # Typed shortcuts for the calls people make most; `call` reaches every other operation by its id.
    def create_transfer(self, body: MoveUnits, idempotency_key: str | None = None) -> TransactionOut:
        out: TransactionOut = self.call("createTransfer", body, idempotency_key=idempotency_key)
        return out

    def get_transaction(self, transaction_id: int) -> TransactionOut:
        out: TransactionOut = self.call("getTransaction", transaction_id=transaction_id)
        return out

    def holdings(self, account_id: int) -> list[HoldingOut]:
        out: list[HoldingOut] = self.call("listHoldings", account_id=account_id)
        return out

    def account_transactions(self, account_id: int, page_size: int = 100) -> Iterator[TransactionOut]:
        return self.pages("listAccountTransactions", query={"limit": page_size}, account_id=account_id)

    def pages(self, operation_id: str, *, query: dict[str, Any] | None = None, **path_params: Any) -> Iterator[Any]:
        """Every item of a paginated list operation, fetching the next page (`before_id`) as you iterate."""
        q = dict(query or {})
        while True:
            items, nxt = _items(self.call(operation_id, query=q, **path_params))
            yield from items
            if not nxt:
                return
            q["before_id"] = nxt


class AsyncClient(_Base):
    """The asyncio client: the same calls, awaited. Use it as an async context manager, or `await aclose()`."""

    def __init__(
        self, base_url: str, *, timeout_s: float = 30.0, transport: httpx.AsyncBaseTransport | None = None, **kw: Any
    ) -> None:
        super().__init__(base_url, **kw)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s, transport=transport)
        self._signing_in = asyncio.Lock()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def sign_in(self) -> None:
        async with self._signing_in:
            answer = await self.call("createToken", {"username": self.username, "password": self.password})
            self._token = answer.access_token
            self._token_expires = time.monotonic() + answer.expires_in

    async def call(
        self,
        operation_id: str,
        body: Any = None,
        *,
        query: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        **path_params: Any,
    ) -> Any:
        call = self._prepare(operation_id, body, query, idempotency_key, path_params, files)
        if operation_id != "createToken" and self.api_key is None and not self._token_valid():
            await self.sign_in()
        signed_in_again = False
        for attempt in range(self.retry.attempts):
            headers = call.headers if operation_id == "createToken" else {**call.headers, **self._auth_header()}
            try:
                response = await self._http.request(
                    call.op.method,
                    call.url,
                    headers=headers,
                    content=call.content,
                    params=call.params,
                    files=call.files,
                )
            except httpx.TransportError as exc:
                if not self._retryable(call, exc, None) or attempt == self.retry.attempts - 1:
                    raise TransportFailed(f"{operation_id}: {exc!r}", call.idempotency_key) from exc
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            if (
                response.status_code == 401
                and operation_id != "createToken"
                and self.api_key is None
                and not signed_in_again
            ):
                signed_in_again = True
                await self.sign_in()
                continue
            if self._retryable(call, None, response) and attempt < self.retry.attempts - 1:
                await asyncio.sleep(self.retry.delay(attempt, response.headers.get("retry-after")))
                continue
            return self._decode(call, response)
        raise AssertionError("unreachable")

    async def create_transfer(self, body: MoveUnits, idempotency_key: str | None = None) -> TransactionOut:
        out: TransactionOut = await self.call("createTransfer", body, idempotency_key=idempotency_key)
        return out

    async def get_transaction(self, transaction_id: int) -> TransactionOut:
        out: TransactionOut = await self.call("getTransaction", transaction_id=transaction_id)
        return out

    async def holdings(self, account_id: int) -> list[HoldingOut]:
        out: list[HoldingOut] = await self.call("listHoldings", account_id=account_id)
        return out

    def account_transactions(self, account_id: int, page_size: int = 100) -> AsyncIterator[TransactionOut]:
        return self.pages("listAccountTransactions", query={"limit": page_size}, account_id=account_id)

    async def pages(
        self, operation_id: str, *, query: dict[str, Any] | None = None, **path_params: Any
    ) -> AsyncIterator[Any]:
        q = dict(query or {})
        while True:
            items, nxt = _items(await self.call(operation_id, query=q, **path_params))
            for item in items:
                yield item
            if not nxt:
                return
            q["before_id"] = nxt


__all__ = ["ApiError", "AsyncClient", "Client", "RetryPolicy", "TransportFailed", "Unauthenticated"]
