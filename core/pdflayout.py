"""Table layout for the PDFs (core/pdf.py): column widths computed from the content, and cell text broken into
lines only where Chinese typesetting allows, so that a number, a code or a name never splits mid-token.

A cell's text is cut into *segments* that never break: a run of Latin letters, digits and their punctuation
("17,013", "CEA-NATIONAL-2025", "tCO2e"), one Chinese character with the punctuation that may not be parted from
it (an opening bracket goes with the character after it, a closing bracket, comma or full stop with the one
before, as 禁则 wants). Segments separated by a space form a *word*; a word made of Chinese characters (a name
such as 九江示范水泥有限公司) is kept whole on a line whenever the column can be that wide.

`fit_columns` gives every column at least its widest segment, then its short words and names whole, then its
widest word, then its widest line, in that order as the page width allows, and shares out what is left; when
the short words do not fit the cells' font gets smaller (down to `MIN_FONT_SIZE`). `break_lines` then wraps
each cell greedily at the allowed points. A segment wider than its column (only when the font is at its
minimum) is the one thing cut by character.

Pure functions over a `measure(text, size)` callback (reportlab's `stringWidth` for the document's font), so
the layout can be checked without drawing anything. Headers wrap between any two characters; the cells'
words and names decide the widths, and the cells' font shrinks (to `MIN_FONT_SIZE`) before a short name or a
number would have to be parted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Measure = Callable[[str, float], float]

MIN_FONT_SIZE = 6.5
NAME_EMS = 12
FONT_SIZE_STEP = 0.5
UNIT_MAX_CHARS = 4  # 元, 吨, MWh, 保险年度: a unit after a figure stays on its line

# 禁则: characters that may not start a line (closing brackets and stops) or end one (opening brackets).
NO_LINE_START = frozenset("）」』》〉】〕〗〙〛，。、；：！？…—％‰°”’)]},.;:!?%")
NO_LINE_END = frozenset("（「『《〈【〔〖〘〚“‘([{¥￥")


def _breaks_freely(ch: str) -> bool:
    """Whether a line may break before or after `ch` inside a word: Chinese characters, kana and fullwidth
    forms do; Latin letters, digits and their punctuation (which make numbers and codes) do not."""
    c = ord(ch)
    return 0x2E80 <= c <= 0x9FFF or 0xF900 <= c <= 0xFAFF or 0xFF00 <= c <= 0xFFEF or 0x20000 <= c <= 0x2FA1F


def segments(word: str) -> list[str]:
    """`word` (no spaces) cut where a line may break: see the module docstring."""
    out: list[str] = []
    for ch in word:
        if not out:
            out.append(ch)
            continue
        prev = out[-1]
        joined = (
            ch in NO_LINE_START
            or prev[-1] in NO_LINE_END
            or prev[-1] == " "  # the space inside a figure and its unit (`words`) never breaks
            or (not _breaks_freely(ch) and not _breaks_freely(prev[-1]))
        )
        if joined:
            out[-1] = prev + ch
        else:
            out.append(ch)
    return out


def words(line: str) -> list[str]:
    """The line's space-separated words, a unit kept with the figure before it ("1,500,000.00 元", "2 保险年度",
    "17,013 吨"): a short word without digits that follows one ending in a digit is joined to it, space and all."""
    out: list[str] = []
    for w in line.split():
        if out and out[-1][-1].isdigit() and len(w) <= UNIT_MAX_CHARS and not any(c.isdigit() for c in w):
            out[-1] = f"{out[-1]} {w}"
        else:
            out.append(w)
    return out


@dataclass(frozen=True)
class Fitted:
    """Column widths (points, padding included) and the font size that the table's cells use."""

    widths: tuple[float, ...]
    font_size: float


def _column_needs(cells: Sequence[str], measure: Measure, size: float) -> tuple[float, float, float]:
    """(widest segment, widest word, widest line) over a column's cells, in points at `size`."""
    seg = word = line = 0.0
    for cell in cells:
        for text_line in cell.split("\n"):
            line = max(line, measure(" ".join(words(text_line)), size))
            for w in words(text_line):
                word = max(word, measure(w, size))
                for s in segments(w):
                    seg = max(seg, measure(s, size))
    return seg, word, line


def _grow(current: list[float], targets: Sequence[float], budget: float) -> float:
    """Raise `current` toward `targets` in proportion to what each still lacks, spending at most `budget`;
    return what is left of it."""
    lacking = [max(0.0, t - c) for c, t in zip(current, targets, strict=True)]
    total = sum(lacking)
    if total <= 0 or budget <= 0:
        return budget
    share = min(1.0, budget / total)
    for i, gap in enumerate(lacking):
        current[i] += gap * share
    return budget - total * share


def fit_columns(
    columns: Sequence[Sequence[str]],
    frame_width: float,
    measure: Measure,
    *,
    font_size: float,
    padding: float,
    weights: Sequence[float] | None = None,
) -> Fitted:
    """Widths for columns of the given cell texts (header first) that fill `frame_width`.

    `padding` is a cell's left plus right padding. What is left once every column has its widest line is
    shared out by `weights` (relative, default equal), so a caller can still favour a column.
    """
    count = len(columns)
    weights = tuple(weights) if weights is not None else (1.0,) * count
    size = font_size
    while True:
        # A header may wrap between any two characters; the body's words and names decide the widths.
        body = [_column_needs(cells[1:], measure, size) for cells in columns]
        head = [_column_needs(cells[:1], measure, size) for cells in columns]
        seg = [max(b[0], h[0]) + padding for b, h in zip(body, head, strict=True)]
        word = [max(b[1] + padding, s) for b, s in zip(body, seg, strict=True)]
        line = [max(b[2], h[2]) + padding for b, h in zip(body, head, strict=True)]
        line = [max(x, w) for x, w in zip(line, word, strict=True)]
        short = [w if w <= NAME_EMS * size + padding else s for w, s in zip(word, seg, strict=True)]
        if sum(short) <= frame_width or size - FONT_SIZE_STEP < MIN_FONT_SIZE:
            break
        size -= FONT_SIZE_STEP
    if sum(seg) > frame_width:
        # Even at the smallest size the widest segments do not fit: share the page by what they need.
        scale = frame_width / sum(seg)
        return Fitted(tuple(s * scale for s in seg), size)
    widths = list(seg)
    left = frame_width - sum(widths)
    # Short words and names (up to NAME_EMS characters) whole first, so a city or a company name is not
    # parted to give a long sentence in the next column a little more room; the font shrinks for them first.
    left = _grow(widths, short, left)
    left = _grow(widths, word, left)
    left = _grow(widths, line, left)
    if left > 0:
        total = sum(weights)
        for i, w in enumerate(weights):
            widths[i] += left * w / total
    return Fitted(tuple(widths), size)


def break_lines(text: str, width: float, measure: Measure, size: float) -> list[str]:
    """`text` wrapped to lines no wider than `width` points, breaking only between segments (a space
    between words is kept, and dropped at a break). A segment wider than `width` is cut by character."""
    lines: list[str] = []
    for text_line in text.split("\n"):
        current = ""
        for w_index, w in enumerate(words(text_line)):
            for s_index, piece in enumerate(segments(w)):
                seg = piece
                sep = " " if s_index == 0 and w_index > 0 and current else ""
                # Keep a word whole where it fits on a line of its own, rather than part it at the line's end.
                if s_index == 0 and current and measure(current + sep + w, size) > width >= measure(w, size):
                    lines.append(current)
                    current = ""
                    sep = ""
                if measure(current + sep + seg, size) <= width:
                    current += sep + seg
                    continue
                if current:
                    lines.append(current)
                    current = ""
                while measure(seg, size) > width and len(seg) > 1:
                    cut = len(seg) - 1
                    while cut > 1 and measure(seg[:cut], size) > width:
                        cut -= 1
                    lines.append(seg[:cut])
                    seg = seg[cut:]
                current = seg
        lines.append(current)
    return lines
