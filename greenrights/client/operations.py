"""The API's operations, read from the route handlers themselves (operation id, method, path, body and answer
types), so the SDK restates no schema: a field added to `registry.schemas.MoveUnits` is in the SDK at once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from litestar import Litestar

from finance.api import CONTROLLERS as FINANCE
from incentives.api import CONTROLLERS as INCENTIVES
from registry.api import CONTROLLERS as REGISTRY
from registry.compliance.api import CONTROLLERS as COMPLIANCE
from scheduler.api import CONTROLLERS as SCHEDULER
from server.access import CONTROLLERS as ACCESS
from server.app import create_token
from server.sandbox import CONTROLLERS as SANDBOX
from trading.api import CONTROLLERS as TRADING

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str  # with {name} placeholders
    body_type: Any | None
    answer_type: Any | None
    idempotent: bool  # a value-moving POST: needs an Idempotency-Key
    path_params: tuple[str, ...]

    def url(self, params: dict[str, Any]) -> str:
        missing = [p for p in self.path_params if p not in params]
        if missing:
            raise TypeError(f"{self.operation_id} needs {', '.join(missing)}")
        return self.path.format(**{k: params[k] for k in self.path_params})


def _handlers() -> list[Any]:
    return [*REGISTRY, *COMPLIANCE, *TRADING, *INCENTIVES, *FINANCE, *SCHEDULER, *ACCESS, *SANDBOX]


@lru_cache(maxsize=1)
def operations() -> dict[str, Operation]:
    """Every API operation by its operation id (the ids are the clients' contract and never change)."""
    app = Litestar(route_handlers=[*_handlers(), create_token], openapi_config=None)
    out: dict[str, Operation] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            op_id = handler.operation_id
            if not isinstance(op_id, str):
                continue
            sig = handler.parsed_fn_signature
            data = sig.parameters.get("data")
            answer = sig.return_type.annotation
            path = _PARAM.sub(r"{\1}", route.path)
            out[op_id] = Operation(
                operation_id=op_id,
                method=next(iter(handler.http_methods)),
                path=path,
                body_type=data.annotation if data is not None else None,
                answer_type=None if answer in (None, type(None)) else answer,
                idempotent=bool((handler.opt or {}).get("idempotent")),
                path_params=tuple(_PARAM.findall(route.path)),
            )
    return out
