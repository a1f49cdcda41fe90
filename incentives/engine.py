"""The incentives context's public facade: what the API, the finance context and the scheduler call.

Everything here is a thin composition of the pure domain (`incentives.domain`), the parameter loader and the
batch/what-if modules, over the shipped parameter set unless a caller passes another one. Facts are plain
dicts keyed by the documented fact names (`fact_specs()`); money facts are integer fen. Errors:

- `FactsError` (invalid or missing facts; `.problems` lists (fact, message) pairs) → 422;
- `NotInForce` (a parameter has no value on the day asked) → 422 with the parameter and day;
- `UnknownProgramme` → 404; `ParameterError` (a malformed reform or parameter file) → 422;
- `BatchInputError` (malformed batch rows or columns) → 422.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from incentives import batch, whatif
from incentives.batch import BatchInputError
from incentives.domain import programmes as registry
from incentives.domain import rules
from incentives.domain.claims import Claim, Conflict, conflicts
from incentives.domain.facts import FACTS, FactsError
from incentives.domain.params import NotInForce, ParameterError, ParameterSet, value_to_json
from incentives.domain.rules import Determination, Evaluation, Programme
from incentives.parameters import current_parameters

__all__ = [
    "BatchInputError", "Determination", "Evaluation", "FactsError", "NotInForce", "ParameterError",
    "UnknownProgramme", "double_claims", "evaluate", "evaluate_all", "evaluate_batch", "fact_specs",
    "get_programme", "list_programmes", "parameter_history", "parameters", "simulate_reform",
]


class UnknownProgramme(KeyError):
    """No programme has this code."""


def parameters() -> ParameterSet:
    """The checked parameter set in force: the shipped YAML plus the confirmed publications installed."""
    return current_parameters()


def _programme(code: str) -> Programme:
    try:
        return registry.get(code)
    except KeyError as exc:
        raise UnknownProgramme(str(exc)) from None


def _describe(programme: Programme, on: date | None, params: ParameterSet) -> dict[str, object]:
    described = programme.describe()
    if programme.excludes_parameter and on is not None:
        try:
            excluded = params.value(programme.excludes_parameter, on)
        except NotInForce:
            excluded = ()
        described["excludes"] = list(excluded) if isinstance(excluded, tuple) else []
    return described


def list_programmes(on: date | None = None, params: ParameterSet | None = None) -> list[dict[str, object]]:
    """Every programme as data (codes, names, citations, facts, gates, outputs; exclusions as of `on`)."""
    ps = params or parameters()
    return [_describe(p, on, ps) for p in registry.PROGRAMMES]


def get_programme(code: str, on: date | None = None, params: ParameterSet | None = None) -> dict[str, object]:
    """One programme as data; UnknownProgramme if the code does not exist."""
    return _describe(_programme(code), on, params or parameters())


def fact_specs() -> list[dict[str, object]]:
    """The documented fact keys (kind, unit, meaning, required, default) shared by every entry point."""
    return [spec.to_dict() for spec in FACTS.values()]


def evaluate(programme_code: str, facts: Mapping[str, object], on: date, known_on: date | None = None,
             params: ParameterSet | None = None) -> Determination:
    """The determination of one programme for these facts, as the law stood on `on` (known on `known_on`)."""
    return rules.evaluate(_programme(programme_code), facts, params or parameters(), on, known_on)


def evaluate_all(facts: Mapping[str, object], on: date, known_on: date | None = None,
                 params: ParameterSet | None = None) -> Evaluation:
    """Every programme the facts allow, with stacking applied ("choose the best, once")."""
    return rules.evaluate_all(registry.PROGRAMMES, facts, params or parameters(), on, known_on)


def evaluate_batch(data: pd.DataFrame | str | Path | Iterable[Mapping[str, object]], on: date | None = None,
                   known_on: date | None = None, params: ParameterSet | None = None) -> pd.DataFrame:
    """The vector path over many enterprise-years (see `incentives.batch` for the columns)."""
    return batch.evaluate_batch(data, params or parameters(), on=on, known_on=known_on)


def simulate_reform(overrides: Mapping[str, object],
                    population: pd.DataFrame | str | Path | Iterable[Mapping[str, Any]],
                    *, label: str = "reform", on: date | None = None, valid_from: date | None = None,
                    params: ParameterSet | None = None) -> whatif.ReformReport:
    """The cost difference per programme and city of changing the given parameters."""
    return whatif.simulate_reform(overrides, population, params or parameters(), label=label, on=on,
                                  valid_from=valid_from)


def parameter_history(name: str, params: ParameterSet | None = None) -> list[dict[str, object]]:
    """Every entry of a parameter (value, validity, knowledge day, citation, note), oldest first."""
    ps = params or parameters()
    try:
        return [entry.to_dict() for entry in ps.history(name)]
    except KeyError:
        raise ParameterError([f"unknown parameter {name}"]) from None


def parameter_value(name: str, on: date, known_on: date | None = None,
                    params: ParameterSet | None = None) -> object:
    """The JSON value of a parameter as the law stood on `on`, as known on `known_on`."""
    return value_to_json((params or parameters()).value(name, on, known_on))


def double_claims(claims: Sequence[Claim], on: date, params: ParameterSet | None = None) -> list[Conflict]:
    """Conflicting claims (same key twice, or exclusive programmes on one key) under the rules of `on`."""
    ps = params or parameters()
    excludes: dict[str, tuple[str, ...]] = {}
    for programme in registry.PROGRAMMES:
        if programme.excludes_parameter:
            try:
                listed = ps.value(programme.excludes_parameter, on)
            except NotInForce:
                continue
            assert isinstance(listed, tuple)
            excludes[programme.code] = listed
    return conflicts(claims, excludes)
