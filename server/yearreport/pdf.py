"""The report as a PDF (`report.pdf`): the same sections, tables and charts as the web page, on core.pdf's shared
A4 page, CJK font, page numbers and ruled tables. The charts are reportlab graphics (vector, text extractable).

core.pdf's `Document` has no block for a drawing. `ChartDocument` adds one without changing core/pdf.py: a chart
is queued as a placeholder paragraph whose text is a unique marker, and the finished story has each marker
paragraph swapped for its drawing (see `_story`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from reportlab.graphics.shapes import Circle, Drawing, Line, PolyLine, Rect, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.platypus import KeepTogether, Paragraph

from core import figures, pdf
from server.yearreport import labels, svg
from server.yearreport.queries import GroupRow, YearData, coverage_lines

_WIDTH = A4[0] - 40 * mm  # core.pdf's frame: A4 less its 20 mm side margins
_PALETTE = [colors.HexColor(c) for c in svg.PALETTE]
_GREY = colors.HexColor("#9E9E9E")
_MARKER = "\u2060chart:{}\u2060"  # word joiners around the number: text no user types


class ChartDocument(pdf.Document):
    """A core.pdf Document that can also hold reportlab drawings between its blocks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._drawings: dict[str, tuple[str, Drawing]] = {}

    def chart(self, caption: str, drawing: Drawing) -> ChartDocument:
        """A drawing under its caption, kept together on one page."""
        marker = _MARKER.format(len(self._drawings))
        self._drawings[marker] = (caption, drawing)
        self.paragraph(marker)
        return self

    def _story(self, *args: Any) -> list[Any]:
        # core.pdf's private hook: (font, [bold,] styles) — whatever it takes, the styles come last.
        story: list[Any] = super()._story(*args)
        styles = args[-1]
        out: list[Any] = []
        for flowable in story:
            found = self._drawings.get(getattr(flowable, "text", None) or "")
            if found is None:
                out.append(flowable)
            else:
                caption, drawing = found
                out.append(KeepTogether([Paragraph(pdf.escape_markup(caption), styles.body), drawing]))
        return out


def _font() -> str:
    return pdf.register_cjk_font()


def price_drawing(
    points: Sequence[tuple[dt.date, int, int, int]],
    price_label: Callable[[int], str],
    volume_label: Callable[[int], str],
) -> Drawing:
    """(day, close_fen, vwap_fen, volume) as two price lines over volume bars."""
    font = _font()
    width, height = _WIDTH, 200.0
    left, right, top = 52.0, 8.0, 16.0
    price_h, gap, vol_h = 105.0, 12.0, 45.0
    d = Drawing(width, height)
    n = len(points)
    lo = min(min(p[1], p[2]) for p in points)
    hi = max(max(p[1], p[2]) for p in points)
    pad = max((hi - lo) // 10, 1)
    lo, hi = max(lo - pad, 0), hi + pad
    vmax = max(*(p[3] for p in points), 1)
    plot_w = width - left - right
    price_bottom = height - top - price_h
    vol_bottom = price_bottom - gap - vol_h

    def x(i: int) -> float:
        return float(left + plot_w * (i + 0.5) / n)

    def y(price: int) -> float:
        return float(price_bottom + price_h * (price - lo) / (hi - lo))

    d.add(Rect(left, price_bottom, plot_w, price_h, fillColor=None, strokeColor=_GREY, strokeWidth=0.4))
    d.add(Rect(left, vol_bottom, plot_w, vol_h, fillColor=None, strokeColor=_GREY, strokeWidth=0.4))
    for frac in (0.0, 0.5, 1.0):
        price = lo + int((hi - lo) * frac)
        d.add(String(left - 3, y(price) - 3, price_label(price), fontName=font, fontSize=7, textAnchor="end"))
    d.add(String(left - 3, vol_bottom + vol_h - 7, volume_label(vmax), fontName=font, fontSize=7, textAnchor="end"))
    bar_w = max(plot_w / n * 0.7, 0.5)
    for i, p in enumerate(points):
        h = vol_h * p[3] / vmax
        d.add(Rect(x(i) - bar_w / 2, vol_bottom, bar_w, h, fillColor=colors.HexColor("#90a4ae"), strokeColor=None))
    for series, color, dash in (
        ([p[1] for p in points], _PALETTE[3], None),
        ([p[2] for p in points], _PALETTE[1], [3, 2]),
    ):
        coords: list[float] = []
        for i, price in enumerate(series):
            coords += [x(i), y(price)]
        if n == 1:
            d.add(Circle(coords[0], coords[1], 2, fillColor=color, strokeColor=None))
        else:
            d.add(PolyLine(coords, strokeColor=color, strokeWidth=1.2, strokeDashArray=dash))
    for i in sorted({0, n - 1, n // 2}):
        d.add(String(x(i), vol_bottom - 10, points[i][0].isoformat(), fontName=font, fontSize=7, textAnchor="middle"))
    d.add(Line(left, height - 6, left + 14, height - 6, strokeColor=_PALETTE[3], strokeWidth=1.2))
    d.add(String(left + 17, height - 9, "收盘价", fontName=font, fontSize=7))
    d.add(Line(left + 52, height - 6, left + 66, height - 6, strokeColor=_PALETTE[1], strokeDashArray=[3, 2]))
    d.add(String(left + 69, height - 9, "成交均价", fontName=font, fontSize=7))
    d.add(Rect(left + 110, height - 9, 8, 6, fillColor=colors.HexColor("#90a4ae"), strokeColor=None))
    d.add(String(left + 121, height - 9, "成交量", fontName=font, fontSize=7))
    return d


def bars_drawing(
    rows: Sequence[tuple[str, Sequence[int]]],
    series: Sequence[str],
    label: Callable[[int], str],
    *,
    palette: Sequence[str] = svg.PALETTE,
) -> Drawing:
    """Horizontal stacked bars with a legend and each bar's total at its end."""
    colours = [colors.HexColor(c) for c in palette]
    font = _font()
    bar_h, gap, left, right, top = 11.0, 5.0, 95.0, 95.0, 16.0
    height = top + len(rows) * (bar_h + gap) + 4
    d = Drawing(_WIDTH, height)
    vmax = max((sum(v) for _, v in rows), default=0) or 1
    plot_w = _WIDTH - left - right
    lx = left
    for k, name in enumerate(series):
        d.add(Rect(lx, height - 10, 7, 7, fillColor=colours[k % len(colours)], strokeColor=None))
        d.add(String(lx + 10, height - 9.5, name, fontName=font, fontSize=7))
        lx += 18 + 8 * len(name)
    for i, (name, values) in enumerate(rows):
        y0 = height - top - (i + 1) * (bar_h + gap) + gap
        d.add(String(left - 4, y0 + 3, svg.short(name), fontName=font, fontSize=7, textAnchor="end"))
        x0 = left
        for k, v in enumerate(values):
            w = plot_w * v / vmax
            if w > 0:
                d.add(Rect(x0, y0, w, bar_h, fillColor=colours[k % len(colours)], strokeColor=None))
            x0 += w
        d.add(String(x0 + 4, y0 + 3, label(sum(values)), fontName=font, fontSize=7))
    return d


def _group_table(doc: ChartDocument, groups: list[GroupRow], title: str) -> None:
    unit = groups[0].unit
    doc.table(
        [title, "企业", "A", "B", "C", "逾期", f"核查（{unit}）", f"清缴（{unit}）", f"缺口（{unit}）", "罚款（元）"],
        [
            [
                g.key,
                str(g.enterprises),
                str(g.compliant),
                str(g.shortfall_count),
                str(g.not_reported),
                str(g.late),
                figures.quantity(g.obligation, g.scale),
                figures.quantity(g.surrendered, g.scale),
                figures.quantity(g.shortfall, g.scale),
                figures.yuan(g.fine_fen),
            ]
            for g in groups
        ],
        [2.2, 1, 0.8, 0.8, 0.8, 0.8, 2, 2, 1.8, 2.2],
        align_right=range(1, 10),
    )


def render_pdf(data: YearData) -> bytes:
    y = data.year
    doc = ChartDocument(
        f"江西省环境权益市场 {y} 年度报告",
        "交易行情 · 履约结果 · 罚款 · 财政补贴 · 预算执行 · 十大持有人",
        {"报告年度": str(y), **coverage_lines(data), "数据来源": "绿权登记、交易与激励系统数据库"},
        generated_at=data.generated_at,
    )
    doc.heading("一、市场行情")
    traded = [m for m in data.markets if any(d.market.market_id == m.market_id for d in data.days)]
    if not traded:
        doc.paragraph("本年度没有成交。")
    for m in traded:
        days = [d for d in data.days if d.market.market_id == m.market_id]
        doc.chart(
            f"{m.code}（{m.label_zh}，价格单位：元/{m.unit}）",
            price_drawing(
                [(d.trade_date, d.close_fen, d.vwap_fen, d.volume) for d in days],
                figures.yuan,
                lambda q, m=m: f"{figures.quantity(q, m.scale)} {m.unit}",  # type: ignore[misc]
            ),
        )
        doc.key_values(
            [
                ("交易日数", str(len(days))),
                ("成交量", f"{figures.quantity(sum(d.volume for d in days), m.scale)} {m.unit}"),
                ("其中大宗协议", f"{figures.quantity(sum(d.block_volume for d in days), m.scale)} {m.unit}"),
                ("成交额", figures.yuan(sum(d.turnover_fen for d in days), unit=True)),
                ("成交笔数", figures.quantity(sum(d.trade_count for d in days))),
                (
                    "最高 / 最低",
                    f"{figures.yuan(max(d.high_fen for d in days))} / {figures.yuan(min(d.low_fen for d in days))} 元",
                ),
                ("年末收盘价", figures.yuan(days[-1].close_fen, unit=True)),
            ]
        )
        doc.table(
            ["日期", "开盘", "最高", "最低", "收盘", "均价", f"成交量（{m.unit}）", "成交额（元）"],
            [
                [
                    d.trade_date.isoformat(),
                    figures.yuan(d.open_fen),
                    figures.yuan(d.high_fen),
                    figures.yuan(d.low_fen),
                    figures.yuan(d.close_fen),
                    figures.yuan(d.vwap_fen),
                    figures.quantity(d.volume, m.scale),
                    figures.yuan(d.turnover_fen),
                ]
                for d in days
            ],
            [1.6, 1, 1, 1, 1, 1, 1.5, 1.9],
            align_right=range(1, 8),
        )
    doc.paragraph(
        "收盘价为当日挂牌协议与连续竞价成交的成交量加权平均价（大宗协议与拍卖不形成收盘价）；均价为当日全部成交的成交量加权平均价。"
    )

    doc.heading("二、履约情况")
    doc.table(
        ["履约期", "机制", "状态", "义务数", "已结算", "参考价格（元）", "k"],
        [
            [
                p.code,
                f"{p.scheme_name}（{labels.name_of(labels.SCHEME_KINDS, p.kind)}）",
                labels.name_of(labels.PERIOD_STATUSES, p.status),
                str(p.obligations),
                str(p.settled),
                figures.yuan(p.reference_price_fen) if p.reference_price_fen is not None else "—",
                str(p.multiplier_k) if p.multiplier_k is not None else "—",
            ]
            for p in data.periods
        ]
        or [["—", "本年度没有履约期", "", "", "", "", ""]],
        [1.6, 2.6, 1, 1, 1, 1.4, 0.6],
        align_right=range(3, 7),
    )
    schemes = sorted({(g.scheme_code, g.pollutant) for g in data.by_city})
    for code, pollutant in schemes:
        title = f"{code} {pollutant}".strip()
        cities = [g for g in data.by_city if (g.scheme_code, g.pollutant) == (code, pollutant)]
        industries = [g for g in data.by_industry if (g.scheme_code, g.pollutant) == (code, pollutant)]
        doc.chart(
            f"{title}：各市履约状态（家）",
            bars_drawing(
                [(g.key, [g.compliant, g.shortfall_count, g.not_reported]) for g in cities],
                ["A 已履约", "B 未足额", "C 未报告"],
                lambda n: f"{n} 家",
            ),
        )
        _group_table(doc, cities, "城市")
        _group_table(doc, industries, "行业")

    doc.heading("三、罚款")
    total = sum(f.fine_fen for f in data.fines)
    paid = sum(f.paid_fen for f in data.fines)
    doc.paragraph(
        f"共 {len(data.fines)} 笔，合计 {figures.yuan(total, unit=True)}；已缴纳 {figures.yuan(paid, unit=True)}。"
    )
    if data.fines:
        doc.table(
            ["企业", "城市", "履约期", "缺口", "罚款（元）", "缴款通知"],
            [
                [
                    f"{x.name}\n{x.uscc}",
                    x.city,
                    x.period_code,
                    f"{figures.quantity(x.shortfall, x.scale)} {x.unit}",
                    figures.yuan(x.fine_fen),
                    f"{x.notice_no or '—'} {labels.name_of(labels.NOTICE_STATUSES, x.notice_status)}",
                ]
                for x in data.fines
            ],
            [3, 1, 1.5, 1.5, 1.8, 2.2],
            align_right=(3, 4),
        )

    doc.heading("四、财政补贴")
    by_programme, by_city = data.subsidies_by("programme"), data.subsidies_by("city")
    if by_programme:
        doc.chart(
            "各项目净拨付",
            bars_drawing(
                [(svg.short(labels.name_of(labels.PROGRAMMES, r.programme)), [r.net_fen]) for r in by_programme],
                ["净拨付"],
                lambda fen: figures.yuan(fen, unit=True),
            ),
        )
    for title, rows, name in (
        ("项目", by_programme, lambda r: labels.name_of(labels.PROGRAMMES, r.programme)),
        ("城市", by_city, lambda r: r.city),
    ):
        doc.table(
            [title, "笔数", "拨付（元）", "追回（元）", "净拨付（元）"],
            [
                [
                    name(r),
                    str(r.claims),
                    figures.yuan(r.disbursed_fen),
                    figures.yuan(r.clawed_back_fen),
                    figures.yuan(r.net_fen),
                ]
                for r in rows
            ]
            or [["本年度预算没有拨付", "", "", "", ""]],
            [3, 0.8, 1.6, 1.6, 1.6],
            align_right=range(1, 5),
        )

    doc.heading("五、预算执行")
    if data.budgets:
        doc.chart(
            "各项目预算执行（批复 = 已拨付 + 已承诺 + 可用 − 追回）",
            bars_drawing(
                [
                    (
                        svg.short(labels.name_of(labels.PROGRAMMES, b.programme)),
                        [b.disbursed_fen, b.committed_fen, b.available_fen],
                    )
                    for b in data.budgets
                ],
                ["已拨付", "已承诺", "可用"],
                lambda fen: figures.yuan(fen, unit=True),
                palette=svg.BUDGET_PALETTE,
            ),
        )
    doc.table(
        ["项目预算", "批复（元）", "已承诺（元）", "已拨付（元）", "追回（元）", "可用（元）"],
        [
            [
                labels.name_of(labels.PROGRAMMES, b.programme),
                figures.yuan(b.appropriated_fen),
                figures.yuan(b.committed_fen),
                figures.yuan(b.disbursed_fen),
                figures.yuan(b.clawed_back_fen),
                figures.yuan(b.available_fen),
            ]
            for b in data.budgets
        ]
        or [["本年度没有项目预算", "", "", "", "", ""]],
        [2.6, 1.5, 1.5, 1.5, 1.2, 1.5],
        align_right=range(1, 6),
    )

    doc.heading("六、十大持有人")
    doc.paragraph("企业持仓账户与交易账户在报告生成时的余额，按权益种类合计；主管部门的分配账户不计入。")
    for kind, kind_name in labels.INSTRUMENT_KINDS.items():
        holders = [h for h in data.holders if h.kind == kind]
        if holders:
            doc.heading(kind_name)
            doc.table(
                ["名次", "持有人", "统一社会信用代码", "持有量"],
                [
                    [str(h.rank), h.name, h.uscc or "—", f"{figures.quantity(h.balance, h.scale)} {h.unit}"]
                    for h in holders
                ],
                [0.6, 3.4, 2.2, 1.8],
                align_right=(0, 3),
            )
    doc.heading("七、开放数据")
    doc.paragraph(
        "与本报告同目录：trades、market-daily、compliance、subsidies 各有 CSV（UTF-8，带 BOM）与 Parquet 两种格式，"
        "字段说明见 schema.md。金额为整数“分”（列名以 _fen 结尾），数量为该权益的显示单位。"
    )
    return doc.render()
