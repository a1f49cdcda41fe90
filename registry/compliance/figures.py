"""Report figures: the national accounting method run over a report's lines with the factors of its year (carbon
in tCO2e, energy use in kgce, discharge in kg per pollutant), giving the stored figures with their explanation or
every problem at once, and the obligation figures that a verified version yields.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction
from typing import Any

from registry import reports_import
from registry.compliance._common import DECIMAL, carbon_factors_of, electricity_of, pollutants_of
from registry.compliance.context import ComplianceContext
from registry.domain import accounting as acc
from registry.domain.exact import fraction_text
from registry.domain.factor_defaults import DEFAULT_ENERGY_COEFFICIENTS
from registry.domain.violations import Rejected


def compute(
    ctx: ComplianceContext, kind: str, year: int, lines: list[dict[str, Any]]
) -> dict[str, Any] | list[dict[str, Any]]:
    """Run the national accounting method over report lines. Returns the stored figures, or every problem."""
    errors: list[dict[str, Any]] = []
    quantities: list[Decimal | None] = []
    for i, line in enumerate(lines):
        q = line.get("quantity")
        if isinstance(q, bool) or not isinstance(q, (int, str)):
            errors.append(
                {
                    "line": i,
                    "field": f"lines[{i}].quantity",
                    "code": "not-a-number",
                    "detail": 'Give the quantity as a decimal string such as "1234.5".',
                }
            )
            quantities.append(None)
            continue
        text = str(q)
        if not DECIMAL.fullmatch(text):
            errors.append(
                {
                    "line": i,
                    "field": f"lines[{i}].quantity",
                    "code": "not-a-number",
                    "detail": "The quantity must be a plain decimal number (no text, exponent or spaces).",
                }
            )
            quantities.append(None)
            continue
        value = Decimal(text)
        exponent = value.normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > reports_import.MAX_DECIMALS:
            errors.append(
                {
                    "line": i,
                    "field": f"lines[{i}].quantity",
                    "code": "too-many-decimals",
                    "detail": f"At most {reports_import.MAX_DECIMALS} decimals; the value is never rounded.",
                }
            )
            quantities.append(None)
            continue
        quantities.append(value + 0)
    ok = [(i, line, q) for (i, line), q in zip(enumerate(lines), quantities, strict=True) if q is not None]
    result: Any
    if kind == "carbon":
        factors = carbon_factors_of(ctx, year)
        carbon_lines = []
        for i, line, q in ok:
            try:
                lt = acc.LineType(line.get("line_type") or "")
            except ValueError:
                errors.append(
                    {
                        "line": i,
                        "field": f"lines[{i}].line_type",
                        "code": "unknown-line-type",
                        "detail": "line_type is one of fuel, process, electricity, heat.",
                    }
                )
                continue
            carbon_lines.append((i, acc.ActivityLine(lt, line.get("item") or "", q, line.get("unit") or "")))
        result = acc.account_carbon([x for _, x in carbon_lines], factors)
        index = [i for i, _ in carbon_lines]
    elif kind == "energy":
        energy_lines = [(i, acc.EnergyLine(line.get("item") or "", q, line.get("unit") or "")) for i, line, q in ok]
        result = acc.account_energy(
            [x for _, x in energy_lines], DEFAULT_ENERGY_COEFFICIENTS, electricity_of(ctx, year)
        )
        index = [i for i, _ in energy_lines]
    else:
        d_lines = [(i, acc.DischargeLine(line.get("pollutant") or "", q, line.get("unit") or "")) for i, line, q in ok]
        result = acc.account_discharge([x for _, x in d_lines], pollutants_of(ctx, year))
        index = [i for i, _ in d_lines]
    if isinstance(result, Rejected):
        for v in result.violations:
            m = re.match(r"lines\[(\d+)\]\.(\w+)", v.field)
            j = index[int(m.group(1))] if m else 0
            errors.append(
                {
                    "line": j,
                    "field": f"lines[{j}].{m.group(2) if m else 'quantity'}",
                    "code": v.code,
                    "detail": v.message,
                }
            )
    if errors:
        return sorted(errors, key=lambda e: (e["line"], e["field"]))
    return {"lines": lines, **_totals(kind, result)}


def _totals(kind: str, result: Any) -> dict[str, Any]:
    if kind == "carbon":
        return {
            "tco2e": result.total_tco2e,
            "exact": fraction_text(result.exact_total, 6),
            "factors_version": result.factors_version,
            "explanation": {
                "rounding_rule": result.rounding_rule,
                "lines": [
                    {
                        "line_type": x.line_type.value,
                        "item": x.item,
                        "quantity": fraction_text(x.quantity, 4),
                        "unit": x.unit,
                        "formula": x.formula,
                        "factors": dict(x.factors),
                        "tco2e": x.tco2e_text,
                    }
                    for x in result.lines
                ],
            },
        }
    if kind == "energy":
        kwh = sum((x.quantity for x in result.lines if x.item == acc.ELECTRICITY), Fraction(0))
        return {
            "kgce": result.total_kgce,
            "exact": fraction_text(result.exact_total, 6),
            "electricity_basis": result.electricity.basis.value,
            "electricity_kgce_per_kwh": str(result.electricity.kgce_per_kwh),
            "electricity_citation": result.electricity.citation,
            "electricity_mwh": int(kwh // 1000),
            "explanation": {
                "rounding_rule": result.rounding_rule,
                "lines": [
                    {
                        "item": x.item,
                        "quantity": fraction_text(x.quantity, 4),
                        "unit": x.unit,
                        "kgce_per_unit": x.kgce_per_unit,
                        "kgce": fraction_text(x.kgce_exact, 6),
                    }
                    for x in result.lines
                ],
            },
        }
    return {
        "kg": dict(result.kg_by_pollutant),
        "explanation": {
            "rounding_rule": result.rounding_rule,
            "exact_kg": {p: fraction_text(v, 6) for p, v in result.exact_kg_by_pollutant},
        },
    }


def obligation_figures(kind: str, totals: dict[str, Any]) -> dict[str, int]:
    """The obligation figures of a report version, per pollutant ('' for carbon and energy)."""
    if kind == "carbon":
        return {"": int(totals["tco2e"])}
    if kind == "energy":
        return {"": int(totals["kgce"])}
    return {p: int(v) for p, v in totals["kg"].items()}
