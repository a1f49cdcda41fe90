"""core/jsontext.py: the stored JSON text is the standard library's, character for character, whichever encoder
made it (the audit chain hashes it)."""

from __future__ import annotations

import datetime as dt
import enum
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import jsontext


def _stdlib(value: Any, sort_keys: bool) -> str:
    return json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False, default=str)


# Any text (control characters, astral characters, lone surrogates), any integer (beyond 64 bits too).
_SCALARS = st.none() | st.booleans() | st.integers() | st.text(st.characters(codec=None), max_size=12)
_PLAIN = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(st.characters(codec=None), max_size=6), inner, max_size=5)
    ),
    max_leaves=20,
)


class _Side(enum.Enum):
    BUY = "buy"


class _Kind(enum.StrEnum):
    CEA = "cea"


# Values the fast encoder must leave to the standard library, which writes them its own way (`default=str`).
_OTHERS = st.sampled_from(
    [
        1.5,
        1e16,
        Decimal("12.50"),
        dt.date(2026, 3, 2),
        dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC),
        _Side.BUY,
        _Kind.CEA,
        {1: "int key"},
        {"set": {1}},
    ]
)


@settings(max_examples=400)
@given(value=_PLAIN, sort_keys=st.booleans())
def test_plain_values_are_written_as_the_standard_library_writes_them(value: Any, sort_keys: bool) -> None:
    assert jsontext.dumps(value, sort_keys=sort_keys) == _stdlib(value, sort_keys)


@settings(max_examples=200)
@given(value=st.dictionaries(st.text(max_size=4), _PLAIN | _OTHERS, max_size=4), sort_keys=st.booleans())
def test_values_with_other_types_are_written_as_the_standard_library_writes_them(
    value: dict[str, Any], sort_keys: bool
) -> None:
    assert jsontext.dumps(value, sort_keys=sort_keys) == _stdlib(value, sort_keys)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"b": 1, "a": {"d": None, "c": True}}, '{"a":{"c":true,"d":null},"b":1}'),
        ({"名称": "江西省", "n": 2**70}, '{"n":1180591620717411303424,"名称":"江西省"}'),
        ({"at": dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)}, '{"at":"2026-03-02 02:00:00+00:00"}'),
        ({"x": "a\nb\x00\u2028"}, '{"x":"a\\nb\\u0000\u2028"}'),
    ],
)
def test_known_texts(value: Any, text: str) -> None:
    assert jsontext.dumps(value, sort_keys=True) == text
