"""Resource comprehensive utilisation (资源综合利用): a VAT immediate refund and a CIT revenue reduction.

VAT (公告2021年第40号): refund = ⌈VAT paid on the qualifying item × the item's refund ratio⌋ (30/50/70/90/100 %
by catalogue item); not for a taxpayer graded C or D, nor after a disqualifying penalty (a fine above the
minor-penalty amount) in the look-back months counted back from the refund period, that month included.

CIT (公告2021年第36号; 实施条例 第九十九条): revenue from listed products counts at 90 %; the reduction
(10 % of that revenue) and the tax it saves at the statutory rate are the outputs. The product must meet
the standard and use at least the item's minimum share of comprehensive-utilisation resources.
"""

from __future__ import annotations

from core.figures import yuan
from incentives.domain.arith import BP, month_index, mul_div_half_up
from incentives.domain.facts import FactsError
from incentives.domain.params import Citation
from incentives.domain.programmes.common import catalogue_gate, key_of
from incentives.domain.rules import Context, GateSpec, OutputSpec, Programme

VAT_CODE = "resource_util_vat"
CIT_CODE = "resource_util_cit"
GRADES = ("A", "B", "M", "C", "D")
STANDARD = Citation("财政部 税务总局 国家发展改革委 生态环境部公告2021年第36号", "第二条")


def vat_rule(ctx: Context) -> None:
    grade = ctx.text("tax_credit_grade").upper()
    if grade not in GRADES:
        raise FactsError([("tax_credit_grade", f"must be one of {', '.join(GRADES)}")])
    excluded_grades = ctx.params.texts("ru_vat.excluded_credit_grades")
    lookback = ctx.params.number("ru_vat.penalty_lookback_months")
    minor_fen = ctx.params.number("ru_vat.minor_penalty_max_fen")

    item = catalogue_gate(ctx, "catalogue_listed", "catalogue.resource_util_vat", None, ctx.text("ru_vat_item_code"))
    ctx.gate("credit_grade", measured=grade, comparator="not in", threshold=",".join(excluded_grades), unit="",
             passed=grade not in excluded_grades, citation=ctx.params.citation("ru_vat.excluded_credit_grades"),
             remedy_en=f"tax credit grade {grade}: the refund needs a grade other than {'/'.join(excluded_grades)}",
             remedy_zh=f"纳税信用级别为{grade}级，不得享受即征即退")
    penalty_on = ctx.day("env_penalty_on")
    on_month = month_index(key_of(ctx.on))
    in_window = penalty_on is not None and on_month - lookback < month_index(key_of(penalty_on)) <= on_month
    fine = ctx.fen("env_penalty_fen") if in_window else 0
    first_month = month_index(key_of(penalty_on)) + lookback if penalty_on is not None else 0
    again = f"{first_month // 12:04d}-{first_month % 12 + 1:02d}"
    ctx.compare("no_recent_penalty", fine, "<=", minor_fen, "fen",
                ctx.params.citation("ru_vat.penalty_lookback_months"),
                what_en=f"penalty within {lookback} months (refund periods from {again} are clear)",
                what_zh=f"{lookback}个月内行政处罚罚款（{again}起的所属期不受影响）")

    ratio_bp = item.int_attr("refund_bp") if item is not None else 0
    refund = 0
    if ctx.eligible:
        payable = ctx.fen("ru_vat_payable_fen")
        refund = ctx.step("vat_refund", "增值税即征即退额", "VAT refunded", f"{yuan(payable)} × {ratio_bp}/10000",
                          mul_div_half_up(payable, ratio_bp, BP), "fen",
                          ctx.params.citation("catalogue.resource_util_vat"))
    ctx.out(refund_ratio_bp=ratio_bp if ctx.eligible else 0, vat_refund_fen=refund)


def cit_rule(ctx: Context) -> None:
    inclusion_bp = ctx.params.number("ru_cit.revenue_inclusion_bp")
    cit_bp = ctx.params.number("cit.standard_rate_bp")
    item = catalogue_gate(ctx, "catalogue_listed", "catalogue.resource_util_cit", None, ctx.text("ru_cit_item_code"))
    if item is not None:
        ctx.compare("resource_share", ctx.number("ru_cit_resource_share_bp"), ">=", item.int_attr("min_share_bp"), "bp",
                    ctx.params.citation("catalogue.resource_util_cit"),
                    what_en="share of comprehensive-utilisation resources", what_zh="综合利用资源占原料比重")
    ctx.require("meets_standard", ctx.flag("ru_cit_meets_standard"), True, STANDARD,
                remedy_en="the products must meet the national or industry standard",
                remedy_zh="产品须符合国家或行业相关标准")
    reduction = saving = 0
    if ctx.eligible:
        revenue = ctx.fen("ru_cit_revenue_fen")
        reduction = ctx.step("revenue_reduction", "减计收入额", "revenue not counted",
                             f"{yuan(revenue)} × (10000 − {inclusion_bp})/10000",
                             mul_div_half_up(revenue, BP - inclusion_bp, BP), "fen",
                             ctx.params.citation("ru_cit.revenue_inclusion_bp"))
        saving = ctx.step("tax_saving", "减少应纳税额（按法定税率估算）", "tax saved (at the statutory rate)",
                          f"{yuan(reduction)} × {cit_bp}/10000", mul_div_half_up(reduction, cit_bp, BP), "fen",
                          ctx.params.citation("cit.standard_rate_bp"))
    ctx.out(revenue_reduction_fen=reduction, tax_saving_fen=saving)


VAT_PROGRAMME = Programme(
    code=VAT_CODE,
    name_zh="资源综合利用增值税即征即退",
    name_en="Resource comprehensive utilisation: VAT immediate refund",
    summary="VAT refund at 30/50/70/90/100 % by catalogue item; not for credit grade C/D or after a "
            "disqualifying penalty in the look-back months.",
    on_meaning="any day of the refund period (month) claimed",
    citations=(
        Citation("财政部 税务总局公告2021年第40号", "第一条"),
        Citation("财政部 税务总局公告2021年第40号", "第三条"),
    ),
    facts=("ru_vat_item_code", "ru_vat_payable_fen", "tax_credit_grade", "env_penalty_on", "env_penalty_fen"),
    gates=(
        GateSpec("catalogue_listed", "列入资源综合利用产品和劳务增值税优惠目录", "item listed in the VAT catalogue"),
        GateSpec("credit_grade", "纳税信用级别不为C级或D级", "tax credit grade not C or D"),
        GateSpec("no_recent_penalty", "所属期前6个月内未受不得享受优惠的行政处罚",
                 "no disqualifying penalty in the look-back months"),
    ),
    outputs=(
        OutputSpec("refund_ratio_bp", "退税比例", "refund ratio"),
        OutputSpec("vat_refund_fen", "即征即退税额", "VAT refunded"),
    ),
    headline="vat_refund_fen",
    rule=vat_rule,
    headline_kind="tax_refund",
)

CIT_PROGRAMME = Programme(
    code=CIT_CODE,
    name_zh="资源综合利用企业所得税减计收入",
    name_en="Resource comprehensive utilisation: CIT revenue counted at 90 %",
    summary="Revenue from listed products made mainly from comprehensive-utilisation resources counts at 90 %.",
    on_meaning="any day of the tax year claimed",
    citations=(
        Citation("财政部 税务总局 国家发展改革委 生态环境部公告2021年第36号", "第一条"),
        Citation("中华人民共和国企业所得税法实施条例", "第九十九条"),
        STANDARD,
    ),
    facts=("ru_cit_item_code", "ru_cit_revenue_fen", "ru_cit_resource_share_bp", "ru_cit_meets_standard"),
    gates=(
        GateSpec("catalogue_listed", "列入资源综合利用企业所得税优惠目录", "product listed in the CIT catalogue"),
        GateSpec("resource_share", "综合利用资源占原料比重达到目录要求",
                 "resource share reaches the catalogue minimum"),
        GateSpec("meets_standard", "产品符合国家或行业标准", "product meets the standard"),
    ),
    outputs=(
        OutputSpec("revenue_reduction_fen", "减计收入额", "revenue not counted"),
        OutputSpec("tax_saving_fen", "减少应纳税额", "tax saved"),
    ),
    headline="tax_saving_fen",
    rule=cit_rule,
)
