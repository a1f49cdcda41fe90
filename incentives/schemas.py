"""Request and response shapes of the incentives API.

Facts travel under the engine's documented names (`GET /api/v1/incentives/facts`). Money may be given either
as integer fen under the engine's `_fen` name or as a yuan decimal string under the same name ending `_yuan`
(`rd_core_costs_yuan: "7200000.00"`), parsed exactly at the edge; answers give every amount both ways
(`fen` integer and `yuan` string). Requests forbid unknown fields.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

import msgspec

from core.figures import yuan_plain
from core.schema import CODE_MAX, MAX_ID, NAME_MAX, FreeObject, Id, Req, Year, about, int_range
from incentives.batch import PASSTHROUGH
from incentives.domain.arith import MAX_FEN, MILLI_TEXT_MAX
from incentives.domain.facts import FACTS, INT_LIMIT, INT_LIMITS

MAX_BATCH_ROWS = 200_000
"""A limit on everything: one batch or reform population has at most this many rows."""

ProjectRef = Annotated[str, msgspec.Meta(max_length=100)]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Programmes = Annotated[
    list[Code],
    msgspec.Meta(
        max_length=32, extra_json_schema={"extra": {"items": {"type": "string", "minLength": 1, "maxLength": 64}}}
    ),
]
OVERRIDES_MAX = 64


class EvaluateEligibility(Req):
    """Evaluate one enterprise or project against every programme (or the ones named)."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "on": "2024-12-31",
        "facts": {
            "total_revenue_yuan": "100000000.00",
            "rd_core_costs_yuan": "7200000.00",
            "rd_other_costs_yuan": "900000.00",
            "tech_staff": 8,
            "staff_total": 100,
            "owns_core_ip": True,
        },
    }

    facts: Annotated[
        FreeObject,
        about(
            "Facts by their documented name (listFacts); money as integer fen under the `_fen` name or a yuan "
            "string under the `_yuan` name."
        ),
    ] = msgspec.field(default_factory=dict)
    enterprise_id: Annotated[Id, about("The registered enterprise evaluated (its registry facts are filled in).")] | (
        None
    ) = None
    project_ref: Annotated[ProjectRef, about("Your reference of the project evaluated.")] = ""
    on: Annotated[dt.date, about("The day the law is applied; today in Shanghai if omitted.")] | None = None
    known_on: Annotated[dt.date, about("Evaluate the law as it was known on this day.")] | None = None
    programmes: (
        Annotated[Programmes, about("Only these programmes; each must then be evaluable, or the answer is 422.")] | None
    ) = None
    override_reason: Annotated[
        str,
        msgspec.Meta(max_length=500),
        about(
            "Why brought-forward equipment credits given in `facts` differ from the enterprise's approved position "
            "of the year before (without it such figures are refused)."
        ),
    ] = ""


# ----------------------------------------------------------------------------------------------- batch rows

MONEY_KINDS = ("fen",)
INT_KINDS = ("fen", "count", "int", "bp", "year")


def yuan_alias(fact: str) -> str:
    """`rd_core_costs_fen` → `rd_core_costs_yuan`."""
    return fact[: -len("_fen")] + "_yuan"


YUAN_ALIASES: dict[str, str] = {
    yuan_alias(name): name for name, spec in FACTS.items() if spec.kind in MONEY_KINDS and name.endswith("_fen")
}
"""Yuan-string aliases accepted at the edge for every money fact: alias → engine fact name."""


YUAN_TEXT_MAX = len(yuan_plain(MAX_FEN))
"""The longest yuan text of a money fact ("1000000000000.00", MAX_FEN): no leading zeros, at most 2 decimals."""
ENTERPRISE_TEXT_MAX = CODE_MAX
"""A batch row's `enterprise_id` as text (a unified social credit code has 18 characters)."""
CITY_MAX = NAME_MAX


def _text(max_length: int) -> Any:
    return Annotated[str, msgspec.Meta(max_length=max_length)]


def _text_or_int(max_length: int, low: int, high: int, description: str) -> Any:
    """An optional text-or-integer cell with both arms bounded, the arms' bounds stated for the document
    (Litestar leaves out the bounds of a union's arms), and its description."""
    arms = [{"type": "string", "maxLength": max_length}, {"type": "integer", "minimum": low, "maximum": high},
            {"type": "null"}]
    return Annotated[
        _text(max_length) | Annotated[int, msgspec.Meta(ge=low, le=high)] | None,
        msgspec.Meta(description=description, extra_json_schema={"extra": {"oneOf": arms}}),
    ]


def _record_field(name: str) -> tuple[str, Any, None]:
    """A fact column of a batch record, bounded as the fact check bounds it (incentives.domain.facts): integers
    by their kind's range, text by the fact's length, decimals by both."""
    spec = FACTS[name]
    described = msgspec.Meta(description=f"{spec.description} ({spec.kind}, {spec.unit}).")
    if spec.kind in INT_KINDS:
        low, high = INT_LIMITS[spec.kind]
        return (name, Annotated[int, int_range(low, high), described] | None, None)
    if spec.kind == "milli":
        # An exact decimal as text ("99.5") or an integer; a JSON float is refused by the strict decoder.
        return (name, _text_or_int(MILLI_TEXT_MAX, -INT_LIMIT, INT_LIMIT, str(described.description)), None)
    if spec.kind == "bool":
        return (name, Annotated[bool, described] | None, None)
    if spec.kind == "date":
        return (name, Annotated[dt.date, described] | None, None)
    return (name, Annotated[str, msgspec.Meta(max_length=spec.text_max), described] | None, None)


BatchRecord: Any = msgspec.defstruct(
    "BatchRecord",
    [
        ("on", Annotated[dt.date, about("The evaluation day of this row; the batch's `on` if omitted.")] | None, None),
        (
            "enterprise_id",
            _text_or_int(ENTERPRISE_TEXT_MAX, 1, MAX_ID, "The enterprise's id or your key for the row."),
            None,
        ),
        ("city", Annotated[_text(CITY_MAX), about("The city, for totals by city.")] | None, None),
        ("year", Annotated[Year, about("The year of the enterprise-year.")] | None, None),
        *(_record_field(name) for name in FACTS),
        *(
            (alias, _text_or_int(YUAN_TEXT_MAX, 0, MAX_FEN // 100, f"`{fact}` as a yuan decimal string."), None)
            for alias, fact in YUAN_ALIASES.items()
        ),
    ],
    kw_only=True,
    forbid_unknown_fields=True,
    module=__name__,
)
"""One enterprise-year of a batch: the fact columns, `on`, the passthrough columns and yuan aliases.
Decoding is strict: a JSON float is never an integer fact, a string never a boolean. Every column is bounded
(and the bounds documented): a cell out of its bound is refused before any work, naming the record and column."""

BATCH_COLUMNS: tuple[str, ...] = tuple(f for f in BatchRecord.__struct_fields__)
assert set(PASSTHROUGH) <= set(BATCH_COLUMNS)


class EvaluateBatch(Req):
    """JSON form of evaluateBatch (the CSV form sends the same columns as a text/csv body)."""

    records: Annotated[list[BatchRecord], msgspec.Meta(max_length=MAX_BATCH_ROWS)]
    on: dt.date | None = None
    known_on: dt.date | None = None
    programmes: Programmes | None = None


class Population(Req):
    """The enterprise-years a reform is priced over: exactly one of the three sources."""

    records: (
        Annotated[
            list[BatchRecord], msgspec.Meta(max_length=MAX_BATCH_ROWS), about("Enterprise-years as batch records.")
        ]
        | None
    ) = None
    synthetic_rows: (
        Annotated[
            int,
            msgspec.Meta(ge=1, le=MAX_BATCH_ROWS),
            about("A seeded synthetic population (incentives.batch.synthetic_population) of this many rows."),
        ]
        | None
    ) = None
    synthetic_seed: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1), about("The seed of the synthetic population.")] = 0
    stored_evaluations: Annotated[
        bool, about("The latest stored evaluation of every enterprise evaluated so far (its facts and day).")
    ] = False


class SimulateReform(Req):
    """Change parameters (plain JSON values: integers, ratios, lists, catalogues) and price the change."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "label": "R&D extra deduction 120 %",
        "overrides": {"rd.extra_deduction_bp": 12000},
        "population": {"synthetic_rows": 200, "synthetic_seed": 1},
    }

    overrides: Annotated[
        dict[str, Any],
        msgspec.Meta(
            min_length=1, max_length=OVERRIDES_MAX, extra_json_schema={"extra": {"maxProperties": OVERRIDES_MAX}}
        ),
        about("New parameter values by parameter name, each in the parameter's own kind (no floats)."),
    ]
    population: Annotated[Population, about("The enterprise-years priced.")]
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=100), about("A name for the reform.")] = "reform"
    on: Annotated[dt.date, about("The evaluation day of records without one.")] | None = None
    valid_from: Annotated[dt.date, about("Apply the reform from this day on.")] | None = None


# ----------------------------------------------------------------------------------------------- answers


class CitationOut(msgspec.Struct, kw_only=True):
    """A legal citation: the document and its article."""

    document: str
    article: str


class AmountOut(msgspec.Struct, kw_only=True):
    """A money output of a programme, in integer fen and as an exact yuan string."""

    name: str
    label_zh: str
    label_en: str
    fen: int
    yuan: str


class GateOut(msgspec.Struct, kw_only=True):
    """One legal condition: what was measured, against what, in which unit, and under which article."""

    code: str
    label_zh: str
    label_en: str
    measured: int | bool | str | None
    measured_text: str
    comparator: str
    threshold: int | bool | str | None
    threshold_text: str
    unit: str
    passed: bool
    citation: CitationOut
    # For a failed gate: the smallest change that would pass, in words and (numeric gates) as a value: an
    # integer of the unit, or an exact decimal string for a decimal measure (energy intensity, "117").
    remedy_en: str | None = None
    remedy_zh: str | None = None
    remedy_target: int | str | None = None


class DeterminationOut(msgspec.Struct, kw_only=True):
    """A stored determination: the engine's record (`record`, hashed by `digest`) and a readable summary."""

    id: int
    digest: str
    verified: bool
    evaluation_id: int
    programme: str
    label_zh: str
    label_en: str
    headline_kind: str
    eligible: bool
    stacked_out_by: str | None
    headline: str
    headline_fen: int
    headline_yuan: str
    amounts: list[AmountOut]
    outputs: dict[str, int]
    gates: list[GateOut]
    failed_gates: list[GateOut]
    articles: list[CitationOut]
    rule_pack_version: str
    parameter_versions: list[str]
    on: dt.date
    known_on: dt.date | None
    enterprise_id: int | None
    project_ref: str
    created_by: str
    created_at: dt.datetime
    record: dict[str, Any]


class EnterpriseFacts(msgspec.Struct, kw_only=True):
    """What the registry knows of the enterprise evaluated."""

    id: int
    uscc: str
    name: str
    city: str
    industry_code: str
    is_key_emitter: bool
    is_sme: bool
    is_high_tech: bool


class RegistryFact(msgspec.Struct, kw_only=True):
    """A fact the system owns, filled in for the caller: the registry's compliance status as the registry showed
    it at the end of `as_of` (min of the evaluation's on, known_on and today), or the approved equipment-credit
    position of the year before (`source` names it). `caller_value` is the caller's figure when it differed;
    `override_reason` is set when the caller's figure was used instead, and why."""

    fact: str
    value: Any
    source: str
    caller_value: Any = None
    as_of: dt.date | None = None
    override_reason: str | None = None


class NotEvaluated(msgspec.Struct, kw_only=True):
    """A programme that could not be evaluated, and why (the facts missing)."""

    programme: str
    label_zh: str
    label_en: str
    reason: str


class KindTotal(msgspec.Struct, kw_only=True):
    """The sum of headline amounts of one kind (tax expenditure, refund, subsidy, credit volume, relending)."""

    kind: str
    fen: int
    yuan: str


class EligibilityOut(msgspec.Struct, kw_only=True):
    """An evaluation: what the enterprise or project qualifies for, each determination with its gates and amounts,
    and totals by kind."""

    evaluation_id: int
    on: dt.date
    known_on: dt.date | None
    enterprise: EnterpriseFacts | None
    registry_facts: list[RegistryFact]
    qualifies: list[str]
    not_qualified: list[str]
    stacked_out: list[str]
    not_evaluated: list[NotEvaluated]
    totals: list[KindTotal]
    determinations: list[DeterminationOut]


# ----------------------------------------------------------------------------------------- published parameters


class CitationIn(Req):
    """Where a value is published."""

    document: Annotated[str, msgspec.Meta(min_length=1, max_length=200), about("The document (its name and 文号).")]
    article: Annotated[str, msgspec.Meta(min_length=1, max_length=200), about("The article or section.")]


class PublishParameter(Req):
    """A new value (or catalogue edition) of a dated parameter, applying from `valid_from` (inclusive) to
    `valid_to` (exclusive, or open); pending until a second person confirms it.

    `value` is the parameter kind's JSON form: an integer (basis points, yuan-free units), a boolean, a text,
    `{"numerator": n, "denominator": d}`, a list of texts, or `{"edition": ..., "items": [{"code", "name", ...}]}`.
    `official: false` marks a value not yet checked against the official text (the note then says so)."""

    EXAMPLE: ClassVar[dict[str, Any]] = {
        "value": 12000,
        "valid_from": "2027-01-01",
        "citation": {"document": "财政部 税务总局公告2023年第7号", "article": "第一条"},
        "note": "研发费用加计扣除比例",
    }

    value: Annotated[Any, about("The new value, in the parameter kind's JSON form.")]
    valid_from: Annotated[dt.date, about("The first day the value applies.")]
    citation: Annotated[CitationIn, about("Where the value is published.")]
    valid_to: Annotated[dt.date, about("The first day it no longer applies; open if omitted.")] | None = None
    note: Annotated[str, msgspec.Meta(max_length=2000), about("A note for the second person.")] = ""
    official: Annotated[bool, about("false: not yet checked against the official text.")] = True


class ConfirmParameter(Req):
    """The second person's decision on a pending publication: `confirm` (it takes effect, known from today) or
    `reject` (with a reason; nothing changes). Always explicit: a body without `decision` is a 422 naming it."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"decision": "confirm"}

    decision: Annotated[str, msgspec.Meta(pattern="^(confirm|reject)$"), about("confirm or reject.")]
    reason: Annotated[str, msgspec.Meta(max_length=500), about("Why; required to reject.")] = ""


# ------------------------------------------------------------------------------------ equipment-credit history


class ApproveCreditPosition(Req):
    """Approve a stored equipment_credit determination as its enterprise's credit position for the tax year."""

    EXAMPLE: ClassVar[dict[str, Any]] = {"note": "2025 年度税务备案一致"}

    note: Annotated[str, msgspec.Meta(max_length=500), about("A note kept with the position.")] = ""


class CarryOut(msgspec.Struct, kw_only=True):
    """The credit carried forward of one age."""

    age: int
    fen: int
    yuan: str


class CreditPositionOut(msgspec.Struct, kw_only=True):
    """An approved credit position: what the enterprise carries into `tax_year + 1`, by age in that year."""

    id: int
    enterprise_id: int
    tax_year: int
    determination_id: int
    carry_forward: list[CarryOut]
    carry_forward_total_fen: int
    note: str
    approved_by: str
    approved_role: str
    approved_at: dt.datetime
    superseded: bool
