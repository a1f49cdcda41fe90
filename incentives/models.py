"""Tables of the incentives context: stored evaluations, the determinations they produced, and batch runs.

A determination is stored exactly as the rules engine produced it: its canonical JSON (`trace_json`, the
record a decision letter's verification code hashes) and that hash (`digest`), beside the columns people
search by (programme, enterprise, eligible, headline amount) and the versions it was computed under (rule
pack, parameter entry ids). Rows are never updated: a recomputation is a new determination.

A parameter publication is a dated, cited value (or catalogue edition) published in the system on top of the
shipped YAML: one person publishes it, another confirms it (four-eyes), and only then does the parameter lookup
see it, as an entry known from the day it was confirmed. Nothing is ever overwritten: the older entries stay, so
what was known on a day stays answerable.

Enterprises belong to the registry context, so `enterprise_id` is a plain reference, not a foreign key (a
context never touches another's tables); the organisation that owns the enterprise is copied at evaluation
time so that an emitter's visibility can be decided without asking the registry again.
"""

from __future__ import annotations

import datetime as dt

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Index, Text
from sqlmodel import Field, SQLModel


class IncentiveEvaluation(SQLModel, table=True):
    """One evaluateEligibility request: the facts as evaluated and where they came from."""

    __tablename__ = "incentives_evaluation"
    id: int | None = Field(default=None, primary_key=True)
    enterprise_id: int | None = Field(default=None, index=True)
    # The organisation owning the enterprise when it was evaluated (emitters see their own only).
    enterprise_organisation_id: int | None = Field(default=None, index=True)
    project_ref: str = Field(default="", max_length=100)
    evaluated_on: dt.date
    known_on: dt.date | None = None
    city: str = Field(default="", max_length=16)
    # The facts as the engine received them (fen integers, ISO dates), after registry facts were filled in.
    facts_json: str = Field(sa_type=Text)
    # Facts the registry supplied ({fact: {"value": ..., "source": ..., "caller_value": ...}}).
    registry_facts_json: str = Field(default="{}", sa_type=Text)
    # Programmes not evaluated and why ({programme: reason}).
    skipped_json: str = Field(default="{}", sa_type=Text)
    requested_by: int = Field(sa_type=BigInteger)
    requested_role: str = Field(max_length=24)
    organisation_id: int = Field(sa_type=BigInteger)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)


class IncentiveDetermination(SQLModel, table=True):
    """One programme's stored determination, immutable, with its canonical JSON and digest."""

    __tablename__ = "incentives_determination"
    __table_args__ = (Index("ix_incentives_determination_enterprise_programme", "enterprise_id", "programme"),)
    id: int | None = Field(default=None, primary_key=True)
    evaluation_id: int = Field(foreign_key="incentives_evaluation.id", index=True)
    programme: str = Field(max_length=64)
    enterprise_id: int | None = None
    enterprise_organisation_id: int | None = Field(default=None, index=True)
    project_ref: str = Field(default="", max_length=100)
    evaluated_on: dt.date
    known_on: dt.date | None = None
    eligible: bool
    stacked_out_by: str | None = Field(default=None, max_length=64)
    headline: str = Field(max_length=64)
    headline_fen: int = Field(sa_type=BigInteger)
    rule_pack_version: str = Field(max_length=64)
    # Ids of the parameter entries read ("name@valid_from#published_on"), JSON list.
    parameter_versions_json: str = Field(sa_type=Text)
    inputs_json: str = Field(sa_type=Text)
    outputs_json: str = Field(sa_type=Text)
    # Determination.to_json(): the canonical record; `digest` is its SHA-256.
    trace_json: str = Field(sa_type=Text)
    digest: str = Field(max_length=64, index=True)
    created_by: int = Field(sa_type=BigInteger)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)


class IncentiveBatchRun(SQLModel, table=True):
    """A record of one evaluateBatch or simulateReform run: who, when, over what input, with what result."""

    __tablename__ = "incentives_batch_run"
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # batch | reform
    rows: int = Field(sa_type=BigInteger)
    input_format: str = Field(max_length=16)  # csv | json | synthetic | evaluations
    input_sha256: str = Field(max_length=64)
    evaluated_on: dt.date | None = None
    known_on: dt.date | None = None
    # Per programme: evaluated, eligible and headline totals (batch) or the reform's cost difference.
    summary_json: str = Field(sa_type=Text)
    requested_by: int = Field(sa_type=BigInteger)
    organisation_id: int = Field(sa_type=BigInteger)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)


class IncentiveParameterPublication(SQLModel, table=True):
    """A value of a dated parameter published in the system: pending until a second person confirms it."""

    __tablename__ = "incentives_parameter_publication"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, index=True)
    kind: str = Field(max_length=16)
    # The value's JSON form (as value_to_json gives it; a catalogue with its edition and items).
    value_json: str = Field(sa_type=Text)
    valid_from: dt.date
    valid_to: dt.date | None = None
    citation_document: str = Field(max_length=200)
    citation_article: str = Field(max_length=200)
    note: str = Field(default="", sa_type=Text)
    # Whether the value was checked against the official text (False: the note says it is not confirmed).
    official: bool = True
    status: str = Field(default="pending", max_length=16, index=True)  # pending | confirmed | rejected
    source: str = Field(default="form", max_length=16)  # form | api | excel
    source_sha256: str = Field(default="", max_length=64)
    published_by: int = Field(sa_type=BigInteger)
    published_role: str = Field(max_length=24)
    organisation_id: int = Field(sa_type=BigInteger)
    published_at: dt.datetime = Field(sa_type=DateTimeUTC)
    decided_by: int | None = Field(default=None, sa_type=BigInteger)
    decided_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)
    decision_reason: str = Field(default="", max_length=500)
    # The knowledge day of the entry (the Shanghai day it was confirmed); None until confirmed.
    known_from: dt.date | None = None


class IncentiveCreditPosition(SQLModel, table=True):
    """An enterprise's approved equipment-credit position at the end of a tax year: the unused credit it carries
    into the next year by age (`carry_age{k}_fen` = age k in the next year), taken from an equipment_credit
    determination that finance staff approved (never its own author). Rows are never updated: a later approval
    for the same year supersedes the earlier one (the newest row of an enterprise-year is its position).
    The next year's evaluation of that enterprise fills `credit_carry_age{k}_fen` from it."""

    __tablename__ = "incentives_credit_position"
    __table_args__ = (Index("ix_incentives_credit_position_enterprise_year", "enterprise_id", "tax_year", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    enterprise_id: int = Field(sa_type=BigInteger)
    enterprise_organisation_id: int | None = Field(default=None, index=True)
    tax_year: int
    determination_id: int = Field(foreign_key="incentives_determination.id", unique=True)
    carry_age1_fen: int = Field(sa_type=BigInteger)
    carry_age2_fen: int = Field(sa_type=BigInteger)
    carry_age3_fen: int = Field(sa_type=BigInteger)
    carry_age4_fen: int = Field(sa_type=BigInteger)
    carry_age5_fen: int = Field(sa_type=BigInteger)
    note: str = Field(default="", max_length=500)
    approved_by: int = Field(sa_type=BigInteger)
    approved_role: str = Field(max_length=24)
    approved_at: dt.datetime = Field(sa_type=DateTimeUTC)
