"""The four kinds of tradable rights (plus CCER offsets) as data: base unit, display scale, issuing role, the
attributes that make a unit class, and validity rules (domain.md section 2).

A unit class is one kind with fixed attributes (scheme and vintage, pollutant and period, technology and
production month, ...). Its code names it for people and for the ledger; a single unit's public identifier
adds the serial and ISO 7064 MOD 97-10 check digits, so that a mistyped identifier is caught on entry.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    CEA = "cea"
    CCER = "ccer"
    ENERGY_USE = "energy_use"
    GEC = "gec"
    DISCHARGE = "discharge"


@dataclass(frozen=True)
class KindRule:
    kind: Kind
    label_zh: str
    base_unit: str
    display_unit: str
    # Display units carry `scale` decimals over the base unit: 1 tce = 1,000 kgce, so energy-use has scale 3.
    scale: int
    issuer_role: str
    surrenderable: bool
    citation: str


KIND_RULES: dict[Kind, KindRule] = {
    Kind.CEA: KindRule(
        Kind.CEA, "碳排放配额", "tCO2e", "tCO2e", 0, "regulator", True, "碳排放权交易管理暂行条例（国务院令第775号）"
    ),
    Kind.CCER: KindRule(
        Kind.CCER,
        "国家核证自愿减排量",
        "tCO2e",
        "tCO2e",
        0,
        "regulator",
        True,
        "碳排放权交易管理办法（试行）第二十九条",
    ),
    Kind.ENERGY_USE: KindRule(
        Kind.ENERGY_USE,
        "用能权",
        "kgce",
        "tce",
        3,
        "energy_authority",
        True,
        "用能权有偿使用和交易制度试点方案（发改环资〔2016〕1659号）",
    ),
    Kind.GEC: KindRule(
        Kind.GEC,
        "绿色电力证书",
        "MWh",
        "MWh",
        0,
        "gec_issuer",
        False,
        "国能发新能规〔2024〕67号；发改能源〔2023〕1044号",
    ),
    # Permits are counted in kg and shown, priced and reported in tonnes with 3 decimals (reports give t per pollutant).
    Kind.DISCHARGE: KindRule(Kind.DISCHARGE, "排污权", "kg", "t", 3, "regulator", True, "国办发〔2014〕38号"),
}

GEC_TECHNOLOGIES = ("wind", "solar", "biomass", "geothermal", "ocean", "hydro")
# The default pollutant list; a province may add VOCs [configurable per province].
POLLUTANTS = ("SO2", "NOx", "COD", "NH3-N", "VOCs")
DISCHARGE_TERM_YEARS = 5
GEC_VALIDITY_MONTHS = 24

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,39}", re.ASCII)


@dataclass(frozen=True)
class UnitClass:
    """Attributes that make units of one kind interchangeable. Unused attributes are None."""

    kind: Kind
    scheme: str | None = None  # "national" / "provincial" for CEA
    vintage: int | None = None  # CEA/CCER vintage year; energy-use and discharge period year
    project_id: str | None = None  # CCER
    region: str | None = None  # energy-use and discharge
    pollutant: str | None = None  # discharge
    technology: str | None = None  # GEC
    production_month: str | None = None  # GEC, "YYYY-MM"
    generator: str | None = None  # GEC
    tradable: bool = True

    def code(self) -> str:
        k = self.kind
        if k is Kind.CEA:
            return f"CEA-{(self.scheme or '').upper()}-{self.vintage}"
        if k is Kind.CCER:
            return f"CCER-{self.project_id}-{self.vintage}"
        if k is Kind.ENERGY_USE:
            return f"EUR-{self.region}-{self.vintage}"
        if k is Kind.DISCHARGE:
            return f"EDP-{self.pollutant}-{self.region}-{self.vintage}"
        flag = "T" if self.tradable else "N"
        month = (self.production_month or "").replace("-", "")
        return f"GEC-{(self.technology or '').upper()}-{month}-{self.generator}-{flag}"


def validate_unit_class(u: UnitClass) -> dict[str, str]:
    """Every problem with the attributes, by field (an empty dict means valid)."""
    errors: dict[str, str] = {}

    def need_year(field: str, value: int | None) -> None:
        if value is None or not 2000 <= value <= 2100:
            errors[field] = "Give a year between 2000 and 2100."

    def need_token(field: str, value: str | None) -> None:
        if value is None or not _TOKEN.fullmatch(value):
            errors[field] = "Give 1 to 40 letters, digits, '.' or '-'."

    if u.kind is Kind.CEA:
        if u.scheme not in ("national", "provincial"):
            errors["scheme"] = "Give 'national' or 'provincial'."
        need_year("vintage", u.vintage)
    elif u.kind is Kind.CCER:
        need_token("project_id", u.project_id)
        need_year("vintage", u.vintage)
    elif u.kind is Kind.ENERGY_USE:
        need_token("region", u.region)
        need_year("vintage", u.vintage)
    elif u.kind is Kind.DISCHARGE:
        need_token("region", u.region)
        need_year("vintage", u.vintage)
        if u.pollutant not in POLLUTANTS:
            errors["pollutant"] = f"Give one of {', '.join(POLLUTANTS)}."
    elif u.kind is Kind.GEC:
        if u.technology not in GEC_TECHNOLOGIES:
            errors["technology"] = f"Give one of {', '.join(GEC_TECHNOLOGIES)}."
        need_token("generator", u.generator)
        if u.production_month is None or parse_month(u.production_month) is None:
            errors["production_month"] = "Give the production month as YYYY-MM."
    return errors


def parse_month(text: str) -> dt.date | None:
    m = re.fullmatch(r"(20[0-9]{2})-(0[1-9]|1[0-2])", text, re.ASCII)
    return dt.date(int(m.group(1)), int(m.group(2)), 1) if m else None


def valid_until(u: UnitClass) -> dt.date | None:
    """The last business date on which units of this class may be used; None when they do not expire.

    GEC: valid for two years counted from the production month inclusive (国能发新能规〔2024〕67号), so a
    certificate for March 2024 may be used through 28 February 2026. Discharge permits: a five-year term from
    the start of the period year (国办发〔2014〕38号).
    """
    if u.kind is Kind.GEC and u.production_month:
        start = parse_month(u.production_month)
        assert start is not None
        months = start.year * 12 + (start.month - 1) + GEC_VALIDITY_MONTHS
        first_after = dt.date(months // 12, months % 12 + 1, 1)
        return first_after - dt.timedelta(days=1)
    if u.kind is Kind.DISCHARGE and u.vintage:
        return dt.date(u.vintage + DISCHARGE_TERM_YEARS, 1, 1) - dt.timedelta(days=1)
    return None


def check_digits(body: str) -> str:
    """ISO 7064 MOD 97-10 check digits over letters and digits (letters count A=10 ... Z=35)."""
    digits = "".join(str(int(c, 36)) for c in body.upper() if c.isalnum())
    return f"{98 - (int(digits + '00') % 97):02d}"


def unit_identifier(class_code: str, serial: int) -> str:
    body = f"{class_code}-{serial:012d}"
    return f"{body}-{check_digits(body)}"


def identifier_is_valid(identifier: str) -> bool:
    body, _, digits = identifier.rpartition("-")
    return bool(body) and check_digits(body) == digits
