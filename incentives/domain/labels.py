"""Chinese words for the codes a determination's gates carry, for documents that print them (decision letters,
bank reports): comparators, units and the enumerated values of facts. A code not listed prints as it is, so a
new one shows up in tests/test_documents_fit.py, which fails on any English word in a PDF."""

from __future__ import annotations

import re

COMPARATOR_ZH: dict[str, str] = {
    "<=": "≤",
    ">=": "≥",
    "<": "<",
    ">": ">",
    "==": "=",
    "in": "属于",
    "not in": "不属于",
    "given": "已提供",
    "not both": "不得同时享受",
    "not before": "不早于",
    "not within": "不在以下期限内",
}
UNIT_ZH: dict[str, str] = {
    "policy year": "保险年度",
    "project year": "项目年度",
    "tax year": "纳税年度",
    "persons": "人",
    "years": "年",
    "months": "个月",
    "date": "",
}
VALUE_ZH: dict[str, str] = {
    # 产业结构调整指导目录 classes (fact industrial_structure_class)
    "encouraged": "鼓励类",
    "permitted": "允许类",
    "restricted": "限制类",
    "eliminated": "淘汰类",
    # 绿色信贷 activities and carbon-reduction-tool fields used by the bank programmes
    "wind_power": "风力发电",
    "solar_power": "太阳能发电",
    "hydro_power": "水力发电",
    "clean_energy": "清洁能源",
    "energy_saving_environmental": "节能环保",
    "carbon_reduction_technology": "碳减排技术",
    "True": "是",
    "False": "否",
}
_COUNT = re.compile(r"(?P<n>\d+) (?P<unit>years?|months?)")


def comparator_zh(code: str) -> str:
    return COMPARATOR_ZH.get(code, code)


def unit_zh(code: str) -> str:
    return UNIT_ZH.get(code, code)


def value_zh(text: str) -> str:
    """An enumerated value (or a comma-separated list of them, or a span such as "3 years") in Chinese."""
    if m := _COUNT.fullmatch(text):
        return f"{m['n']} {UNIT_ZH.get(m['unit'].rstrip('s') + 's', m['unit'])}"
    if "," in text:
        return "、".join(value_zh(part.strip()) for part in text.split(","))
    return VALUE_ZH.get(text, text)
