"""Checks for free text at the edge: names and references are stored literally, but never with NUL, control or
bidirectional-override characters (which make a name display as something else), and never over their limit."""

from __future__ import annotations

import unicodedata

from core.errors import InvalidInput

_BIDI = {
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u200e",
    "\u200f",
    "\u061c",
}


def clean_text(value: str, field: str, *, max_len: int = 200, required: bool = True) -> str:
    if required and not value.strip():
        raise InvalidInput(field, "Give a non-empty text.")
    if len(value) > max_len:
        raise InvalidInput(field, f"Use at most {max_len} characters.")
    for ch in value:
        if ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co"):
            raise InvalidInput(field, f"The text contains a control or invisible character U+{ord(ch):04X}.")
    return value
