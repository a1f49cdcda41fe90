"""The PDF toolkit: Chinese text that extracts, long tables, literal user text, repeatable bytes, codes."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from pypdf import PdfReader

from core import pdf
from core.capitals import yuan_in_capitals
from core.figures import yuan
from core.pdf import (
    Document,
    PdfFontError,
    canonical_json,
    default_font_path,
    escape_markup,
    normalize_verification_code,
    register_cjk_font,
    verification_code,
    verification_code_matches,
)

GENERATED_AT = dt.datetime(2025, 6, 30, 2, 30, tzinfo=dt.UTC)  # 10:30 in Beijing.
REPO_ROOT = Path(__file__).resolve().parents[2]


def _pages_text(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


def _statement(generated_at: dt.datetime = GENERATED_AT) -> Document:
    doc = Document(
        "碳排放配额 账户对账单",
        "2024 年度 全国碳排放权交易市场",
        {"账户号": "GR-CEA-000123", "企业名称": "江西赣锋环保科技有限公司"},
        generated_at=generated_at,
    )
    doc.heading("一、决定事项")
    doc.paragraph("核定奖励金额：人民币肆亿贰仟叁佰玖拾玖万柒仟元整")
    doc.key_values([("小写金额", "¥423,997,000.00"), ("依据", "赣府发〔2022〕17号")])
    doc.table(["序号", "日期", "数量（吨）"], [["1", "2025-01-02", "1,000"], ["2", "2025-01-03", "250"]])
    return doc


# --- Chinese text -----------------------------------------------------------------------------------------


def test_chinese_text_is_embedded_and_extracts_back() -> None:
    text = "\n".join(_pages_text(_statement().render()))
    for expected in [
        "碳排放配额 账户对账单",
        "2024 年度 全国碳排放权交易市场",
        "江西赣锋环保科技有限公司",
        "一、决定事项",
        "人民币肆亿贰仟叁佰玖拾玖万柒仟元整",
        "赣府发〔2022〕17号",
        "数量（吨）",
    ]:
        assert expected in text


def test_amounts_from_the_capitals_module_print_in_both_forms() -> None:
    amount_fen = 100000506
    doc = Document("奖励决定书", generated_at=GENERATED_AT)
    doc.key_values([("金额（小写）", yuan(amount_fen)), ("金额（大写）", yuan_in_capitals(amount_fen))])
    text = "\n".join(_pages_text(doc.render()))
    assert "1,000,005.06" in text
    assert "人民币壹佰万零伍元零陆分" in text


def test_only_the_cjk_font_is_used_and_it_is_embedded() -> None:
    data = _statement().render()
    fonts = set(re.findall(rb"/BaseFont /([A-Za-z0-9+\-]+)", data))
    # The packaged Noto Sans SC, regular for the text and bold for the title and table headers; no Helvetica.
    assert fonts == {b"AAAAAA+NotoSansSC-Regular", b"AAAAAA+NotoSansSC-Bold"}, fonts
    assert b"/FontFile2" in data  # TrueType outlines embedded, so any reader shows the glyphs.
    assert PdfReader(io.BytesIO(data)).pages[0].mediabox.width == pytest.approx(595.2756, abs=0.01)  # A4


# --- Pages ------------------------------------------------------------------------------------------------


def test_a_300_row_table_spans_pages_and_repeats_its_header_on_each() -> None:
    doc = Document("配额变动明细", generated_at=GENERATED_AT)
    rows = [[f"R{i:04d}", "2025-03-01", yuan(i * 12345)] for i in range(1, 301)]
    doc.table(["流水号", "记账日期", "金额（元）"], rows, col_widths=[2, 2, 3], align_right=[2])
    pages = _pages_text(doc.render())
    assert len(pages) >= 4
    for page in pages:
        assert "流水号" in page and "记账日期" in page and "金额（元）" in page
    found = [int(m) for page in pages for m in re.findall(r"R(\d{4})", page)]
    assert found == list(range(1, 301))  # every row once, in order, none lost at a page split


def test_every_page_says_n_of_m_and_the_generated_at_time_in_beijing() -> None:
    doc = Document("配额变动明细", generated_at=GENERATED_AT)
    doc.table(["序号"], [[str(i)] for i in range(200)])
    pages = _pages_text(doc.render())
    total = len(pages)
    assert total >= 2
    for number, page in enumerate(pages, start=1):
        assert f"第 {number} 页 / 共 {total} 页" in page
        assert "生成时间：2025-06-30 10:30（北京时间）" in page
    # Later pages repeat the title at the top so a loose page still says what it belongs to.
    assert pages[1].count("配额变动明细") == 1


def test_the_pdf_dates_are_the_callers_generated_at_not_the_clock() -> None:
    info = PdfReader(io.BytesIO(_statement().render())).metadata
    assert info is not None
    assert str(info["/CreationDate"]) == "D:20250630023000+00'00'"
    assert info.title == "碳排放配额 账户对账单"


def test_a_naive_generated_at_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        Document("x", generated_at=dt.datetime(2025, 6, 30, 10, 30))


def test_page_break_starts_a_new_page() -> None:
    doc = Document("两页", generated_at=GENERATED_AT).paragraph("第一部分").page_break().paragraph("第二部分")
    pages = _pages_text(doc.render())
    assert len(pages) == 2
    assert "第一部分" in pages[0] and "第二部分" in pages[1]


# --- User text is literal ---------------------------------------------------------------------------------

HOSTILE = [
    "江西<b>粗体</b>公司",
    'A<font color="red" size="40">红</font>&B',
    '<a href="https://evil.example/">点击领取</a>',
    "&amp; &lt;x&gt; &#x41; &nbsp;",
    "</para><para>",
    "<img src='x.png'/>",
]


def test_markup_in_user_text_is_printed_literally_everywhere() -> None:
    doc = Document(HOSTILE[0], HOSTILE[1], {HOSTILE[2]: HOSTILE[3]}, generated_at=GENERATED_AT)
    doc.heading(HOSTILE[4]).paragraph(HOSTILE[5])
    doc.key_values([(h, h) for h in HOSTILE])
    doc.table(["名称<th>"], [[h] for h in HOSTILE])
    doc.verification_footer("ABCD-EFGH-IJKL-MNOP", "https://x/verify?a=1&b=<2>")
    data = doc.render()
    text = "\n".join(_pages_text(data))
    for hostile in [*HOSTILE, "名称<th>", "https://x/verify?a=1&b=<2>"]:
        assert hostile in text
    assert b"/URI" not in data and b"/Annots" not in data  # no link was made from user text


def test_escape_markup_turns_markup_characters_into_entities_and_keeps_line_breaks() -> None:
    assert escape_markup("A<b>&C\n第二行") == "A&lt;b&gt;&amp;C<br/>第二行"
    assert escape_markup("a\x00b\x07c\td\r\ne") == "abc d<br/>e"


def test_control_characters_in_user_text_do_not_break_rendering() -> None:
    doc = Document("控制\x00字符\x1b", generated_at=GENERATED_AT).paragraph("前\x0b后\x7f")
    text = "\n".join(_pages_text(doc.render()))
    assert "控制字符" in text and "前后" in text


def test_non_text_cells_are_refused_so_numbers_are_formatted_first() -> None:
    doc = Document("x", generated_at=GENERATED_AT)
    with pytest.raises(TypeError, match="format"):
        doc.table(["金额"], [[1.5]])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        doc.paragraph(42)  # type: ignore[arg-type]


def test_malformed_tables_are_refused() -> None:
    doc = Document("x", generated_at=GENERATED_AT)
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 columns"):
        doc.table(["a", "b"], [["1", "2"], ["3"]])
    with pytest.raises(ValueError, match="col_widths"):
        doc.table(["a", "b"], [], col_widths=[1])
    with pytest.raises(ValueError, match="col_widths"):
        doc.table(["a", "b"], [], col_widths=[1, 0])
    with pytest.raises(ValueError, match="align_right"):
        doc.table(["a", "b"], [], align_right=[2])
    with pytest.raises(ValueError, match="columns"):
        doc.table([], [])


# --- Repeatable bytes -------------------------------------------------------------------------------------


def test_equal_input_gives_equal_bytes_and_render_can_repeat() -> None:
    first = _statement()
    assert first.render() == _statement().render()
    assert first.render() == first.render()


def test_a_different_generated_at_gives_different_bytes() -> None:
    later = GENERATED_AT + dt.timedelta(minutes=1)
    assert _statement().render() != _statement(later).render()


_RENDER_IN_CHILD = """
import datetime as dt, hashlib, sys
sys.path.insert(0, sys.argv[1])
from core.pdf import Document
doc = Document("碳排放配额 账户对账单", "子进程", {"账户号": "GR-1"},
               generated_at=dt.datetime(2025, 6, 30, 2, 30, tzinfo=dt.UTC))
doc.table(["流水号", "金额"], [[f"R{i}", f"{i},000.00"] for i in range(60)])
doc.verification_footer("ABCD-EFGH-IJKL-MNOP", "https://example.org/verify")
print(hashlib.sha256(doc.render()).hexdigest())
"""


def test_equal_input_gives_equal_bytes_across_processes() -> None:
    # Two fresh interpreters with different hash seeds: nothing may depend on set order or object ids.
    digests = {
        subprocess.run(
            [sys.executable, "-c", _RENDER_IN_CHILD, str(REPO_ROOT)],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(digests) == 1
    assert re.fullmatch(r"[0-9a-f]{64}", digests.pop())


# --- Verification code ------------------------------------------------------------------------------------

RECORD = {
    "claim_id": "CLM-2025-0001",
    "enterprise": "江西某某钢铁有限公司",
    "amount_fen": 42399700000,
    "lines": [{"rule": "R1", "citation": "赣府发〔2022〕1号"}],
    "approved": True,
    "note": None,
}
CANONICAL = (
    '{"amount_fen":42399700000,"approved":true,"claim_id":"CLM-2025-0001","enterprise":"江西某某钢铁有限公司",'
    '"lines":[{"citation":"赣府发〔2022〕1号","rule":"R1"}],"note":null}'
)


def test_verification_code_is_a_pinned_hash_of_the_canonical_json() -> None:
    assert canonical_json(RECORD) == CANONICAL.encode("utf-8")
    expected = base64.b32encode(hashlib.sha256(CANONICAL.encode("utf-8")).digest()[:10]).decode()
    code = verification_code(RECORD)
    assert code.replace("-", "") == expected
    # Pinned so that a change in the recipe, which would orphan every printed letter, cannot pass unnoticed.
    assert code == "ZSHP-EMRT-TQGA-E2YL"
    assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", code)


def test_verification_code_ignores_key_order() -> None:
    assert verification_code(dict(reversed(list(RECORD.items())))) == verification_code(RECORD)


@pytest.mark.parametrize(
    "changed",
    [
        {**RECORD, "claim_id": "CLM-2025-0002"},
        {**RECORD, "enterprise": "江西某某钢铁有限公司 "},
        {**RECORD, "amount_fen": 42399700001},
        {**RECORD, "lines": [{"rule": "R1", "citation": "赣府发〔2022〕2号"}]},
        {**RECORD, "lines": []},
        {**RECORD, "approved": False},
        {**RECORD, "note": ""},
        {**RECORD, "extra": None},
        {k: v for k, v in RECORD.items() if k != "note"},
    ],
)
def test_verification_code_changes_when_any_field_changes(changed: dict[str, object]) -> None:
    assert verification_code(changed) != verification_code(RECORD)


@pytest.mark.parametrize(
    "bad",
    [
        {"amount": 1.5},
        {"at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC)},
        {"amount": Decimal("1.50")},
        {"nested": {1: "int key"}},
        {"items": [{"x": {2.0}}]},
    ],
)
def test_values_without_one_canonical_spelling_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(TypeError):
        verification_code(bad)


def test_a_typed_code_is_normalized_and_checked_against_the_record() -> None:
    code = verification_code(RECORD)
    assert normalize_verification_code(" zshp emrt-tqgae2yl ") == code
    assert normalize_verification_code("ZSHP-EMRT-TQGA-E2Y1") == "ZSHP-EMRT-TQGA-E2YI"  # 1 read as I
    assert normalize_verification_code("ZSHP-EMRT-TQGA") is None
    assert normalize_verification_code("ZSHP-EMRT-TQGA-E2Y9") is None
    assert verification_code_matches(RECORD, code.lower())
    assert not verification_code_matches({**RECORD, "amount_fen": 1}, code)
    assert not verification_code_matches(RECORD, "nonsense")


def test_verification_footer_prints_the_code_on_every_page_and_explains_it_at_the_end() -> None:
    code = verification_code(RECORD)
    doc = Document("奖励决定书", generated_at=GENERATED_AT)
    doc.table(["序号"], [[str(i)] for i in range(120)])
    doc.verification_footer(code, "https://greenrights.example.gov.cn/verify/")
    pages = _pages_text(doc.render())
    assert len(pages) >= 2
    for page in pages:
        assert f"验证码：{code}" in page
    assert "https://greenrights.example.gov.cn/verify/" in pages[-1]
    assert "它不是电子签名" in pages[-1].replace("\n", "")  # the note may wrap
    with pytest.raises(ValueError, match="one verification footer"):
        doc.verification_footer(code, "again")


# --- Font -------------------------------------------------------------------------------------------------


def test_default_font_is_the_noto_sans_sc_subset_shipped_inside_the_package_with_its_licence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(pdf.FONT_PATH_ENV, raising=False)
    path = default_font_path()
    assert path == REPO_ROOT / "core" / "fonts" / "NotoSansSC-Regular.ttf"
    assert path.is_file() and pdf.FONT_BOLD.is_file()
    assert "SIL OPEN FONT LICENSE Version 1.1" in (path.parent / "OFL.txt").read_text("utf-8")
    readme = (path.parent / "README.md").read_text("utf-8")
    for name in ("NotoSansSC-Regular.ttf", "NotoSansSC-Bold.ttf"):
        # The README states the sha256 of what is shipped, so a changed file without a rebuilt README shows.
        assert hashlib.sha256((path.parent / name).read_bytes()).hexdigest() in readme
    regular, bold = pdf.register_cjk_fonts()
    assert regular != bold
    from reportlab.lib.fonts import tt2ps

    assert tt2ps(regular, 1, 0) == bold  # <b> and headings pick the Bold of the one family


def test_the_font_path_setting_wins_and_a_missing_file_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.ttc"
    monkeypatch.setenv(pdf.FONT_PATH_ENV, str(missing))
    assert default_font_path() == missing
    with pytest.raises(PdfFontError, match="does not exist"):
        register_cjk_font()
    with pytest.raises(PdfFontError, match="does not exist"):
        Document("x", generated_at=GENERATED_AT).render()


def test_a_file_that_is_not_a_truetype_font_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.ttf"
    fake.write_bytes(b"OTTO" + b"\x00" * 64)
    with pytest.raises(PdfFontError, match="TrueType"):
        register_cjk_font(fake)


def test_a_missing_packaged_font_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(pdf.FONT_PATH_ENV, raising=False)
    monkeypatch.setattr(pdf, "FONT_REGULAR", tmp_path / "absent.ttf")
    with pytest.raises(PdfFontError, match=r"tools/build_font\.py"):
        default_font_path()


def test_another_font_file_serves_as_its_own_bold(tmp_path: Path) -> None:
    copy = tmp_path / "other.ttf"
    copy.write_bytes(pdf.FONT_REGULAR.read_bytes())
    regular, bold = pdf.register_cjk_fonts(copy)
    assert regular == bold
    doc = Document("账户对账单", generated_at=GENERATED_AT, font_path=copy)
    assert "账户对账单" in "".join(_pages_text(doc.render()))


def test_the_font_is_registered_once_per_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(pdf.FONT_PATH_ENV, raising=False)
    copy = tmp_path / "copy.ttf"
    copy.write_bytes(default_font_path().read_bytes())  # a path this process has not registered yet
    loads: list[str] = []
    from reportlab.pdfbase.ttfonts import TTFont as real_ttfont

    def counting_ttfont(name: str, path: str, subfontIndex: int) -> object:
        loads.append(path)
        return real_ttfont(name, path, subfontIndex=subfontIndex)

    monkeypatch.setattr(pdf, "TTFont", counting_ttfont)
    first = register_cjk_font(copy)
    assert register_cjk_font(str(copy)) == first
    Document("x", generated_at=GENERATED_AT, font_path=copy).render()
    assert loads == [str(copy)]
    assert register_cjk_font() != first  # another path is another registration


# --- Tables fit their content ---------------------------------------------------------------------------


def test_a_crowded_table_never_splits_a_number_code_or_short_name() -> None:
    names = ["江西南昌赣江新区示范水泥制造股份有限公司", "九江示范火力发电有限责任公司", "南昌"]
    numbers = ["17,013", "2,017,013", "123,456,789.00", "CEA-NATIONAL-2025"]
    rows = [[names[i % 3], "南昌" if i % 2 else "九江", *numbers, "913601000000000042"] for i in range(12)]
    doc = Document("履约情况报告", generated_at=GENERATED_AT)
    header = ["企业名称", "城市", "缺口量（tCO2e）", "应清缴（tCO2e）", "罚款（元）", "单位类别", "统一社会信用代码"]
    doc.table(header, rows, align_right=[2, 3, 4])
    fitted, lines = doc.table_layout()
    assert sum(fitted.widths) == pytest.approx(pdf.REPORT_PAGE.width)
    for row in lines[1:]:
        cells = {i: cell for i, cell in enumerate(row)}
        for i in range(2, 7):
            assert len(cells[i]) == 1, (header[i], cells[i])  # each number or code on one line, whole
        assert cells[1] in (["南昌"], ["九江"])  # a city is never 南|昌
    for row in lines[1:]:
        # Names of up to twelve characters stay whole; a longer one wraps into lines of several characters.
        assert "".join(row[0]) in names
        assert len(row[0]) == 1 or len(row[0][0]) >= 4, row[0]
    text = "\n".join(_pages_text(doc.render()))
    for number in [*numbers, "913601000000000042"]:
        whole = re.findall(rf"(?<![\d,]){re.escape(number)}(?![\d,])", text)
        assert len(whole) == 12, number  # extracted whole on every row, never as "17,01" + "3"


def test_a_unit_stays_on_the_line_of_its_figure() -> None:
    """"1,500,000.00 元" broke before 元 in a narrow column of the letters' calculation steps: a short word after a
    figure joins it, and the line never breaks inside."""
    from core.pdflayout import break_lines, words

    assert words("1,500,000.00 元 依据 2 保险年度 不属于 保险年度") == [
        "1,500,000.00 元", "依据", "2 保险年度", "不属于", "保险年度"]
    measure = lambda text, size: len(text) * size * 0.6  # noqa: E731 - a fixed-pitch stand-in for stringWidth
    width = measure("1,500,000.00 元", 10) + 1
    for text in ("合计 1,500,000.00 元", "1,500,000.00 元"):
        lines = break_lines(text, width, measure, 10)
        assert any(line.endswith("1,500,000.00 元") for line in lines), lines
        assert all(line != "元" for line in lines), lines
