"""The greenrights Python SDK: typed, sync and async, on httpx.

    from greenrights.client import Client
    from registry.schemas import MoveUnits

    with Client("http://127.0.0.1:8000", api_key="gr_...") as gr:
        tx = gr.create_transfer(MoveUnits(from_account_id=10, to_account_id=11, instrument_id=1, quantity="100"))
        for t in gr.account_transactions(10):
            print(t.id, t.kind, t.quantity)
        gr.call("getDailyBars", instrument_id=1)           # any operation by its operation id

Each value-moving call carries an Idempotency-Key, re-sent as it is when a retry follows a lost connection or a
5xx; refusals raise typed ApiError subclasses carrying the problem's `type`, `code` and `field`. Bodies and
answers are the API's own schemas (registry.schemas, trading.schemas, finance.schemas, ...).
"""

from greenrights.client._client import AsyncClient, Client, RetryPolicy
from greenrights.client.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    GreenrightsError,
    NotFound,
    RateLimited,
    ServerError,
    TransportFailed,
    Unauthenticated,
)
from greenrights.client.operations import Operation, operations

__all__ = [
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "Client",
    "Conflict",
    "Forbidden",
    "GreenrightsError",
    "NotFound",
    "Operation",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "TransportFailed",
    "Unauthenticated",
    "operations",
]
