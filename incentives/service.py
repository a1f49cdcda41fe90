"""Incentives units of work: evaluate an enterprise or project with an explanation and store the determination;
evaluate many enterprise-years at once; price a reform; read the programme and parameter catalogue.

The rules themselves live in the engine (`incentives.engine`, pure and tested on its own); this service is the
edge around it: it turns facts from the wire into the engine's units (yuan strings to integer fen, exactly),
fills in what the registry knows of an enterprise, scopes who may see what, and stores every determination
as the engine produced it (canonical JSON and its SHA-256 digest) so that the finance context and banks can
show and verify it later. Each public async method is one unit of work.

Who may see what: an emitter evaluates and reads only its own enterprise (a foreign id answers 404 like a
missing one); regulators, the energy authority, finance staff and auditors any. Banks are not served here:
the finance context answers them after the enterprise's consent (it calls `get_determination(None, id)` as a
trusted caller and does its own consent check).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
import msgspec
import numpy as np
import pandas as pd
from sqlalchemy import select

from core.clock import Clock, business_date
from core.db import Database, UnitOfWork
from core.errors import AppError, InvalidInput, NotFound
from core.http import field_from_msgspec
from core.identity import Identity, Role
from core.quantity import format_amount, parse_money_fen
from incentives import engine
from incentives import schemas as s
from incentives.batch import BatchInputError, synthetic_population
from incentives.domain.facts import FACTS, FactsError, missing, normalise
from incentives.domain.params import NotInForce, ParameterError
from incentives.domain.programmes import PROGRAMMES
from incentives.domain.rules import Determination, Programme, show
from incentives.models import IncentiveBatchRun, IncentiveDetermination, IncentiveEvaluation
from registry.compliance.service import ComplianceService
from registry.service import RegistryService

T = TypeVar("T")

BY_CODE: dict[str, Programme] = {p.code: p for p in PROGRAMMES}

# Roles that may read any enterprise's determinations (the guards name the same roles).
READ_ANY = frozenset({Role.REGULATOR, Role.ENERGY_AUTHORITY, Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER,
                      Role.AUDITOR})

INT_KINDS = s.INT_KINDS
_INT_TEXT = r"-?[0-9]{1,19}"
_YUAN_TEXT = r"(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,2})?"
_DATE_TEXT = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_BOOL_TEXT = {"true": True, "false": False, "True": True, "False": False, "TRUE": True, "FALSE": False,
              "1": True, "0": False}


# ---------------------------------------------------------------------------------------------------------
# Engine errors as problems.


def facts_problem(problems: Iterable[tuple[str, str]], prefix: str = "facts.") -> AppError:
    """A 422 naming every offending fact; `field` is the first one."""
    listed = list(dict.fromkeys(problems))
    detail = "; ".join(f"{name}: {message}" for name, message in listed)
    return AppError(
        "facts-invalid",
        detail,
        field=f"{prefix}{listed[0][0]}" if listed else prefix.rstrip("."),
        extra={"problems": [{"field": f"{prefix}{name}", "message": message} for name, message in listed]},
    )


def not_in_force_problem(exc: NotInForce) -> AppError:
    return AppError(
        "parameter-not-in-force",
        f"{exc}. Evaluate on a day the programme's parameters apply, or with a later known_on.",
        field="on",
        extra={"parameter": exc.name},
    )


def batch_problem(exc: BatchInputError | Sequence[str]) -> AppError:
    problems = list(exc.problems if isinstance(exc, BatchInputError) else exc)
    first = problems[0].split(":", 1)[0].strip() if problems else "body"
    return AppError("batch-input-invalid", "; ".join(problems), field=first, extra={"problems": problems})


def reform_problem(problems: Sequence[str], field: str = "overrides") -> AppError:
    return AppError("reform-invalid", "; ".join(problems), field=field, extra={"problems": list(problems)})


def yuan(fen: int) -> str:
    """Integer fen as an exact yuan string ("8000000.00")."""
    return format_amount(fen, 2)


def _jsonable(value: object) -> object:
    return value.isoformat() if isinstance(value, dt.date) else value


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_jsonable)


# ---------------------------------------------------------------------------------------------------------
# Facts at the edge: yuan strings to fen, unknown names refused, every problem reported at once.


def parse_facts(raw: Mapping[str, Any]) -> tuple[dict[str, object], dict[str, str]]:
    """The engine's facts from the wire, and the alias each fen fact was given under (for naming problems).

    A money fact is integer fen under its `_fen` name or a yuan decimal string under its `_yuan` name
    (parsed exactly, never rounded); giving both is refused. Other facts pass through under their names and
    the engine checks their kinds. Unknown names are refused so that a misspelt fact is never ignored.
    """
    facts: dict[str, object] = {}
    aliases: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for key, value in raw.items():
        if key in s.YUAN_ALIASES:
            name = s.YUAN_ALIASES[key]
            if name in raw:
                problems.append((key, f"give either {name} (integer fen) or {key} (yuan), not both"))
                continue
            if value is None:
                facts[name] = None
            else:
                try:
                    facts[name] = parse_money_fen(value, field=key, allow_zero=True)
                except AppError as exc:
                    problems.append((key, exc.detail))
                    continue
            aliases[name] = key
        elif key in FACTS:
            spec = FACTS[key]
            if spec.kind == "fen" and isinstance(value, str):
                problems.append((key, f"give fen as a JSON integer, or the amount in yuan as "
                                      f'{s.yuan_alias(key)}: "{value}"'))
                continue
            facts[key] = value
        else:
            problems.append((key, "is not a known fact; GET /api/v1/incentives/facts lists them"))
    if problems:
        raise facts_problem(problems)
    # Every fact given is checked against its kind, also when no programme will read it today: a bad value
    # must not lie in a stored evaluation until a later reform or recomputation trips over it.
    try:
        normalise([k for k, v in facts.items() if v is not None], facts)
    except FactsError as exc:
        raise facts_problem(_named(exc.problems, aliases)) from None
    return facts, aliases


def _named(problems: Iterable[tuple[str, str]], aliases: Mapping[str, str]) -> list[tuple[str, str]]:
    """Engine problems under the names the caller used (a yuan alias when the fact was given in yuan)."""
    named = []
    for name, message in problems:
        if name in aliases:
            named.append((aliases[name], message))
        elif message == "is missing" and FACTS.get(name) and FACTS[name].kind == "fen":
            named.append((name, f"is missing (give {name} in fen or {s.yuan_alias(name)} in yuan)"))
        else:
            named.append((name, message))
    return named


# ---------------------------------------------------------------------------------------------------------
# Batch input: a strict CSV reader and the JSON records, both to the DataFrame the vector path takes.


def _problem_rows(mask: np.ndarray[Any, Any]) -> list[int]:
    return [int(i) + 1 for i in np.flatnonzero(mask)[:5]]


def _only_chars(series: pd.Series, pattern: str) -> bool:
    """Whether every present cell consists of the given characters: one regex over the joined column (a
    per-cell regex costs seconds on 100,000 rows), so the exact per-cell check runs only to name bad rows."""
    present = series.dropna().to_numpy(dtype=object)
    return re.fullmatch(f"[{pattern}]*", "".join(present)) is not None


def _bad_rows(series: pd.Series, regex: str) -> list[int]:
    ok = series.isna() | series.str.fullmatch(regex)
    return _problem_rows(~ok.to_numpy(dtype=bool))


def _convert_column(name: str, series: pd.Series, problems: list[str]) -> pd.Series | None:
    """A text column of a CSV to the dtype of its fact (None: the column is empty and is dropped)."""
    present = series.notna().to_numpy()
    if not present.any():
        return None
    if name in s.YUAN_ALIASES:
        ok = series.isna() | series.str.fullmatch(_YUAN_TEXT)
        if not ok.all():
            problems.append(f"{name}: rows {_problem_rows(~ok.to_numpy(dtype=bool))} are not yuan amounts with "
                            "at most 2 decimals (plain digits, no sign or separators)")
            return None
        parts = series.str.split(".", n=1, expand=True)
        whole = parts[0].astype("Int64")
        cents = parts[1].fillna("").str.ljust(2, "0") if 1 in parts.columns else pd.Series("00", index=series.index)
        return whole * 100 + cents.where(present, None).astype("Int64")
    kind = "date" if name == "on" else ("int" if name == "year" else (FACTS[name].kind if name in FACTS else "str"))
    if kind in INT_KINDS:
        # Digits and a minus sign only: "1.0", "1e3", "+1" and blanks are refused, never rounded or trimmed.
        converted: pd.Series | None = None
        if _only_chars(series, "0-9-"):
            try:
                converted = series.astype("Int64")
            except (ValueError, TypeError, OverflowError):
                converted = None
        if converted is None:
            unit = FACTS[name].unit if name in FACTS else "the unit"
            problems.append(f"{name}: rows {_bad_rows(series, _INT_TEXT)} are not whole numbers "
                            f"(integers of {unit}; never rounded)")
        return converted
    if kind == "bool":
        ok = series.isna() | series.isin(list(_BOOL_TEXT))
        if not ok.all():
            problems.append(f"{name}: rows {_problem_rows(~ok.to_numpy(dtype=bool))} are not true/false")
            return None
        return series.map(_BOOL_TEXT).astype("boolean")
    if kind == "date":
        try:
            if not _only_chars(series, "0-9-"):
                raise ValueError(name)
            return pd.to_datetime(series, format="%Y-%m-%d")
        except (ValueError, TypeError):
            problems.append(f"{name}: rows {_bad_rows(series, _DATE_TEXT)} are not dates (YYYY-MM-DD)")
            return None
    return series


def _merge_yuan(frame: pd.DataFrame, problems: list[str]) -> pd.DataFrame:
    """Yuan alias columns become their fen facts (a row may not give both)."""
    for alias, name in s.YUAN_ALIASES.items():
        if alias not in frame.columns:
            continue
        fen = frame.pop(alias)
        if name in frame.columns:
            both = (fen.notna() & frame[name].notna()).to_numpy()
            if both.any():
                problems.append(f"{alias}: rows {_problem_rows(both)} also give {name}; give one of the two")
                continue
            frame[name] = frame[name].fillna(fen)
        else:
            frame[name] = fen
    return frame


def frame_from_csv(body: bytes) -> pd.DataFrame:
    """The batch frame of a CSV body: a header of known column names, then one enterprise-year per line.

    Every cell is read as text and converted exactly: integers must be plain integers ("1.0" is refused),
    booleans true/false (or 1/0), dates YYYY-MM-DD, yuan columns at most 2 decimals.
    """
    text = body.decode("utf-8-sig", errors="strict") if body else ""
    header = text.split("\n", 1)[0].strip().strip("\r")
    if not header:
        raise batch_problem(["body: send a CSV with a header line naming the columns"])
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])
    except (ValueError, pd.errors.ParserError) as exc:
        raise batch_problem([f"body: the CSV could not be read: {exc}"]) from None
    unknown = [c for c in frame.columns if c not in s.BATCH_COLUMNS]
    if unknown:
        raise batch_problem([f"{c}: not a known column; GET /api/v1/incentives/facts lists them" for c in unknown])
    if len(frame) > s.MAX_BATCH_ROWS:
        raise batch_problem([f"body: at most {s.MAX_BATCH_ROWS} rows per batch (got {len(frame)})"])
    problems: list[str] = []
    columns: dict[str, pd.Series] = {}
    for name in frame.columns:
        converted = _convert_column(name, frame[name], problems)
        if converted is not None:
            columns[name] = converted
    if problems:
        raise batch_problem(problems)
    out = pd.DataFrame(columns, index=frame.index)
    out = _merge_yuan(out, problems)
    if problems:
        raise batch_problem(problems)
    return out


def frame_from_records(records: Sequence[Any]) -> pd.DataFrame:
    """The batch frame of decoded JSON records (`schemas.BatchRecord`, already strictly typed)."""
    names = s.BATCH_COLUMNS
    if not records:
        return pd.DataFrame({name: pd.Series([], dtype=object) for name in ("on",)})
    columns_raw = list(zip(*(msgspec.structs.astuple(r) for r in records), strict=True))
    columns: dict[str, Any] = {}
    problems: list[str] = []
    for name, values in zip(names, columns_raw, strict=True):
        if all(v is None for v in values):
            continue
        if name in s.YUAN_ALIASES:
            fen: list[int | None] = []
            for row, v in enumerate(values):
                try:
                    fen.append(None if v is None else parse_money_fen(v, field=name, allow_zero=True))
                except AppError as exc:
                    problems.append(f"{name}: row {row + 1}: {exc.detail}")
                    break
            columns[name] = pd.array(fen, dtype="Int64")
            continue
        kind = "date" if name == "on" else ("int" if name == "year" else (FACTS[name].kind if name in FACTS else "str"))
        if name == "enterprise_id":
            columns[name] = pd.array([None if v is None else str(v) for v in values], dtype=object)
        elif kind in INT_KINDS:
            columns[name] = pd.array(values, dtype="Int64")
        elif kind == "bool":
            columns[name] = pd.array(values, dtype="boolean")
        elif kind == "date":
            columns[name] = pd.to_datetime(pd.Series(values, dtype=object).map(
                lambda v: v.isoformat() if isinstance(v, dt.date) else None), format="%Y-%m-%d")
        else:
            columns[name] = pd.Categorical(values)
    if problems:
        raise batch_problem(problems)
    frame = pd.DataFrame(columns)
    frame = _merge_yuan(frame, problems)
    if problems:
        raise batch_problem(problems)
    return frame


def _headline_summary(table: pd.DataFrame) -> list[dict[str, object]]:
    """Per programme: rows evaluated, eligible (after stacking), stacked out, and the headline total."""
    summary: list[dict[str, object]] = []
    for p in PROGRAMMES:
        if f"{p.code}.evaluated" not in table.columns:
            continue
        evaluated = table[f"{p.code}.evaluated"].to_numpy(dtype=bool)
        eligible = table[f"{p.code}.eligible"].to_numpy(dtype=bool)
        stacked = table[f"{p.code}.stacked_out"].to_numpy(dtype=bool)
        counted = evaluated & eligible & ~stacked
        total = int(table[f"{p.code}.{p.headline}"].to_numpy(dtype=np.int64)[counted].sum(dtype=object))
        summary.append({
            "programme": p.code, "label_zh": p.name_zh, "label_en": p.name_en,
            "headline": p.headline, "headline_kind": p.headline_kind,
            "evaluated": int(evaluated.sum()), "eligible": int(counted.sum()),
            "stacked_out": int((evaluated & eligible & stacked).sum()),
            "headline_fen": total, "headline_yuan": yuan(total) if p.headline.endswith("_fen") else None,
        })
    return summary


@dataclass(frozen=True)
class BatchResult:
    """The output table of a batch (one row per input row) with its per-programme summary."""

    run_id: int
    on: dt.date | None
    known_on: dt.date | None
    table: pd.DataFrame
    summary: list[dict[str, object]]

    def to_csv(self) -> bytes:
        text: str = self.table.to_csv(index=False)
        return text.encode("utf-8")

    def to_json(self) -> bytes:
        """Compact JSON: the column names once, then one array per row (integers stay integers)."""
        cols = []
        for name in self.table.columns:
            series = self.table[name]
            if series.dtype in (np.dtype(bool), np.dtype(np.int64)):
                cols.append(series.tolist())
            else:
                cols.append(series.astype(object).where(series.notna(), None).tolist())
        rows = [list(row) for row in zip(*cols, strict=True)] if cols else []
        return msgspec.json.encode({
            "run_id": self.run_id,
            "on": self.on,
            "known_on": self.known_on,
            "row_count": len(self.table),
            "summary": self.summary,
            "columns": [str(c) for c in self.table.columns],
            "rows": rows,
        })


async def _in_thread(fn: Callable[[], T]) -> T:
    """CPU-bound pandas work off the event loop, so other requests keep being served meanwhile."""
    return await anyio.to_thread.run_sync(fn)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------------------


@dataclass
class IncentivesService:
    db: Database
    clock: Clock
    registry: RegistryService
    compliance: ComplianceService

    def evaluate(
        self, programme_code: str, facts: dict[str, Any], on: dt.date, known_on: dt.date | None = None
    ) -> Any:
        """One programme's determination (pure: the rules engine over the given facts). Finance calls this to
        recompute a claim's determination at review; it raises engine errors for bad facts."""
        return engine.evaluate(programme_code, facts, on, known_on=known_on)

    # ------------------------------------------------------------------ catalogue (no database)

    def list_programmes(self, on: dt.date | None = None) -> list[dict[str, object]]:
        """Every programme as data, with `label_zh` / `label_en` beside the engine's names."""
        return [_labelled(p) for p in engine.list_programmes(on)]

    def get_programme(self, code: str, on: dt.date | None = None) -> dict[str, object]:
        try:
            return _labelled(engine.get_programme(code, on))
        except engine.UnknownProgramme:
            raise AppError("unknown-programme", f"No programme has the code {code!r}; listProgrammes lists them.",
                           field="code") from None

    def list_facts(self) -> list[dict[str, object]]:
        """The fact names (kind, unit, meaning, default); money facts also name their yuan alias."""
        out = []
        for spec in engine.fact_specs():
            name = str(spec["name"])
            out.append({**spec, "yuan_alias": s.yuan_alias(name) if spec["kind"] == "fen" else None})
        return out

    def list_parameters(self) -> list[dict[str, object]]:
        ps = engine.parameters()
        out = []
        for name in ps.names():
            history = ps.history(name)
            out.append({"name": name, "kind": history[0].kind, "unit": history[0].unit, "entries": len(history),
                        "latest_citation": history[-1].citation.to_dict()})
        return out

    def parameter_history(self, name: str, on: dt.date | None = None,
                          known_on: dt.date | None = None) -> dict[str, object]:
        """A parameter's dated, bitemporal history (validity and knowledge days, citations), oldest first; with
        `on`, also the entry in force that day as known on `known_on`."""
        ps = engine.parameters()
        if name not in ps.names():
            raise AppError("unknown-parameter", f"No parameter is named {name!r}; listParameters lists them.",
                           field="name")
        entries = engine.parameter_history(name)
        in_force: dict[str, object] | None = None
        if on is not None:
            try:
                entry = ps.entry(name, on, known_on)
                in_force = {"id": entry.id, "value": engine.parameter_value(name, on, known_on)}
            except NotInForce:
                in_force = None
        first = entries[0]
        return {"name": name, "kind": first["kind"], "unit": first["unit"], "on": on, "known_on": known_on,
                "in_force": in_force, "entries": entries}

    # ------------------------------------------------------------------ evaluateEligibility

    async def evaluate_eligibility(self, who: Identity, req: s.EvaluateEligibility) -> s.EligibilityOut:
        """Every programme (or the ones named) for one enterprise or project, explained gate by gate; each
        determination is stored and answered with its id and digest."""
        if who.role not in READ_ANY and who.role != Role.EMITTER:
            raise AppError("forbidden", "Your role may not evaluate eligibility.")
        on = req.on or business_date(self.clock.now())
        wanted = self._wanted(req.programmes)
        facts, aliases = parse_facts(req.facts)
        enterprise: s.EnterpriseFacts | None = None
        enterprise_org: int | None = None
        registry_facts: list[s.RegistryFact] = []
        if req.enterprise_id is None and who.role == Role.EMITTER:
            raise InvalidInput("enterprise_id", "An emitter evaluates its own enterprise: give its enterprise_id.")
        if req.enterprise_id is not None:
            # The registry scopes the lookup: an emitter asking for another enterprise gets 404.
            ent = await self.registry.get_enterprise(who, req.enterprise_id)
            enterprise = s.EnterpriseFacts(
                id=ent.id, uscc=ent.uscc, name=ent.name, city=ent.city, industry_code=ent.industry_code,
                is_key_emitter=ent.is_key_emitter, is_sme=ent.is_sme, is_high_tech=ent.is_high_tech)
            enterprise_org = ent.organisation_id
            registry_facts = await self._registry_facts(ent.id, facts)

        try:
            evaluation = engine.evaluate_all(facts, on, known_on=req.known_on)
        except FactsError as exc:
            raise facts_problem(_named(exc.problems, aliases)) from None
        skipped = dict(evaluation.skipped)
        if wanted is not None:
            self._require_evaluated(wanted, skipped, facts, aliases, on, req.known_on)
        dets = [d for d in evaluation.determinations if wanted is None or d.programme in wanted]
        if not dets:
            reasons = [(code, reason) for code, reason in skipped.items()]
            raise AppError(
                "facts-invalid",
                "No programme could be evaluated with these facts: "
                + "; ".join(f"{c}: {r}" for c, r in reasons),
                field="facts",
                extra={"problems": [{"field": f"programmes.{c}", "message": r} for c, r in reasons]},
            )

        async def work(uow: UnitOfWork) -> tuple[IncentiveEvaluation, list[IncentiveDetermination]]:
            now = self.clock.now()
            ev = IncentiveEvaluation(
                enterprise_id=req.enterprise_id, enterprise_organisation_id=enterprise_org,
                project_ref=req.project_ref, evaluated_on=on, known_on=req.known_on,
                city=enterprise.city if enterprise else "",
                facts_json=_dumps(facts),
                registry_facts_json=_dumps({f.fact: msgspec.to_builtins(f) for f in registry_facts}),
                skipped_json=_dumps({c: r for c, r in skipped.items() if wanted is None or c in wanted}),
                requested_by=who.principal_id, requested_role=who.role.value, organisation_id=who.organisation_id,
                created_at=now,
            )
            uow.session.add(ev)
            await uow.session.flush()
            assert ev.id is not None
            rows = [self._row(d, ev.id, req.enterprise_id, enterprise_org, req.project_ref, who.principal_id, now)
                    for d in dets]
            uow.session.add_all(rows)
            await uow.session.flush()
            uow.audit(who.actor, "incentives.evaluate", "incentives_evaluation", str(ev.id), {
                "enterprise_id": req.enterprise_id, "on": on.isoformat(),
                "determinations": {r.programme: {"id": r.id, "digest": r.digest} for r in rows},
            })
            return ev, rows

        ev, rows = await self.db.run(work)
        assert ev.id is not None
        outs = [determination_out(r) for r in rows]
        totals: dict[str, int] = {}
        for d in outs:
            if d.eligible and not d.stacked_out_by:
                totals[d.headline_kind] = totals.get(d.headline_kind, 0) + d.headline_fen
        not_evaluated = [
            s.NotEvaluated(programme=c, label_zh=BY_CODE[c].name_zh, label_en=BY_CODE[c].name_en, reason=r)
            for c, r in skipped.items() if wanted is None or c in wanted
        ]
        return s.EligibilityOut(
            evaluation_id=ev.id, on=on, known_on=req.known_on, enterprise=enterprise,
            registry_facts=registry_facts,
            qualifies=[d.programme for d in outs if d.eligible and not d.stacked_out_by],
            not_qualified=[d.programme for d in outs if not d.eligible],
            stacked_out=[d.programme for d in outs if d.eligible and d.stacked_out_by],
            not_evaluated=not_evaluated,
            totals=[s.KindTotal(kind=k, fen=v, yuan=yuan(v)) for k, v in totals.items()],
            determinations=outs,
        )

    def _wanted(self, codes: Sequence[str] | None) -> set[str] | None:
        if codes is None:
            return None
        unknown = [c for c in codes if c not in BY_CODE]
        if unknown:
            raise AppError("unknown-programme", f"Unknown programme codes: {', '.join(unknown)}.",
                           field="programmes", status=422)
        return set(codes)

    @staticmethod
    def _require_evaluated(wanted: set[str], skipped: Mapping[str, str], facts: Mapping[str, object],
                           aliases: Mapping[str, str], on: dt.date, known_on: dt.date | None) -> None:
        """A programme the caller named must be evaluated: its missing facts or its parameter gap is a 422."""
        problems: list[tuple[str, str]] = []
        for code in sorted(wanted & set(skipped)):
            lacking = missing(BY_CODE[code].required_facts, facts)
            if lacking:
                problems.extend(_named([(name, "is missing") for name in lacking], aliases))
                continue
            try:
                engine.evaluate(code, facts, on, known_on=known_on)
            except NotInForce as exc:
                raise not_in_force_problem(exc) from None
        if problems:
            raise facts_problem(problems)

    async def _registry_facts(self, enterprise_id: int, facts: dict[str, object]) -> list[s.RegistryFact]:
        """Facts the registry owns, filled in (and preferred over the caller's): today the carbon compliance
        status, when the compliance service offers it."""
        status_of = getattr(self.compliance, "compliance_status", None)
        if status_of is None:
            return []
        status = await status_of(enterprise_id)
        if not isinstance(status, Mapping):
            return []
        if "carbon_open_shortfall_t" in status:
            value = int(status["carbon_open_shortfall_t"])
        elif status.get("open_shortfall") is False:
            value = 0
        else:
            # Only a flag that some shortfall is open: the caller's tonnes (if any) stand.
            return []
        caller = facts.get("carbon_open_shortfall_t")
        facts["carbon_open_shortfall_t"] = value
        return [s.RegistryFact(fact="carbon_open_shortfall_t", value=value, source="registry.compliance",
                               caller_value=caller if caller is not None and caller != value else None)]

    @staticmethod
    def _row(d: Determination, evaluation_id: int, enterprise_id: int | None, enterprise_org: int | None,
             project_ref: str, principal_id: int, now: dt.datetime) -> IncentiveDetermination:
        record = d.to_dict()
        return IncentiveDetermination(
            evaluation_id=evaluation_id, programme=d.programme, enterprise_id=enterprise_id,
            enterprise_organisation_id=enterprise_org, project_ref=project_ref, evaluated_on=d.on,
            known_on=d.known_on, eligible=d.eligible, stacked_out_by=d.stacked_out_by, headline=d.headline,
            headline_fen=d.headline_fen if d.eligible else 0, rule_pack_version=d.rule_pack_version,
            parameter_versions_json=_dumps([p.id for p in d.parameters]),
            inputs_json=_dumps(record["inputs"]), outputs_json=_dumps(record["outputs"]),
            trace_json=d.to_json(), digest=d.digest(), created_by=principal_id, created_at=now,
        )

    # ------------------------------------------------------------------ stored determinations

    async def get_determination(self, who: Identity | None, determination_id: int) -> s.DeterminationOut:
        """A stored determination. `who=None` is a trusted in-process caller (the finance context, which checks
        a bank's consent itself); an emitter sees only its own enterprise's, others with read-any roles all."""

        async def work(uow: UnitOfWork) -> IncentiveDetermination:
            row = await uow.session.get(IncentiveDetermination, determination_id)
            if row is None or not _may_see(who, row):
                raise NotFound("determination")
            return row

        return determination_out(await self.db.read(work))

    async def determination_by_digest(self, digest: str) -> s.DeterminationOut | None:
        """The stored determination with this digest (the verification code of a decision letter), or None.
        Trusted callers only (the finance context's /verify/{code})."""
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            return None

        async def work(uow: UnitOfWork) -> IncentiveDetermination | None:
            q = (select(IncentiveDetermination)
                 .where(IncentiveDetermination.digest == digest)  # type: ignore[arg-type]
                 .order_by(IncentiveDetermination.id).limit(1))  # type: ignore[arg-type]
            return (await uow.session.execute(q)).scalar_one_or_none()

        row = await self.db.read(work)
        return None if row is None else determination_out(row)

    async def record_determination(self, uow: UnitOfWork, who: Identity, determination: Determination, *,
                                   enterprise_id: int | None = None, enterprise_organisation_id: int | None = None,
                                   project_ref: str = "") -> tuple[int, str]:
        """Store a determination inside the caller's unit of work (finance stores the recomputed determination
        of a claim in the same transaction as the claim's step); returns (id, digest)."""
        now = self.clock.now()
        inputs = {k: _jsonable(v) for k, v in determination.inputs}
        ev = IncentiveEvaluation(
            enterprise_id=enterprise_id, enterprise_organisation_id=enterprise_organisation_id,
            project_ref=project_ref, evaluated_on=determination.on, known_on=determination.known_on,
            facts_json=_dumps(inputs), requested_by=who.principal_id, requested_role=who.role.value,
            organisation_id=who.organisation_id, created_at=now,
        )
        uow.session.add(ev)
        await uow.session.flush()
        assert ev.id is not None
        row = self._row(determination, ev.id, enterprise_id, enterprise_organisation_id, project_ref,
                        who.principal_id, now)
        uow.session.add(row)
        await uow.session.flush()
        assert row.id is not None
        uow.audit(who.actor, "incentives.record", "incentives_determination", str(row.id),
                  {"programme": row.programme, "digest": row.digest, "enterprise_id": enterprise_id})
        return row.id, row.digest

    async def store_determination(self, who: Identity, determination: Determination, *,
                                  enterprise_id: int | None = None, project_ref: str = "") -> s.DeterminationOut:
        """Store a determination in its own unit of work (the enterprise is looked up, and scoped, first)."""
        enterprise_org = None
        if enterprise_id is not None:
            enterprise_org = (await self.registry.get_enterprise(who, enterprise_id)).organisation_id

        async def work(uow: UnitOfWork) -> IncentiveDetermination:
            row_id, _ = await self.record_determination(
                uow, who, determination, enterprise_id=enterprise_id, enterprise_organisation_id=enterprise_org,
                project_ref=project_ref)
            row = await uow.session.get(IncentiveDetermination, row_id)
            assert row is not None
            return row

        return determination_out(await self.db.run(work))

    # ------------------------------------------------------------------ evaluateBatch

    async def evaluate_batch(self, who: Identity, *, body: bytes, content_type: str, on: dt.date | None = None,
                             known_on: dt.date | None = None,
                             programmes: Sequence[str] | None = None) -> BatchResult:
        """The vector path over a CSV body (`text/csv`) or JSON records: one output row per input row, with a
        per-programme summary; the run (who, when, input hash, summary) is recorded."""
        wanted = self._wanted(programmes)
        if content_type not in {"text/csv", "application/json"} and not content_type.endswith("+json"):
            raise AppError("unsupported-media-type", "Send the batch as text/csv or as application/json records.")
        if content_type == "text/csv":
            fmt = "csv"
            frame = await _in_thread(lambda: frame_from_csv(body))
        else:
            fmt = "json"
            try:
                req = msgspec.json.decode(body, type=s.EvaluateBatch, strict=True)
            except msgspec.ValidationError as exc:
                raise InvalidInput(_msgspec_field(str(exc)), str(exc)) from None
            except msgspec.DecodeError as exc:
                raise AppError("malformed-body", f"The body is not well-formed JSON: {exc}.") from None
            on = on or req.on
            known_on = known_on or req.known_on
            wanted = wanted or self._wanted(req.programmes)
            records = req.records
            frame = await _in_thread(lambda: frame_from_records(records))
        if "on" not in frame.columns and on is None:
            on = business_date(self.clock.now())

        def run() -> pd.DataFrame:
            try:
                return engine.evaluate_batch(frame, on=on, known_on=known_on)
            except BatchInputError as exc:
                raise batch_problem(exc) from None

        table = await _in_thread(run)
        if wanted is not None:
            keep = [c for c in table.columns if "." not in c or c.split(".", 1)[0] in wanted]
            table = table[keep]
        summary = _headline_summary(table)
        run_id = await self._record_run(who, "batch", len(table), fmt, _sha256(body), on, known_on, summary)
        return BatchResult(run_id=run_id, on=on, known_on=known_on, table=table, summary=summary)

    async def _record_run(self, who: Identity, kind: str, rows: int, fmt: str, digest: str, on: dt.date | None,
                          known_on: dt.date | None, summary: object) -> int:
        async def work(uow: UnitOfWork) -> int:
            run = IncentiveBatchRun(
                kind=kind, rows=rows, input_format=fmt, input_sha256=digest, evaluated_on=on, known_on=known_on,
                summary_json=_dumps(summary), requested_by=who.principal_id, organisation_id=who.organisation_id,
                created_at=self.clock.now(),
            )
            uow.session.add(run)
            await uow.session.flush()
            assert run.id is not None
            uow.audit(who.actor, f"incentives.{kind}", "incentives_batch_run", str(run.id),
                      {"rows": rows, "input_sha256": digest})
            return run.id

        return await self.db.run(work)

    # ------------------------------------------------------------------ simulateReform

    async def simulate_reform(self, who: Identity, req: s.SimulateReform) -> dict[str, object]:
        """The cost difference, per programme and per programme and city, of changing the given parameters,
        over a population (records, a seeded synthetic population, or the latest stored evaluations)."""
        ps = engine.parameters()
        unknown = [name for name in req.overrides if name not in ps.names()]
        if unknown:
            raise reform_problem([f"{n}: not a parameter; listParameters lists them" for n in unknown],
                                 field=f"overrides.{unknown[0]}")
        pop = req.population
        given = [pop.records is not None, pop.synthetic_rows is not None, pop.stored_evaluations]
        if sum(given) != 1:
            raise InvalidInput("population", "Give exactly one of records, synthetic_rows or stored_evaluations.")
        if pop.records is not None:
            fmt, records = "json", pop.records
            frame = await _in_thread(lambda: frame_from_records(records))
            digest = _sha256(msgspec.json.encode(pop.records))
        elif pop.synthetic_rows is not None:
            fmt, rows_n, seed = "synthetic", pop.synthetic_rows, pop.synthetic_seed
            frame = await _in_thread(lambda: synthetic_population(rows_n, seed, ps))
            digest = _sha256(f"synthetic:{rows_n}:{seed}".encode())
        else:
            fmt = "evaluations"
            stored = await self._stored_population()
            frame = await _in_thread(lambda: frame_from_records(stored))
            digest = _sha256(msgspec.json.encode(stored))
        if len(frame) == 0:
            raise InvalidInput("population", "The population is empty; there is nothing to price.")
        if "on" not in frame.columns and req.on is None:
            raise InvalidInput("on", "Give `on` (the evaluation day) or an `on` value in every record.")
        overrides = dict(req.overrides)

        def run() -> dict[str, object]:
            try:
                report = engine.simulate_reform(overrides, frame, label=req.label, on=req.on,
                                                valid_from=req.valid_from)
            except ParameterError as exc:
                raise reform_problem(list(exc.problems)) from None
            except BatchInputError as exc:
                raise batch_problem(exc) from None
            return report.to_dict()

        report = await _in_thread(run)
        for table in ("by_programme", "by_programme_city"):
            rows = report[table]
            assert isinstance(rows, list)
            for row in rows:
                for key in ("baseline_fen", "reform_fen", "difference_fen"):
                    row[key.replace("_fen", "_yuan")] = yuan(int(row[key]))
                code = row["programme"]
                row["label_zh"], row["label_en"] = BY_CODE[code].name_zh, BY_CODE[code].name_en
        run_id = await self._record_run(who, "reform", int(report["rows"]),  # type: ignore[call-overload]
                                        fmt, digest, req.on, None,
                                        {"label": req.label, "overrides": report["overrides"],
                                         "by_programme": report["by_programme"]})
        return {"run_id": run_id, "population": fmt, **report}

    async def _stored_population(self) -> list[Any]:
        """The latest stored evaluation of every enterprise, as batch records (facts, day, city)."""

        async def work(uow: UnitOfWork) -> list[IncentiveEvaluation]:
            q = (select(IncentiveEvaluation).where(IncentiveEvaluation.enterprise_id.is_not(None))  # type: ignore[union-attr]
                 .order_by(IncentiveEvaluation.id.desc()).limit(s.MAX_BATCH_ROWS * 4))  # type: ignore[union-attr]
            return list((await uow.session.execute(q)).scalars())

        seen: set[int] = set()
        records: list[Any] = []
        for ev in await self.db.read(work):
            assert ev.enterprise_id is not None
            if ev.enterprise_id in seen or len(records) >= s.MAX_BATCH_ROWS:
                continue
            seen.add(ev.enterprise_id)
            facts = json.loads(ev.facts_json)
            record = {k: v for k, v in facts.items() if k in FACTS}
            record |= {"on": ev.evaluated_on.isoformat(), "enterprise_id": str(ev.enterprise_id),
                       "city": ev.city or None}
            try:
                records.append(msgspec.convert(record, s.BatchRecord))
            except msgspec.ValidationError:
                # Facts are checked before an evaluation is stored; a row that still does not fit (written by
                # an older version) is left out rather than failing the whole simulation.
                continue
        return records


def _may_see(who: Identity | None, row: IncentiveDetermination) -> bool:
    if who is None or who.role in READ_ANY:
        return True
    return who.role == Role.EMITTER and row.enterprise_organisation_id == who.organisation_id


def _msgspec_field(message: str) -> str:
    return field_from_msgspec(message) or "body"


def _labelled(described: dict[str, object]) -> dict[str, object]:
    return {**described, "label_zh": described["name_zh"], "label_en": described["name_en"]}


def _citation(c: Mapping[str, Any]) -> s.CitationOut:
    return s.CitationOut(document=str(c["document"]), article=str(c["article"]))


def _gate_out(g: Mapping[str, Any]) -> s.GateOut:
    unit = str(g["unit"])
    return s.GateOut(
        code=g["code"], label_zh=g["label_zh"], label_en=g["label_en"],
        measured=g["measured"], measured_text=show(g["measured"], unit),
        comparator=g["comparator"], threshold=g["threshold"], threshold_text=show(g["threshold"], unit),
        unit=unit, passed=g["passed"], citation=_citation(g["citation"]),
        remedy_en=g["remedy_en"], remedy_zh=g["remedy_zh"], remedy_target=g["remedy_target"],
    )


def determination_out(row: IncentiveDetermination) -> s.DeterminationOut:
    """The API shape of a stored determination, rebuilt from its stored canonical JSON (and re-hashed)."""
    assert row.id is not None
    record: dict[str, Any] = json.loads(row.trace_json)
    programme = BY_CODE[row.programme]
    labels = {o.name: o for o in programme.outputs}
    # The canonical JSON sorts keys; answers list outputs in the programme's own order.
    outputs: dict[str, int] = {o.name: record["outputs"][o.name] for o in programme.outputs}
    amounts = [
        s.AmountOut(name=name, label_zh=labels[name].label_zh, label_en=labels[name].label_en, fen=value,
                    yuan=yuan(value))
        for name, value in outputs.items() if name.endswith("_fen")
    ]
    gates = [_gate_out(g) for g in record["gates"]]
    seen: dict[tuple[str, str], None] = {}
    for c in [*record["citations"], *(g["citation"] for g in record["gates"]),
              *(st["citation"] for st in record["steps"] if st.get("citation")),
              *(p["citation"] for p in record["parameters"])]:
        seen.setdefault((str(c["document"]), str(c["article"])))
    return s.DeterminationOut(
        id=row.id, digest=row.digest, verified=_sha256(row.trace_json.encode("utf-8")) == row.digest,
        evaluation_id=row.evaluation_id, programme=row.programme, label_zh=programme.name_zh,
        label_en=programme.name_en, headline_kind=programme.headline_kind, eligible=row.eligible,
        stacked_out_by=row.stacked_out_by, headline=row.headline, headline_fen=row.headline_fen,
        headline_yuan=yuan(row.headline_fen), amounts=amounts, outputs=outputs, gates=gates,
        failed_gates=[g for g in gates if not g.passed],
        articles=[s.CitationOut(document=d, article=a) for d, a in seen],
        rule_pack_version=row.rule_pack_version, parameter_versions=json.loads(row.parameter_versions_json),
        on=row.evaluated_on, known_on=row.known_on, enterprise_id=row.enterprise_id, project_ref=row.project_ref,
        created_by=f"principal:{row.created_by}", created_at=row.created_at, record=record,
    )
