"""The account statement (账户对账单) as a PDF in Chinese: holder, holdings with serial ranges, recent transactions,
and the verification code (with a QR code of its public page) of the statement put on record by
`registry.holdings.statement_data`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from core import figures
from core.clock import SHANGHAI
from core.pdf import Document, verify_url
from registry.domain.instruments import KIND_RULES, Kind

CODE_ZH = {
    "issuance": "签发",
    "allocation": "分配",
    "transfer": "转让",
    "surrender": "清缴",
    "retirement": "注销（自愿/绿电消费声明）",
    "cancellation": "注销（主管部门）",
    "expiry": "过期核销",
    "freeze": "冻结",
    "allocation_reversal": "分配撤回",
    "forced_surrender": "代为清缴",
    "reserve_funding": "储备注资",
    "unfreeze": "解冻",
    "trade": "交易成交",
}
STATUS_ZH = {
    "completed": "已完成",
    "awaiting_approval": "待复核",
    "approved": "已复核待执行",
    "rejected": "已驳回",
    "active": "冻结中",
    "released": "已解冻",
    "cancelled": "已取消",
}
ACCOUNT_ZH = {"holding": "持有账户", "trading": "交易账户", "allocation": "分配账户"}
# The same words as the workbench (web/messages/enterprise.yaml, ent.account_status.*).
ACCOUNT_STATUS_ZH = {"open": "正常", "frozen": "已冻结", "closed": "已关闭", "suspended": "已暂停"}


def _quantity_of(t: Any) -> str:
    """A transaction's quantity in the human form; its scale is the number of decimals of the plain form."""
    return figures.quantity(t.quantity_base, len(t.quantity.partition(".")[2]))


def render_statement(data: dict[str, Any], *, generated_at: dt.datetime) -> bytes:
    acc = data["account"]
    org = data["organisation"]
    ent = data["enterprise"]
    holdings = data["holdings"]
    txs = data["transactions"]
    meta = {
        "账户编号": str(acc.id),
        "账户类型": ACCOUNT_ZH.get(acc.type, acc.type),
        "账户状态": ACCOUNT_STATUS_ZH.get(acc.status, acc.status),
        "账户持有人": org.name if org else "",
    }
    if ent is not None:
        meta["统一社会信用代码"] = ent.uscc
        meta["所在城市"] = ent.city
    doc = Document("账户对账单", "江西省环境权益登记簿", meta, generated_at=generated_at)
    doc.heading("一、持有情况")
    rows = []
    for h in holdings:
        inst = h.instrument
        rule = KIND_RULES[Kind(inst.kind)]
        first = h.serial_blocks[0].first if h.serial_blocks else "—"
        last = h.serial_blocks[-1].last if h.serial_blocks else "—"
        rows.append(
            [
                rule.label_zh,
                inst.code,
                f"{figures.quantity(h.balance_base, rule.scale)} {rule.display_unit}",
                f"{figures.quantity(h.available_base, rule.scale)} {rule.display_unit}",
                f"{figures.quantity(h.balance_base - h.available_base, rule.scale)} {rule.display_unit}",
                f"{first}\n至 {last}（{len(h.serial_blocks)} 段）",
            ]
        )
    if rows:
        doc.table(
            ["品种", "单位类别", "余额", "可用", "冻结/挂起", "序列号范围"],
            rows,
            align_right=(2, 3, 4),
        )
    else:
        doc.paragraph("本账户暂无持有。")
    doc.heading("二、最近交易（最多 200 笔）")
    tx_rows = [
        [
            str(t.id),
            t.created_at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M"),
            CODE_ZH.get(t.code, t.code),
            t.instrument_code,
            ("-" if t.from_account_id == acc.id else "+") + _quantity_of(t),
            STATUS_ZH.get(t.status, t.status),
        ]
        for t in txs
    ]
    if tx_rows:
        doc.table(
            ["编号", "时间（北京时间）", "类型", "单位类别", "数量", "状态"],
            tx_rows,
            align_right=(4,),
        )
    else:
        doc.paragraph("本账户暂无交易记录。")
    doc.verification_footer(data["code"], "本对账单数据以登记簿记录为准", url=verify_url(data["code"]))
    return doc.render()
