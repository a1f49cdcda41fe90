"""R&D super deduction (研发费用加计扣除): an extra deduction of expensed R&D costs and R&D intangibles.

Formula, in fen: eligible core = core − fiscal-funded core; eligible other = other − fiscal-funded other;
cap = ⌊eligible core × 10/90⌋; base = eligible core + min(eligible other, cap);
extra = ⌈base × extra rate⌋ + ⌈amortisation × (amortisation rate − 100 %)⌋ (⌈⌋ = half up);
tax saving = ⌈extra × statutory CIT rate⌋ (an estimate of the tax cost, at 25 %).

The excluded-industry test: an enterprise whose excluded-industry revenue is **more than** 50 % of its
revenue does not qualify. domain.md says "≥ 50 %"; 国家税务总局公告2015年第97号 第四条 says "50%（不含）以上",
so exactly 50 % still qualifies here.
"""

from __future__ import annotations

from core.figures import yuan
from incentives.domain.arith import BP, mul_div_floor, mul_div_half_up
from incentives.domain.params import Citation
from incentives.domain.programmes.common import not_more_than
from incentives.domain.rules import Context, GateSpec, OutputSpec, Programme

CODE = "rd_super_deduction"
FISCAL_FUNDS = Citation("国家税务总局公告2015年第97号", "第二条第（三）项")
EXCLUDED_INDUSTRIES = Citation("财税〔2015〕119号", "第四条")


def rule(ctx: Context) -> None:
    core, other = ctx.fen("rd_core_costs_fen"), ctx.fen("rd_other_costs_fen")
    fiscal_core, fiscal_other = ctx.fen("rd_fiscal_funded_core_fen"), ctx.fen("rd_fiscal_funded_other_fen")
    revenue, excluded = ctx.fen("total_revenue_fen"), ctx.fen("excluded_industry_revenue_fen")
    not_more_than([
        ("rd_fiscal_funded_core_fen", fiscal_core, "rd_core_costs_fen", core),
        ("rd_fiscal_funded_other_fen", fiscal_other, "rd_other_costs_fen", other),
        ("excluded_industry_revenue_fen", excluded, "total_revenue_fen", revenue),
    ])
    share_bp = ctx.params.number("rd.excluded_industry_share_bp")
    ctx.share("industry_not_excluded", excluded, revenue, "<=", share_bp,
              ctx.params.citation("rd.excluded_industry_share_bp"), numerator_unit="fen",
              what_en="excluded-industry revenue", what_zh="不适用行业收入")
    # Every parameter is read before deciding, so that "in force" does not depend on eligibility.
    cit_bp = ctx.params.number("cit.standard_rate_bp")
    cap_ratio = ctx.params.ratio("rd.other_costs_cap")
    extra_bp = ctx.params.number("rd.extra_deduction_bp")
    amort_bp = ctx.params.number("rd.intangible_amortisation_bp")
    if not ctx.eligible:
        ctx.out(other_costs_cap_fen=0, deduction_base_fen=0, extra_deduction_fen=0, tax_saving_fen=0)
        return
    eligible_core = ctx.step("eligible_core", "可加计扣除的前五项费用", "eligible core costs",
                             f"{yuan(core)} − {yuan(fiscal_core)}", core - fiscal_core, "fen", FISCAL_FUNDS)
    eligible_other = other - fiscal_other
    cap = ctx.step("other_costs_cap", "其他相关费用限额", "cap on other related costs",
                   f"{yuan(eligible_core)} × {cap_ratio.text}",
                   mul_div_floor(eligible_core, cap_ratio.numerator, cap_ratio.denominator), "fen",
                   ctx.params.citation("rd.other_costs_cap"))
    allowed_other = min(eligible_other, cap)
    base = ctx.step("deduction_base", "可加计扣除研发费用", "R&D costs eligible for the extra deduction",
                    f"{yuan(eligible_core)} + min({yuan(eligible_other)}, {yuan(cap)})",
                    eligible_core + allowed_other, "fen")
    extra_expensed = mul_div_half_up(base, extra_bp, BP)
    amortisation = ctx.fen("rd_intangible_amortisation_fen")
    extra_intangible = mul_div_half_up(amortisation, amort_bp - BP, BP)
    ctx.step("extra_expensed", "费用化研发费用加计扣除", "extra deduction of expensed R&D",
             f"{yuan(base)} × {extra_bp}/10000", extra_expensed, "fen",
             ctx.params.citation("rd.extra_deduction_bp"))
    ctx.step("extra_intangible", "无形资产加计摊销", "extra amortisation of R&D intangibles",
             f"{yuan(amortisation)} × ({amort_bp} − 10000)/10000", extra_intangible, "fen",
             ctx.params.citation("rd.intangible_amortisation_bp"))
    extra = extra_expensed + extra_intangible
    saving = ctx.step("tax_saving", "减少应纳税额（按法定税率估算）", "tax saved (at the statutory rate)",
                      f"{yuan(extra)} × {cit_bp}/10000", mul_div_half_up(extra, cit_bp, BP), "fen",
                      ctx.params.citation("cit.standard_rate_bp"))
    ctx.out(other_costs_cap_fen=cap, deduction_base_fen=base, extra_deduction_fen=extra, tax_saving_fen=saving)


PROGRAMME = Programme(
    code=CODE,
    name_zh="研发费用加计扣除",
    name_en="R&D super deduction",
    summary="Extra deduction of expensed R&D (100 % from 2023) and R&D intangibles amortised at 200 %; "
            "excluded industries; other related costs capped at core × 10/90; fiscal-funded costs excluded.",
    on_meaning="any day of the tax year claimed",
    citations=(
        Citation("财政部 税务总局公告2023年第7号", "第一条"),
        EXCLUDED_INDUSTRIES,
        Citation("国家税务总局公告2015年第97号", "第四条"),
        Citation("国家税务总局公告2021年第28号", "第二条"),
        FISCAL_FUNDS,
    ),
    facts=("total_revenue_fen", "excluded_industry_revenue_fen", "rd_core_costs_fen", "rd_other_costs_fen",
           "rd_fiscal_funded_core_fen", "rd_fiscal_funded_other_fen", "rd_intangible_amortisation_fen"),
    gates=(GateSpec("industry_not_excluded", "不属于不适用加计扣除政策的行业（收入占比不超过50%）",
                    "excluded-industry revenue not above 50 % of revenue"),),
    outputs=(
        OutputSpec("other_costs_cap_fen", "其他相关费用限额", "cap on other related costs"),
        OutputSpec("deduction_base_fen", "可加计扣除研发费用", "R&D costs eligible"),
        OutputSpec("extra_deduction_fen", "加计扣除额", "extra deduction"),
        OutputSpec("tax_saving_fen", "减少应纳税额", "tax saved"),
    ),
    headline="tax_saving_fen",
    rule=rule,
)
