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

The font must have TrueType outlines: reportlab rejects CFF/OpenType fonts such as Noto CJK. WenQuanYi
Micro Hei is found in this order: the `GREENRIGHTS_PDF_FONT_PATH` setting (the same variable as
`Settings.pdf_font_path`), the copy inside the PyPI package `paperang-p2-fonts-cjk`, Debian's
`fonts-wqy-microhei`.

`verification_code` derives the short code printed on a document from a hash of the record it states, so
`/verify/{code}` can show a reader the record the document was made from. It is a hash, not a signature: it
proves that a printed code matches a stored record, not who issued the document.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import importlib.util
import json
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

from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
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

from core.clock import SHANGHAI, require_aware
from core.settings import get_settings

FONT_PATH_ENV = "GREENRIGHTS_PDF_FONT_PATH"
FONT_PACKAGE = "paperang_p2_fonts_cjk"
FONT_FILE_NAME = "wqy-microhei.ttc"
DEBIAN_FONT_PATH = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")

# Limits keep one request from asking for an unbounded document; real letters and statements are far smaller.
TABLE_COLUMNS_MAX = 20
TABLE_ROWS_MAX = 100_000
TEXT_CHARS_MAX = 100_000

_PAGE_WIDTH, _PAGE_HEIGHT = A4
_MARGIN_X = 20 * mm
_MARGIN_TOP = 22 * mm
_MARGIN_BOTTOM = 24 * mm
_FRAME_WIDTH = _PAGE_WIDTH - 2 * _MARGIN_X
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


def _packaged_font_path() -> Path | None:
    """The font file inside the installed `paperang-p2-fonts-cjk` package, wherever the environment lives."""
    spec = importlib.util.find_spec(FONT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location)
        preferred = folder / "fonts" / FONT_FILE_NAME
        if preferred.is_file():
            return preferred
        # A later release may move or rename the file; any TrueType collection or font inside will do.
        candidates = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".ttc", ".ttf"} and p.is_file())
        if candidates:
            return candidates[0]
    return None


def default_font_path() -> Path:
    """Where the CJK font is taken from when a document is not given one (see the module docstring)."""
    configured = os.environ.get(FONT_PATH_ENV, "").strip()
    if configured:
        # An operator's explicit choice is never silently replaced by a fallback.
        return Path(configured)
    packaged = _packaged_font_path()
    if packaged is not None:
        return packaged
    if DEBIAN_FONT_PATH.is_file():
        return DEBIAN_FONT_PATH
    raise PdfFontError(
        "No CJK font found. Install the Python package paperang-p2-fonts-cjk or Debian's fonts-wqy-microhei, "
        f"or set {FONT_PATH_ENV} to a TrueType (.ttf/.ttc) font file with Chinese glyphs."
    )


def register_cjk_font(path: str | os.PathLike[str] | None = None) -> str:
    """Register the CJK font at `path` (default: `default_font_path()`) with reportlab; return its font name.

    Registration happens once per process and path; later calls return the same name at once.
    """
    font_path = Path(path) if path is not None else default_font_path()
    font_path = font_path.expanduser().resolve()
    with _font_lock:
        name = _registered_fonts.get(font_path)
        if name is not None:
            return name
        if not font_path.is_file():
            raise PdfFontError(f"The CJK font file {font_path} does not exist (set {FONT_PATH_ENV}).")
        # The name depends only on the path, so the bytes of a document do not depend on which font a
        # process happened to register first.
        name = "GreenrightsCJK-" + hashlib.sha256(str(font_path).encode()).hexdigest()[:8]
        try:
            font = TTFont(name, str(font_path), subfontIndex=0)
        except TTFError as exc:
            raise PdfFontError(
                f"{font_path} is not a usable TrueType font ({exc}); reportlab needs TrueType outlines, "
                "not CFF/OpenType such as Noto CJK. WenQuanYi Micro Hei works."
            ) from exc
        pdfmetrics.registerFont(font)
        _registered_fonts[font_path] = name
        return name


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
# Verification code


_CODE_BYTES = 10  # 80 bits: 16 base32 characters with no padding.
_CODE_CHARS = _CODE_BYTES * 8 // 5
_CODE_GROUP = 4
_CODE_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
# Base32 leaves out 0, 1 and 8 because they look like O, I and B; a reader who types them meant those.
_CODE_LOOKALIKES = str.maketrans({"0": "O", "1": "I", "8": "B"})


def _check_canonical(value: object, where: str) -> None:
    """Refuse what has no single JSON spelling, so the same record always hashes the same way."""
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        # Amounts are integers of a base unit; a float here is a bug, and its text differs between languages.
        raise TypeError(f"{where}: floats have no canonical form here; use an integer of a base unit or a string")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                # json.dumps would turn 1 into "1" and let two different records collide.
                raise TypeError(f"{where}: keys must be str, got {type(key).__name__}")
            _check_canonical(item, f"{where}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_canonical(item, f"{where}[{index}]")
        return
    raise TypeError(
        f"{where}: {type(value).__name__} has no canonical JSON form; convert it first "
        "(dates and instants to ISO 8601 strings, Decimal to a string)"
    )


def canonical_json(record: Mapping[str, object]) -> bytes:
    """The record as canonical JSON: sorted keys, no whitespace, UTF-8 text rather than \\u escapes."""
    _check_canonical(record, "record")
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def qr_drawing(url: str, side: float) -> Drawing:
    """A square QR code of `url` (error correction M), `side` points wide, for a reader's phone camera."""
    widget = QrCodeWidget(url, barLevel="M")
    x0, y0, x1, y1 = widget.getBounds()
    drawing = Drawing(side, side, transform=[side / (x1 - x0), 0, 0, side / (y1 - y0), -x0, -y0])
    drawing.add(widget)
    return drawing


def verify_url(code: str) -> str:
    """The public page where anyone checks a document's code (setting `public_base_url`)."""
    return f"{get_settings().public_base_url.rstrip('/')}/verify/{code}"


def verification_code(record: Mapping[str, object]) -> str:
    """A 16-character code such as "K7QX-2M4B-ZP3D-6R6T": base32 of the first 80 bits of the record's SHA-256.

    The record holds only JSON values (str, int, bool, None, lists, str-keyed mappings). The code is a hash,
    not a signature: anyone with the record can compute it, so it shows that a document matches a stored
    record, and the authority of the record comes from the registry that answers `/verify/{code}`.
    """
    digest = hashlib.sha256(canonical_json(record)).digest()
    text = base64.b32encode(digest[:_CODE_BYTES]).decode("ascii")
    return "-".join(text[i : i + _CODE_GROUP] for i in range(0, len(text), _CODE_GROUP))


def normalize_verification_code(text: str) -> str | None:
    """A code as a reader typed it ("k7qx 2m4b-zp3d9r6t") in printed form, or None if it cannot be one."""
    compact = re.sub(r"[\s\-]", "", text).upper().translate(_CODE_LOOKALIKES)
    if len(compact) != _CODE_CHARS or not set(compact) <= _CODE_ALPHABET:
        return None
    return "-".join(compact[i : i + _CODE_GROUP] for i in range(0, len(compact), _CODE_GROUP))


def verification_code_matches(record: Mapping[str, object], code: str) -> bool:
    """Whether `code` (as typed by a reader) is the verification code of `record`."""
    normalized = normalize_verification_code(code)
    return normalized is not None and hmac.compare_digest(normalized, verification_code(record))


# ---------------------------------------------------------------------------------------------------------
# Document


@dataclass(frozen=True)
class _Styles:
    title: ParagraphStyle
    subtitle: ParagraphStyle
    heading: ParagraphStyle
    body: ParagraphStyle
    label: ParagraphStyle
    cell: ParagraphStyle
    cell_right: ParagraphStyle
    header_cell: ParagraphStyle
    header_right: ParagraphStyle
    note: ParagraphStyle


@functools.cache
def _styles(font: str) -> _Styles:
    # wordWrap="CJK" lets a line break between any two Chinese characters, as Chinese typesetting does,
    # and also breaks long codes and identifiers that have no spaces.
    body = ParagraphStyle(
        "gr-body", fontName=font, bulletFontName=font, fontSize=10.5, leading=16, wordWrap="CJK", spaceAfter=4
    )
    cell = ParagraphStyle("gr-cell", parent=body, fontSize=9, leading=12, spaceAfter=0)
    return _Styles(
        title=ParagraphStyle("gr-title", parent=body, fontSize=16, leading=24, alignment=TA_CENTER, spaceAfter=2),
        subtitle=ParagraphStyle(
            "gr-subtitle",
            parent=body,
            fontSize=11,
            leading=16,
            alignment=TA_CENTER,
            textColor=_MUTED,
            spaceAfter=6,
        ),
        heading=ParagraphStyle("gr-heading", parent=body, fontSize=12.5, leading=18, spaceBefore=10, spaceAfter=4),
        body=body,
        label=ParagraphStyle("gr-label", parent=body, textColor=_MUTED, spaceAfter=0),
        cell=cell,
        cell_right=ParagraphStyle("gr-cell-right", parent=cell, alignment=TA_RIGHT),
        header_cell=ParagraphStyle("gr-header-cell", parent=cell),
        header_right=ParagraphStyle("gr-header-right", parent=cell, alignment=TA_RIGHT),
        note=ParagraphStyle("gr-note", parent=body, fontSize=8.5, leading=12, textColor=_MUTED),
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
    widths_pt: tuple[float, ...]
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
    ) -> None:
        self.title = _text(title, "title")
        self.subtitle = _text(subtitle, "subtitle") if subtitle is not None else None
        self.meta = tuple((_text(k, "meta key"), _text(v, "meta value")) for k, v in (meta or {}).items())
        self.generated_at = require_aware(generated_at)
        self.font_path = font_path
        self.author = _text(author, "author")
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

        `col_widths` are relative weights (e.g. `[3, 1, 1]`) shared out over the page width; by default the
        columns are equal. Columns listed in `align_right` (0-based, e.g. amounts) are right-aligned.
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

    def _decorate_page(self, font: str, canvas: Canvas, page: int, total: int) -> None:
        canvas.saveState()
        canvas.setFillColor(_MUTED)
        canvas.setStrokeColor(_GRID_GREY)
        canvas.setLineWidth(0.4)
        if page > 1:
            # Later pages repeat the title so that a loose page still says what it belongs to.
            canvas.setFont(font, 8.5)
            canvas.drawString(_MARGIN_X, _PAGE_HEIGHT - 14 * mm, self._fit(font, 8.5, self.title, _FRAME_WIDTH))
            canvas.line(_MARGIN_X, _PAGE_HEIGHT - 15.5 * mm, _PAGE_WIDTH - _MARGIN_X, _PAGE_HEIGHT - 15.5 * mm)
        footer_y = 14 * mm
        canvas.line(_MARGIN_X, footer_y + 9, _PAGE_WIDTH - _MARGIN_X, footer_y + 9)
        canvas.setFont(font, 8.5)
        canvas.drawRightString(_PAGE_WIDTH - _MARGIN_X, footer_y, f"第 {page} 页 / 共 {total} 页")
        canvas.drawString(_MARGIN_X, footer_y, self._generated_at_text())
        if self._verification is not None:
            code = self._fit(font, 8.5, f"验证码：{self._verification[0]}", _FRAME_WIDTH)
            canvas.drawString(_MARGIN_X, footer_y - 11, code)
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
            [Paragraph(escape_markup(label), styles.label), Paragraph(escape_markup(value), styles.body)]
            for label, value in rows
        ]
        table = Table(data, colWidths=[_FRAME_WIDTH * 0.28, _FRAME_WIDTH * 0.72], hAlign="LEFT")
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

    def _table(self, font: str, styles: _Styles, block: _Table) -> Table:
        data: list[list[Paragraph]] = [
            [
                Paragraph(escape_markup(h), styles.header_right if i in block.align_right else styles.header_cell)
                for i, h in enumerate(block.header)
            ]
        ]
        for row in block.rows:
            data.append(
                [
                    Paragraph(escape_markup(cell), styles.cell_right if i in block.align_right else styles.cell)
                    for i, cell in enumerate(row)
                ]
            )
        table = Table(data, colWidths=list(block.widths_pt), repeatRows=1, hAlign="LEFT")
        table.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.4, _GRID_GREY),
                    ("BACKGROUND", (0, 0), (-1, 0), _HEADER_FILL),
                    # Cells hold paragraphs, yet the table sets its own cell font (Helvetica unless told).
                    ("FONT", (0, 0), (-1, -1), font, 9),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("TOPPADDING", (0, 0), (-1, -1), 2),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
                ]
            )
        )
        return table

    def _story(self, font: str, styles: _Styles) -> list[Flowable]:
        story: list[Flowable] = [Paragraph(escape_markup(self.title), styles.title)]
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
                story.append(self._table(font, styles, block))
                story.append(Spacer(1, 6))
            else:
                story.append(PageBreak())
        if self._verification is not None:
            code, url_hint = self._verification
            text: list[Flowable] = [
                Paragraph(escape_markup(f"验证码：{code}"), styles.body),
                Paragraph(escape_markup(f"核验方式：{url_hint}"), styles.body),
            ]
            if self._verification_url is not None:
                text.append(Paragraph(escape_markup(f"核验网址：{self._verification_url}"), styles.body))
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
                    colWidths=[_FRAME_WIDTH - side - 4 * mm, side + 4 * mm],
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
        font = register_cjk_font(self.font_path)
        styles = _styles(font)
        buffer = BytesIO()
        template = SimpleDocTemplate(
            buffer,
            pagesize=A4,
            leftMargin=_MARGIN_X,
            rightMargin=_MARGIN_X,
            topMargin=_MARGIN_TOP,
            bottomMargin=_MARGIN_BOTTOM,
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
            template.build(self._story(font, styles), canvasmaker=canvas_maker)
        return buffer.getvalue()
