"""The rules engine: a programme is a list of gates and formulas; its result is a Determination.

A **gate** is one legal condition. Its result records what was measured, the threshold, the unit, whether it
passed, the citation (文号 + article), a label in Chinese and English, and, where the measure is a number that
failed, the smallest change that would pass ("clinker 108 → 100 kgce/t reaches 标杆"). A programme
evaluates **every** gate (never stopping at the first failure), so an ineligible result lists them all. A
gate that cannot apply is not recorded: the resource-share gate when the product is not in the catalogue
(the catalogue item sets its threshold), the EMC contract gates for an environmental project.

A **step** is one line of arithmetic with its formula, value and citation. A **Determination** records the
normalised inputs, the parameter entries read (with their validity and knowledge days), the rule-pack
version, the named integer outputs, the findings (catalogue codes, statuses), the eligible flag and the
trace. It is immutable, deterministic and JSON-serialisable (`to_dict`), and `digest()` hashes its
canonical JSON so that the finance context can store it and verify a decision letter against it.

Stacking: a programme names the parameter listing the programmes it excludes; when two mutually exclusive
programmes are both eligible on the same facts, the larger headline amount is kept (ties: the programme
listed first) and the other is marked `stacked_out_by` — "choose the best, once" (财税〔2009〕69号 第二条).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from core.figures import decimal_plain, percent, yuan
from incentives.domain.arith import (
    BP,
    MILLI_DECIMALS,
    mul_div_ceil,
    mul_div_floor,
    ratio_bp_floor,
)
from incentives.domain.facts import FACTS, FactsError, FactValue, fact_json, missing, normalise
from incentives.domain.params import Citation, NotInForce, ParameterEntry, ParameterSet, ParameterView

RULE_PACK_VERSION = "greenrights-incentives/2026.2"
"""Version of the rule code. Bump it whenever a formula or gate changes meaning (parameters are versioned
separately, entry by entry, in every determination)."""

Measure = int | str | bool | None

FISCAL_KINDS = ("tax_expenditure", "tax_refund", "subsidy")
"""Headline kinds that cost the state money (green credit volumes and central bank relending do not)."""


UNITS_ZH = {"persons": "人", "years": "年", "project year": "", "policy year": ""}
"""Units as Chinese remedies write them (a year count reads as a bare number after its label)."""


_DECIMAL_MEASURE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def show(value: Measure, unit: str) -> str:
    """A measured value or threshold as people read it: fen as yuan, bp as a percentage, a decimal measure
    (a decimal string, e.g. "99.5") with its unit."""
    if isinstance(value, str) and unit and _DECIMAL_MEASURE.fullmatch(value):
        return f"{value} {unit}"
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return str(value)
    if unit == "fen":
        return yuan(value, unit=True)
    if unit == "bp":
        return percent(value)
    return f"{value} {unit}".strip()


@dataclass(frozen=True, slots=True)
class GateSpec:
    """A gate's stable code and labels, declared by its programme (codes are API; never rename one)."""

    code: str
    label_zh: str
    label_en: str


@dataclass(frozen=True, slots=True)
class Gate:
    """The result of one gate."""

    code: str
    label_zh: str
    label_en: str
    measured: Measure
    comparator: str
    threshold: Measure
    unit: str
    passed: bool
    citation: Citation
    remedy_en: str | None = None
    remedy_zh: str | None = None
    remedy_target: int | str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "label_zh": self.label_zh,
            "label_en": self.label_en,
            "measured": self.measured,
            "comparator": self.comparator,
            "threshold": self.threshold,
            "unit": self.unit,
            "passed": self.passed,
            "citation": self.citation.to_dict(),
            "remedy_en": self.remedy_en,
            "remedy_zh": self.remedy_zh,
            "remedy_target": self.remedy_target,
        }


@dataclass(frozen=True, slots=True)
class Step:
    """One line of a programme's arithmetic."""

    code: str
    label_zh: str
    label_en: str
    formula: str
    value: int
    unit: str
    citation: Citation | None

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "label_zh": self.label_zh,
            "label_en": self.label_en,
            "formula": self.formula,
            "value": self.value,
            "unit": self.unit,
            "citation": self.citation.to_dict() if self.citation else None,
        }


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """A named integer output of a programme; the name carries the unit (`_fen`, `_bp`, `_t`)."""

    name: str
    label_zh: str
    label_en: str


@dataclass(frozen=True, slots=True)
class Determination:
    """What a programme decided for one set of facts, with everything needed to explain and re-check it."""

    programme: str
    programme_name_zh: str
    programme_name_en: str
    rule_pack_version: str
    on: date
    known_on: date | None
    inputs: tuple[tuple[str, FactValue], ...]
    parameters: tuple[ParameterEntry, ...]
    outputs: tuple[tuple[str, int], ...]
    findings: tuple[tuple[str, str], ...]
    eligible: bool
    gates: tuple[Gate, ...]
    steps: tuple[Step, ...]
    headline: str
    citations: tuple[Citation, ...]
    stacked_out_by: str | None = None

    @property
    def failed_gates(self) -> tuple[str, ...]:
        return tuple(g.code for g in self.gates if not g.passed)

    def output(self, name: str) -> int:
        return dict(self.outputs)[name]

    @property
    def headline_fen(self) -> int:
        """The programme's headline amount, or 0 when it was stacked out by an exclusive programme."""
        return 0 if self.stacked_out_by else self.output(self.headline)

    def all_citations(self) -> tuple[Citation, ...]:
        """Programme, gate, step and parameter citations, each once, in first-seen order."""
        seen: dict[Citation, None] = {}
        for c in self.citations:
            seen.setdefault(c)
        for g in self.gates:
            seen.setdefault(g.citation)
        for s in self.steps:
            if s.citation:
                seen.setdefault(s.citation)
        for p in self.parameters:
            seen.setdefault(p.citation)
        return tuple(seen)

    def to_dict(self) -> dict[str, object]:
        return {
            "programme": self.programme,
            "programme_name_zh": self.programme_name_zh,
            "programme_name_en": self.programme_name_en,
            "rule_pack_version": self.rule_pack_version,
            "on": self.on.isoformat(),
            "known_on": self.known_on.isoformat() if self.known_on else None,
            "inputs": {k: fact_json(k, v) for k, v in self.inputs},
            "parameters": [p.to_dict(compact=True) for p in self.parameters],
            "outputs": dict(self.outputs),
            "headline": self.headline,
            "findings": dict(self.findings),
            "eligible": self.eligible,
            "failed_gates": list(self.failed_gates),
            "gates": [g.to_dict() for g in self.gates],
            "steps": [s.to_dict() for s in self.steps],
            "citations": [c.to_dict() for c in self.citations],
            "stacked_out_by": self.stacked_out_by,
        }

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces, UTF-8 text (Chinese kept as is)."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def digest(self) -> str:
        """SHA-256 of the canonical JSON; the verification code of a decision letter hashes this record."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()


class Context:
    """What a programme's rule sees while it runs: facts, parameters, and the trace it builds."""

    def __init__(self, programme: Programme, facts: Mapping[str, FactValue], view: ParameterView) -> None:
        self.programme = programme
        self.facts = facts
        self.params = view
        self.on = view.on
        self.gates: list[Gate] = []
        self.steps: list[Step] = []
        self.outputs: dict[str, int] = {}
        self.findings: dict[str, str] = {}
        self._specs = {g.code: g for g in programme.gates}

    # Typed access to facts. The facts were normalised, so a mismatch here is a programming error.
    def fen(self, name: str) -> int:
        value = self.facts[name]
        assert isinstance(value, int) and not isinstance(value, bool), name
        return value

    number = fen

    def milli(self, name: str) -> int | None:
        """A decimal fact in thousandths of its unit (None when not given)."""
        value = self.facts[name]
        assert value is None or (isinstance(value, int) and not isinstance(value, bool)), name
        assert FACTS[name].kind == "milli", name
        return value

    def flag(self, name: str) -> bool:
        value = self.facts[name]
        assert isinstance(value, bool), name
        return value

    def text(self, name: str) -> str:
        value = self.facts[name]
        assert isinstance(value, str), name
        return value

    def day(self, name: str) -> date | None:
        value = self.facts[name]
        assert value is None or isinstance(value, date), name
        return value

    @property
    def eligible(self) -> bool:
        return all(g.passed for g in self.gates)

    def _spec(self, code: str) -> GateSpec:
        spec = self._specs.get(code)
        if spec is None:
            raise KeyError(f"{self.programme.code}: gate {code} is not declared")
        return spec

    def gate(self, code: str, *, measured: Measure, comparator: str, threshold: Measure, unit: str,
             passed: bool, citation: Citation, remedy_en: str | None = None, remedy_zh: str | None = None,
             remedy_target: int | str | None = None) -> bool:
        """Record a gate result as computed by the caller; returns whether it passed."""
        spec = self._spec(code)
        self.gates.append(Gate(
            code=code, label_zh=spec.label_zh, label_en=spec.label_en, measured=measured,
            comparator=comparator, threshold=threshold, unit=unit, passed=passed, citation=citation,
            remedy_en=None if passed else remedy_en, remedy_zh=None if passed else remedy_zh,
            remedy_target=None if passed else remedy_target,
        ))
        return passed

    def compare(self, code: str, measured: int, comparator: str, threshold: int, unit: str, citation: Citation,
                *, what_en: str, what_zh: str, reaches_en: str = "", reaches_zh: str = "",
                milli: bool = False) -> bool:
        """A numeric gate; a failure states the smallest change of the measure that passes.

        With `milli`, measure and threshold are thousandths of `unit` (a decimal fact): the gate records them,
        and the remedy target, as exact decimal strings ("108.5", "100"), and `>`/`<` step by 0.001."""
        if comparator == ">=":
            passed, target = measured >= threshold, threshold
        elif comparator == ">":
            passed, target = measured > threshold, threshold + 1
        elif comparator == "<=":
            passed, target = measured <= threshold, threshold
        elif comparator == "<":
            passed, target = measured < threshold, threshold - 1
        else:
            raise ValueError(f"unknown comparator {comparator}")
        if milli:
            m_text, t_text, target_text = (
                decimal_plain(v, MILLI_DECIMALS) for v in (measured, threshold, target)
            )
            if passed:
                return self.gate(code, measured=m_text, comparator=comparator, threshold=t_text, unit=unit,
                                 passed=True, citation=citation)
            zh_unit = UNITS_ZH.get(unit, unit)
            return self.gate(
                code, measured=m_text, comparator=comparator, threshold=t_text, unit=unit, passed=False,
                citation=citation,
                remedy_en=f"{what_en} {m_text} → {target_text} {unit}".rstrip()
                + (f" {reaches_en}" if reaches_en else ""),
                remedy_zh=f"{what_zh} {m_text} → {target_text} {zh_unit}".rstrip() + reaches_zh,
                remedy_target=target_text,
            )
        if passed:
            return self.gate(code, measured=measured, comparator=comparator, threshold=threshold, unit=unit,
                             passed=True, citation=citation)
        if unit in ("fen", "bp"):
            change = change_zh = f"{show(measured, unit)} → {show(target, unit)}"
        else:
            # Plain units read best once, at the end: "clinker 108 → 100 kgce/t".
            change = f"{measured} → {target} {unit}".rstrip()
            change_zh = f"{measured} → {target} {UNITS_ZH.get(unit, unit)}".rstrip()
        return self.gate(
            code, measured=measured, comparator=comparator, threshold=threshold, unit=unit, passed=passed,
            citation=citation,
            remedy_en=f"{what_en} {change}{' ' + reaches_en if reaches_en else ''}",
            remedy_zh=f"{what_zh} {change_zh}{reaches_zh}",
            remedy_target=target,
        )

    def share(self, code: str, numerator: int, denominator: int, comparator: str, threshold_bp: int,
              citation: Citation, *, numerator_unit: str, what_en: str, what_zh: str) -> bool:
        """A share gate `numerator / denominator` against a threshold in bp, decided by cross-multiplying.

        The measure shown is the share in bp (rounded down); the remedy names the numerator that passes,
        e.g. "R&D expenses 4,200,000.00 元 → 5,000,000.00 元".
        """
        lhs, rhs = numerator * BP, threshold_bp * denominator
        least = mul_div_ceil(denominator, threshold_bp, BP)
        if comparator == ">=":
            passed, target = denominator > 0 and lhs >= rhs, least
        elif comparator == "<=":
            # An empty denominator has no share at all, so it cannot exceed an upper limit.
            passed, target = denominator == 0 or lhs <= rhs, mul_div_floor(denominator, threshold_bp, BP)
        else:
            raise ValueError(f"unknown share comparator {comparator}")
        measured = ratio_bp_floor(numerator, denominator)
        if passed:
            return self.gate(code, measured=measured, comparator=comparator, threshold=threshold_bp, unit="bp",
                             passed=True, citation=citation)
        change = f"{show(numerator, numerator_unit)} → {show(max(target, 0), numerator_unit)}"
        zh_unit = UNITS_ZH.get(numerator_unit, numerator_unit)
        change_zh = f"{show(numerator, zh_unit)} → {show(max(target, 0), zh_unit)}"
        return self.gate(
            code, measured=measured, comparator=comparator, threshold=threshold_bp,
            unit="bp", passed=passed, citation=citation,
            remedy_en=f"{what_en} {change}", remedy_zh=f"{what_zh} {change_zh}", remedy_target=max(target, 0),
        )

    def require(self, code: str, value: bool, expected: bool, citation: Citation, *, remedy_en: str,
                remedy_zh: str) -> bool:
        """A yes/no gate: the fact must equal `expected`."""
        return self.gate(code, measured=value, comparator="==", threshold=expected, unit="", passed=value == expected,
                         citation=citation, remedy_en=remedy_en, remedy_zh=remedy_zh)

    def step(self, code: str, label_zh: str, label_en: str, formula: str, value: int, unit: str,
             citation: Citation | None = None) -> int:
        self.steps.append(Step(code, label_zh, label_en, formula, value, unit, citation))
        return value

    def out(self, **values: int) -> None:
        for name, value in values.items():
            assert isinstance(value, int) and not isinstance(value, bool), name
            self.outputs[name] = value


Rule = Callable[[Context], None]

RELIEVED_INCOME = "income_relieved_elsewhere_fen"
"""The fact through which `evaluate_all` tells a rate programme which income another programme relieves."""


@dataclass(frozen=True)
class Programme:
    """A programme: its code, names, citations, facts, gates, outputs and the rule that evaluates it."""

    code: str
    name_zh: str
    name_en: str
    summary: str
    on_meaning: str
    citations: tuple[Citation, ...]
    facts: tuple[str, ...]
    gates: tuple[GateSpec, ...]
    outputs: tuple[OutputSpec, ...]
    headline: str
    rule: Rule
    excludes_parameter: str | None = None
    relieves_income: str | None = None
    """The fact naming income this programme relieves when eligible (a §88 project's separately accounted
    income): in one evaluation that income is passed to the programmes taking `RELIEVED_INCOME` (high_tech),
    which leave it out of their own relief, so no income is relieved twice."""
    headline_kind: str = "tax_expenditure"
    """What the headline amount is to the state: tax_expenditure, tax_refund, subsidy, credit_volume or
    central_bank_relending (the what-if report keeps them apart)."""

    gate_codes: tuple[str, ...] = field(init=False)
    required_facts: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        unknown = [f for f in self.facts if f not in FACTS]
        if unknown:
            raise ValueError(f"{self.code}: unknown facts {unknown}")
        if self.headline not in {o.name for o in self.outputs}:
            raise ValueError(f"{self.code}: headline {self.headline} is not an output")
        # Derived once: every evaluation orders gates and checks required facts.
        object.__setattr__(self, "gate_codes", tuple(g.code for g in self.gates))
        object.__setattr__(self, "required_facts", tuple(f for f in self.facts if FACTS[f].required))

    def describe(self) -> dict[str, object]:
        """The programme as data, for `list_programmes()` and the API."""
        return {
            "code": self.code,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "summary": self.summary,
            "on_meaning": self.on_meaning,
            "citations": [c.to_dict() for c in self.citations],
            "facts": [FACTS[f].to_dict() for f in self.facts],
            "gates": [{"code": g.code, "label_zh": g.label_zh, "label_en": g.label_en} for g in self.gates],
            "outputs": [{"name": o.name, "label_zh": o.label_zh, "label_en": o.label_en} for o in self.outputs],
            "headline": self.headline,
            "headline_kind": self.headline_kind,
            "excludes_parameter": self.excludes_parameter,
        }


def evaluate(programme: Programme, facts: Mapping[str, object], params: ParameterSet, on: date,
             known_on: date | None = None) -> Determination:
    """Evaluate one programme on `on` (as known on `known_on`).

    Raises FactsError when the facts are missing or malformed and NotInForce when a parameter the rule
    needs has no value on the day asked; both are the caller's to handle.
    """
    values = normalise(programme.facts, facts)
    view = ParameterView(params, on, known_on)
    ctx = Context(programme, values, view)
    programme.rule(ctx)
    missing_outputs = [o.name for o in programme.outputs if o.name not in ctx.outputs]
    if missing_outputs:
        raise AssertionError(f"{programme.code}: rule did not set outputs {missing_outputs}")
    order = programme.gate_codes.index
    gates = tuple(sorted(ctx.gates, key=lambda g: order(g.code)))
    return Determination(
        programme=programme.code,
        programme_name_zh=programme.name_zh,
        programme_name_en=programme.name_en,
        rule_pack_version=RULE_PACK_VERSION,
        on=on,
        known_on=known_on,
        inputs=tuple(sorted(values.items())),
        parameters=view.used_entries(),
        outputs=tuple((o.name, ctx.outputs[o.name]) for o in programme.outputs),
        findings=tuple(sorted(ctx.findings.items())),
        eligible=ctx.eligible,
        gates=gates,
        steps=tuple(ctx.steps),
        headline=programme.headline,
        citations=programme.citations,
    )


@dataclass(frozen=True)
class Evaluation:
    """All programmes evaluated on one set of facts, after stacking."""

    on: date
    known_on: date | None
    determinations: tuple[Determination, ...]
    skipped: tuple[tuple[str, str], ...]
    programmes: tuple[Programme, ...] = ()

    def get(self, code: str) -> Determination | None:
        for d in self.determinations:
            if d.programme == code:
                return d
        return None

    def total_fen(self, kinds: tuple[str, ...] = FISCAL_KINDS) -> int:
        """Sum of headline amounts after stacking, over programmes whose headline is of one of `kinds`
        (by default the fiscal cost: tax expenditure, tax refunds and subsidies, never loan volumes)."""
        kind = {p.code: p.headline_kind for p in self.programmes}
        return sum(d.headline_fen for d in self.determinations if kind[d.programme] in kinds)

    def to_dict(self) -> dict[str, object]:
        return {
            "on": self.on.isoformat(),
            "known_on": self.known_on.isoformat() if self.known_on else None,
            "determinations": [d.to_dict() for d in self.determinations],
            "skipped": dict(self.skipped),
        }


def exclusion_pairs(programmes: Sequence[Programme], params: ParameterSet, on: date,
                    known_on: date | None) -> tuple[tuple[int, int], ...]:
    """Index pairs (i < j) of programmes that exclude each other on `on` (either side may declare it)."""
    index = {p.code: i for i, p in enumerate(programmes)}
    pairs: set[tuple[int, int]] = set()
    for i, p in enumerate(programmes):
        if p.excludes_parameter is None:
            continue
        try:
            excluded = params.value(p.excludes_parameter, on, known_on)
        except NotInForce:
            continue
        assert isinstance(excluded, tuple)
        for code in excluded:
            j = index.get(code)
            if j is not None and j != i:
                pairs.add((min(i, j), max(i, j)))
    return tuple(sorted(pairs))


def stack(determinations: Mapping[str, Determination], programmes: Sequence[Programme],
          pairs: Sequence[tuple[int, int]]) -> dict[str, Determination]:
    """Mark the smaller of two eligible, mutually exclusive programmes as stacked out (ties: later one)."""
    result = dict(determinations)
    for i, j in pairs:
        a, b = result.get(programmes[i].code), result.get(programmes[j].code)
        if a is None or b is None or not (a.eligible and b.eligible) or a.stacked_out_by or b.stacked_out_by:
            continue
        if a.output(a.headline) >= b.output(b.headline):
            result[b.programme] = replace(b, stacked_out_by=a.programme)
        else:
            result[a.programme] = replace(a, stacked_out_by=b.programme)
    return result


def evaluate_all(programmes: Sequence[Programme], facts: Mapping[str, object], params: ParameterSet, on: date,
                 known_on: date | None = None) -> Evaluation:
    """Evaluate every programme whose required facts are present and whose parameters are in force."""
    done: dict[str, Determination] = {}
    skipped: list[tuple[str, str]] = []
    problems: list[tuple[str, str]] = []
    # Income relieved by an earlier programme (a §88 project) is not relieved again by a later one (HNTE's
    # 15 %): once a relieving programme was evaluated, its figure replaces whatever the caller gave.
    relieved: int | None = None
    for p in programmes:
        lacking = missing(p.required_facts, facts)
        if lacking:
            skipped.append((p.code, "missing facts: " + ", ".join(lacking)))
            continue
        given = facts if relieved is None or RELIEVED_INCOME not in p.facts else {**facts, RELIEVED_INCOME: relieved}
        try:
            done[p.code] = evaluate(p, given, params, on, known_on)
            if p.relieves_income is not None:
                d = done[p.code]
                income = dict(d.inputs)[p.relieves_income] if d.eligible else 0
                assert isinstance(income, int)
                relieved = (relieved or 0) + income
        except NotInForce as exc:
            skipped.append((p.code, f"not in force: {exc}"))
        except FactsError as exc:
            problems.extend(exc.problems)
    if problems:
        raise FactsError(dict.fromkeys(problems))
    stacked = stack(done, programmes, exclusion_pairs(programmes, params, on, known_on))
    return Evaluation(
        on=on, known_on=known_on,
        determinations=tuple(stacked[p.code] for p in programmes if p.code in stacked),
        skipped=tuple(skipped),
        programmes=tuple(programmes),
    )
