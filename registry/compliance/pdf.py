"""The compliance report (履约情况报告) of a settled period as a PDF in Chinese: the parameters used, the overall
result, totals by city and by industry, and every enterprise's status, shortfall and fine, with a verification
code over the published figures."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from core import figures
from core.capitals import yuan_in_capitals
from core.clock import SHANGHAI
from core.pdf import Document, verify_url
from registry.domain.industries import industry_label
from registry.domain.settlement import GroupTotal

TITLE = {
    "carbon": "碳排放配额清缴履约情况报告",
    "energy": "用能权清缴履约情况报告",
    "discharge": "排污权清缴履约情况报告",
    "green_power": "绿色电力消费履约情况报告",
}
UNIT = {"carbon": "吨二氧化碳当量", "energy": "千克标准煤", "discharge": "千克", "green_power": "兆瓦时"}
# Column headers keep the unit short (tables may); running text writes it out in words (UNIT).
UNIT_SHORT = {"carbon": "tCO2e", "energy": "kgce", "discharge": "kg", "green_power": "MWh"}
STATUS_ZH = {"A": "A 履约", "B": "B 未足额清缴", "C": "C 未报告"}
TIMELINESS_ZH = {"late": "逾期"}
_REGULATOR_PRICE = re.compile(r"regulator: (?P<note>.*) \(for (?P<y>\d{4})-(?P<m>\d{2})\)")
_MARKET_PRICE = re.compile(r"trading: CEA monthly average (?P<y>\d{4})-(?P<m>\d{2})")


def price_source_zh(source: str) -> str:
    """Where the reference price came from, in Chinese (the run stores it as registry.compliance writes it)."""
    if m := _MARKET_PRICE.fullmatch(source):
        return f"全国碳排放权交易市场 {m['y']} 年 {int(m['m'])} 月成交均价"
    if m := _REGULATOR_PRICE.fullmatch(source):
        note = "" if m["note"] == "entered price" else f"：{m['note']}"
        return f"主管部门确定（{m['y']} 年 {int(m['m'])} 月{note}）"
    return source


def _n(value: int | None) -> str:
    return "—" if value is None else figures.quantity(value)


def _totals_table(doc: Document, totals: list[GroupTotal], label: str, unit: str) -> None:
    if not totals:
        doc.paragraph("无数据。")
        return
    rows = [
        [
            (industry_label(g.key) if g.dimension == "industry" else g.key)
            + (f"（{g.pollutant}）" if g.pollutant else ""),
            str(g.enterprises),
            str(g.compliant),
            str(g.shortfall_count),
            str(g.not_reported),
            str(g.late),
            _n(g.obligation),
            _n(g.surrendered),
            _n(g.shortfall),
            figures.yuan(g.fine_fen),
        ]
        for g in totals
    ]
    doc.table(
        [
            label,
            "企业数",
            "履约",
            "缺口",
            "未报告",
            "逾期",
            f"应清缴（{unit}）",
            f"已清缴（{unit}）",
            f"缺口量（{unit}）",
            "罚款（元）",
        ],
        rows,
        align_right=(1, 2, 3, 4, 5, 6, 7, 8, 9),
    )


def render_compliance_report(data: dict[str, Any], *, generated_at: dt.datetime) -> bytes:
    period = data["period"]
    scheme = data["scheme"]
    run = data["run"]
    rows = data["rows"]
    unit = UNIT.get(scheme.kind, "")
    meta = {
        "履约期": f"{period.code}（{period.year} 年度）",
        "机制": f"{scheme.name}（{scheme.code}）",
        "主管部门": data["authority"] or scheme.authority_role,
        "清缴截止日": data["deadline"].isoformat(),
        "结算时间": run.finished_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") if run.finished_at else "—",
    }
    doc = Document(
        TITLE.get(scheme.kind, "履约情况报告"), "江西省环境权益登记簿", meta, generated_at=generated_at
    )

    total_fine = sum(r.fine_fen for r, _ in rows)
    counts = {k: sum(1 for r, _ in rows if r.status == k) for k in ("A", "B", "C")}
    doc.heading("一、结算参数")
    params: list[tuple[str, str]] = []
    if scheme.kind == "carbon":
        price = run.reference_price_fen
        params += [
            (
                "参考价格",
                f"{figures.yuan(price, unit=True)}/吨（{price_source_zh(run.price_source)}）" if price else "—",
            ),
            ("罚款倍数", str(period.multiplier_k or _k_from(run))),
            ("罚款规则", "未清缴配额 × 清缴时限前1个月市场交易平均成交价格 × k（国务院令第775号 第二十四条）"),
        ]
    params.append(("计量单位", unit))
    doc.key_values(params)

    doc.heading("二、总体情况")
    doc.key_values(
        [
            ("纳入企业（义务）数", str(len(rows))),
            ("履约（A）", str(counts["A"])),
            ("未足额清缴（B）", str(counts["B"])),
            ("未报告（C）", str(counts["C"])),
            ("应清缴总量", _n(sum(r.obligation or 0 for r, _ in rows)) + f" {unit}"),
            ("缺口总量", _n(sum(r.shortfall for r, _ in rows)) + f" {unit}"),
            ("储备强制清缴", _n(sum(r.forced_quantity for r, _ in rows)) + f" {unit}"),
            ("罚款合计", f"{figures.yuan(total_fine, unit=True)}（{yuan_in_capitals(total_fine)}）"),
        ]
    )
    doc.heading("三、按城市汇总")
    short = UNIT_SHORT.get(scheme.kind, "")
    _totals_table(doc, data["totals_city"], "城市", short)
    doc.heading("四、按行业汇总（GB/T 4754-2017）")
    _totals_table(doc, data["totals_industry"], "行业", short)
    doc.heading("五、企业履约明细")
    detail = [
        [
            e.name,
            e.uscc,
            r.city,
            (f"{r.pollutant} " if r.pollutant else "")
            + STATUS_ZH.get(r.status, r.status)
            + ("（逾期）" if r.timeliness == "late" and r.status != "C" else ""),
            _n(r.obligation),
            _n(r.surrendered),
            _n(r.shortfall),
            figures.yuan(r.fine_fen),
        ]
        for r, e in rows
    ]
    if detail:
        # Eight columns fit A4 at the body size; the industry is in the totals above.
        doc.table(
            [
                "企业名称",
                "统一社会信用代码",
                "城市",
                "状态",
                f"应清缴（{short}）",
                f"已清缴（{short}）",
                f"缺口（{short}）",
                "罚款（元）",
            ],
            detail,
            col_widths=[3, 1, 1, 1, 1, 1, 1, 1],
            align_right=(4, 5, 6, 7),
        )
    else:
        doc.paragraph("本履约期没有纳入的企业。")
    doc.paragraph(
        "说明：状态 A 为足额清缴，B 为未足额清缴，C 为未提交经核查的排放报告；逾期指截止时存在缺口。"
        "缺口在下一年度配额中等量核减；储备强制清缴的数量亦在下一年度配额中扣还。"
    )
    doc.verification_footer(data["code"], "本报告数据以登记簿结算记录为准", url=verify_url(data["code"]))
    return doc.render()


def _k_from(run: Any) -> str:
    return str(json.loads(run.params).get("k", ""))
