"""Load and check the golden case tables (`incentives/golden/*.yaml`).

A table names its programme, shared `base` facts and evaluation `day` (the engine's `on`: YAML would read a
bare `on` as true), and cases that override them. Money is written
in yuan for readability (keys ending `_yuan`, integers or decimal strings such as "4,999,999.99") and
converted here to the engine's fen (`_fen`), exactly, with the scale checked. A case's `expect` block
gives the eligible flag, the failed gates (in gate order), chosen outputs, remedies (English text),
findings and citations ("document article" texts that must appear among the determination's citations),
or an `error` (not_in_force, facts_error).

`check(case, params)` returns the list of differences (empty when the case passes); the golden tests and the
parameter mutation test both use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from incentives.domain.facts import FactsError
from incentives.domain.params import NotInForce, ParameterSet
from incentives.domain.programmes import get
from incentives.domain.rules import Determination, evaluate

GOLDEN = Path(__file__).resolve().parents[2] / "incentives" / "golden"
TAGS = {"worked", "eligible", "gate", "threshold", "change_before", "change_on", "known_before", "known_on"}


def yuan_to_fen(value: object, where: str) -> int:
    """Exact yuan → fen: an int, or a decimal string with at most 2 decimals (commas allowed)."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: {value!r} is not an amount")
    if isinstance(value, int):
        return value * 100
    if isinstance(value, str):
        amount = Decimal(value.replace(",", "").replace("_", ""))
        fen = amount * 100
        if fen != fen.to_integral_value():
            raise ValueError(f"{where}: {value!r} has more than 2 decimals")
        return int(fen)
    raise ValueError(f"{where}: {value!r} is not an amount (write yuan as an integer or a decimal string)")


def to_engine(values: dict[str, Any], where: str) -> dict[str, Any]:
    """Rename `x_yuan` keys to `x_fen` with exact conversion; leave the rest as written."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key.endswith("_yuan"):
            out[key[: -len("_yuan")] + "_fen"] = None if value is None else yuan_to_fen(value, f"{where}.{key}")
        else:
            out[key] = value
    return out


@dataclass
class Case:
    programme: str
    name: str
    tags: set[str]
    day: date
    known_on: date | None
    facts: dict[str, Any]
    expect: dict[str, Any]
    source: str
    outputs: dict[str, int] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.programme}: {self.name}"


def load_cases(directory: Path = GOLDEN) -> list[Case]:
    cases: list[Case] = []
    for path in sorted(directory.glob("*.yaml")):
        table = yaml.safe_load(path.read_text(encoding="utf-8"))
        programme = table["programme"]
        base = table.get("base", {})
        for raw in table["cases"]:
            where = f"{path.name}: {raw['name']}"
            unknown_tags = set(raw.get("tags", [])) - TAGS
            if unknown_tags:
                raise ValueError(f"{where}: unknown tags {sorted(unknown_tags)}")
            facts = dict(base.get("facts", {}))
            facts.update(raw.get("facts", {}))
            expect = dict(raw.get("expect", {}))
            case = Case(
                programme=programme,
                name=raw["name"],
                tags=set(raw.get("tags", [])),
                day=raw.get("day", base.get("day")),
                known_on=raw.get("known_on", base.get("known_on")),
                facts={k: v for k, v in to_engine(facts, where).items() if v is not None},
                expect=expect,
                source=path.name,
                outputs=to_engine(expect.get("outputs", {}), where),
            )
            cases.append(case)
    return cases


def run(case: Case, params: ParameterSet) -> Determination:
    return evaluate(get(case.programme), case.facts, params, case.day, case.known_on)


def check(case: Case, params: ParameterSet) -> list[str]:
    """Every difference between the case's expectation and what the engine decides (empty: it passes)."""
    error = case.expect.get("error")
    try:
        d = run(case, params)
    except NotInForce as exc:
        return [] if error == "not_in_force" else [f"unexpected NotInForce: {exc}"]
    except FactsError as exc:
        return [] if error == "facts_error" else [f"unexpected FactsError: {exc}"]
    except (ValueError, OverflowError, AssertionError) as exc:
        return [f"error: {type(exc).__name__}: {exc}"]
    if error:
        return [f"expected {error}, got a determination"]
    problems: list[str] = []
    if "eligible" in case.expect and d.eligible != case.expect["eligible"]:
        problems.append(f"eligible {d.eligible} != {case.expect['eligible']}")
    if "failed_gates" in case.expect and list(d.failed_gates) != list(case.expect["failed_gates"]):
        problems.append(f"failed gates {list(d.failed_gates)} != {case.expect['failed_gates']}")
    outputs = dict(d.outputs)
    for name, expected in case.outputs.items():
        if outputs.get(name) != expected:
            problems.append(f"{name} {outputs.get(name)} != {expected}")
    remedies = {g.code: g.remedy_en for g in d.gates}
    for code, text in case.expect.get("remedies", {}).items():
        if remedies.get(code) != text:
            problems.append(f"remedy of {code}: {remedies.get(code)!r} != {text!r}")
    findings = dict(d.findings)
    for key, value in case.expect.get("findings", {}).items():
        if findings.get(key) != value:
            problems.append(f"finding {key}: {findings.get(key)!r} != {value!r}")
    cited = {c.text for c in d.all_citations()}
    for text in case.expect.get("citations", []):
        if text not in cited:
            problems.append(f"citation {text!r} not among {sorted(cited)}")
    return problems
