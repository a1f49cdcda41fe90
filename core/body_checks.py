"""What a request may carry, checked at the edge before any route runs (core/http.py `EdgeMiddleware`): strict JSON
(no duplicate keys, no NaN/Infinity, a bounded nesting depth) and no null character anywhere (path, query, JSON or
form body), since PostgreSQL cannot store U+0000 and nothing else should either. Pure functions of the bytes.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from litestar.types import Scope


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(text: bytes, limit: int) -> bool:
    """True when brackets nest deeper than `limit` (checked before parsing, so a 10k-deep body costs nothing)."""
    depth = 0
    in_str = False
    escape = False
    for ch in text:
        if in_str:
            if escape:
                escape = False
            elif ch == 0x5C:
                escape = True
            elif ch == 0x22:
                in_str = False
        elif ch == 0x22:
            in_str = True
        elif ch in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif ch in (0x5D, 0x7D):
            depth -= 1
    return False


def check_json(body: bytes, max_depth: int) -> tuple[str, str] | None:
    """None when `body` is strict JSON; else (slug, detail)."""
    if _depth(body, max_depth):
        return "malformed-body", f"The JSON nests deeper than {max_depth} levels."
    try:
        json.loads(body, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except _DuplicateKey as exc:
        return "malformed-body", f"The JSON object has the key {exc.args[0]!r} twice."
    except (ValueError, UnicodeDecodeError) as exc:
        return "malformed-body", f"The body is not well-formed JSON: {exc}."
    return None


NUL_DETAIL = "A text may not contain the null character (U+0000)."


def _nul_field(value: Any, path: str = "") -> str | None:
    """The field (dotted, list items as [i]) of the first text holding U+0000 in a decoded JSON value, or None."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else str(k)
            if "\x00" in k:
                return where.replace("\x00", "\\u0000")
            found = _nul_field(v, where)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _nul_field(v, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def nul_in_request(scope: Scope, body: bytes = b"", ctype: str = "") -> str | None:
    """The one null-byte check of every request (path, query and JSON or form body): the field holding U+0000, or
    None. PostgreSQL cannot store the character, so it is refused at the edge with a 422 before any route runs."""
    if "\x00" in scope.get("path", ""):
        return "path"
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if "\x00" in k or "\x00" in v:
                return k.replace("\x00", "") or "query"
    if not body:
        return None
    if ctype == "application/x-www-form-urlencoded" and (b"%00" in body or b"\x00" in body):
        for k, v in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
            if "\x00" in k or "\x00" in v:
                return k.replace("\x00", "") or "body"
    if (ctype == "application/json" or ctype.endswith("+json")) and b"\\u0000" in body:
        try:
            return _nul_field(json.loads(body))
        except (ValueError, UnicodeDecodeError):
            return None  # the JSON check answers a malformed body
    return None
