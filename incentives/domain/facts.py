"""The facts an enterprise-year brings to the incentives engine: one documented, typed namespace.

A fact is a plain value under a documented key (`rd_core_costs_fen`, `loan_approved_on`, ...). The same keys
are the fields of the scalar `evaluate(...)` dict and the columns of the batch DataFrame, so a record moves
between the two paths unchanged. Names carry units: `_fen` is integer fen, `_bp` integer basis points,
`_t` whole tonnes, `_on` a date, `_years` whole years. A decimal fact (kind `milli`, the energy intensity) is
held as the exact integer of thousandths of its unit and written back as a decimal string. Facts shared by
several programmes (the loan principal, the emissions estimate) mean the same thing in each.

`normalise` checks a dict against the specs a programme needs and reports every problem at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from core.figures import decimal_plain
from incentives.domain.arith import BP, MAX_FEN, MILLI_DECIMALS, MILLI_TEXT_MAX, parse_milli

FACT_KINDS = ("fen", "count", "int", "milli", "bp", "year", "bool", "date", "str")

INT_LIMIT = 10**12
"""The largest count or plain integer fact accepted (and, in units, the largest decimal fact)."""
MILLI_LIMIT = INT_LIMIT * 1000
"""The largest decimal fact accepted, in thousandths (10¹² of its unit, the range of an `int` fact)."""
YEAR_MIN, YEAR_MAX = 1900, 2200

INT_LIMITS: dict[str, tuple[int, int]] = {
    "fen": (0, MAX_FEN),
    "count": (0, INT_LIMIT),
    "bp": (0, BP),
    "year": (YEAR_MIN, YEAR_MAX),
    "int": (-INT_LIMIT, INT_LIMIT),
}
"""The inclusive range of each integer kind: the scalar check, the vector path and the batch schema use it."""

CODE_MAX = 64
"""The longest text fact (a catalogue item, a key, a grade, a list of policy years), in characters."""
TEXT_MAX = 200
"""The longest descriptive text fact (the method of an estimate), in characters."""

FactValue = int | bool | str | date | None


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()
"""Marks a fact without a default: a programme needing it is not evaluated when it is missing."""


@dataclass(frozen=True, slots=True)
class FactSpec:
    """One fact key: its kind, unit, meaning and default (or REQUIRED)."""

    name: str
    kind: str
    unit: str
    description: str
    default: FactValue | _Required = REQUIRED
    text_max: int = CODE_MAX
    """The longest value of a text fact, in characters (counted as sent, before blanks are stripped)."""

    @property
    def required(self) -> bool:
        return isinstance(self.default, _Required)

    def to_dict(self) -> dict[str, object]:
        default = None if isinstance(self.default, _Required) else self.default
        return {
            "name": self.name,
            "kind": self.kind,
            "unit": self.unit,
            "description": self.description,
            "required": self.required,
            "default": default.isoformat() if isinstance(default, date) else default,
        }


class FactsError(ValueError):
    """The facts given are invalid; lists every (fact, message) problem found."""

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{k}: {m}" for k, m in self.problems))


def _f(name: str, kind: str, unit: str, description: str, default: FactValue | _Required = REQUIRED, *,
       text_max: int = CODE_MAX) -> FactSpec:
    return FactSpec(name, kind, unit, description, default, text_max)


SPECS: tuple[FactSpec, ...] = (
    # R&D super deduction (研发费用加计扣除).
    _f("total_revenue_fen", "fen", "fen",
       "收入总额 less non-taxable income and investment income (公告2015年第97号 第四条), "
       "for the excluded-industry test"),
    _f("excluded_industry_revenue_fen", "fen", "fen",
       "revenue from the excluded industries (tobacco, accommodation and catering, wholesale and retail, real "
       "estate, leasing and business services, entertainment)", 0),
    _f("rd_core_costs_fen", "fen", "fen",
       "expensed R&D costs of the first five categories (staff, direct inputs, depreciation, amortisation, design)"),
    _f("rd_other_costs_fen", "fen", "fen", "expensed 'other related costs' of R&D (subject to the 10/90 cap)", 0),
    _f("rd_fiscal_funded_core_fen", "fen", "fen", "part of the core costs paid from non-taxable fiscal funds", 0),
    _f("rd_fiscal_funded_other_fen", "fen", "fen", "part of the other costs paid from non-taxable fiscal funds", 0),
    _f("rd_intangible_amortisation_fen", "fen", "fen",
       "this year's amortisation of intangible assets formed by R&D (before the super deduction)", 0),
    # Energy/water-saving and environmental equipment credit (专用设备投资抵免).
    _f("equipment_catalogue_code", "str", "", "code of the equipment in the 专用设备 catalogue"),
    _f("equipment_acquired_on", "date", "", "purchase date (selects the catalogue edition; starts the 5-year watch)"),
    _f("equipment_invoice_fen", "fen", "fen", "invoice total including VAT (价税合计)"),
    _f("equipment_deductible_vat_fen", "fen", "fen", "input VAT on the invoice that is deductible or refunded", 0),
    _f("equipment_ancillary_fen", "fen", "fen", "transport, installation and commissioning included in the invoice", 0),
    _f("equipment_fiscal_grant", "bool", "", "the equipment was bought with a fiscal grant", False),
    _f("equipment_transferred_on", "date", "", "day the equipment was transferred or leased out, if ever", None),
    _f("equipment_credit_used_to_date_fen", "fen", "fen",
       "credit already taken for this equipment in earlier years (repaid on a clawback)", 0),
    _f("cit_payable_fen", "fen", "fen", "the year's corporate income tax payable before any equipment credit"),
    *(
        _f(f"credit_carry_age{age}_fen", "fen", "fen",
           f"unused equipment credit brought forward from {age} year(s) before this tax year", 0)
        for age in range(1, 6)
    ),
    # Resource comprehensive utilisation (资源综合利用).
    _f("ru_vat_item_code", "str", "", "item of the VAT refund catalogue (公告2021年第40号 附件)"),
    _f("ru_vat_payable_fen", "fen", "fen", "VAT paid in the refund period on the qualifying products or services"),
    _f("tax_credit_grade", "str", "", "纳税信用级别: A, B, M, C or D"),
    _f("env_penalty_on", "date", "", "day of the most recent environmental or tax administrative penalty", None),
    _f("env_penalty_fen", "fen", "fen", "fine of that penalty (0 for a warning)", 0),
    _f("ru_cit_item_code", "str", "", "item of the CIT catalogue (公告2021年第36号 附件)"),
    _f("ru_cit_revenue_fen", "fen", "fen", "revenue from the qualifying products"),
    _f("ru_cit_resource_share_bp", "bp", "bp", "share of comprehensive-utilisation resources in raw materials"),
    _f("ru_cit_meets_standard", "bool", "", "the products meet the national or industry standard"),
    # Contract energy management and environmental projects (三免三减半).
    _f("emc_project_kind", "str", "", "emc (合同能源管理), environmental or energy_water_saving"),
    _f("emc_catalogue_code", "str", "", "item of the environmental / energy-water project catalogue", ""),
    _f("emc_first_revenue_year", "year", "year", "year of the project's first production or operating revenue"),
    _f("emc_project_income_fen", "fen", "fen", "the project's separately accounted taxable income this year"),
    _f("emc_contract_years", "count", "years",
       "term of the energy management contract (0 = not given: the sharing period's whole years are measured)", 0),
    _f("emc_sharing_starts_on", "date", "",
       "first day of the EMC contract's energy-saving benefit sharing period (节能效益分享期); required for an emc "
       "project", None),
    _f("emc_sharing_ends_on", "date", "",
       "last day of the sharing period (inclusive); if absent, the day before the emc_contract_years anniversary "
       "of emc_sharing_starts_on", None),
    _f("emc_company_qualified", "bool", "", "the energy service company meets GB/T 24915 and the 110号 conditions",
       False),
    # High-tech enterprise (高新技术企业).
    _f("sales_revenue_fen", "fen", "fen", "sales revenue of the latest year (selects the R&D intensity band)"),
    _f("revenue_3y_fen", "fen", "fen", "sales revenue of the last three accounting years"),
    _f("rd_expense_3y_fen", "fen", "fen", "R&D expenses of the last three accounting years"),
    _f("rd_domestic_3y_fen", "fen", "fen", "part of those R&D expenses incurred in China"),
    _f("hightech_revenue_fen", "fen", "fen", "latest year's revenue from high-tech products and services"),
    _f("tech_staff", "count", "persons", "science and technology staff"),
    _f("staff_total", "count", "persons", "all staff"),
    _f("owns_core_ip", "bool", "", "owns core intellectual property of its main products"),
    _f("major_incident_in_year", "bool", "", "a major safety, quality or environmental incident in the year", False),
    _f("taxable_income_fen", "fen", "fen", "the year's taxable income"),
    _f("income_relieved_elsewhere_fen", "fen", "fen",
       "part of the taxable income that is a §88 project's separately accounted income in its 三免三减半 years "
       "(taxed under emc_project at the statutory rate, exempt or halved, never also at the 15 % rate; "
       "国税函〔2010〕157号 第一条第（三）项). Filled in by the engine when emc_project is evaluated with it", 0),
    # First-set equipment insurance compensation (首台套保险补偿).
    _f("fs_catalogue_code", "str", "", "item of the 首台（套）推广应用指导目录"),
    _f("fs_first_insured_on", "date", "", "first-insurance day (selects the catalogue edition)"),
    _f("fs_policy_year", "count", "year",
       "optional check of the policy year claimed (1 = first year): the year is derived from fs_first_insured_on "
       "and the evaluation day, and a value sent must equal it", None),
    _f("fs_insured_value_fen", "fen", "fen", "insured value (投保金额)"),
    _f("fs_premium_rate_bp", "bp", "bp", "premium rate of the policy"),
    _f("fs_premium_paid_fen", "fen", "fen", "premium actually paid for the policy year"),
    _f("fs_compensated_policy_years", "str", "",
       "policy years of this policy already compensated, whole numbers separated by ';' (e.g. '1;2'); empty = none",
       ""),
    # Jiangxi first-set reward (江西省首台套奖励).
    _f("jx_recognised", "bool", "", "recognised as a provincial first set under the 2023 Jiangxi 认定管理暂行办法"),
    _f("jx_item_sales_fen", "fen", "fen", "sales value of the recognised first-set item"),
    _f("jx_producer_awarded_fen", "fen", "fen", "rewards already granted to this producer under the scheme", 0),
    _f("fs_insurance_compensated", "bool", "", "this item already received first-set insurance compensation",
       False),
    # First-batch new materials (首批次新材料).
    _f("fb_catalogue_code", "str", "", "item of the 重点新材料首批次应用示范指导目录"),
    _f("fb_contract_on", "date", "", "contract day (selects the catalogue edition)"),
    _f("fb_contract_fen", "fen", "fen", "value of the single purchase contract"),
    _f("fb_buyer_is_end_user", "bool", "", "the buyer uses the material itself"),
    _f("fb_related_party", "bool", "", "buyer and producer are related parties"),
    _f("fb_via_trader", "bool", "", "the purchase went through a trader or agent", False),
    _f("fb_used_in_compensated_first_set", "bool", "",
       "the material is used in first-set equipment that already received compensation", False),
    _f("fb_insured_value_fen", "fen", "fen", "insured value of the first-batch policy"),
    _f("fb_premium_rate_bp", "bp", "bp", "premium rate of the first-batch policy"),
    # Green loans and the carbon emission reduction support tool.
    _f("loan_approved_on", "date", "", "loan approval day (selects the green catalogue edition)"),
    _f("loan_principal_fen", "fen", "fen", "qualifying loan principal"),
    _f("green_activity", "str", "", "the project's activity key, mapped to a code in each catalogue edition"),
    _f("benchmark_product", "str", "",
       "product with an energy-efficiency benchmark (cement_clinker, bf_ironmaking, bof_steelmaking, "
       "electrolytic_aluminium), or empty", ""),
    _f("energy_intensity", "milli", "per product unit",
       "energy use per unit of product after the project, in the benchmark's unit (kgce/t or kWh/t): an exact "
       'decimal with at most 3 decimals, given as a string ("99.5") or an integer; a JSON number with a fraction '
       "(99.5) is refused because it arrives as a binary float", None),
    _f("industrial_structure_class", "str", "", "class under 产业结构调整指导目录: encouraged, permitted, restricted, "
       "eliminated"),
    _f("last_major_env_violation_on", "date", "", "day of the most recent major environmental violation", None),
    _f("carbon_open_shortfall_t", "count", "tCO2e", "open compliance shortfall from the registry (0 = none)", 0),
    _f("baseline_emissions_t", "count", "tCO2e", "annual emissions without the project (estimate)", 0),
    _f("project_emissions_t", "count", "tCO2e", "annual emissions with the project (estimate)", 0),
    _f("co2_method", "str", "", "method of the CO2 reduction estimate (methodology or standard)", "",
       text_max=TEXT_MAX),
    _f("carbon_tool_field", "str", "", "field of the carbon reduction support tool: clean_energy, "
       "energy_saving_environmental, carbon_reduction_technology"),
    _f("lender_eligible", "bool", "", "the lending bank is a financial institution covered by the tool"),
)

FACTS: dict[str, FactSpec] = {spec.name: spec for spec in SPECS}


def _check(spec: FactSpec, raw: object) -> tuple[FactValue, str | None]:
    """Convert one raw value to its kind; return (value, problem)."""
    kind = spec.kind
    if kind == "bool":
        return (raw, None) if isinstance(raw, bool) else (None, "must be true or false")
    if kind == "str":
        if not isinstance(raw, str):
            return None, "must be text"
        if len(raw) > spec.text_max:
            return None, f"must be at most {spec.text_max} characters"
        return raw.strip(), None
    if kind == "date":
        if isinstance(raw, datetime):
            return None, "must be a date, not a date and time"
        if isinstance(raw, date):
            return raw, None
        if isinstance(raw, str):
            try:
                return date.fromisoformat(raw), None
            except ValueError:
                return None, "must be an ISO date (YYYY-MM-DD)"
        return None, "must be an ISO date (YYYY-MM-DD)"
    if kind == "milli":
        try:
            milli = parse_milli(raw)
        except ValueError as exc:
            if str(exc) == "float":
                return None, (f'must be an exact decimal: send it as a string such as "{raw!r}" (a JSON number '
                              "with a fraction arrives as a binary float and is never rounded)")
            if str(exc) == "decimals":
                return None, "has more than 3 decimals (never rounded)"
            if str(exc) == "long":
                return None, f"must be at most {MILLI_TEXT_MAX} characters"
            return None, 'must be a decimal number such as "99.5" or 100 (digits, an optional sign and point)'
        if not -MILLI_LIMIT <= milli <= MILLI_LIMIT:
            return None, "is out of range"
        return milli, None
    # Integer kinds. A float is refused even when whole: money is never a float in this house.
    if isinstance(raw, bool) or not isinstance(raw, int):
        return None, "must be a whole number (integer of its unit)"
    low, high = INT_LIMITS[kind]
    if low <= raw <= high:
        return raw, None
    if kind == "fen":
        return None, f"must be between 0 and {MAX_FEN} fen"
    if kind == "count":
        return None, f"must be a whole number between 0 and {INT_LIMIT}"
    if kind == "bp":
        return None, f"must be between 0 and {BP} basis points"
    if kind == "year":
        return None, f"must be a year between {YEAR_MIN} and {YEAR_MAX}"
    return None, "is out of range"


def fact_json(name: str, value: FactValue) -> object:
    """A normalised fact as JSON and as the engine takes it back: a date in ISO form, a decimal fact as its
    exact decimal string ("99.5"), anything else as is."""
    if isinstance(value, date):
        return value.isoformat()
    spec = FACTS.get(name)
    if spec is not None and spec.kind == "milli" and isinstance(value, int) and not isinstance(value, bool):
        return decimal_plain(value, MILLI_DECIMALS)
    return value


def normalise(names: Iterable[str], raw: Mapping[str, object]) -> dict[str, FactValue]:
    """The facts `names` taken from `raw`, defaults filled in; raises FactsError listing every problem."""
    values: dict[str, FactValue] = {}
    problems: list[tuple[str, str]] = []
    for name in names:
        spec = FACTS[name]
        if name not in raw or raw[name] is None:
            if spec.required:
                problems.append((name, "is missing"))
                continue
            default = spec.default
            assert not isinstance(default, _Required)
            values[name] = default
            continue
        value, problem = _check(spec, raw[name])
        if problem:
            problems.append((name, problem))
        else:
            values[name] = value
    if problems:
        raise FactsError(problems)
    return values


def missing(names: Iterable[str], raw: Mapping[str, object]) -> tuple[str, ...]:
    """The required facts among `names` that `raw` lacks (decides whether a programme can be evaluated)."""
    return tuple(n for n in names if FACTS[n].required and raw.get(n) is None)
