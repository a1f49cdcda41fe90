"""Default accounting factors, as dated data with their sources, for schemes that set none of their own.

Every number here is **[configurable]**: it is the default value printed in the national guideline
tables as best known when this was written, not a figure confirmed against the official text for each
reporting year. A scheme overrides any of them by passing its own `CarbonFactors`, coefficient table or
pollutant list. The grid factor is published yearly, so it is a dated history keyed by reporting year.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from types import MappingProxyType

from registry.domain.accounting import (
    CarbonFactors,
    EnergyCoefficient,
    FuelFactors,
    ProcessFactor,
)
from registry.domain.exact import Dated, in_force

_GUIDE = "企业温室气体排放核算方法与报告指南 附录 常用化石燃料相关参数缺省值 [configurable]"

# Carbon content is printed in tC/TJ in the guideline tables; stored here in tC/GJ (÷ 1000).
DEFAULT_FUELS = MappingProxyType(
    {
        "raw_coal": FuelFactors(Decimal("20.908"), Decimal("0.02637"), Decimal("0.94"), "t", _GUIDE),
        "washed_coal": FuelFactors(Decimal("26.344"), Decimal("0.02541"), Decimal("0.90"), "t", _GUIDE),
        "coke": FuelFactors(Decimal("28.435"), Decimal("0.02942"), Decimal("0.93"), "t", _GUIDE),
        "crude_oil": FuelFactors(Decimal("41.816"), Decimal("0.02008"), Decimal("0.98"), "t", _GUIDE),
        "fuel_oil": FuelFactors(Decimal("41.816"), Decimal("0.0211"), Decimal("0.98"), "t", _GUIDE),
        "gasoline": FuelFactors(Decimal("43.070"), Decimal("0.0189"), Decimal("0.98"), "t", _GUIDE),
        "diesel": FuelFactors(Decimal("42.652"), Decimal("0.0202"), Decimal("0.98"), "t", _GUIDE),
        "lpg": FuelFactors(Decimal("50.179"), Decimal("0.0172"), Decimal("0.98"), "t", _GUIDE),
        "natural_gas": FuelFactors(Decimal("389.31"), Decimal("0.01532"), Decimal("0.99"), "10^4Nm3", _GUIDE),
    }
)

DEFAULT_PROCESSES = MappingProxyType(
    {
        # Plant-specific factors come from the clinker's CaO and MgO content (GB/T 32151.8); 0.538 is the
        # commonly used default when no measurement exists. [configurable]
        "clinker": ProcessFactor(Decimal("0.538"), "t", "GB/T 32151.8 水泥生产企业 熟料排放因子缺省值 [configurable]"),
    }
)

GRID_FACTORS: tuple[Dated[Decimal], ...] = (
    Dated(
        Decimal("0.5366"),
        date(2022, 1, 1),
        date(2023, 1, 1),
        "生态环境部 国家统计局 2022年全国电力平均二氧化碳排放因子 0.5366 tCO2/MWh",
        "[configurable] keyed by reporting year; add each year's published factor",
    ),
)

HEAT_FACTORS: tuple[Dated[Decimal], ...] = (
    Dated(Decimal("0.11"), date(2013, 1, 1), None, "核算指南 热力供应排放因子缺省值 0.11 tCO2/GJ [configurable]"),
)


def default_carbon_factors(reporting_year: int) -> CarbonFactors:
    """The default factor set for a reporting year; `LookupError` if no grid factor is known for it."""
    day = date(reporting_year, 1, 1)
    grid = in_force(GRID_FACTORS, day)
    heat = in_force(HEAT_FACTORS, day)
    return CarbonFactors(
        fuels=DEFAULT_FUELS,
        processes=DEFAULT_PROCESSES,
        grid_tco2_per_mwh=grid.value,
        heat_tco2_per_gj=heat.value,
        version=f"default-{reporting_year}",
        citation=f"{grid.citation}; {heat.citation}",
    )


_GB2589 = "GB/T 2589-2020 综合能耗计算通则 附录A 折标准煤系数 [configurable]"

DEFAULT_ENERGY_COEFFICIENTS = MappingProxyType(
    {
        "raw_coal": EnergyCoefficient(Decimal("0.7143"), "kg", _GB2589),
        "washed_coal": EnergyCoefficient(Decimal("0.9000"), "kg", _GB2589),
        "coke": EnergyCoefficient(Decimal("0.9714"), "kg", _GB2589),
        "crude_oil": EnergyCoefficient(Decimal("1.4286"), "kg", _GB2589),
        "fuel_oil": EnergyCoefficient(Decimal("1.4286"), "kg", _GB2589),
        "gasoline": EnergyCoefficient(Decimal("1.4714"), "kg", _GB2589),
        "diesel": EnergyCoefficient(Decimal("1.4571"), "kg", _GB2589),
        "lpg": EnergyCoefficient(Decimal("1.7143"), "kg", _GB2589),
        # The standard gives a range 1.1000–1.3300 kgce/m3 for natural gas; 1.2143 is the usual midpoint.
        "natural_gas": EnergyCoefficient(Decimal("1.2143"), "m3", _GB2589),
        "heat": EnergyCoefficient(Decimal("0.03412"), "MJ", _GB2589),
    }
)

DEFAULT_POLLUTANTS = frozenset({"SO2", "NOx", "COD", "NH3-N"})
"""Pollutants of the discharge-permit scheme by default; VOCs is optional per province. [configurable]"""

OPTIONAL_POLLUTANTS = frozenset({"VOCs"})
