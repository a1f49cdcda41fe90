"""Request and response shapes of the incentives API.

Facts travel under the engine's documented names (`GET /api/v1/incentives/facts`). Money may be given either
as integer fen under the engine's `_fen` name or as a yuan decimal string under the same name ending `_yuan`
(`rd_core_costs_yuan: "7200000.00"`), parsed exactly at the edge; answers give every amount both ways
(`fen` integer and `yuan` string). Requests forbid unknown fields.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec

from core.figures import yuan_plain
from core.schema import CODE_MAX, MAX_ID, NAME_MAX, FreeObject, Id, Req, Year, int_range
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

    facts: FreeObject = msgspec.field(default_factory=dict)
    enterprise_id: Id | None = None
    project_ref: ProjectRef = ""
    on: dt.date | None = None
    known_on: dt.date | None = None
    programmes: Programmes | None = None
    override_reason: Annotated[str, msgspec.Meta(max_length=500)] = ""
    """Why brought-forward equipment credits given in `facts` differ from the enterprise's approved position of
    the year before (without it such figures are refused)."""


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


def _text_or_int(max_length: int, low: int, high: int) -> Any:
    """An optional text-or-integer cell with both arms bounded, the arms' bounds stated for the document
    (Litestar leaves out the bounds of a union's arms)."""
    arms = [{"type": "string", "maxLength": max_length}, {"type": "integer", "minimum": low, "maximum": high},
            {"type": "null"}]
    return Annotated[
        _text(max_length) | Annotated[int, msgspec.Meta(ge=low, le=high)] | None,
        msgspec.Meta(extra_json_schema={"extra": {"oneOf": arms}}),
    ]


def _record_field(name: str) -> tuple[str, Any, None]:
    """A fact column of a batch record, bounded as the fact check bounds it (incentives.domain.facts): integers
    by their kind's range, text by the fact's length, decimals by both."""
    spec = FACTS[name]
    kind: Any
    if spec.kind in INT_KINDS:
        low, high = INT_LIMITS[spec.kind]
        kind = Annotated[int, int_range(low, high)] | None
    elif spec.kind == "milli":
        # An exact decimal as text ("99.5") or an integer; a JSON float is refused by the strict decoder.
        kind = _text_or_int(MILLI_TEXT_MAX, -INT_LIMIT, INT_LIMIT)
    elif spec.kind == "bool":
        kind = bool | None
    elif spec.kind == "date":
        kind = dt.date | None
    else:
        kind = _text(spec.text_max) | None
    return (name, kind, None)


BatchRecord: Any = msgspec.defstruct(
    "BatchRecord",
    [
        ("on", dt.date | None, None),
        ("enterprise_id", _text_or_int(ENTERPRISE_TEXT_MAX, 1, MAX_ID), None),
        ("city", _text(CITY_MAX) | None, None),
        ("year", Year | None, None),
        *(_record_field(name) for name in FACTS),
        *((alias, _text_or_int(YUAN_TEXT_MAX, 0, MAX_FEN // 100), None) for alias in YUAN_ALIASES),
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

    records: Annotated[list[BatchRecord], msgspec.Meta(max_length=MAX_BATCH_ROWS)] | None = None
    # A seeded synthetic population (incentives.batch.synthetic_population), for exploring a reform.
    synthetic_rows: Annotated[int, msgspec.Meta(ge=1, le=MAX_BATCH_ROWS)] | None = None
    synthetic_seed: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] = 0
    # The latest stored evaluation of every enterprise evaluated so far (its facts and day).
    stored_evaluations: bool = False


class SimulateReform(Req):
    """Change parameters (plain JSON values: integers, ratios, lists, catalogues) and price the change."""

    overrides: Annotated[
        dict[str, Any],
        msgspec.Meta(
            min_length=1, max_length=OVERRIDES_MAX, extra_json_schema={"extra": {"maxProperties": OVERRIDES_MAX}}
        ),
    ]
    population: Population
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "reform"
    on: dt.date | None = None
    valid_from: dt.date | None = None


# ----------------------------------------------------------------------------------------------- answers


class CitationOut(msgspec.Struct, kw_only=True):
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
    document: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    article: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class PublishParameter(Req):
    """A new value (or catalogue edition) of a dated parameter, applying from `valid_from` (inclusive) to
    `valid_to` (exclusive, or open); pending until a second person confirms it.

    `value` is the parameter kind's JSON form: an integer (basis points, yuan-free units), a boolean, a text,
    `{"numerator": n, "denominator": d}`, a list of texts, or `{"edition": ..., "items": [{"code", "name", ...}]}`.
    `official: false` marks a value not yet checked against the official text (the note then says so)."""

    value: Any
    valid_from: dt.date
    citation: CitationIn
    valid_to: dt.date | None = None
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    official: bool = True


class ConfirmParameter(Req):
    """The second person's decision on a pending publication: `confirm` (it takes effect, known from today) or
    `reject` (with a reason; nothing changes). Always explicit: a body without `decision` is a 422 naming it."""

    decision: Annotated[str, msgspec.Meta(pattern="^(confirm|reject)$")]
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


# ------------------------------------------------------------------------------------ equipment-credit history


class ApproveCreditPosition(Req):
    """Approve a stored equipment_credit determination as its enterprise's credit position for the tax year."""

    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


class CarryOut(msgspec.Struct, kw_only=True):
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
