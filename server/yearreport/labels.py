"""The Chinese names the report prints for codes stored in the database (programmes, kinds, statuses)."""

from __future__ import annotations

PROGRAMMES = {
    "first_set_insurance": "首台（套）重大技术装备保险补偿",
    "jx_first_set_reward": "江西省首台（套）奖励",
    "first_batch_materials": "重点新材料首批次应用",
}
SCHEME_KINDS = {"carbon": "碳排放", "energy": "用能权", "discharge": "排污权", "green_power": "绿电消纳"}
INSTRUMENT_KINDS = {
    "cea": "碳排放配额",
    "ccer": "国家核证自愿减排量",
    "energy_use": "用能权",
    "gec": "绿色电力证书",
    "discharge": "排污权",
}
STATUSES = {"A": "A 已履约", "B": "B 未足额清缴", "C": "C 未报告"}
PERIOD_STATUSES = {"open": "未结算", "settling": "结算中", "settled": "已结算"}
NOTICE_STATUSES = {"unpaid": "未缴纳", "paid": "已缴纳", "none": "未开具"}
VENUES = {
    "listed": "挂牌协议",
    "continuous": "连续竞价",
    "block": "大宗协议",
    "one-way-auction": "单向竞价",
    "primary-auction": "配额拍卖",
}


def name_of(table: dict[str, str], code: str) -> str:
    """The Chinese name of `code`, or the code itself for one this table does not know (a new programme)."""
    return table.get(code, code)
