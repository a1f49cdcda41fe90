"""Amounts of money as printed on decision letters (决定书), statements and notices.

A letter states every amount twice: in figures ("423,997,000.00", written by `core.figures.yuan`) and in
Chinese financial capitals ("人民币肆亿贰仟叁佰玖拾玖万柒仟元整"), the form banks and the finance bureau accept
because a capital cannot be turned into another amount by adding a stroke. The capitals follow the People's
Bank of China rules for filling in bills (《支付结算办法》附件一《正确填写票据和结算凭证的基本规定》):

1. The words start with "人民币" directly, without a gap.
2. An amount that ends at 元 ends with "整"; after 角 no "整" is written; after 分 never.
3. A run of zeros between two non-zero digits is written as one "零" (¥6,007.14 → 陆仟零柒元壹角肆分).
4. When the 角 digit is zero but the 分 digit is not, "零" follows "元" (¥325.04 → 叁佰贰拾伍元零肆分).
5. Where the rules let the writer choose (a zero in the 万 or 元 place followed by a non-zero 仟 or 角 digit),
   this module writes no "零", as the rules' own examples allow: ¥1,680.32 → 壹仟陆佰捌拾元叁角贰分,
   ¥107,000.53 → 壹拾万柒仟元伍角叁分. This is also how the amount is read aloud.
6. When a whole four-digit group is skipped (the 万 group of ¥100,001,000), "零" is always written:
   壹亿零壹仟元整. The rules would let it go, but 壹亿壹仟元整 invites a forged "万" after 壹仟, and the
   textbook reading is 一亿零一千; likewise a skipped 亿 group: ¥1,0000,1000,0000 → 壹万亿零壹仟万元整.
   cn2an 0.5.24 drops this "零", so groups are joined here and cn2an only writes each four-digit group.
7. Amounts below one yuan have no 元 part (¥0.05 → 人民币伍分); zero is 人民币零元整.

All arithmetic is on integers of fen; no float or Decimal is ever involved.
"""

from __future__ import annotations

import cn2an

# Ten thousand 亿 yuan is far beyond any budget or claim; a limit keeps the words bounded and matches the
# largest integer cn2an itself accepts (16 digits).
YUAN_MAX = 10**16 - 1

_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_WAN = 10**4
_YI = 10**8


def _check_fen(amount_fen: int) -> None:
    # bool is an int in Python; True must not print as 壹分.
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int):
        raise TypeError(f"amount_fen must be an int of fen, got {type(amount_fen).__name__}")


def _group_words(group: int) -> str:
    """Capitals of 1..9999 (one four-digit group), e.g. 1010 → 壹仟零壹拾.

    cn2an gets a single group right (including "壹拾" with its 壹, which a bill requires), so it is used here.
    """
    assert 0 < group < _WAN
    return str(cn2an.an2cn(str(group), "up"))


def _below_yi_words(value: int) -> str:
    """Capitals of 1..99,999,999, using 万 for the upper group."""
    assert 0 < value < _YI
    high, low = divmod(value, _WAN)
    if high == 0:
        return _group_words(low)
    words = _group_words(high) + "万"
    if low:
        # A low group without its 仟 digit (e.g. 0500) is a gap after the 万: one 零 marks it.
        words += ("零" if low < 1000 else "") + _group_words(low)
    return words


def _integer_words(value: int) -> str:
    """Capitals of a positive whole number of yuan, with 亿 above 万 (so 10,001 亿 is 壹万零壹亿)."""
    assert 0 < value <= YUAN_MAX
    high, low = divmod(value, _YI)
    if high == 0:
        return _below_yi_words(low)
    words = _below_yi_words(high) + "亿"
    if low:
        # A gap after 亿 gets one 零: the low part lacks its 仟万 digit (which includes a whole skipped 万
        # group, rule 6), or the 亿 group itself was skipped (壹万亿零壹仟万: 1,0000,1000,0000).
        gap = low < 10**7 or (high >= _WAN and high % _WAN == 0)
        words += ("零" if gap else "") + _below_yi_words(low)
    return words


def yuan_in_capitals(amount_fen: int) -> str:
    """The amount in Chinese financial capitals, e.g. 42399700000 fen → "人民币肆亿贰仟叁佰玖拾玖万柒仟元整".

    Raises ValueError for a negative amount (a letter never states a negative sum; say "refund" or "clawback"
    in words instead) and for amounts above YUAN_MAX yuan, TypeError for anything but an int.
    """
    _check_fen(amount_fen)
    if amount_fen < 0:
        raise ValueError(f"a negative amount ({amount_fen} fen) has no form in capitals")
    yuan, rest_fen = divmod(amount_fen, 100)
    if yuan > YUAN_MAX:
        raise ValueError(f"{yuan} yuan is above the largest amount printed in capitals ({YUAN_MAX})")
    jiao, fen = divmod(rest_fen, 10)
    if amount_fen == 0:
        return "人民币零元整"
    words = "人民币"
    if yuan:
        words += _integer_words(yuan) + "元"
    if jiao:
        words += _DIGITS[jiao] + "角"
    elif fen and yuan:
        # Rule 4: a zero 角 between 元 and a non-zero 分 must be written.
        words += "零"
    if fen:
        words += _DIGITS[fen] + "分"
    elif not jiao:
        words += "整"
    return words
