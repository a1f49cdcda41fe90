"""Amounts in Chinese financial capitals and in figures, as decision letters print them."""

from __future__ import annotations

import re

import cn2an
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.capitals import YUAN_MAX, yuan_in_capitals

# Expected strings are written by hand from the People's Bank of China rules
# (正确填写票据和结算凭证的基本规定). The first block is the rules' own examples; where the rules allow two
# forms, we print the one without 零.
CASES = [
    # The rules' examples.
    (140950, "人民币壹仟肆佰零玖元伍角"),
    (600714, "人民币陆仟零柒元壹角肆分"),
    (168032, "人民币壹仟陆佰捌拾元叁角贰分"),
    (10700053, "人民币壹拾万柒仟元伍角叁分"),
    (1640902, "人民币壹万陆仟肆佰零玖元零贰分"),
    (32504, "人民币叁佰贰拾伍元零肆分"),
    # The task's examples.
    (42399700000, "人民币肆亿贰仟叁佰玖拾玖万柒仟元整"),
    (120000050, "人民币壹佰贰拾万元伍角"),
    (100000506, "人民币壹佰万零伍元零陆分"),
    (10000000000, "人民币壹亿元整"),
    (5, "人民币伍分"),
    # Below one yuan: no 元 part.
    (1, "人民币壹分"),
    (10, "人民币壹角"),
    (99, "人民币玖角玖分"),
    (50, "人民币伍角"),
    # Whole yuan and the 壹 before 拾 that a bill requires.
    (100, "人民币壹元整"),
    (1000, "人民币壹拾元整"),
    (1500, "人民币壹拾伍元整"),
    (11000, "人民币壹佰壹拾元整"),
    (10100, "人民币壹佰零壹元整"),
    (101000, "人民币壹仟零壹拾元整"),
    (100100, "人民币壹仟零壹元整"),
    (1000000, "人民币壹万元整"),
    (1000100, "人民币壹万零壹元整"),
    (1001000, "人民币壹万零壹拾元整"),
    (10000000, "人民币壹拾万元整"),
    (10500000, "人民币壹拾万伍仟元整"),
    (10050000, "人民币壹拾万零伍佰元整"),
    (100400000, "人民币壹佰万肆仟元整"),
    (100000100, "人民币壹佰万零壹元整"),
    # A zero 万 place before a non-zero 仟 gets no 零 (rule 5), as 一千万一千 is read.
    (1000100000, "人民币壹仟万壹仟元整"),
    (1010000000, "人民币壹仟零壹拾万元整"),
    (1100000000, "人民币壹仟壹佰万元整"),
    # Across 亿: a gap below 亿 is one 零; a whole skipped 万 group keeps its 零 (module docstring, rule 6).
    (11000000000, "人民币壹亿壹仟万元整"),
    (10100000000, "人民币壹亿零壹佰万元整"),
    (10001000000, "人民币壹亿零壹万元整"),
    (10000100000, "人民币壹亿零壹仟元整"),
    (10000010000, "人民币壹亿零壹佰元整"),
    (10000000100, "人民币壹亿零壹元整"),
    (10000000001, "人民币壹亿元零壹分"),
    (10000000010, "人民币壹亿元壹角"),
    (20001000000, "人民币贰亿零壹万元整"),
    (100000000000, "人民币壹拾亿元整"),
    (100001000000, "人民币壹拾亿零壹万元整"),
    (3000000400000, "人民币叁佰亿零肆仟元整"),
    (123456789012, "人民币壹拾贰亿叁仟肆佰伍拾陆万柒仟捌佰玖拾元壹角贰分"),
    # Above 万亿: the part before 亿 is itself counted in 万.
    (100000000000000, "人民币壹万亿元整"),
    (100010000000000, "人民币壹万零壹亿元整"),
    (100000100000000, "人民币壹万亿零壹佰万元整"),
    (100001000000000, "人民币壹万亿零壹仟万元整"),
    (100000000100000, "人民币壹万亿零壹仟元整"),
    (123456789012345678, "人民币壹仟贰佰叁拾肆万伍仟陆佰柒拾捌亿玖仟零壹拾贰万叁仟肆佰伍拾陆元柒角捌分"),
    (YUAN_MAX * 100 + 99, "人民币玖仟玖佰玖拾玖万玖仟玖佰玖拾玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖元玖角玖分"),
]


@pytest.mark.parametrize(("amount_fen", "expected"), CASES)
def test_yuan_in_capitals_writes_the_banking_form(amount_fen: int, expected: str) -> None:
    assert yuan_in_capitals(amount_fen) == expected


def test_zero_is_written_as_zero_yuan_exactly() -> None:
    assert yuan_in_capitals(0) == "人民币零元整"


def test_negative_amount_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        yuan_in_capitals(-1)


def test_amount_above_the_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="largest"):
        yuan_in_capitals((YUAN_MAX + 1) * 100)


@pytest.mark.parametrize("bad", [True, 1.5, "100", None])
def test_anything_but_an_int_of_fen_is_refused(bad: object) -> None:
    with pytest.raises(TypeError):
        yuan_in_capitals(bad)  # type: ignore[arg-type]


def _as_cn2an_writes(words: str) -> str:
    """Our capitals as cn2an writes them: no 人民币, and no 零 between 亿 and a following 仟."""
    return re.sub(r"亿零([壹贰叁肆伍陆柒捌玖]仟)", r"亿\1", words.removeprefix("人民币"))


def test_cn2an_agrees_except_where_a_whole_wan_group_is_skipped_after_yi() -> None:
    # Pins the one place we differ from cn2an 0.5.24 on purpose, so an upgrade that changes either side shows.
    assert cn2an.an2cn("100001000", "rmb") == "壹亿壹仟元整"
    assert yuan_in_capitals(10000100000) == "人民币壹亿零壹仟元整"
    for amount_fen, expected in CASES:
        yuan, fen = divmod(amount_fen, 100)
        theirs = cn2an.an2cn(f"{yuan}.{fen:02d}", "rmb")
        assert _as_cn2an_writes(expected) == theirs, amount_fen


_DIGIT = {c: i for i, c in enumerate("零壹贰叁肆伍陆柒捌玖")}
_SMALL_UNIT = {"拾": 10, "佰": 100, "仟": 1000}


def _read_capitals(text: str) -> int:
    """An independent reader of the capitals back into fen, to prove the words name exactly the amount."""
    assert text.startswith("人民币")
    body = text.removeprefix("人民币")
    yuan_part, _, fraction = body.rpartition("元") if "元" in body else ("", "", body)
    total = wan = section = digit = 0
    for char in yuan_part:
        if char in _DIGIT:
            digit = _DIGIT[char]
        elif char in _SMALL_UNIT:
            section += digit * _SMALL_UNIT[char]
            digit = 0
        elif char == "万":
            wan += (section + digit) * 10**4
            section = digit = 0
        elif char == "亿":
            total = (wan + section + digit) * 10**8
            wan = section = digit = 0
        else:
            raise AssertionError(f"unexpected {char!r} in {text}")
    yuan = total + wan + section + digit
    fen = 0
    for number, unit in re.findall(r"([壹贰叁肆伍陆柒捌玖])([角分])", fraction):
        fen += _DIGIT[number] * (10 if unit == "角" else 1)
    assert re.fullmatch(r"(零?([壹贰叁肆伍陆柒捌玖]角)?([壹贰叁肆伍陆柒捌玖]分)?|整|零元整)", fraction), text
    return yuan * 100 + fen


# Amounts rich in zeros, where the 零 rules matter; plain uniform integers almost never have internal zeros.
_ZERO_RICH_FEN = st.lists(st.sampled_from("000000123456789"), min_size=1, max_size=18).map(
    lambda digits: int("".join(digits))
)
_AMOUNTS_FEN = st.one_of(st.integers(min_value=0, max_value=YUAN_MAX * 100 + 99), _ZERO_RICH_FEN)


@given(_AMOUNTS_FEN)
def test_cn2an_agrees_on_random_amounts_up_to_the_skipped_group_zero(amount_fen: int) -> None:
    yuan, fen = divmod(amount_fen, 100)
    theirs = cn2an.an2cn(f"{yuan}.{fen:02d}", "rmb")
    assert _as_cn2an_writes(yuan_in_capitals(amount_fen)) == theirs


@given(_AMOUNTS_FEN)
def test_capitals_read_back_to_the_same_amount_and_keep_the_bill_rules(amount_fen: int) -> None:
    words = yuan_in_capitals(amount_fen)
    assert _read_capitals(words) == amount_fen
    assert "零零" not in words
    assert not words.endswith("零")
    assert not words.removeprefix("人民币").startswith("零") or amount_fen == 0
    # 整 closes an amount that ends at 元, and only then.
    assert words.endswith("整") == (amount_fen % 100 == 0)
    # Rule 4: a zero 角 between a non-zero 元 part and a non-zero 分 is written.
    if amount_fen >= 100 and amount_fen % 100 and (amount_fen // 10) % 10 == 0:
        assert words.endswith("元零" + words[-2:])
