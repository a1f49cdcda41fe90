"""First-set equipment (首台套) and first-batch new materials (首批次): insurance compensation and rewards.

Insurance compensation (财建〔2015〕19号): 80 % of the premium of a policy year, the premium counted at a rate
of at most 3 % of the insured value, for at most 3 policy years, equipment listed in the catalogue edition in
force on the first-insurance day. Two regimes are dated parameters: "2015" (the premium at the capped rate,
the 2015/2019 notices) and "2025" (the 2025 call: also never more than the premium actually paid), so
premium base = ⌈insured × min(rate, cap)⌋, and under "2025" min(that, paid); compensation = ⌈base × 80 %⌋.
Worked: insured 50,000,000 at 4 % → premium 2,000,000 → capped 1,500,000 → 1,200,000 per year.

**The policy year is derived, never typed** (a claimed "year 1" could otherwise be paid again years later).
Policy year 1 runs from the first-insurance day `fs_first_insured_on` up to the day before its first
anniversary, year N from the (N−1)-th anniversary up to the day before the N-th; the year claimed is the one
that contains the evaluation day `on` (0 before the first-insurance day, which fails `policy_year_started`).
Anniversaries keep the month and day; a policy first insured on 29 February has its anniversary on 1 March
of a common year (so its year ends on 28 February, the month end: 民法典 第二百零二条) and on 29 February of a
leap year. The derived year is the output `policy_year`. `fs_policy_year` stays an optional fact for
backwards compatibility: when sent it must equal the derived year, or the facts are refused (FactsError
naming `fs_policy_year`). `fs_compensated_policy_years` lists the policy years of this policy already
compensated, as whole numbers separated by ";" (or ","), e.g. "1;2" — plain text that a batch CSV carries as
is; empty means none. A claim for a listed year fails `policy_year_not_compensated`: each policy year is
compensated once (财建〔2015〕19号: compensation "per policy year", for at most 3 years).

Jiangxi reward (赣府厅发〔2021〕4号): ⌈sales × rate⌋, at most the per-item cap and what is left of the
per-producer cap (5,000,000 yuan). Exclusivity with insurance compensation is data: the parameter
`stacking.jx_first_set_reward.excludes` lists the programmes the reward excludes.

First batch (首批次): listed material bought directly by its end user (no related party, no trader), single
contract ≥ the minimum, not used in first-set equipment already compensated; compensation as above.
"""

from __future__ import annotations

import re
from datetime import date

from core.figures import yuan
from incentives.domain.arith import BP, mul_div_half_up
from incentives.domain.facts import FactsError
from incentives.domain.params import Citation
from incentives.domain.programmes.common import anniversary, catalogue_gate
from incentives.domain.rules import Context, GateSpec, OutputSpec, Programme

FS_CODE = "first_set_insurance"
JX_CODE = "jx_first_set_reward"
FB_CODE = "first_batch_materials"
REGIMES = ("2015", "2025")
FS_NOTICE = Citation("财建〔2015〕19号", "二、补偿标准")
JX_NOTICE = Citation("赣府厅发〔2021〕4号", "首台（套）奖励条款")
JX_RECOGNITION = Citation("江西省首台（套）重大技术装备认定管理暂行办法（2023年）", "第二章 认定条件")
FB_NOTICE = Citation("工信部联原〔2017〕222号", "二、补偿条件")


MAX_LISTED_POLICY_YEAR = 99
"""Highest policy year `fs_compensated_policy_years` may list (compensation stops far earlier)."""


def policy_year(first_insured: date, on: date) -> int:
    """The policy year containing `on` (1 from the first-insurance day; 0 before it)."""
    if on < first_insured:
        return 0
    years = on.year - first_insured.year
    return years + 1 if anniversary(first_insured, years) <= on else years


def parse_policy_years(text: str) -> tuple[frozenset[int], str | None]:
    """The policy years listed in `fs_compensated_policy_years` ("1;2"), or a problem message."""
    years: set[int] = set()
    for raw in re.split(r"[;,]", text):
        part = raw.strip()
        if not part:
            continue
        if not part.isascii() or not part.isdigit() or not 1 <= int(part) <= MAX_LISTED_POLICY_YEAR:
            return frozenset(), (f"must list policy years 1..{MAX_LISTED_POLICY_YEAR} separated by ';' "
                                 f"(e.g. '1;2'), got {part!r}")
        years.add(int(part))
    return frozenset(years), None


def premium_base(ctx: Context, prefix: str, insured: int, rate_bp: int) -> tuple[int, int]:
    """(capped premium, cap in bp): the premium counted at a rate of at most the cap."""
    cap_bp = ctx.params.number(f"{prefix}.premium_rate_cap_bp")
    base = ctx.step("premium_capped", "按费率上限计算的保费", "premium at the capped rate",
                    f"{yuan(insured)} × min({rate_bp}, {cap_bp})/10000",
                    mul_div_half_up(insured, min(rate_bp, cap_bp), BP), "fen",
                    ctx.params.citation(f"{prefix}.premium_rate_cap_bp"))
    return base, cap_bp


def fs_rule(ctx: Context) -> None:
    first_insured = ctx.day("fs_first_insured_on")
    assert first_insured is not None
    year = policy_year(first_insured, ctx.on)
    compensated, problem = parse_policy_years(ctx.text("fs_compensated_policy_years"))
    problems = [("fs_compensated_policy_years", problem)] if problem else []
    claimed = ctx.facts["fs_policy_year"]
    if claimed is not None and claimed != year:
        problems.append(("fs_policy_year", f"({claimed}) is not the policy year on {ctx.on.isoformat()} of a policy "
                                           f"first insured on {first_insured.isoformat()}, which is {year}"))
    if problems:
        raise FactsError(problems)
    regime = ctx.params.text("first_set.regime")
    if regime not in REGIMES:
        raise ValueError(f"first_set.regime must be one of {REGIMES}, got {regime!r}")
    share_bp = ctx.params.number("first_set.compensation_bp")
    ctx.params.number("first_set.premium_rate_cap_bp")
    max_years = ctx.params.number("first_set.max_policy_years")
    catalogue_gate(ctx, "catalogue_listed", "catalogue.first_set", ctx.day("fs_first_insured_on"),
                   ctx.text("fs_catalogue_code"))
    ctx.compare("policy_year", year, "<=", max_years, "policy year", ctx.params.citation("first_set.max_policy_years"),
                what_en="policy year", what_zh="保险年度")
    ctx.compare("policy_year_started", year, ">=", 1, "policy year", FS_NOTICE,
                what_en="policy year", what_zh="保险年度")
    listed = ";".join(str(y) for y in sorted(compensated))
    ctx.gate("policy_year_not_compensated", measured=year, comparator="not in", threshold=listed,
             unit="policy year", passed=year not in compensated, citation=FS_NOTICE,
             remedy_en=f"policy year {year} was already compensated (years compensated: {listed}); "
                       "each policy year is compensated once",
             remedy_zh=f"第{year}保险年度已获补偿（已补偿年度：{listed}），每个保险年度只补偿一次")
    base = compensation = 0
    if ctx.eligible:
        base, _ = premium_base(ctx, "first_set", ctx.fen("fs_insured_value_fen"), ctx.number("fs_premium_rate_bp"))
        if regime == "2025":
            paid = ctx.fen("fs_premium_paid_fen")
            base = ctx.step("premium_paid_cap", "不超过实际缴纳保费", "not above the premium actually paid",
                            f"min({yuan(base)}, {yuan(paid)})", min(base, paid), "fen",
                            ctx.params.citation("first_set.regime"))
        compensation = ctx.step("compensation", "保险补偿金额", "compensation",
                                f"{yuan(base)} × {share_bp}/10000", mul_div_half_up(base, share_bp, BP), "fen",
                                ctx.params.citation("first_set.compensation_bp"))
    ctx.findings["regime"] = regime
    ctx.out(premium_base_fen=base, compensation_fen=compensation, policy_year=year)


def jx_rule(ctx: Context) -> None:
    rate_bp = ctx.params.number("jx_first_set.reward_rate_bp")
    item_cap = ctx.params.number("jx_first_set.item_cap_fen")
    producer_cap = ctx.params.number("jx_first_set.producer_cap_fen")
    excludes = ctx.params.texts("stacking.jx_first_set_reward.excludes")
    ctx.require("recognised", ctx.flag("jx_recognised"), True, JX_RECOGNITION,
                remedy_en="the item must first be recognised as a provincial first set",
                remedy_zh="须先经省级首台（套）认定")
    awarded = ctx.fen("jx_producer_awarded_fen")
    ctx.compare("producer_cap_remaining", awarded, "<", producer_cap, "fen",
                ctx.params.citation("jx_first_set.producer_cap_fen"),
                what_en="rewards already granted to the producer", what_zh="该企业已获奖励")
    compensated = ctx.flag("fs_insurance_compensated")
    exclusive = FS_CODE in excludes
    ctx.gate("exclusive_with_insurance", measured=compensated, comparator="not both",
             threshold="exclusive" if exclusive else "stackable", unit="", passed=not (exclusive and compensated),
             citation=ctx.params.citation("stacking.jx_first_set_reward.excludes"),
             remedy_en="the item already received first-set insurance compensation, which this reward excludes",
             remedy_zh="该产品已享受首台（套）保险补偿，不得同时享受本奖励")
    before = reward = 0
    if ctx.eligible:
        sales = ctx.fen("jx_item_sales_fen")
        before = ctx.step("reward_before_caps", "按比例计算的奖励", "reward at the rate",
                          f"{yuan(sales)} × {rate_bp}/10000", mul_div_half_up(sales, rate_bp, BP), "fen",
                          ctx.params.citation("jx_first_set.reward_rate_bp"))
        left = producer_cap - awarded
        reward = ctx.step("reward", "奖励金额（单项及单户上限内）", "reward within the item and producer caps",
                          f"min({yuan(before)}, {yuan(item_cap)}, {yuan(left)})",
                          min(before, item_cap, left), "fen", ctx.params.citation("jx_first_set.item_cap_fen"))
    ctx.out(reward_before_caps_fen=before, reward_fen=reward)


def fb_rule(ctx: Context) -> None:
    share_bp = ctx.params.number("first_batch.compensation_bp")
    minimum = ctx.params.number("first_batch.min_contract_fen")
    ctx.params.number("first_batch.premium_rate_cap_bp")
    catalogue_gate(ctx, "catalogue_listed", "catalogue.first_batch", ctx.day("fb_contract_on"),
                   ctx.text("fb_catalogue_code"))
    ctx.require("end_user_purchase", ctx.flag("fb_buyer_is_end_user"), True, FB_NOTICE,
                remedy_en="the material must be bought by the user who applies it",
                remedy_zh="须由下游用户直接购买使用")
    ctx.require("not_related_party", ctx.flag("fb_related_party"), False, FB_NOTICE,
                remedy_en="a purchase between related parties does not qualify", remedy_zh="关联方之间的采购不予补偿")
    ctx.require("not_via_trader", ctx.flag("fb_via_trader"), False, FB_NOTICE,
                remedy_en="a purchase through a trader or agent does not qualify",
                remedy_zh="经贸易商或代理商采购不予补偿")
    ctx.compare("contract_minimum", ctx.fen("fb_contract_fen"), ">=", minimum, "fen",
                ctx.params.citation("first_batch.min_contract_fen"), what_en="single contract", what_zh="单笔合同金额")
    ctx.require("not_in_compensated_first_set", ctx.flag("fb_used_in_compensated_first_set"), False, FB_NOTICE,
                remedy_en="material used in first-set equipment already compensated is not compensated again",
                remedy_zh="已获首台（套）保险补偿装备所用材料不重复补偿")
    base = compensation = 0
    if ctx.eligible:
        base, _ = premium_base(ctx, "first_batch", ctx.fen("fb_insured_value_fen"), ctx.number("fb_premium_rate_bp"))
        compensation = ctx.step("compensation", "保险补偿金额", "compensation",
                                f"{yuan(base)} × {share_bp}/10000", mul_div_half_up(base, share_bp, BP), "fen",
                                ctx.params.citation("first_batch.compensation_bp"))
    ctx.out(premium_base_fen=base, compensation_fen=compensation)


FS_PROGRAMME = Programme(
    code=FS_CODE,
    name_zh="首台（套）重大技术装备保险补偿",
    name_en="First-set equipment insurance compensation",
    summary="80 % of the policy year's premium, counted at a rate of at most 3 % of the insured value, "
            "for at most 3 years, each policy year once; the policy year is derived from the first-insurance "
            "day; catalogue edition in force on the first-insurance day; 2025 regime also caps at the premium "
            "actually paid.",
    on_meaning="the day of the claim (selects the regime; the policy year containing it is the year claimed)",
    citations=(FS_NOTICE, Citation("首台（套）重大技术装备推广应用指导目录", "附件")),
    facts=("fs_catalogue_code", "fs_first_insured_on", "fs_policy_year", "fs_insured_value_fen", "fs_premium_rate_bp",
           "fs_premium_paid_fen", "fs_compensated_policy_years"),
    gates=(
        GateSpec("catalogue_listed", "列入首台（套）推广应用指导目录（首次投保时有效版本）",
                 "equipment listed in the catalogue edition in force on the first-insurance day"),
        GateSpec("policy_year", "补偿不超过3个保险年度", "policy year within the maximum"),
        GateSpec("policy_year_started", "保险年度自第1年起算", "policy year counted from 1"),
        GateSpec("policy_year_not_compensated", "该保险年度尚未获得补偿", "policy year not already compensated"),
    ),
    outputs=(
        OutputSpec("premium_base_fen", "计算补偿的保费", "premium counted"),
        OutputSpec("compensation_fen", "保险补偿金额", "compensation"),
        OutputSpec("policy_year", "保险年度", "policy year (derived from the first-insurance day)"),
    ),
    headline="compensation_fen",
    rule=fs_rule,
    headline_kind="subsidy",
)

JX_PROGRAMME = Programme(
    code=JX_CODE,
    name_zh="江西省首台（套）重大技术装备奖励",
    name_en="Jiangxi first-set reward",
    summary="Provincial reward for a recognised first set: a rate of sales, capped per item and at 5,000,000 yuan "
            "per producer; exclusive with insurance compensation where the scheme says so.",
    on_meaning="the day of the reward application",
    citations=(JX_NOTICE, JX_RECOGNITION),
    facts=("jx_recognised", "jx_item_sales_fen", "jx_producer_awarded_fen", "fs_insurance_compensated"),
    gates=(
        GateSpec("recognised", "经省级首台（套）认定", "recognised as a provincial first set"),
        GateSpec("producer_cap_remaining", "单户奖励未达上限", "producer cap not yet reached"),
        GateSpec("exclusive_with_insurance", "未同时享受保险补偿（互斥时）",
                 "not also compensated by insurance (where exclusive)"),
    ),
    outputs=(
        OutputSpec("reward_before_caps_fen", "按比例计算的奖励", "reward at the rate"),
        OutputSpec("reward_fen", "奖励金额", "reward"),
    ),
    headline="reward_fen",
    rule=jx_rule,
    headline_kind="subsidy",
    excludes_parameter="stacking.jx_first_set_reward.excludes",
)

FB_PROGRAMME = Programme(
    code=FB_CODE,
    name_zh="重点新材料首批次应用保险补偿",
    name_en="First-batch new materials insurance compensation",
    summary="Listed material bought directly by its end user (no related party, no trader), single contract at "
            "least the minimum, not used in compensated first-set equipment; 80 % of the capped premium.",
    on_meaning="the day of the claim",
    citations=(FB_NOTICE, Citation("重点新材料首批次应用示范指导目录", "附件")),
    facts=("fb_catalogue_code", "fb_contract_on", "fb_contract_fen", "fb_buyer_is_end_user", "fb_related_party",
           "fb_via_trader", "fb_used_in_compensated_first_set", "fb_insured_value_fen", "fb_premium_rate_bp"),
    gates=(
        GateSpec("catalogue_listed", "列入重点新材料首批次应用示范指导目录", "material listed in the catalogue"),
        GateSpec("end_user_purchase", "由下游用户直接购买", "bought by the end user"),
        GateSpec("not_related_party", "供需双方非关联方", "no related parties"),
        GateSpec("not_via_trader", "未经贸易商或代理商", "not through a trader"),
        GateSpec("contract_minimum", "单笔合同金额达到下限", "single contract at least the minimum"),
        GateSpec("not_in_compensated_first_set", "未用于已获补偿的首台（套）装备",
                 "not used in compensated first-set equipment"),
    ),
    outputs=(
        OutputSpec("premium_base_fen", "计算补偿的保费", "premium counted"),
        OutputSpec("compensation_fen", "保险补偿金额", "compensation"),
    ),
    headline="compensation_fen",
    rule=fb_rule,
    headline_kind="subsidy",
)
