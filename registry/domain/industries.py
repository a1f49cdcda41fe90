"""Names of the national economic industry classes (GB/T 4754-2017 国民经济行业分类) that the registry's
enterprises are filed under: the classes of the sectors in the Jiangxi plan (server/scenarios/jiangxi/
scenario.yaml: power, steel, cement, ceramics, copper, petrochemicals, paper) and the renewable power classes.
Documents print a code with its name ("C3011 水泥制造"); a code not listed here prints alone."""

from __future__ import annotations

INDUSTRY_ZH: dict[str, str] = {
    "C2211": "木竹浆制造",
    "C2221": "机制纸及纸板制造",
    "C2511": "原油加工及石油制品制造",
    "C2614": "有机化学原料制造",
    "C2621": "氮肥制造",
    "C2651": "初级形态塑料及合成树脂制造",
    "C3011": "水泥制造",
    "C3071": "建筑陶瓷制品制造",
    "C3072": "卫生陶瓷制品制造",
    "C3073": "特种陶瓷制品制造",
    "C3074": "日用陶瓷制品制造",
    "C3110": "炼铁",
    "C3120": "炼钢",
    "C3130": "钢压延加工",
    "C3140": "铁合金冶炼",
    "C3211": "铜冶炼",
    "C3251": "铜压延加工",
    "D4411": "火力发电",
    "D4412": "热电联产",
    "D4413": "水力发电",
    "D4414": "核力发电",
    "D4415": "风力发电",
    "D4416": "太阳能发电",
    "D4417": "生物质能发电",
}


def industry_label(code: str) -> str:
    """ "C3011" → "C3011 水泥制造"; an unlisted code as it is."""
    name = INDUSTRY_ZH.get(code)
    return f"{code} {name}" if name else code
