"""core/figures.py: the one way money and quantities are written, and a guard that no copy of it grows back."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import figures
from core.quantity import parse_amount

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("fen", "human", "plain"),
    [
        (0, "0.00", "0.00"),
        (1, "0.01", "0.01"),
        (99, "0.99", "0.99"),
        (100, "1.00", "1.00"),
        (123456789, "1,234,567.89", "1234567.89"),
        (42399700000, "423,997,000.00", "423997000.00"),
        (100000506, "1,000,005.06", "1000005.06"),
        (-1, "-0.01", "-0.01"),
        (-5, "-0.05", "-0.05"),
        (-123456789, "-1,234,567.89", "-1234567.89"),
        (10**15, "10,000,000,000,000.00", "10000000000000.00"),
        (10**20 + 1, "1,000,000,000,000,000,000.01", "1000000000000000000.01"),
    ],
)
def test_money_in_fen_is_written_with_two_decimals(fen: int, human: str, plain: str) -> None:
    assert figures.yuan(fen) == human
    assert figures.yuan(fen, unit=True) == human + " 元"
    assert figures.yuan_plain(fen) == plain


@pytest.mark.parametrize(
    ("base", "scale", "human", "plain"),
    [
        (0, 0, "0", "0"),
        (0, 3, "0.000", "0.000"),
        (1, 0, "1", "1"),
        (1, 3, "0.001", "0.001"),
        (17013, 0, "17,013", "17013"),
        (17013500, 3, "17,013.500", "17013.500"),
        (100_000_000, 3, "100,000.000", "100000.000"),
        (-17013, 0, "-17,013", "-17013"),
        (-500, 3, "-0.500", "-0.500"),
        (10**15, 0, "1,000,000,000,000,000", "1000000000000000"),
        (10**15, 3, "1,000,000,000,000.000", "1000000000000.000"),
        (2**63 - 1, 0, "9,223,372,036,854,775,807", "9223372036854775807"),
    ],
)
def test_quantities_are_written_at_their_scale(base: int, scale: int, human: str, plain: str) -> None:
    assert figures.quantity(base, scale) == human
    assert figures.quantity_plain(base, scale) == plain


@pytest.mark.parametrize(
    ("bp", "text"),
    [(0, "0.00%"), (1, "0.01%"), (525, "5.25%"), (1250, "12.50%"), (7000, "70.00%"), (10000, "100.00%"),
     (-5, "-0.05%")],
)
def test_basis_points_are_a_percentage_with_two_decimals(bp: int, text: str) -> None:
    assert figures.percent(bp) == text


@pytest.mark.parametrize(
    ("base", "scale", "text"),
    [(99500, 3, "99.5"), (100000, 3, "100"), (-500, 3, "-0.5"), (0, 3, "0"), (1, 3, "0.001"), (12, 0, "12"),
     (10, 0, "10")],
)
def test_a_decimal_measure_is_its_shortest_exact_decimal(base: int, scale: int, text: str) -> None:
    assert figures.decimal_plain(base, scale) == text


@pytest.mark.parametrize("bad", [True, 1.5, "100", None])
def test_anything_but_an_int_is_refused(bad: object) -> None:
    with pytest.raises(TypeError):
        figures.yuan(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        figures.quantity_plain(bad, 3)  # type: ignore[arg-type]


def test_a_negative_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="scale"):
        figures.quantity(1, -1)


@given(st.integers(min_value=0, max_value=2**63 - 1), st.sampled_from([0, 2, 3]))
def test_the_machine_form_parses_back_exactly(base: int, scale: int) -> None:
    # What an answer says can be sent back as input: core.quantity reads the plain form to the same integer.
    assert parse_amount(figures.quantity_plain(base, scale), scale=scale, field="x", allow_zero=True) == base


@given(st.integers(min_value=-(10**30), max_value=10**30), st.sampled_from([0, 2, 3]))
def test_the_human_form_is_the_machine_form_with_separators(base: int, scale: int) -> None:
    human, plain = figures.quantity(base, scale), figures.quantity_plain(base, scale)
    assert human.replace(",", "") == plain
    whole = human.lstrip("-").split(".")[0]
    assert all(len(group) == 3 for group in whole.split(",")[1:]) and 1 <= len(whole.split(",")[0]) <= 3


def test_figures_imports_only_the_standard_library() -> None:
    # The pure domain modules may import core.figures (pyproject.toml names the exception); that stays true only
    # while core.figures itself imports nothing outside the standard library.
    tree = ast.parse((ROOT / "core" / "figures.py").read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0] if node.level == 0 else ".")
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


# ------------------------------------------------------------------------------- no copy grows back
SOURCE_ROOTS = ("core", "registry", "trading", "incentives", "finance", "scheduler", "web", "server", "greenrights",
                "bench")
# What a hand-written copy of the formatting looks like: a thousands separator in a format spec, a divmod by
# 100 or by a power of ten (fen into yuan, base units into display units), a float percentage of basis points,
# and the same in templates.
COPY_PATTERNS = {
    "thousands separator": re.compile(
        r"\{[^{}\n]*?:[<>^=]?[+\- ]?#?0?\d*,(?:\.\d+)?[a-zA-Z%]?\}|format\([^)\n]*,\s*['\"][^'\"]*,[^'\"]*['\"]\s*\)"
    ),
    "divmod by 100 or 10**n": re.compile(r"divmod\(.*,\s*(?:100\b|10\s*\*\*)"),
    "float percentage": re.compile(r"/\s*100(?:\.0*)?\s*:"),
}
TEMPLATE_PATTERNS = {
    "number format in a template": re.compile(r"\{:,|'%\.2f'|\"%\.2f\"|\|\s*round"),
}
# Each exception names the file, the pattern and why; the list may only shrink.
ALLOWED = {
    ("core/figures.py", "thousands separator"): "the helper itself",
    ("core/figures.py", "divmod by 100 or 10**n"): "the helper itself",
    ("core/capitals.py", "divmod by 100 or 10**n"): "splits fen into yuan, 角 and 分 to write financial capitals",
    ("bench/eligibility.py", "thousands separator"): "a benchmark's print-out of row counts and rates per second",
}


def _copies(text: str, patterns: dict[str, re.Pattern[str]]) -> list[tuple[str, int, str]]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for name, pattern in patterns.items():
            if pattern.search(line):
                found.append((name, number, line.strip()))
    return found


@pytest.mark.parametrize(
    "line",
    [
        'return f"{sign}{yuan:,}.{fen:02d}"',
        'f"{int(x.get(\'shortfall\') or 0):,}"',
        "whole, cents = divmod(abs(fen), 100)",
        "whole, frac = divmod(abs(int(base)), 10**scale)",
        'f"(±{row.band_bps / 100:g}% of the previous close)"',
        'format(value, ",")',
    ],
)
def test_the_guard_recognises_a_hand_written_copy(line: str) -> None:
    assert _copies(line, COPY_PATTERNS)


def test_the_guard_lets_ordinary_code_through() -> None:
    ordinary = 'f"{key // 10_000:04d}-{key // 100 % 100:02d}"\nq, r = divmod(n, 7)\nf"{a}, {b}"\nd = {"a": 1, "b": 2}'
    assert not _copies(ordinary, COPY_PATTERNS)


def test_no_module_formats_money_or_quantities_by_hand() -> None:
    found = []
    for root in SOURCE_ROOTS:
        for path in sorted((ROOT / root).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            patterns = COPY_PATTERNS if path.suffix == ".py" else TEMPLATE_PATTERNS if path.suffix in (
                ".html", ".j2", ".jinja", ".txt") else None
            if patterns is None or "/migrations/" in f"/{rel}":
                continue
            for name, number, line in _copies(path.read_text(encoding="utf-8"), patterns):
                if (rel, name) not in ALLOWED:
                    found.append(f"{rel}:{number}: {name}: {line}")
    assert not found, "format through core.figures instead:\n" + "\n".join(found)


def test_every_exception_is_still_needed() -> None:
    for (rel, name), why in ALLOWED.items():
        assert why
        text = (ROOT / rel).read_text(encoding="utf-8")
        assert _copies(text, {name: (COPY_PATTERNS | TEMPLATE_PATTERNS)[name]}), f"{rel}: {name} no longer found"
