"""High-tech enterprise (高新技术企业): CIT at 15 % for a recognised enterprise.

The recognition tests of 国科发火〔2016〕32号 第十一条 that are numbers are gates here: R&D intensity over the last
three years by the latest year's sales band (≥ 5 % up to 50 M yuan inclusive, ≥ 4 % up to 200 M inclusive,
≥ 3 % above), R&D in China ≥ 60 % of R&D, high-tech revenue ≥ 60 % of revenue, S&T staff ≥ 10 % of staff;
and core IP and no major incident in the year. Shares are decided by cross-multiplying integers, so 4.999 %
never passes a 5 % gate. Tax saved = ⌈(taxable income − income relieved elsewhere) × (25 % − 15 %)⌋.

Income relieved elsewhere: a §88 project's income in its 三免三减半 years is accounted for separately and
taxed at the statutory 25 %, exempt or halved (国税函〔2010〕157号 第一条第（三）项); the emc_project programme
takes it, so the 15 % rate applies to the rest only. In one evaluation the engine passes the eligible
project's income here (`income_relieved_elsewhere_fen`); it is never relieved twice. When the project's
income exceeds the taxable income (losses elsewhere), nothing is left at 15 %.
"""

from __future__ import annotations

from core.figures import yuan
from incentives.domain.arith import BP, mul_div_half_up
from incentives.domain.params import Citation
from incentives.domain.programmes import emc
from incentives.domain.programmes.common import not_more_than
from incentives.domain.rules import Context, GateSpec, OutputSpec, Programme

CODE = "high_tech"
RECOGNITION = Citation("国科发火〔2016〕32号", "第十一条")
PROJECT_INCOME = Citation("国税函〔2010〕157号", "第一条第（三）项")


def band_threshold_bp(ctx: Context, sales_fen: int) -> int:
    """The R&D intensity required for the latest year's sales (bands are inclusive at their top)."""
    small_max = ctx.params.number("hnte.band_small_max_fen")
    medium_max = ctx.params.number("hnte.band_medium_max_fen")
    small = ctx.params.number("hnte.rd_intensity_small_bp")
    medium = ctx.params.number("hnte.rd_intensity_medium_bp")
    large = ctx.params.number("hnte.rd_intensity_large_bp")
    if sales_fen <= small_max:
        return small
    if sales_fen <= medium_max:
        return medium
    return large


def rule(ctx: Context) -> None:
    rd, rd_domestic = ctx.fen("rd_expense_3y_fen"), ctx.fen("rd_domestic_3y_fen")
    sales, hightech = ctx.fen("sales_revenue_fen"), ctx.fen("hightech_revenue_fen")
    staff, tech = ctx.number("staff_total"), ctx.number("tech_staff")
    not_more_than([
        ("rd_domestic_3y_fen", rd_domestic, "rd_expense_3y_fen", rd),
        ("hightech_revenue_fen", hightech, "sales_revenue_fen", sales),
        ("tech_staff", tech, "staff_total", staff),
    ])
    cit_bp = ctx.params.number("cit.standard_rate_bp")
    hnte_bp = ctx.params.number("hnte.rate_bp")
    threshold = band_threshold_bp(ctx, sales)
    ctx.share("rd_intensity", rd, ctx.fen("revenue_3y_fen"), ">=", threshold,
              ctx.params.citation("hnte.rd_intensity_small_bp"), numerator_unit="fen",
              what_en="R&D expenses (3 years)", what_zh="近三年研发费用")
    ctx.share("domestic_rd_share", rd_domestic, rd, ">=", ctx.params.number("hnte.domestic_rd_min_bp"),
              ctx.params.citation("hnte.domestic_rd_min_bp"), numerator_unit="fen",
              what_en="R&D expenses in China (3 years)", what_zh="境内研发费用")
    ctx.share("hightech_revenue_share", hightech, sales, ">=", ctx.params.number("hnte.hightech_revenue_min_bp"),
              ctx.params.citation("hnte.hightech_revenue_min_bp"), numerator_unit="fen",
              what_en="high-tech revenue", what_zh="高新技术产品（服务）收入")
    ctx.share("tech_staff_share", tech, staff, ">=", ctx.params.number("hnte.tech_staff_min_bp"),
              ctx.params.citation("hnte.tech_staff_min_bp"), numerator_unit="persons",
              what_en="S&T staff", what_zh="科技人员")
    ctx.require("core_ip", ctx.flag("owns_core_ip"), True, RECOGNITION,
                remedy_en="the enterprise must own core IP of its main products",
                remedy_zh="须拥有对主要产品在技术上发挥核心支持作用的知识产权")
    ctx.require("no_major_incident", ctx.flag("major_incident_in_year"), False, RECOGNITION,
                remedy_en="a major safety, quality or environmental incident in the year bars recognition",
                remedy_zh="申请认定前一年内发生重大安全、重大质量事故或严重环境违法行为的不予认定")
    saving = base = 0
    relieved = ctx.fen("income_relieved_elsewhere_fen")
    if relieved:
        ctx.findings["income_relieved_by"] = emc.CODE
    if ctx.eligible:
        income = ctx.fen("taxable_income_fen")
        base = income
        if relieved:
            base = ctx.step("income_at_hnte_rate", "适用15%税率的所得（扣除三免三减半项目所得）",
                            "income at the 15 % rate (less the §88 project's income, relieved by emc_project)",
                            f"max(0, {yuan(income)} − {yuan(relieved)})", max(0, income - relieved),
                            "fen", PROJECT_INCOME)
        saving = ctx.step("tax_saving", "减按15%税率征收减少的税额", "tax saved by the 15 % rate",
                          f"{yuan(base)} × ({cit_bp} − {hnte_bp})/10000",
                          mul_div_half_up(base, cit_bp - hnte_bp, BP), "fen", ctx.params.citation("hnte.rate_bp"))
    ctx.out(rd_intensity_threshold_bp=threshold, cit_rate_bp=hnte_bp if ctx.eligible else cit_bp,
            income_at_hnte_rate_fen=base, tax_saving_fen=saving)


PROGRAMME = Programme(
    code=CODE,
    name_zh="高新技术企业所得税优惠",
    name_en="High-tech enterprise 15 % rate",
    summary="15 % CIT rate; R&D intensity ≥ 5 % / 4 % / 3 % by sales band (≤ 50 M, 50–200 M, > 200 M yuan); "
            "R&D in China, high-tech revenue and S&T staff shares; core IP; no major incident.",
    on_meaning="any day of the tax year claimed",
    citations=(Citation("中华人民共和国企业所得税法", "第二十八条第二款"), RECOGNITION),
    facts=("sales_revenue_fen", "revenue_3y_fen", "rd_expense_3y_fen", "rd_domestic_3y_fen", "hightech_revenue_fen",
           "tech_staff", "staff_total", "owns_core_ip", "major_incident_in_year", "taxable_income_fen",
           "income_relieved_elsewhere_fen"),
    gates=(
        GateSpec("rd_intensity", "近三年研发费用占销售收入比例达到要求", "R&D intensity reaches the band's minimum"),
        GateSpec("domestic_rd_share", "境内研发费用占比不低于60%", "R&D in China at least 60 %"),
        GateSpec("hightech_revenue_share", "高新技术产品（服务）收入占比不低于60%", "high-tech revenue at least 60 %"),
        GateSpec("tech_staff_share", "科技人员占职工总数比例不低于10%", "S&T staff at least 10 %"),
        GateSpec("core_ip", "拥有核心自主知识产权", "owns core IP"),
        GateSpec("no_major_incident", "未发生重大安全、质量事故或严重环境违法行为", "no major incident"),
    ),
    outputs=(
        OutputSpec("rd_intensity_threshold_bp", "研发费用比例要求", "R&D intensity required"),
        OutputSpec("cit_rate_bp", "适用税率", "CIT rate"),
        OutputSpec("income_at_hnte_rate_fen", "适用15%税率的所得", "income at the 15 % rate"),
        OutputSpec("tax_saving_fen", "减少应纳税额", "tax saved"),
    ),
    headline="tax_saving_fen",
    rule=rule,
)
