"""The report's web page, `index.html`: Chinese, self-contained (inline SVG charts and one inline style sheet, no
script, nothing fetched), every figure written through core.figures. `CSP` is the policy the app serves it with:
nothing but that one style sheet (by its hash) and the page's own links.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from core import figures
from core.clock import SHANGHAI
from server.yearreport import labels, svg
from server.yearreport.opendata import DATASETS
from server.yearreport.queries import GroupRow, YearData, coverage_lines

STYLE = """
body{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei","Microsoft YaHei",sans-serif;margin:2rem auto;max-width:62rem;
color:#222;line-height:1.5;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;border-bottom:2px solid #2e7d32;padding-bottom:.2rem;
margin-top:2.2rem}h3{font-size:1.05rem;margin-top:1.4rem}
.meta{color:#555}table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.9rem;width:100%}
th,td{border:1px solid #bbb;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#e8eef4}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.chart{width:100%;height:auto;margin:.4rem 0}.note{color:#555;font-size:.85rem}
ul.files li{margin:.15rem 0}
""".strip()
CSP = (
    "default-src 'none'; style-src 'sha256-"
    + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    + "'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _price_chart(data: YearData, market_id: int) -> Markup:
    days = [d for d in data.days if d.market.market_id == market_id]
    if not days:
        return Markup("")
    m = days[0].market
    points = [svg.PricePoint(d.trade_date, d.close_fen, d.vwap_fen, d.volume) for d in days]
    return Markup(  # noqa: S704  # built by svg.py, which escapes every text it writes
        svg.price_volume(
            f"{m.code} 价格与成交量",
            points,
            figures.yuan,
            lambda q: f"{figures.quantity(q, m.scale)} {m.unit}",
        )
    )


def _compliance_chart(groups: list[GroupRow], title: str) -> Markup:
    rows = [(f"{g.key}", [g.compliant, g.shortfall_count, g.not_reported]) for g in groups]
    return Markup(  # noqa: S704
        svg.stacked_bars(title, rows, ["A 已履约", "B 未足额", "C 未报告"], lambda n: f"{n} 家")
    )


def _money_chart(
    title: str, rows: list[tuple[str, list[int]]], series: list[str], palette: tuple[str, ...] = svg.PALETTE
) -> Markup:
    return Markup(svg.stacked_bars(title, rows, series, lambda fen: figures.yuan(fen, unit=True), palette))  # noqa: S704


def context(data: YearData) -> dict[str, Any]:
    by_scheme: dict[str, dict[str, list[GroupRow]]] = {}
    for dim, groups in (("city", data.by_city), ("industry", data.by_industry)):
        for g in groups:
            by_scheme.setdefault(f"{g.scheme_code}{(' ' + g.pollutant) if g.pollutant else ''}", {}).setdefault(
                dim, []
            ).append(g)
    compliance_charts = {
        scheme: _compliance_chart(dims.get("city", []), f"{scheme} 各市履约状态") for scheme, dims in by_scheme.items()
    }
    by_programme = data.subsidies_by("programme")
    by_city = data.subsidies_by("city")
    fine_total = sum(f.fine_fen for f in data.fines)
    return {
        "data": data,
        "coverage": coverage_lines(data),
        "f": figures,
        "labels": labels,
        "style": Markup(STYLE),  # noqa: S704  # a constant of this module
        "generated": data.generated_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M"),
        "price_charts": {m.market_id: _price_chart(data, m.market_id) for m in data.markets},
        "traded_markets": [m for m in data.markets if any(d.market.market_id == m.market_id for d in data.days)],
        "by_scheme": by_scheme,
        "compliance_charts": compliance_charts,
        "fine_total": fine_total,
        "fine_paid": sum(f.paid_fen for f in data.fines),
        "by_programme": by_programme,
        "by_city": by_city,
        "subsidy_programme_chart": _money_chart(
            "各项目补贴发放",
            [(labels.name_of(labels.PROGRAMMES, r.programme), [r.net_fen]) for r in by_programme],
            ["净发放"],
        ),
        "subsidy_city_chart": _money_chart("各市补贴发放", [(r.city, [r.net_fen]) for r in by_city], ["净发放"]),
        "budget_chart": _money_chart(
            "预算执行",
            [
                (labels.name_of(labels.PROGRAMMES, b.programme), [b.disbursed_fen, b.committed_fen, b.available_fen])
                for b in data.budgets
            ],
            ["已拨付", "已承诺", "可用"],
            svg.BUDGET_PALETTE,
        ),
        "holder_kinds": [k for k in labels.INSTRUMENT_KINDS if any(h.kind == k for h in data.holders)],
        "datasets": DATASETS,
    }


def render_html(data: YearData) -> str:
    return _env.get_template("index.html").render(**context(data))
