"""Green-loan eligibility (for banks) and the PBoC carbon emission reduction support tool.

Green loan: the catalogue edition is the one in force on the loan's **approval day**, so a loan approved
before a new edition takes effect keeps its classification (grandfathering), whatever day the bank asks.
Gates: the activity is listed; energy efficiency (an exact decimal, compared in thousandths of the benchmark's
unit) no worse than the 基准 level of its product (a negative signal otherwise) and, where the catalogue item
demands it, at the 标杆 level (发改产业〔2021〕1609号); the enterprise's class is not restricted or eliminated
(产业结构调整指导目录); no major environmental violation in the look-back years; no open carbon compliance
shortfall (a fact from the registry, as of the assessment day). The findings carry the activity's code under
every catalogue edition known, the benchmark status and the CO2 estimate's method.

Carbon tool: the PBoC relends ⌈60 % of the qualifying principal⌋ at the tool's rate in force on the
relending day (1.75 % from 2021-11-08, 1.50 % from 2025-05-08, 1.25 % from 2026-01-19); the loan must be in a
supported field, from a covered lender, with a disclosed positive CO2 reduction.
"""

from __future__ import annotations

from core.figures import yuan
from incentives.domain.arith import BP, MILLI, key_text, mul_div_half_up, years_after
from incentives.domain.facts import FactsError
from incentives.domain.params import Catalogue, Citation
from incentives.domain.programmes.common import catalogue_gate, key_of
from incentives.domain.rules import Context, GateSpec, OutputSpec, Programme

GL_CODE = "green_loan"
CT_CODE = "carbon_reduction_tool"
CLASSES = ("encouraged", "permitted", "restricted", "eliminated")
COMPLIANCE = Citation("碳排放权交易管理暂行条例（国务院令第775号）", "第二十四条")
CT_NOTICE = Citation("中国人民银行 碳减排支持工具（2021年11月8日）", "支持领域与信息披露要求")


PRODUCT_LABELS = {
    "cement_clinker": ("clinker", "水泥熟料"),
    "bf_ironmaking": ("blast-furnace ironmaking", "高炉工序"),
    "bof_steelmaking": ("BOF steelmaking", "转炉工序"),
    "electrolytic_aluminium": ("electrolytic aluminium", "电解铝"),
}
"""Display names of the benchmark products (labels only; the numbers are parameters)."""


def benchmark_milli(level: int) -> int:
    """A benchmark level (an `int` parameter: the 1609号 levels of these products are whole numbers of their
    unit) in thousandths, the scale of the `energy_intensity` fact, so the two compare exactly."""
    return level * MILLI


def _product_unit(ctx: Context, product: str) -> str:
    return ctx.params.entry(f"benchmark.{product}.baseline").unit


def gl_rule(ctx: Context) -> None:
    product = ctx.text("benchmark_product")
    klass = ctx.text("industrial_structure_class")
    if klass not in CLASSES:
        raise FactsError([("industrial_structure_class", f"must be one of {', '.join(CLASSES)}")])
    if product and f"benchmark.{product}.baseline" not in ctx.params.params.names():
        raise FactsError([("benchmark_product", f"no energy benchmark is defined for {product!r}")])
    intensity_value = ctx.milli("energy_intensity")
    if product and intensity_value is None:
        raise FactsError([("energy_intensity", "is required when benchmark_product is given")])
    intensity = intensity_value if intensity_value is not None else 0  # thousandths of the benchmark's unit
    restricted = ctx.params.texts("green_loan.restricted_classes")
    lookback = ctx.params.number("green_loan.violation_lookback_years")
    approved = ctx.day("loan_approved_on")
    assert approved is not None
    activity = ctx.text("green_activity")

    item = catalogue_gate(ctx, "catalogue_listed", "catalogue.green", approved, activity, key="activity")
    catalogue = ctx.params.catalogue("catalogue.green", approved)
    ctx.findings["catalogue_edition"] = catalogue.edition
    ctx.findings["catalogue_code"] = item.code if item else ""
    for entry in ctx.params.editions("catalogue.green"):
        other = entry.value
        assert isinstance(other, Catalogue)
        found = other.find_by("activity", activity)
        ctx.findings[f"code[{other.edition}]"] = found.code if found else "—"

    if product:
        label_en, label_zh = PRODUCT_LABELS.get(product, (product, product))
        unit = _product_unit(ctx, product)
        baseline = benchmark_milli(ctx.params.number(f"benchmark.{product}.baseline"))
        advanced = benchmark_milli(ctx.params.number(f"benchmark.{product}.advanced"))
        ctx.compare("energy_baseline", intensity, "<=", baseline, unit,
                    ctx.params.citation(f"benchmark.{product}.baseline"),
                    what_en=label_en, what_zh=label_zh, reaches_en="reaches 基准", reaches_zh="达到基准水平",
                    milli=True)
        ctx.findings["benchmark_status"] = (
            "标杆" if intensity <= advanced else "基准–标杆" if intensity <= baseline else "低于基准"
        )
        if item is not None and item.bool_attr("requires_benchmark"):
            ctx.compare("energy_advanced", intensity, "<=", advanced, unit,
                        ctx.params.citation(f"benchmark.{product}.advanced"),
                        what_en=label_en, what_zh=label_zh, reaches_en="reaches 标杆", reaches_zh="达到标杆水平",
                        milli=True)
    elif item is not None and item.bool_attr("requires_benchmark"):
        ctx.gate("energy_advanced", measured=None, comparator="<=", threshold="标杆", unit="", passed=False,
                 citation=ctx.params.citation("catalogue.green", approved),
                 remedy_en="this catalogue item requires the 标杆 level: give the benchmark product and intensity",
                 remedy_zh="该目录项目要求达到能效标杆水平，请提供产品及能耗")
    ctx.gate("not_restricted", measured=klass, comparator="not in", threshold=",".join(restricted), unit="",
             passed=klass not in restricted, citation=ctx.params.citation("green_loan.restricted_classes"),
             remedy_en=f"class {klass} under 产业结构调整指导目录 is excluded from green credit",
             remedy_zh="属于产业结构调整指导目录限制类或淘汰类")
    violation = ctx.day("last_major_env_violation_on")
    on_key, v_key = key_of(ctx.on), key_of(violation)
    within = violation is not None and years_after(on_key, -lookback) < v_key <= on_key
    clear_from = years_after(v_key, lookback)
    ctx.gate("no_major_violation", measured=violation.isoformat() if violation else None, comparator="not within",
             threshold=f"{lookback} years", unit="", passed=not within,
             citation=ctx.params.citation("green_loan.violation_lookback_years"),
             remedy_en=f"major environmental violation within {lookback} years: clear from {key_text(clear_from)}",
             remedy_zh=f"{lookback}年内有重大环境违法行为，{key_text(clear_from)}后方可")
    ctx.compare("carbon_compliant", ctx.number("carbon_open_shortfall_t"), "<=", 0, "tCO2e", COMPLIANCE,
                what_en="open carbon compliance shortfall", what_zh="未清缴碳排放配额缺口")
    reduction = ctx.number("baseline_emissions_t") - ctx.number("project_emissions_t")
    ctx.findings["co2_method"] = ctx.text("co2_method")
    principal = ctx.fen("loan_principal_fen") if ctx.eligible else 0
    ctx.out(eligible_principal_fen=principal, co2_reduction_t=reduction)


def ct_rule(ctx: Context) -> None:
    share_bp = ctx.params.number("carbon_tool.relending_share_bp")
    rate_bp = ctx.params.number("carbon_tool.rate_bp")
    fields = ctx.params.texts("carbon_tool.fields")
    field = ctx.text("carbon_tool_field")
    ctx.gate("field_supported", measured=field, comparator="in", threshold=",".join(fields), unit="",
             passed=field in fields, citation=ctx.params.citation("carbon_tool.fields"),
             remedy_en=f"the tool supports loans in {', '.join(fields)} only",
             remedy_zh="碳减排支持工具仅支持清洁能源、节能环保、碳减排技术三个领域")
    ctx.require("lender_eligible", ctx.flag("lender_eligible"), True, CT_NOTICE,
                remedy_en="the lender must be a financial institution covered by the tool",
                remedy_zh="发放贷款的金融机构须属于支持范围")
    reduction = ctx.number("baseline_emissions_t") - ctx.number("project_emissions_t")
    ctx.compare("co2_reduction_positive", reduction, ">", 0, "tCO2e", CT_NOTICE,
                what_en="estimated annual CO2 reduction", what_zh="测算的年碳减排量")
    method = ctx.text("co2_method")
    ctx.gate("co2_method_disclosed", measured=method or None, comparator="given", threshold="method", unit="",
             passed=bool(method), citation=CT_NOTICE,
             remedy_en="disclose the method of the CO2 reduction estimate", remedy_zh="须披露碳减排量测算方法")
    relending = interest = 0
    if ctx.eligible:
        principal = ctx.fen("loan_principal_fen")
        relending = ctx.step("relending", "再贷款金额", "relending", f"{yuan(principal)} × {share_bp}/10000",
                             mul_div_half_up(principal, share_bp, BP), "fen",
                             ctx.params.citation("carbon_tool.relending_share_bp"))
        interest = ctx.step("annual_interest", "再贷款年利息", "annual interest on the relending",
                            f"{yuan(relending)} × {rate_bp}/10000", mul_div_half_up(relending, rate_bp, BP),
                            "fen", ctx.params.citation("carbon_tool.rate_bp"))
    ctx.out(relending_fen=relending, relending_rate_bp=rate_bp, annual_interest_fen=interest)


GL_PROGRAMME = Programme(
    code=GL_CODE,
    name_zh="绿色贷款认定",
    name_en="Green loan eligibility",
    summary="Activity in the green catalogue edition in force on the approval day (grandfathered), energy "
            "efficiency against 标杆/基准, not restricted, no major violation, no open carbon shortfall; the "
            "CO2 reduction estimate and its method.",
    on_meaning="the day of the bank's assessment (benchmarks, restricted list and look-back); the catalogue "
               "edition follows loan_approved_on",
    citations=(
        Citation("绿色产业指导目录（2019年版）（发改环资〔2019〕293号）", "附件"),
        Citation("发改产业〔2021〕1609号", "附件"),
        Citation("产业结构调整指导目录（2024年本）（国家发展改革委令第7号）", "限制类、淘汰类"),
        COMPLIANCE,
    ),
    facts=("loan_approved_on", "green_activity", "loan_principal_fen", "benchmark_product", "energy_intensity",
           "industrial_structure_class", "last_major_env_violation_on", "carbon_open_shortfall_t",
           "baseline_emissions_t", "project_emissions_t", "co2_method"),
    gates=(
        GateSpec("catalogue_listed", "项目列入贷款审批日有效的绿色目录",
                 "activity listed in the catalogue in force on approval"),
        GateSpec("energy_baseline", "能效不低于基准水平", "energy efficiency at least at the 基准 level"),
        GateSpec("energy_advanced", "能效达到标杆水平（目录要求时）",
                 "energy efficiency at the 标杆 level where required"),
        GateSpec("not_restricted", "不属于限制类、淘汰类", "not a restricted or eliminated class"),
        GateSpec("no_major_violation", "回溯期内无重大环境违法",
                 "no major environmental violation in the look-back years"),
        GateSpec("carbon_compliant", "无未清缴的碳排放配额缺口", "no open carbon compliance shortfall"),
    ),
    outputs=(
        OutputSpec("eligible_principal_fen", "认定为绿色贷款的本金", "principal counted as green"),
        OutputSpec("co2_reduction_t", "年碳减排量（测算）", "estimated annual CO2 reduction"),
    ),
    headline="eligible_principal_fen",
    rule=gl_rule,
    headline_kind="credit_volume",
)

CT_PROGRAMME = Programme(
    code=CT_CODE,
    name_zh="碳减排支持工具",
    name_en="Carbon emission reduction support tool",
    summary="The PBoC relends 60 % of the qualifying principal at the tool's rate (1.75 % from 2021-11-08, "
            "1.50 % from 2025-05-08, 1.25 % from 2026-01-19).",
    on_meaning="the relending day (selects the rate)",
    citations=(CT_NOTICE,),
    facts=("loan_principal_fen", "carbon_tool_field", "lender_eligible", "baseline_emissions_t", "project_emissions_t",
           "co2_method"),
    gates=(
        GateSpec("field_supported", "属于支持领域", "loan in a supported field"),
        GateSpec("lender_eligible", "金融机构属于支持范围", "lender covered by the tool"),
        GateSpec("co2_reduction_positive", "测算碳减排量为正", "positive estimated CO2 reduction"),
        GateSpec("co2_method_disclosed", "披露碳减排量测算方法", "CO2 estimate method disclosed"),
    ),
    outputs=(
        OutputSpec("relending_fen", "再贷款金额", "relending"),
        OutputSpec("relending_rate_bp", "再贷款利率", "relending rate"),
        OutputSpec("annual_interest_fen", "再贷款年利息", "annual interest"),
    ),
    headline="relending_fen",
    rule=ct_rule,
    headline_kind="central_bank_relending",
)
