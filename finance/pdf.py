"""The finance context's documents, in Chinese: the decision letter on a subsidy claim (决定书: approval,
rejection or clawback) and the bank's green-credit report.

A decision letter states the amount in figures and in financial capitals, prints the determination the
amount came from (every gate with its measured value, threshold and citation; every step of the arithmetic),
and carries the verification code of its record, which `/verify/{code}` checks without a login. The document
is drawn only from the stored record, so the same record always prints the same letter.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from core import figures
from core.capitals import yuan_in_capitals
from core.pdf import Document, Letter, verify_url
from incentives.domain.labels import comparator_zh, unit_zh, value_zh
from registry.domain.industries import industry_label

VERIFY_HINT = "扫描右侧二维码，或在本系统公开核验页面输入验证码（无需登录）"

DECISION_ZH = {"approved": "予以补贴", "rejected": "不予补贴", "clawback": "追回补贴资金"}
# Where the bank report's violations check took its facts from (finance/green_credit.py writes it in English).
SOURCE_ZH = {
    "the bank's project facts (the registry keeps no record of environmental violations)": (
        "查询机构提供的项目信息（登记簿不记录环境违法行为）"
    ),
}
TITLE_ZH = {"decision_letter": "财政补贴资金审核决定书", "clawback_decision": "财政补贴资金追回决定书"}


def _show(value: object, unit: str) -> str:
    if value is None:
        return "—"
    if value in ("", [], ()):
        return "（无）"  # an empty list (no year compensated yet): not a unit without a figure
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, int) and unit == "fen":
        return figures.yuan(value, unit=True)
    if isinstance(value, int) and unit == "bp":
        return figures.percent(value)
    if isinstance(value, int):
        return f"{figures.quantity(value)} {unit_zh(unit)}".strip()
    return f"{value_zh(str(value))} {unit_zh(unit)}".strip()


def _requirement(g: dict[str, Any]) -> str:
    unit = str(g.get("unit", ""))
    shown = _show(g.get("threshold"), unit)
    return f"{comparator_zh(str(g.get('comparator', '')))}{'' if shown.startswith('（') else ' '}{shown}".strip()


def _citation(c: dict[str, Any] | None) -> str:
    if not c:
        return "—"
    return f"{c.get('document', '')} {c.get('article', '')}".strip()


def render_decision_letter(record: dict[str, Any], code: str, *, generated_at: dt.datetime) -> bytes:
    kind = str(record.get("type", "decision_letter"))
    decision = str(record.get("decision", ""))
    amount = int(record.get("amount_fen") or 0)
    det: dict[str, Any] = record.get("determination") or {}
    name = str(record.get("enterprise_name", ""))
    programme = str(record.get("programme_name_zh", ""))
    decided_on = dt.date.fromisoformat(str(record.get("decided_on")))
    letter = Letter(
        authority=str(record.get("issued_by", "")),
        # Letters issued before 文号 were allocated carry their document number in that place.
        number=str(record.get("file_no") or record.get("document_no", "")),
        addressee=f"{name}：",
        signed_on=decided_on,
    )
    doc = Document(TITLE_ZH.get(kind, "决定书"), generated_at=generated_at, letter=letter)
    if decision == "approved":
        doc.paragraph(
            f"你单位申报的{programme}，经形式审查、审核、审定并经公示（{record.get('notice_first_day')} 至 "
            f"{record.get('notice_last_day')}）无异议，符合规定，决定予以补贴。"
        )
    elif decision == "rejected":
        doc.paragraph(f"经审核，你单位申报的{programme}不予补贴。理由：{record.get('reason', '')}")
    else:
        doc.paragraph(f"你单位已获拨付的{programme}资金，因下列理由依法予以追回：{record.get('reason', '')}")
    doc.key_values(
        [
            ("决定事项", DECISION_ZH.get(decision, decision)),
            ("金额（小写）", figures.yuan(amount, unit=True)),
            ("金额（大写）", yuan_in_capitals(amount)),
            ("申报编号", str(record.get("claim_no", ""))),
            ("文书编号", str(record.get("document_no", ""))),
            ("统一社会信用代码", str(record.get("enterprise_uscc", ""))),
            ("项目 / 期间", f"{record.get('project_ref', '')} / {record.get('period', '')}"),
        ]
    )
    if det:
        doc.heading("一、审核认定（规则引擎计算结果）")
        doc.key_values(
            [
                ("规则包版本", str(det.get("rule_pack_version", ""))),
                ("适用日期", str(det.get("on", ""))),
                ("是否符合条件", "符合" if det.get("eligible") else "不符合"),
                ("认定记录摘要（SHA-256）", str(record.get("determination_digest", ""))),
            ]
        )
        gates = det.get("gates") or []
        doc.table(
            ["条件", "测量值", "要求", "结果", "依据"],
            [
                [
                    str(g.get("label_zh", g.get("code", ""))),
                    _show(g.get("measured"), str(g.get("unit", ""))),
                    _requirement(g),
                    "通过" if g.get("passed") else "未通过",
                    _citation(g.get("citation")),
                ]
                for g in gates
            ]
            or [["—", "—", "—", "—", "—"]],
            col_widths=[3, 2, 2, 1, 3],
        )
        steps = det.get("steps") or []
        if steps:
            doc.table(
                ["计算步骤", "公式", "结果", "依据"],
                [
                    [
                        str(st.get("label_zh", st.get("code", ""))),
                        str(st.get("formula", "")),
                        _show(st.get("value"), str(st.get("unit", ""))),
                        _citation(st.get("citation")),
                    ]
                    for st in steps
                ],
                col_widths=[2, 4, 2, 3],
                align_right=(2,),
            )
        citations = det.get("citations") or []
        if citations:
            doc.heading("二、政策依据")
            for c in citations:
                doc.paragraph(_citation(c))
    doc.heading("三、救济途径" if det else "一、救济途径")
    doc.paragraph(
        "如对本决定不服，可以自收到本决定书之日起六十日内依法申请行政复议，或者在六个月内依法提起行政诉讼"
        "（《中华人民共和国行政复议法》第二十条、《中华人民共和国行政诉讼法》第四十六条）。"
    )
    doc.verification_footer(code, VERIFY_HINT, verify_url(code))
    return doc.render()


def render_green_credit_report(report: dict[str, Any], *, generated_at: dt.datetime) -> bytes:
    answer: dict[str, Any] = report["answer"]
    signature: dict[str, str] = report["signature"]
    ent = answer.get("enterprise", {})
    bank = answer.get("bank", {})
    meta = {
        "报告编号": str(report.get("document_no", "")),
        "查询机构": str(bank.get("name", "")),
        "企业名称": str(ent.get("name", "")),
        "统一社会信用代码": str(ent.get("uscc", "")),
        "所在城市 / 行业": f"{ent.get('city', '')} / {industry_label(str(ent.get('industry_code', '')))}",
        "查询用途": str(answer.get("purpose", "")),
        "数据截止日": str(answer.get("as_of", "")),
        "项目": str(answer.get("project_ref", "") or "—"),
    }
    doc = Document("绿色信贷查询报告", "经企业授权查询 · 江西省环境权益登记簿", meta, generated_at=generated_at)

    doc.heading("一、碳排放权履约状况")
    comp = answer.get("compliance", {})
    doc.key_values(
        [
            ("是否存在未清缴缺口", "是" if comp.get("open_shortfall") else "否"),
            ("未清缴碳排放配额（吨）", figures.quantity(int(comp.get("carbon_open_shortfall_t", 0)))),
        ]
    )
    latest = comp.get("latest") or []
    if latest:
        doc.table(
            ["机制", "履约期", "状态", "缺口", "罚款（元）"],
            [
                [
                    str(x.get("scheme_code", "")),
                    str(x.get("period_code", "")),
                    str(x.get("status", "")),
                    figures.quantity(int(x.get("shortfall") or 0)),
                    figures.yuan(int(x.get("fine_fen") or 0)),
                ]
                for x in latest
            ],
            col_widths=[2, 2, 1, 2, 2],
            align_right=(3, 4),
        )
    else:
        doc.paragraph("登记簿中无该企业已结算的履约记录。")

    doc.heading("二、绿色贷款认定")
    loan = answer.get("green_loan", {})
    if loan.get("evaluated"):
        codes = loan.get("catalogue_codes") or {}
        doc.key_values(
            [
                ("是否认定为绿色贷款", "是" if loan.get("eligible") else "否"),
                ("适用目录版本", str(loan.get("catalogue_edition", ""))),
                ("适用目录编码", str(loan.get("catalogue_code", "") or "—")),
                ("能效水平", str(loan.get("benchmark_status", ""))),
                ("碳减排量测算方法", str(loan.get("co2_method", "") or "—")),
                ("未通过的条件", "、".join(loan.get("failed_gates") or []) or "无"),
            ]
        )
        if codes:
            doc.table(["目录版本", "项目编码"], [[k, str(v)] for k, v in codes.items()], col_widths=[3, 1])
        doc.table(
            ["条件", "测量值", "要求", "结果", "依据"],
            [
                [
                    str(g.get("label_zh", "")),
                    _show(g.get("measured"), str(g.get("unit", ""))),
                    _requirement(g),
                    "通过" if g.get("passed") else "未通过",
                    _citation(g.get("citation")),
                ]
                for g in loan.get("gates") or []
            ]
            or [["—", "—", "—", "—", "—"]],
            col_widths=[3, 2, 2, 1, 3],
        )
    else:
        doc.paragraph(f"未评估：{'、'.join(loan.get('missing_facts') or []) or loan.get('reason', '')}")

    doc.heading("三、环境违法核查")
    v = answer.get("violations_check", {})
    if v.get("checked"):
        doc.paragraph(
            ("回溯期内无重大环境违法行为。" if v.get("passed") else "回溯期内存在重大环境违法行为。")
            + f"（数据来源：{SOURCE_ZH.get(str(v.get('source', '')), v.get('source', ''))}）"
        )
    else:
        doc.paragraph(f"未核查：{v.get('reason', '')}")

    doc.heading("四、碳减排支持工具")
    tool = answer.get("carbon_tool", {})
    if tool.get("evaluated"):
        outputs = tool.get("outputs") or {}
        doc.key_values(
            [
                ("是否符合条件", "是" if tool.get("eligible") else "否"),
                ("再贷款金额", figures.yuan(int(outputs.get("relending_fen", 0)), unit=True)),
                ("再贷款利率", _show(int(outputs.get("relending_rate_bp", 0)), "bp")),
                ("未通过的条件", "、".join(tool.get("failed_gates") or []) or "无"),
            ]
        )
    else:
        doc.paragraph(f"未评估：{'、'.join(tool.get('missing_facts') or []) or tool.get('reason', '')}")

    doc.heading("五、电子签名")
    doc.key_values(
        [
            ("签名算法", signature.get("algorithm", "")),
            ("密钥标识", signature.get("key_id", "")),
            ("签名值（Base64）", signature.get("value", "")),
        ]
    )
    doc.paragraph(
        "签名针对查询结果的规范化 JSON（键排序、无空白、UTF-8）计算；公钥见 GET /verify/public-key。"
        "本报告仅基于企业授权范围内的登记簿数据及查询机构提供的项目信息。"
    )
    doc.verification_footer(str(report["code"]), VERIFY_HINT, verify_url(str(report["code"])))
    return doc.render()
