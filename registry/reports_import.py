"""Parse an uploaded annual report file (CSV or Excel) into validated rows, all or nothing.

Enterprises upload carbon activity data, energy figures or discharge figures as a spreadsheet. This
module reads the file with pandas, every cell as text (`dtype=str`, `keep_default_na=False`), checks
EVERY row, and returns either all rows parsed or the full list of errors, each with the row number the
user sees in the spreadsheet (the header is row 1, the first data row is row 2) and the column. Nothing
partial is ever returned, so the service imports a file in one piece or not at all (reliability.md #31).

Quantities are parsed with `Decimal` from the cell text, never through float, and refused (not rounded)
when they carry more decimals than allowed. Excel stores numbers as binary floats; pandas renders a
numeric cell with at most 16 significant digits (Excel shows 15), so a float artefact such as
0.30000000000000004 arrives as "0.3", and that text is what is parsed here.

Layouts (header names are matched case-insensitively; extra columns are ignored):
- carbon: `uscc, year, line_type, item, quantity, unit` (line_type fuel | process | electricity | heat;
  item a fuel or process code, or empty / `purchased` for electricity and heat);
- energy: `uscc, year, item, quantity, unit` (item an energy source code or `electricity`);
- discharge: `uscc, year, pollutant, quantity, unit` (unit kg or t).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

import pandas as pd
from stdnum.cn import uscc as uscc_std

from registry.domain.accounting import (
    ELECTRICITY,
    KNOWN_UNITS,
    PURCHASED,
    ActivityLine,
    CarbonFactors,
    DischargeLine,
    EnergyCoefficient,
    EnergyLine,
    LineType,
    convert,
)
from registry.domain.factor_defaults import (
    DEFAULT_ENERGY_COEFFICIENTS,
    DEFAULT_FUELS,
    DEFAULT_POLLUTANTS,
    DEFAULT_PROCESSES,
)

ReportKind = Literal["carbon", "energy", "discharge"]

COLUMNS: dict[ReportKind, tuple[str, ...]] = {
    "carbon": ("uscc", "year", "line_type", "item", "quantity", "unit"),
    "energy": ("uscc", "year", "item", "quantity", "unit"),
    "discharge": ("uscc", "year", "pollutant", "quantity", "unit"),
}

MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 100_000
MAX_DECIMALS = 4
"""Four decimals of a tonne is 0.1 kg: finer than any meter behind an annual report. [configurable]"""

# Plain decimals, and the exponent form pandas uses for tiny or huge Excel numbers (5e-05); never NaN,
# Infinity, thousands separators or full-width digits.
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]{1,3})?")
_YEAR = re.compile(r"[0-9]{4}")
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True, slots=True)
class RowError:
    """One bad cell or row: spreadsheet row number (header = 1), column name, stable code, message."""

    row: int
    column: str | None
    code: str
    message: str
    value: str = ""


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One validated data row. `item` is the fuel/process code, energy source or pollutant."""

    row: int
    uscc: str
    year: int
    line_type: str | None
    item: str
    quantity: Decimal
    unit: str

    def activity_line(self) -> ActivityLine:
        if self.line_type is None:
            raise ValueError("not a carbon row")
        return ActivityLine(LineType(self.line_type), self.item, self.quantity, self.unit)

    def energy_line(self) -> EnergyLine:
        return EnergyLine(self.item, self.quantity, self.unit)

    def discharge_line(self) -> DischargeLine:
        return DischargeLine(self.item, self.quantity, self.unit)


@dataclass(frozen=True, slots=True)
class ParsedReport:
    kind: ReportKind
    rows: tuple[ReportRow, ...]


@dataclass(frozen=True, slots=True)
class ReportRejected:
    """Every error found in the file; nothing was imported."""

    errors: tuple[RowError, ...]


@dataclass(frozen=True, slots=True)
class ImportRules:
    """What a file may contain: per group (line type, `energy` or `pollutant`), item code → factor unit.

    A row's unit must convert to its item's factor unit (t ↔ kg, MWh ↔ kWh, GJ ↔ MJ, ...).
    """

    item_units: Mapping[str, Mapping[str, str]]
    max_decimals: int = MAX_DECIMALS
    max_rows: int = MAX_ROWS
    max_bytes: int = MAX_BYTES
    year_min: int = 2005
    year_max: int = 2100


def carbon_rules(factors: CarbonFactors | None = None) -> ImportRules:
    """Import rules for carbon activity data, from a factor set (default: the national defaults)."""
    fuel_units = {k: v.unit for k, v in (factors.fuels if factors else DEFAULT_FUELS).items()}
    process_units = {k: v.unit for k, v in (factors.processes if factors else DEFAULT_PROCESSES).items()}
    return ImportRules(
        {
            LineType.FUEL.value: fuel_units,
            LineType.PROCESS.value: process_units,
            LineType.ELECTRICITY.value: {"": "MWh", PURCHASED: "MWh"},
            LineType.HEAT.value: {"": "GJ", PURCHASED: "GJ"},
        }
    )


def energy_rules(coefficients: Mapping[str, EnergyCoefficient] | None = None) -> ImportRules:
    table = coefficients if coefficients is not None else DEFAULT_ENERGY_COEFFICIENTS
    return ImportRules({"energy": {**{k: v.unit for k, v in table.items()}, ELECTRICITY: "kWh"}})


def discharge_rules(pollutants: frozenset[str] = DEFAULT_POLLUTANTS) -> ImportRules:
    return ImportRules({"pollutant": dict.fromkeys(pollutants, "kg")})


def _read_table(data: bytes, filename: str) -> pd.DataFrame:
    """Read the first sheet or the CSV as text cells, header included as row 0."""
    is_excel = filename.lower().endswith((".xlsx", ".xlsm")) or data.startswith(_ZIP_MAGIC)
    if is_excel:
        return pd.read_excel(
            io.BytesIO(data), sheet_name=0, header=None, dtype=str, keep_default_na=False, engine="openpyxl"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Excel on Chinese Windows saves CSV in GBK; GB18030 is its superset.
        text = data.decode("gb18030")
    return pd.read_csv(io.StringIO(text), header=None, dtype=str, keep_default_na=False, skip_blank_lines=False)


def parse_report(
    data: bytes,
    *,
    filename: str,
    kind: ReportKind = "carbon",
    rules: ImportRules | None = None,
    expected_uscc: str | None = None,
    expected_year: int | None = None,
) -> ParsedReport | ReportRejected:
    """Parse and validate a whole report file; return all rows, or every error and nothing else.

    `expected_uscc` / `expected_year` bind the file to the enterprise and year being reported, so a row
    for another enterprise is refused rather than imported under the caller's name.
    """
    if rules is None:
        rules = carbon_rules() if kind == "carbon" else energy_rules() if kind == "energy" else discharge_rules()
    if not data.strip():
        return ReportRejected((RowError(1, None, "empty-file", "the file is empty"),))
    if len(data) > rules.max_bytes:
        return ReportRejected(
            (RowError(1, None, "file-too-large", f"the file is larger than {rules.max_bytes} bytes"),)
        )
    try:
        table = _read_table(data, filename)
    except Exception as exc:  # Any reader failure is a fault of the user's file, reported as such.
        return ReportRejected((RowError(1, None, "unreadable-file", f"cannot read the file: {exc}".strip()),))
    cells: list[list[str]] = [[str(c) for c in row] for row in table.itertuples(index=False, name=None)]
    if not cells:
        return ReportRejected((RowError(1, None, "empty-file", "the file has no header row"),))

    header = [h.strip().lower() for h in cells[0]]
    errors: list[RowError] = []
    wanted = COLUMNS[kind]
    position: dict[str, int] = {}
    for name in wanted:
        hits = [i for i, h in enumerate(header) if h == name]
        if not hits:
            errors.append(RowError(1, name, "missing-column", f"the header row has no column {name!r}"))
        elif len(hits) > 1:
            errors.append(RowError(1, name, "duplicate-column", f"column {name!r} appears {len(hits)} times"))
        else:
            position[name] = hits[0]
    if errors:
        return ReportRejected(tuple(errors))

    body = [(n, row) for n, row in enumerate(cells[1:], start=2) if any(c.strip() for c in row)]
    if not body:
        return ReportRejected((RowError(2, None, "no-data-rows", "the file has a header but no data rows"),))
    if len(body) > rules.max_rows:
        return ReportRejected(
            (RowError(body[rules.max_rows][0], None, "too-many-rows", f"at most {rules.max_rows} data rows"),)
        )

    rows: list[ReportRow] = []
    for n, raw in body:
        values = {name: raw[i].strip() if i < len(raw) else "" for name, i in position.items()}
        row = _parse_row(
            n,
            values,
            kind=kind,
            rules=rules,
            expected_uscc=expected_uscc,
            expected_year=expected_year,
            errors=errors,
        )
        if row is not None:
            rows.append(row)
    if errors:
        return ReportRejected(tuple(errors))
    return ParsedReport(kind, tuple(rows))


def _parse_row(
    n: int,
    values: Mapping[str, str],
    *,
    kind: ReportKind,
    rules: ImportRules,
    expected_uscc: str | None,
    expected_year: int | None,
    errors: list[RowError],
) -> ReportRow | None:
    """Validate one row, appending every error found to `errors`; the row only if it had none."""
    before = len(errors)

    def err(column: str, code: str, message: str) -> None:
        errors.append(RowError(n, column, code, message, values.get(column, "")))

    code = values["uscc"]
    if not code:
        err("uscc", "required", "the unified social credit code is required")
    elif len(code) != 18 or code != code.upper() or not uscc_std.is_valid(code):
        err("uscc", "invalid-uscc", "not a valid 18-character unified social credit code (GB 32100-2015)")
    elif expected_uscc is not None and code != expected_uscc:
        err("uscc", "uscc-mismatch", f"this report is for {expected_uscc}; every row must carry that code")

    year = 0
    year_text = values["year"]
    if not year_text:
        err("year", "required", "the reporting year is required")
    elif not _YEAR.fullmatch(year_text) or not rules.year_min <= int(year_text) <= rules.year_max:
        err("year", "invalid-year", f"the year must be a 4-digit year {rules.year_min}..{rules.year_max}")
    else:
        year = int(year_text)
        if expected_year is not None and year != expected_year:
            err("year", "year-mismatch", f"this report is for {expected_year}; every row must carry that year")

    line_type: str | None = None
    if kind == "carbon":
        line_type = values["line_type"]
        group = line_type
        item_column = "item"
        if line_type not in rules.item_units:
            err("line_type", "unknown-line-type", f"line_type must be one of: {', '.join(rules.item_units)}")
    else:
        group = "energy" if kind == "energy" else "pollutant"
        item_column = "item" if kind == "energy" else "pollutant"
    item = values[item_column]
    factor_unit: str | None = None
    if group in rules.item_units:
        known = rules.item_units[group]
        factor_unit = known.get(item)
        if factor_unit is None:
            label = {"fuel": "fuel", "process": "process", "pollutant": "pollutant"}.get(group, "item")
            err(
                item_column,
                f"unknown-{label}",
                f"unknown {label} {item!r}; use one of: {', '.join(sorted(k for k in known if k))}",
            )

    quantity = _parse_quantity(values["quantity"], rules.max_decimals, lambda c, m: err("quantity", c, m))

    unit = values["unit"]
    if not unit:
        err("unit", "required", "the unit is required")
    elif unit not in KNOWN_UNITS:
        err("unit", "unknown-unit", f"unknown unit {unit!r}; use one of: {', '.join(sorted(KNOWN_UNITS))}")
    elif factor_unit is not None and convert(Fraction(1), unit, factor_unit) is None:
        err("unit", "unit-mismatch", f"{item or group} is reported in units convertible to {factor_unit!r}")

    if len(errors) != before or quantity is None:
        return None
    return ReportRow(n, code, year, line_type, item, quantity, unit)


def _parse_quantity(text: str, max_decimals: int, err: Callable[[str, str], None]) -> Decimal | None:
    if not text:
        err("required", "the quantity is required")
        return None
    if not _NUMBER.fullmatch(text):
        err(
            "not-a-number",
            "the quantity must be a plain decimal number such as 1234.5 (no text, commas or units)",
        )
        return None
    value = Decimal(text)
    if value < 0:
        err("negative-quantity", "activity data cannot be negative")
        return None
    # Decimals of the value itself, so 1.500000 has one and 5e-05 has five.
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # The pattern admits finite numbers only.
    if -exponent > max_decimals:
        err("too-many-decimals", f"at most {max_decimals} decimals are allowed; the value is never rounded")
        return None
    return value + 0  # Adding 0 turns -0 into 0.
