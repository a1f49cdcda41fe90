"""Contract energy management (EMC) and environmental / energy-water projects: 三免三减半.

Project income is exempt in project years 1–3 and taxed at half the statutory rate (12.5 %) in years 4–6,
counting from the year of the first production or operating revenue (实施条例 第八十八条; 财税〔2010〕110号
第二条第（一）项). The half rate is half of the **statutory** 25 %, also for an enterprise taxed at 15 %
(国税函〔2010〕157号 第一条第（三）项), so the relief is computed on the statutory rate:
tax before relief = ⌈income × 25 %⌋; relief = tax before relief × 100 % (years 1–3) or × 50 % (years 4–6).

An EMC project needs a qualified energy service company and a contract within the maximum term; an
environmental or energy/water-saving project must be listed in the project catalogue in force.

**The sharing period bounds an EMC project's relief** (gate `within_sharing_period`). Under 财税〔2010〕110号
第二条 the relief is for the energy service company's income from an EMC project under a 节能效益分享型
contract: its project income *is* its share of the energy savings, and when the contract's sharing period
(节能效益分享期) ends the project's assets pass to the energy user (第二条第（二）项 2、3) and the company has no
project income left to relieve. So the six-year window is cut at the end of the sharing period: a tax year
**after** the year in which the sharing period ends is refused, with a remedy naming the end day. A tax year
**partly inside** (the period ends during it) still qualifies: the relief is computed per tax year on the
project income separately accounted for that year (`emc_project_income_fen`), which can only be income of the
sharing days, so nothing outside the period is relieved and a pro-rating by days would only deny relief on
income that is lawfully the project's. The period comes from the contract's dates:
`emc_sharing_starts_on` (required for an EMC project) and `emc_sharing_ends_on` (its last day, inclusive);
when the end is not given it is derived from `emc_contract_years`: the day before the start's
`emc_contract_years`-th anniversary (29 February counts to 28 February in a common year). An end before
the start, or after the end of the contract term counted from the start, is a FactsError naming
`emc_sharing_ends_on`. When `emc_contract_years` is not given (0) the contract term gate measures the
sharing period in whole years (rounded up: the contract is at least that long). Environmental and
energy/water-saving projects have no sharing period and are unaffected.
"""

from __future__ import annotations

from datetime import date, timedelta

from core.figures import yuan
from incentives.domain.arith import BP, mul_div_half_up
from incentives.domain.facts import FactsError
from incentives.domain.params import Citation
from incentives.domain.programmes.common import anniversary, catalogue_gate
from incentives.domain.rules import Context, GateSpec, OutputSpec, Programme

CODE = "emc_project"
KINDS = ("emc", "environmental", "energy_water_saving")
EMC_CONDITIONS = Citation("财税〔2010〕110号", "第二条第（二）项")
RELIEF_PERIOD = Citation("中华人民共和国企业所得税法实施条例", "第八十八条")
SHARING_PERIOD = Citation("财税〔2010〕110号", "第二条")


def sharing_years(start: date, end: date) -> int:
    """Whole years a sharing period from `start` to `end` (inclusive) spans, rounded up (end >= start)."""
    years = end.year - start.year
    return years + 1 if anniversary(start, years) <= end else years


def check_sharing_facts(kind: str, start: date | None, end: date | None, years: int) -> list[tuple[str, str]]:
    """The problems of the sharing-period facts (the vector twin refuses the same rows)."""
    problems: list[tuple[str, str]] = []
    if start is not None and end is not None and end < start:
        problems.append(("emc_sharing_ends_on",
                         f"({end.isoformat()}) cannot be before emc_sharing_starts_on ({start.isoformat()})"))
    elif start is not None and end is not None and years > 0 and end >= anniversary(start, years):
        problems.append(("emc_sharing_ends_on",
                         f"({end.isoformat()}) cannot be after the end of the {years}-year contract "
                         f"(emc_contract_years) counted from emc_sharing_starts_on ({start.isoformat()})"))
    if kind == "emc" and start is None:
        problems.append(("emc_sharing_starts_on", "is required for an emc project: its relief ends with the "
                                                  "contract's sharing period (财税〔2010〕110号 第二条)"))
    elif kind == "emc" and end is None and years == 0:
        problems.append(("emc_sharing_ends_on", "is required for an emc project unless emc_contract_years is given"))
    return problems


def rule(ctx: Context) -> None:
    kind = ctx.text("emc_project_kind")
    problems = [] if kind in KINDS else [("emc_project_kind", f"must be one of {', '.join(KINDS)}")]
    start, end = ctx.day("emc_sharing_starts_on"), ctx.day("emc_sharing_ends_on")
    contract_years = ctx.number("emc_contract_years")
    problems += check_sharing_facts(kind, start, end, contract_years)
    if problems:
        raise FactsError(problems)
    cit_bp = ctx.params.number("cit.standard_rate_bp")
    exempt_years = ctx.params.number("emc.exempt_years")
    half_years = ctx.params.number("emc.half_years")
    half_bp = ctx.params.number("emc.half_relief_bp")
    if kind == "emc":
        assert start is not None
        if end is None:
            end = anniversary(start, contract_years) - timedelta(days=1)
        ctx.findings["sharing_ends_on"] = end.isoformat()
        max_term = ctx.params.number("emc.max_contract_years")
        term = contract_years if contract_years > 0 else sharing_years(start, end)
        ctx.compare("contract_term", term, "<=", max_term, "years",
                    ctx.params.citation("emc.max_contract_years"), what_en="contract term", what_zh="合同期限")
        ctx.require("company_qualified", ctx.flag("emc_company_qualified"), True, EMC_CONDITIONS,
                    remedy_en="the energy service company must meet the 110号 conditions (GB/T 24915)",
                    remedy_zh="节能服务公司须符合财税〔2010〕110号规定的条件")
    else:
        catalogue_gate(ctx, "catalogue_listed", "catalogue.environmental_projects", None,
                       ctx.text("emc_catalogue_code"))
    year = ctx.on.year - ctx.number("emc_first_revenue_year") + 1
    ctx.compare("relief_started", year, ">=", 1, "project year", RELIEF_PERIOD,
                what_en="project year (first revenue year = 1)", what_zh="项目年度（取得第一笔收入年度为第1年）")
    last = exempt_years + half_years
    ctx.compare("within_relief_period", year, "<=", last, "project year", ctx.params.citation("emc.half_years"),
                what_en="project year", what_zh="项目年度")
    if kind == "emc":
        assert end is not None
        ctx.gate("within_sharing_period", measured=ctx.on.year, comparator="<=", threshold=end.year, unit="tax year",
                 passed=ctx.on.year <= end.year, citation=SHARING_PERIOD,
                 remedy_en=f"the contract's energy-saving benefit sharing period ended on {end.isoformat()}; "
                           f"tax years after {end.year} have no project income to relieve",
                 remedy_zh=f"合同约定的节能效益分享期已于{end.isoformat()}结束，{end.year}年以后纳税年度不再享受减免")
    share = BP if year <= exempt_years else half_bp
    tax = relief = 0
    if ctx.eligible:
        income = ctx.fen("emc_project_income_fen")
        tax = ctx.step("tax_before_relief", "按法定税率计算的项目所得税", "tax on project income at the statutory rate",
                       f"{yuan(income)} × {cit_bp}/10000", mul_div_half_up(income, cit_bp, BP), "fen",
                       ctx.params.citation("cit.standard_rate_bp"))
        relief = ctx.step("tax_saving", "免征或减半征收税额", "tax exempted or halved",
                          f"{yuan(tax)} × {share}/10000 (project year {year})", mul_div_half_up(tax, share, BP),
                          "fen",
                          ctx.params.citation("emc.exempt_years" if year <= exempt_years else "emc.half_relief_bp"))
    ctx.out(
        project_year=year,
        relief_share_bp=share if ctx.eligible else 0,
        applied_rate_bp=cit_bp - mul_div_half_up(cit_bp, share, BP) if ctx.eligible else cit_bp,
        tax_before_relief_fen=tax,
        tax_saving_fen=relief,
    )


PROGRAMME = Programme(
    code=CODE,
    name_zh="合同能源管理和环境保护、节能节水项目所得税三免三减半",
    name_en="Contract energy management and environmental projects (3 years exempt, 3 years halved)",
    summary="CIT exempt in project years 1–3 and halved (12.5 %) in years 4–6 from the first revenue year; "
            "for an EMC project, not for tax years after the contract's sharing period ends.",
    on_meaning="any day of the tax year claimed (its year is the tax year)",
    citations=(
        Citation("财税〔2010〕110号", "第二条第（一）项"),
        SHARING_PERIOD,
        RELIEF_PERIOD,
        Citation("国税函〔2010〕157号", "第一条第（三）项"),
        Citation("财政部 税务总局 国家发展改革委 生态环境部公告2021年第36号", "第一条"),
    ),
    facts=("emc_project_kind", "emc_catalogue_code", "emc_first_revenue_year", "emc_project_income_fen",
           "emc_contract_years", "emc_company_qualified", "emc_sharing_starts_on", "emc_sharing_ends_on"),
    gates=(
        GateSpec("contract_term", "合同能源管理合同期限不超过规定年限", "EMC contract within the maximum term"),
        GateSpec("company_qualified", "节能服务公司符合条件", "qualified energy service company"),
        GateSpec("catalogue_listed", "项目列入环境保护、节能节水项目企业所得税优惠目录",
                 "project listed in the catalogue"),
        GateSpec("relief_started", "项目已取得第一笔生产经营收入", "project has had its first revenue"),
        GateSpec("within_relief_period", "处于三免三减半期间", "within the 6-year relief period"),
        GateSpec("within_sharing_period", "纳税年度未晚于节能效益分享期结束年度",
                 "tax year not after the end of the contract's sharing period"),
    ),
    outputs=(
        OutputSpec("project_year", "项目年度", "project year"),
        OutputSpec("relief_share_bp", "减免比例", "share of the tax relieved"),
        OutputSpec("applied_rate_bp", "适用税率", "rate applied to project income"),
        OutputSpec("tax_before_relief_fen", "减免前税额", "tax before relief"),
        OutputSpec("tax_saving_fen", "减免税额", "tax relieved"),
    ),
    headline="tax_saving_fen",
    rule=rule,
    relieves_income="emc_project_income_fen",
)
