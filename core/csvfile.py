"""CSV files people open in Excel, the same way everywhere: UTF-8 with a byte-order mark (Excel on Chinese Windows
otherwise reads the names as garbage), one `charset` in the Content-Type, `true`/`false` for booleans, plain
numbers in machine columns (no thousands separators), and text cells that a spreadsheet would run as a formula
(starting with = + - @, tab or carriage return) prefixed with an apostrophe.
"""

from __future__ import annotations

from typing import Any

from litestar import Response

BOM = "\ufeff"
MEDIA_TYPE = "text/csv"  # Litestar adds `; charset=utf-8` to text types itself: once.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any, *, text: bool = False) -> str:
    """One CSV cell: None empty, booleans `true`/`false`, a text cell safe from formula injection."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    out = str(value)
    return "'" + out if text and out.startswith(_FORMULA_START) else out


def csv_response(body: str, filename: str) -> Response[str]:
    """A CSV download for people: the BOM first (never twice), one charset, an attachment with its file name."""
    return Response(
        body if body.startswith(BOM) else BOM + body,
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
