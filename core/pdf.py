"""The PDF toolkit for Chinese documents: decision letters (决定书), statements, compliance and bank reports.

Each context's `pdf.py` describes its document with the `Document` builder (title, headings, paragraphs,
key-value blocks, tables, a verification footer) and gets the bytes from `render()`. This module owns what
every document shares: an A4 page, a CJK TrueType font embedded once per process, "第 N 页 / 共 M 页" on
every page, the generated-at time given by the caller, and escaping of user text so that a name such as
"A<B>&C" prints literally instead of being read as reportlab markup.

Guarantees:
- Equal input gives equal bytes on one installation (reportlab's invariant mode; the PDF dates are the
  caller's `generated_at`, never the clock).
- All text, including user text, is printed literally; nothing a user types becomes markup.
- Text stays extractable: pypdf and screen readers get Unicode back through the font's ToUnicode map.

The font is Noto Sans SC (Google Fonts; Copyright 2014-2021 Adobe), licensed under the SIL Open Font License
1.1, shipped inside this package as subsets in `core/fonts/` (NotoSansSC-Regular.ttf and NotoSansSC-Bold.ttf,
with the licence in `core/fonts/OFL.txt`; `core/fonts/README.md` names the source package, the sha256 of every
file and the character set; `tools/build_font.py` rebuilds them). Regular and Bold are registered as one family,
so titles, headings and `<b>` print in the Bold. The font must have TrueType outlines: reportlab rejects
CFF/OpenType fonts such as Noto Sans CJK. The `GREENRIGHTS_PDF_FONT_PATH` setting (the same variable as
`Settings.pdf_font_path`) replaces the packaged font with another TrueType file (used for regular and bold).

`verification_code` derives the short code printed on a document from a hash of the record it states, so
`/verify/{code}` can show a reader the record the document was made from. It is a hash, not a signature: it
proves that a printed code matches a stored record, not who issued the document.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
import os
import re
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Self
from xml.sax.saxutils import escape as _xml_escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus.flowables import HRFlowable

from core import pdflayout
from core.clock import SHANGHAI, require_aware
from core.pdfcode import (
    canonical_json,
    normalize_verification_code,
    qr_drawing,
    verification_code,
    verification_code_matches,
    verify_url,
)

__all__ = [
    "Document",
    "Letter",
    "PdfFontError",
    "canonical_json",
    "chinese_date",
    "default_font_path",
    "escape_markup",
    "normalize_verification_code",
    "qr_drawing",
    "register_cjk_font",
    "register_cjk_fonts",
    "verification_code",
    "verification_code_matches",
    "verify_url",
]

FONT_PATH_ENV = "GREENRIGHTS_PDF_FONT_PATH"
FONT_DIR = Path(__file__).resolve().parent / "fonts"
FONT_REGULAR = FONT_DIR / "NotoSansSC-Regular.ttf"
FONT_BOLD = FONT_DIR / "NotoSansSC-Bold.ttf"

# Limits keep one request from asking for an unbounded document; real letters and statements are far smaller.
TABLE_COLUMNS_MAX = 20
TABLE_ROWS_MAX = 100_000
TEXT_CHARS_MAX = 100_000

_PAGE_WIDTH, _PAGE_HEIGHT = A4


@dataclass(frozen=True)
class PageGeometry:
    """Margins of a page (points); the frame between them holds the text, footers sit in the bottom margin."""

    left: float
    right: float
    top: float
    bottom: float

    @property
    def width(self) -> float:
        return float(_PAGE_WIDTH) - self.left - self.right

    @property
    def height(self) -> float:
        return float(_PAGE_HEIGHT) - self.top - self.bottom


REPORT_PAGE = PageGeometry(left=20 * mm, right=20 * mm, top=22 * mm, bottom=24 * mm)
# GB/T 9704-2012 5.2.1: 版心 156 mm × 225 mm, top margin 37 mm, left margin 28 mm.
LETTER_PAGE = PageGeometry(left=28 * mm, right=26 * mm, top=37 * mm, bottom=35 * mm)
_FRAME_WIDTH = REPORT_PAGE.width
# Table cells: left plus right padding, the body size and the smallest size a crowded table shrinks to.
_CELL_PAD = 3.0
_CELL_SIZE = 9.0
_LETTER_RED = colors.HexColor("#C00000")
_GRID_GREY = colors.HexColor("#9E9E9E")
_HEADER_FILL = colors.HexColor("#E8EEF4")
_MUTED = colors.HexColor("#555555")


class PdfFontError(RuntimeError):
    """No usable CJK TrueType font: the message says which path was tried and how to set one."""


# ---------------------------------------------------------------------------------------------------------
# Font


_font_lock = threading.Lock()
_render_lock = threading.Lock()
_registered_fonts: dict[Path, str] = {}


def default_font_path() -> Path:
    """Where the CJK font is taken from when a document is not given one (see the module docstring)."""
    configured = os.environ.get(FONT_PATH_ENV, "").strip()
    if configured:
        # An operator's explicit choice is never silently replaced by a fallback.
        return Path(configured)
    if FONT_REGULAR.is_file():
        return FONT_REGULAR
    raise PdfFontError(
        f"The packaged font {FONT_REGULAR} is missing (a broken installation: reinstall greenrights, or rebuild "
        f"it with tools/build_font.py), or set {FONT_PATH_ENV} to a TrueType (.ttf/.ttc) font with Chinese glyphs."
    )


def _load(font_path: Path, prefix: str) -> str:
    """Register one font file under a name that depends only on its path (callers hold `_font_lock`)."""
    name = _registered_fonts.get(font_path)
    if name is not None:
        return name
    if not font_path.is_file():
        raise PdfFontError(f"The CJK font file {font_path} does not exist (set {FONT_PATH_ENV}).")
    # The name depends only on the path, so the bytes of a document do not depend on which font a process
    # happened to register first.
    name = prefix + hashlib.sha256(str(font_path).encode()).hexdigest()[:8]
    try:
        font = TTFont(name, str(font_path), subfontIndex=0)
    except TTFError as exc:
        raise PdfFontError(
            f"{font_path} is not a usable TrueType font ({exc}); reportlab needs TrueType outlines, "
            "not CFF/OpenType such as Noto Sans CJK. The packaged Noto Sans SC subsets work."
        ) from exc
    pdfmetrics.registerFont(font)
    _registered_fonts[font_path] = name
    return name


def register_cjk_fonts(path: str | os.PathLike[str] | None = None) -> tuple[str, str]:
    """Register the CJK font family with reportlab; return (regular name, bold name).

    `path` (default: `default_font_path()`) is the regular face. The packaged Noto Sans SC Regular brings its
    Bold; any other file serves as its own bold. The pair is registered as one family, so `<b>` in a paragraph
    picks the bold. Registration happens once per process and path; later calls return the same names at once.
    """
    font_path = (Path(path) if path is not None else default_font_path()).expanduser().resolve()
    with _font_lock:
        regular = _load(font_path, "GreenrightsCJK-")
        bold = _load(FONT_BOLD, "GreenrightsCJKBold-") if font_path == FONT_REGULAR.resolve() else regular
        pdfmetrics.registerFontFamily(regular, normal=regular, bold=bold, italic=regular, boldItalic=bold)
        if bold != regular:
            pdfmetrics.registerFontFamily(bold, normal=regular, bold=bold, italic=regular, boldItalic=bold)
        return regular, bold


def register_cjk_font(path: str | os.PathLike[str] | None = None) -> str:
    """Register the CJK font family (`register_cjk_fonts`) and return the regular face's name."""
    return register_cjk_fonts(path)[0]


# ---------------------------------------------------------------------------------------------------------
# Text


# Control characters other than tab and newline cannot be printed and some break reportlab's parser.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def escape_markup(text: str) -> str:
    """`text` as reportlab paragraph markup that prints exactly these characters.

    `&`, `<` and `>` become entities, so user text cannot open a tag such as `<font>` or `<a href>`;
    line breaks become `<br/>`; unprintable control characters are dropped.
    """
    if not isinstance(text, str):
        raise TypeError(f"document text must be str, got {type(text).__name__}; format numbers first")
    if len(text) > TEXT_CHARS_MAX:
        raise ValueError(f"a text of {len(text)} characters is above the limit of {TEXT_CHARS_MAX}")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    text = _CONTROL_CHARS.sub("", text)
    return _xml_escape(text).replace("\n", "<br/>")


# ---------------------------------------------------------------------------------------------------------
# Document


@dataclass(frozen=True)
class _Styles:
    title: ParagraphStyle
    subtitle: ParagraphStyle
    heading: ParagraphStyle
    body: ParagraphStyle
    kv_value: ParagraphStyle
    label: ParagraphStyle
    cell: ParagraphStyle
    cell_right: ParagraphStyle
    header_cell: ParagraphStyle
    header_right: ParagraphStyle
    note: ParagraphStyle
    plain: ParagraphStyle
    right: ParagraphStyle


@functools.cache
def _styles(font: str, bold: str, letter: bool = False) -> _Styles:
    # wordWrap="CJK" lets a line break between any two Chinese characters, as Chinese typesetting does. Table
    # cells are broken into lines by core.pdflayout instead, which never splits a number, code or name.
    if letter:
        # GB/T 9704-2012: body in 3号 (16 pt) with 22 lines of 28 pt per page, paragraphs indented two
        # characters, the title in 2号 (22 pt) centred; bold stands in for 黑体 and 小标宋 in headings.
        body = ParagraphStyle(
            "gr-letter-body", fontName=font, bulletFontName=font, fontSize=16, leading=28, wordWrap="CJK",
            firstLineIndent=32, spaceAfter=0,
        )  # fmt: skip
        title = ParagraphStyle(
            "gr-letter-title", parent=body, fontName=bold, fontSize=22, leading=34, alignment=TA_CENTER,
            firstLineIndent=0, spaceBefore=8, spaceAfter=14,
        )  # fmt: skip
        heading = ParagraphStyle(
            "gr-letter-heading", parent=body, fontName=bold, fontSize=16, leading=28, firstLineIndent=32
        )
        label_size = 14.0
    else:
        body = ParagraphStyle(
            "gr-body", fontName=font, bulletFontName=font, fontSize=10.5, leading=16, wordWrap="CJK", spaceAfter=4
        )
        title = ParagraphStyle(
            "gr-title", parent=body, fontName=bold, fontSize=16, leading=24, alignment=TA_CENTER, spaceAfter=2
        )
        heading = ParagraphStyle(
            "gr-heading", parent=body, fontName=bold, fontSize=12.5, leading=18, spaceBefore=10, spaceAfter=4
        )
        label_size = 10.5
    cell = ParagraphStyle(
        "gr-cell", parent=body, fontSize=_CELL_SIZE, leading=12, spaceAfter=0, firstLineIndent=0, wordWrap=None
    )
    kv_body = ParagraphStyle(
        "gr-kv", parent=body, fontSize=label_size, leading=label_size * 1.5, firstLineIndent=0, spaceAfter=0
    )
    return _Styles(
        title=title,
        subtitle=ParagraphStyle(
            "gr-subtitle",
            parent=body,
            fontSize=11,
            leading=16,
            alignment=TA_CENTER,
            textColor=_MUTED,
            spaceAfter=6,
        ),
        heading=heading,
        body=body,
        kv_value=kv_body,
        label=ParagraphStyle("gr-label", parent=kv_body, textColor=_MUTED),
        cell=cell,
        cell_right=ParagraphStyle("gr-cell-right", parent=cell, alignment=TA_RIGHT),
        header_cell=ParagraphStyle("gr-header-cell", parent=cell, fontName=bold),
        header_right=ParagraphStyle("gr-header-right", parent=cell, fontName=bold, alignment=TA_RIGHT),
        note=ParagraphStyle(
            "gr-note", parent=body, fontSize=8.5, leading=12, textColor=_MUTED, firstLineIndent=0, spaceAfter=0
        ),
        plain=ParagraphStyle("gr-plain", parent=kv_body),
        right=ParagraphStyle("gr-right", parent=body, firstLineIndent=0, alignment=TA_RIGHT, rightIndent=32),
    )


@dataclass(frozen=True)
class _Heading:
    text: str


@dataclass(frozen=True)
class _Paragraph:
    text: str


@dataclass(frozen=True)
class _KeyValues:
    rows: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    weights: tuple[float, ...]
    align_right: frozenset[int]


@dataclass(frozen=True)
class _PageBreak:
    pass


_Block = _Heading | _Paragraph | _KeyValues | _Table | _PageBreak


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, got {type(value).__name__}; format numbers and dates first")
    return value


def _column_widths(count: int, weights: Sequence[float] | None) -> tuple[float, ...]:
    if weights is None:
        return tuple(_FRAME_WIDTH / count for _ in range(count))
    if len(weights) != count:
        raise ValueError(f"col_widths has {len(weights)} entries for {count} columns")
    if any(not math.isfinite(w) or w <= 0 for w in weights):
        raise ValueError("col_widths must be positive finite weights")
    total = sum(weights)
    return tuple(_FRAME_WIDTH * w / total for w in weights)


class _PagedCanvas(Canvas):  # type: ignore[misc]  # reportlab ships no type hints
    """A canvas that holds every page until the end, so each footer can say how many pages there are."""

    def __init__(
        self,
        *args: Any,
        decorate: Callable[[Canvas, int, int], None],
        pdf_date: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._decorate = decorate
        self._held_pages: list[dict[str, Any]] = []
        # Invariant mode would stamp 2000-01-01; the caller's generated-at time is both true and repeatable.
        self.setDateFormatter(lambda *_: pdf_date)

    def showPage(self) -> None:
        self._held_pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._held_pages)
        for state in self._held_pages:
            self.__dict__.update(state)
            self._decorate(self, self.getPageNumber(), total)
            super().showPage()
        super().save()


@dataclass(frozen=True)
class Letter:
    """What makes a document an official letter laid out after GB/T 9704-2012 (党政机关公文格式).

    `authority` heads the first page in red (发文机关标志) above the `number` (发文字号, e.g. 赣财建〔2026〕12号)
    and a red rule; `addressee` is the 主送机关 line before the body ("九江示范水泥有限公司："); the 落款 after
    the body gives `authority` and `signed_on` written in Chinese (二〇二六年十二月七日), right-aligned where the
    seal is pressed. Pages are numbered "— N —" at the foot.
    """

    authority: str
    number: str
    addressee: str
    signed_on: dt.date


_CN_DIGITS = "〇一二三四五六七八九"


def _cn_number(n: int) -> str:
    """1..31 as written in a Chinese date: 7 → 七, 12 → 十二, 20 → 二十, 31 → 三十一."""
    tens, ones = divmod(n, 10)
    head = ("" if tens == 1 else _CN_DIGITS[tens]) + "十" if tens else ""
    return head + (_CN_DIGITS[ones] if ones or not tens else "")


def chinese_date(day: dt.date) -> str:
    """A date as a letter's 成文日期 writes it (GB/T 9704-2012 7.3.5.1): 2026-12-07 → 二〇二六年十二月七日."""
    year = "".join(_CN_DIGITS[int(d)] for d in f"{day.year:04d}")
    return f"{year}年{_cn_number(day.month)}月{_cn_number(day.day)}日"


class Document:
    """A Chinese document built block by block and rendered to PDF bytes.

    `title` and `subtitle` head the first page (the title also heads later pages); `meta` rows (such as
    文号, 当事人) follow as label-value lines. `generated_at` is an aware instant chosen by the caller; it is
    printed in Beijing time on every page and stored as the PDF's creation date. The builder methods return
    the document so calls can be chained; `render()` can be called any number of times.
    """

    def __init__(
        self,
        title: str,
        subtitle: str | None = None,
        meta: Mapping[str, str] | None = None,
        *,
        generated_at: dt.datetime,
        font_path: str | os.PathLike[str] | None = None,
        author: str = "greenrights",
        letter: Letter | None = None,
    ) -> None:
        self.title = _text(title, "title")
        self.subtitle = _text(subtitle, "subtitle") if subtitle is not None else None
        self.meta = tuple((_text(k, "meta key"), _text(v, "meta value")) for k, v in (meta or {}).items())
        self.generated_at = require_aware(generated_at)
        self.font_path = font_path
        self.author = _text(author, "author")
        if letter is not None:
            for what in ("authority", "number", "addressee"):
                _text(getattr(letter, what), f"letter {what}")
        self.letter = letter
        self._page = LETTER_PAGE if letter is not None else REPORT_PAGE
        self._blocks: list[_Block] = []
        self._verification: tuple[str, str] | None = None
        self._verification_url: str | None = None

    def heading(self, text: str) -> Self:
        self._blocks.append(_Heading(_text(text, "heading")))
        return self

    def paragraph(self, text: str) -> Self:
        """A paragraph of plain text; line breaks in `text` are kept."""
        self._blocks.append(_Paragraph(_text(text, "paragraph")))
        return self

    def key_values(self, rows: Sequence[tuple[str, str]]) -> Self:
        """Label-value lines, such as 企业名称 / 统一社会信用代码, without grid lines."""
        self._blocks.append(_KeyValues(tuple((_text(k, "label"), _text(v, "value")) for k, v in rows)))
        return self

    def table(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[str]],
        col_widths: Sequence[float] | None = None,
        *,
        align_right: Collection[int] = (),
    ) -> Self:
        """A ruled table; a long one continues on the next pages under a repeated header row.

        Column widths follow the content (`core.pdflayout`): every column is at least as wide as its widest
        number, code or word, then as its names and lines as far as the page allows; `col_widths` (relative
        weights such as `[3, 1, 1]`, default equal) share out only what is left after that. Cells wrap only
        between words and Chinese characters, never inside a number. Columns listed in `align_right`
        (0-based, e.g. amounts) are right-aligned.
        Every cell is text: format numbers first (`core.figures.yuan` for money, `core.figures.quantity` for
        quantities).
        """
        head = tuple(_text(h, "header cell") for h in header)
        if not 0 < len(head) <= TABLE_COLUMNS_MAX:
            raise ValueError(f"a table has 1 to {TABLE_COLUMNS_MAX} columns, got {len(head)}")
        if len(rows) > TABLE_ROWS_MAX:
            raise ValueError(f"a table has at most {TABLE_ROWS_MAX} rows, got {len(rows)}")
        body: list[tuple[str, ...]] = []
        for number, row in enumerate(rows):
            if len(row) != len(head):
                raise ValueError(f"row {number} has {len(row)} cells for {len(head)} columns")
            body.append(tuple(_text(cell, f"cell ({number}, {i})") for i, cell in enumerate(row)))
        right = frozenset(align_right)
        if any(not 0 <= i < len(head) for i in right):
            raise ValueError(f"align_right columns must be in 0..{len(head) - 1}")
        self._blocks.append(_Table(head, tuple(body), _column_widths(len(head), col_widths), right))
        return self

    def page_break(self) -> Self:
        self._blocks.append(_PageBreak())
        return self

    def verification_footer(self, code: str, url_hint: str, url: str | None = None) -> Self:
        """Print `code` in every page footer and, at the end, a block saying how and where to check it; with `url`
        (the public verification page of this code) the block carries a QR code of it too."""
        if self._verification is not None:
            raise ValueError("a document has one verification footer")
        self._verification = (_text(code, "code"), _text(url_hint, "url_hint"))
        self._verification_url = None if url is None else _text(url, "url")
        return self

    # -- rendering ------------------------------------------------------------------------------------------

    def _generated_at_text(self) -> str:
        local = self.generated_at.astimezone(SHANGHAI)
        return f"生成时间：{local:%Y-%m-%d %H:%M}（北京时间）"

    def _decorate_letter_page(self, font: str, canvas: Canvas, page: int) -> None:
        """GB/T 9704-2012 7.5: the page number in 4号 (14 pt) between one-em dashes, 7 mm below the 版心."""
        geo = self._page
        canvas.saveState()
        canvas.setFont(font, 14)
        canvas.drawCentredString(geo.left + geo.width / 2, geo.bottom - 7 * mm - 14, f"— {page} —")
        canvas.setFillColor(_MUTED)
        canvas.setFont(font, 8)
        line = self._generated_at_text()
        if self._verification is not None:
            line = f"{line}    验证码：{self._verification[0]}"
        canvas.drawString(geo.left, 12 * mm, self._fit(font, 8, line, geo.width))
        canvas.restoreState()

    def _decorate_page(self, font: str, canvas: Canvas, page: int, total: int) -> None:
        if self.letter is not None:
            self._decorate_letter_page(font, canvas, page)
            return
        canvas.saveState()
        canvas.setFillColor(_MUTED)
        canvas.setStrokeColor(_GRID_GREY)
        canvas.setLineWidth(0.4)
        if page > 1:
            # Later pages repeat the title so that a loose page still says what it belongs to.
            canvas.setFont(font, 8.5)
            x0, x1 = REPORT_PAGE.left, _PAGE_WIDTH - REPORT_PAGE.right
            canvas.drawString(x0, _PAGE_HEIGHT - 14 * mm, self._fit(font, 8.5, self.title, _FRAME_WIDTH))
            canvas.line(x0, _PAGE_HEIGHT - 15.5 * mm, x1, _PAGE_HEIGHT - 15.5 * mm)
        footer_y = 16 * mm
        canvas.line(REPORT_PAGE.left, footer_y + 9, _PAGE_WIDTH - REPORT_PAGE.left, footer_y + 9)
        canvas.setFont(font, 8.5)
        canvas.drawRightString(_PAGE_WIDTH - REPORT_PAGE.left, footer_y, f"第 {page} 页 / 共 {total} 页")
        canvas.drawString(REPORT_PAGE.left, footer_y, self._generated_at_text())
        if self._verification is not None:
            code = self._fit(font, 8.5, f"验证码：{self._verification[0]}", _FRAME_WIDTH)
            canvas.drawString(REPORT_PAGE.left, footer_y - 11, code)
        canvas.restoreState()

    @staticmethod
    def _fit(font: str, size: float, text: str, width: float) -> str:
        """`text` cut with an ellipsis to fit `width` on one line (canvas strings are plain, not markup)."""
        text = _CONTROL_CHARS.sub("", text.replace("\n", " "))
        if pdfmetrics.stringWidth(text, font, size) <= width:
            return text
        while text and pdfmetrics.stringWidth(text + "…", font, size) > width:
            text = text[:-1]
        return text + "…"

    def _key_value_table(self, font: str, styles: _Styles, rows: Sequence[tuple[str, str]]) -> Table:
        data = [
            [Paragraph(escape_markup(label), styles.label), Paragraph(escape_markup(value), styles.kv_value)]
            for label, value in rows
        ]
        # The labels' column is as wide as the longest label (within 40 % of the page), the values get the rest.
        width = self._page.width
        longest = max((pdfmetrics.stringWidth(label, font, styles.label.fontSize) for label, _ in rows), default=0)
        label_width = min(width * 0.4, max(width * 0.2, longest + 10))
        table = Table(data, colWidths=[label_width, width - label_width], hAlign="LEFT")
        table.setStyle(
            TableStyle(
                [
                    # Cells hold paragraphs, yet the table sets its own cell font (Helvetica unless told).
                    ("FONT", (0, 0), (-1, -1), font, 9),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LEFTPADDING", (0, 0), (-1, -1), 0),
                    ("TOPPADDING", (0, 0), (-1, -1), 1),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
                ]
            )
        )
        return table

    def table_layout(self, block_index: int = -1) -> tuple[pdflayout.Fitted, list[list[list[str]]]]:
        """How a table (the last one by default) is laid out: its fitted column widths and font size, and every
        cell's lines (header row first) as they are printed. Tests check that no number is split."""
        tables = [b for b in self._blocks if isinstance(b, _Table)]
        regular, bold = register_cjk_fonts(self.font_path)
        return self._layout(regular, bold, tables[block_index])

    def _layout(self, font: str, bold: str, block: _Table) -> tuple[pdflayout.Fitted, list[list[list[str]]]]:
        def measure(text: str, size: float) -> float:
            # Headers print in the bold: measure every cell at the wider of the two faces.
            return float(max(pdfmetrics.stringWidth(text, font, size), pdfmetrics.stringWidth(text, bold, size)))

        rows = [block.header, *block.rows]
        columns = [[row[i] for row in rows] for i in range(len(block.header))]
        fitted = pdflayout.fit_columns(
            columns, self._page.width, measure, font_size=_CELL_SIZE, padding=2 * _CELL_PAD + 1,
            weights=block.weights,
        )  # fmt: skip
        # Half a point of slack, so that reportlab's own line fitting never rewraps what was broken here.
        lines = [
            [
                pdflayout.break_lines(cell, fitted.widths[i] - 2 * _CELL_PAD - 0.5, measure, fitted.font_size)
                for i, cell in enumerate(row)
            ]
            for row in rows
        ]
        return fitted, lines

    def _table(self, font: str, bold: str, styles: _Styles, block: _Table) -> Table:
        fitted, lines = self._layout(font, bold, block)
        size = fitted.font_size
        cell_styles = {
            (header, right): ParagraphStyle(
                f"gr-cell-{size}-{int(header)}-{int(right)}",
                parent=(styles.header_right if right else styles.header_cell)
                if header
                else (styles.cell_right if right else styles.cell),
                fontSize=size,
                leading=size * 4 / 3,
            )
            for header in (True, False)
            for right in (True, False)
        }
        data: list[list[Paragraph]] = [
            [
                Paragraph(
                    "<br/>".join(escape_markup(line) for line in cell_lines),
                    cell_styles[(r == 0, i in block.align_right)],
                )
                for i, cell_lines in enumerate(row)
            ]
            for r, row in enumerate(lines)
        ]
        table = Table(data, colWidths=list(fitted.widths), repeatRows=1, hAlign="LEFT")
        table.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.4, _GRID_GREY),
                    ("BACKGROUND", (0, 0), (-1, 0), _HEADER_FILL),
                    # Cells hold paragraphs, yet the table sets its own cell font (Helvetica unless told).
                    ("FONT", (0, 0), (-1, -1), font, size),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LEFTPADDING", (0, 0), (-1, -1), _CELL_PAD),
                    ("RIGHTPADDING", (0, 0), (-1, -1), _CELL_PAD),
                    ("TOPPADDING", (0, 0), (-1, -1), 2),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
                ]
            )
        )
        return table

    def _letterhead(self, letter: Letter, bold: str, styles: _Styles) -> list[Flowable]:
        """发文机关标志 in red, the 发文字号 centred under it, and the red rule (GB/T 9704-2012 7.2)."""
        mark = ParagraphStyle("gr-letter-mark", parent=styles.title, fontName=bold, fontSize=26, leading=34,
                              textColor=_LETTER_RED, spaceBefore=0, spaceAfter=10)  # fmt: skip
        number = ParagraphStyle("gr-letter-number", parent=styles.plain, fontSize=16, leading=28,
                                alignment=TA_CENTER)  # fmt: skip
        return [
            Paragraph(escape_markup(letter.authority), mark),
            Paragraph(escape_markup(letter.number), number),
            HRFlowable(width="100%", thickness=1.2, color=_LETTER_RED, spaceBefore=4, spaceAfter=6),
        ]

    def _signature(self, letter: Letter, styles: _Styles) -> Flowable:
        """落款: the issuing authority over the date in Chinese, right-aligned (four characters in from the
        right, where the seal is pressed over them), two lines below the body (GB/T 9704-2012 7.3.5.1)."""
        return KeepTogether(
            [
                Spacer(1, 2 * styles.body.leading),
                Paragraph(escape_markup(letter.authority), styles.right),
                Paragraph(escape_markup(chinese_date(letter.signed_on)), styles.right),
            ]
        )

    def _story(self, font: str, bold: str, styles: _Styles) -> list[Flowable]:
        story: list[Flowable] = []
        if self.letter is not None:
            story += self._letterhead(self.letter, bold, styles)
        story.append(Paragraph(escape_markup(self.title), styles.title))
        if self.letter is not None:
            # 主送机关: flush left before the body, ending in a full-width colon.
            story.append(Paragraph(escape_markup(self.letter.addressee), styles.plain))
        if self.subtitle is not None:
            story.append(Paragraph(escape_markup(self.subtitle), styles.subtitle))
        if self.meta:
            story.append(self._key_value_table(font, styles, self.meta))
        story.append(Spacer(1, 6))
        for block in self._blocks:
            if isinstance(block, _Heading):
                # A heading is never left alone at the foot of a page.
                story.append(CondPageBreak(48))
                story.append(Paragraph(escape_markup(block.text), styles.heading))
            elif isinstance(block, _Paragraph):
                story.append(Paragraph(escape_markup(block.text), styles.body))
            elif isinstance(block, _KeyValues):
                story.append(self._key_value_table(font, styles, block.rows))
                story.append(Spacer(1, 4))
            elif isinstance(block, _Table):
                story.append(self._table(font, bold, styles, block))
                story.append(Spacer(1, 6))
            else:
                story.append(PageBreak())
        if self.letter is not None:
            story.append(self._signature(self.letter, styles))
        if self._verification is not None:
            code, url_hint = self._verification
            # The verification block is a note beside the letter, in the report's size even on a letter.
            note_body = _styles(font, bold).body
            text: list[Flowable] = [
                Paragraph(escape_markup(f"验证码：{code}"), note_body),
                Paragraph(escape_markup(f"核验方式：{url_hint}"), note_body),
            ]
            if self._verification_url is not None:
                text.append(Paragraph(escape_markup(f"核验网址：{self._verification_url}"), note_body))
            text.append(
                Paragraph(
                    escape_markup(
                        "说明：验证码由本文件所依据记录的 SHA-256 哈希值生成，"
                        "用于核对文件内容与登记系统中的记录是否一致；"
                        "它不是电子签名，不能证明签发人的身份。"
                    ),
                    styles.note,
                )
            )
            closing: Flowable
            if self._verification_url is None:
                closing = KeepTogether([Spacer(1, 10), *text])
            else:
                side = 30 * mm
                qr = Table(
                    [[text, qr_drawing(self._verification_url, side)]],
                    colWidths=[self._page.width - side - 4 * mm, side + 4 * mm],
                    hAlign="LEFT",
                )
                qr.setStyle(
                    TableStyle(
                        [
                            ("VALIGN", (0, 0), (-1, -1), "TOP"),
                            ("LEFTPADDING", (0, 0), (-1, -1), 0),
                            ("RIGHTPADDING", (0, 0), (-1, -1), 0),
                        ]
                    )
                )
                closing = KeepTogether([Spacer(1, 10), qr])
            story.append(closing)
        return story

    def render(self) -> bytes:
        """The document as PDF bytes (A4); equal documents give equal bytes."""
        font, bold = register_cjk_fonts(self.font_path)
        styles = _styles(font, bold, self.letter is not None)
        buffer = BytesIO()
        geo = self._page
        template = SimpleDocTemplate(
            buffer,
            pagesize=A4,
            leftMargin=geo.left,
            rightMargin=geo.right,
            topMargin=geo.top,
            bottomMargin=geo.bottom,
            title=self.title,
            subject=self.subtitle or "",
            author=self.author,
            creator="greenrights",
            lang="zh-CN",
            # Without this the canvas starts in Helvetica and the PDF names a font no page uses.
            initialFontName=font,
            invariant=1,
        )
        utc = self.generated_at.astimezone(dt.UTC)
        canvas_maker = functools.partial(
            _PagedCanvas,
            decorate=functools.partial(self._decorate_page, font),
            pdf_date=f"D:{utc:%Y%m%d%H%M%S}+00'00'",
        )
        # reportlab keeps per-document font subsets and some settings in shared objects; one build at a time
        # per process keeps renders from threads (e.g. Litestar's sync_to_thread) from mixing them.
        with _render_lock:
            template.build(self._story(font, bold, styles), canvasmaker=canvas_maker)
        return buffer.getvalue()
