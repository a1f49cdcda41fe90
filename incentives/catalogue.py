"""The programme and parameter catalogue (no database): every programme as data with its labels, the fact
names with their yuan aliases, and every dated parameter with its bitemporal, cited history.
"""

from __future__ import annotations

import datetime as dt

from core.errors import AppError
from incentives import engine
from incentives import schemas as s
from incentives.domain.params import NotInForce


def list_programmes(on: dt.date | None = None) -> list[dict[str, object]]:
    """Every programme as data, with `label_zh` / `label_en` beside the engine's names."""
    return [_labelled(p) for p in engine.list_programmes(on)]


def get_programme(code: str, on: dt.date | None = None) -> dict[str, object]:
    try:
        return _labelled(engine.get_programme(code, on))
    except engine.UnknownProgramme:
        raise AppError("unknown-programme", f"No programme has the code {code!r}; listProgrammes lists them.",
                       field="code") from None


def list_facts() -> list[dict[str, object]]:
    """The fact names (kind, unit, meaning, default); money facts also name their yuan alias."""
    out = []
    for spec in engine.fact_specs():
        name = str(spec["name"])
        out.append({**spec, "yuan_alias": s.yuan_alias(name) if spec["kind"] == "fen" else None})
    return out


def list_parameters() -> list[dict[str, object]]:
    ps = engine.parameters()
    out = []
    for name in ps.names():
        history = ps.history(name)
        out.append({"name": name, "kind": history[0].kind, "unit": history[0].unit, "entries": len(history),
                    "latest_citation": history[-1].citation.to_dict()})
    return out


def parameter_history(name: str, on: dt.date | None = None,
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


def _labelled(described: dict[str, object]) -> dict[str, object]:
    return {**described, "label_zh": described["name_zh"], "label_en": described["name_en"]}
