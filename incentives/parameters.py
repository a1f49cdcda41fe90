"""Load the incentives parameters (`incentives/parameters/*.yaml`) into a checked, bitemporal ParameterSet.

Each file maps a parameter name to its kind, unit, description and a list of entries:

    rd.extra_deduction_bp:
      kind: int            # int | bool | str | ratio | str_list | catalogue
      unit: bp
      description: ...
      entries:
        - value: 10000
          valid_from: 2023-01-01     # first day the value applies
          valid_to: null             # first day it no longer applies (exclusive); null = open-ended
          published_on: 2023-03-26   # the day it became known
          citation: {document: 财政部 税务总局公告2023年第7号, article: 第一条}
          note: ...                  # for the people who read the parameter (served by the API)
          remark: ...                # optional, for maintainers only: where a figure came from; never served
          confirmed: true            # false for values not confirmed against an official text

A `ratio` value is `{numerator: 10, denominator: 90}`; a `catalogue` value is `{edition: ..., items: [{code:
..., name: ..., <attribute>: ...}]}`. Floats are refused everywhere: rates are integer basis points.

Loading fails (ParameterError, listing every problem with its file) on a missing citation, overlapping
validity published on the same day, a wrong kind, a float, an unknown key, or a name defined in two files.
This is the only place the incentives context reads parameter files; the domain receives the set.

Values published in the system (`incentives.publications`, confirmed by a second person) are installed here on
top of the shipped set: `current_parameters()` is the shipped entries plus the confirmed publications, checked
together, and is what the engine answers from.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from incentives.domain.params import (
    Catalogue,
    CatalogueItem,
    Citation,
    ParameterEntry,
    ParameterError,
    ParameterSet,
    Ratio,
    Value,
)

DIRECTORY = Path(__file__).with_name("parameters")
_PARAMETER_KEYS = {"kind", "unit", "description", "entries"}
_ENTRY_KEYS = {"value", "valid_from", "valid_to", "published_on", "citation", "note", "remark", "confirmed"}
_DESCRIPTIVE = ("code", "name")


def _no_floats(value: object, where: str, problems: list[str]) -> None:
    if isinstance(value, float):
        problems.append(f"{where}: {value!r} is a float; give rates in basis points or as a ratio")
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_floats(v, f"{where}.{k}", problems)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_floats(v, f"{where}[{i}]", problems)


def _value(kind: str, raw: Any, where: str, problems: list[str]) -> Value | None:
    """Convert a YAML value to the domain's immutable value of the declared kind."""
    _no_floats(raw, where, problems)
    if kind == "ratio":
        if not isinstance(raw, dict) or set(raw) != {"numerator", "denominator"}:
            problems.append(f"{where}: a ratio needs exactly numerator and denominator")
            return None
        try:
            return Ratio(int(raw["numerator"]), int(raw["denominator"]))
        except (TypeError, ValueError) as exc:
            problems.append(f"{where}: {exc}")
            return None
    if kind == "str_list":
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            problems.append(f"{where}: a str_list needs a list of strings")
            return None
        return tuple(raw)
    if kind == "catalogue":
        if not (isinstance(raw, dict) and isinstance(raw.get("edition"), str) and isinstance(raw.get("items"), list)):
            problems.append(f"{where}: a catalogue needs an edition and a list of items")
            return None
        items: list[CatalogueItem] = []
        for i, item in enumerate(raw["items"]):
            if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in _DESCRIPTIVE):
                problems.append(f"{where}.items[{i}]: an item needs a code and a name")
                continue
            attributes = tuple(sorted((k, v) for k, v in item.items() if k not in _DESCRIPTIVE))
            if not all(isinstance(v, (int, str, bool)) for _, v in attributes):
                problems.append(f"{where}.items[{i}]: attributes must be integers, booleans or text")
                continue
            items.append(CatalogueItem(code=item["code"], name=item["name"], attributes=attributes))
        codes = [i.code for i in items]
        if len(set(codes)) != len(codes):
            problems.append(f"{where}: duplicate item codes")
        return Catalogue(edition=raw["edition"], items=tuple(items))
    if isinstance(raw, (int, str, bool)):
        return raw
    problems.append(f"{where}: value {raw!r} is not a {kind}")
    return None


def parse_value(kind: str, raw: Any, where: str = "value") -> Value:
    """Convert a plain (JSON/YAML) value to a parameter value of `kind`; raises ParameterError if it is not one.

    Used for reforms: `{"numerator": 10, "denominator": 90}` becomes a Ratio, a list a str_list, and so on.
    """
    problems: list[str] = []
    value = _value(kind, raw, where, problems)
    if problems or value is None:
        raise ParameterError(problems or [f"{where}: not a {kind}"])
    return value


def _date(raw: Any, where: str, problems: list[str], *, optional: bool = False) -> date | None:
    if raw is None and optional:
        return None
    if isinstance(raw, date):
        return raw
    problems.append(f"{where}: needs a date (YYYY-MM-DD)")
    return None


def parse(document: Any, source: str) -> list[ParameterEntry]:
    """Entries of one parsed YAML document; raises ParameterError naming `source` on any problem."""
    problems: list[str] = []
    entries: list[ParameterEntry] = []
    if not isinstance(document, dict):
        raise ParameterError([f"{source}: the file must map parameter names to definitions"])
    for name, definition in document.items():
        where = f"{source}: {name}"
        if not isinstance(definition, dict) or not isinstance(definition.get("entries"), list):
            problems.append(f"{where}: needs kind, unit and a list of entries")
            continue
        unknown = set(definition) - _PARAMETER_KEYS
        if unknown:
            problems.append(f"{where}: unknown keys {sorted(unknown)}")
        kind, unit = str(definition.get("kind", "")), str(definition.get("unit", ""))
        for i, raw in enumerate(definition["entries"]):
            at = f"{where} entry {i + 1}"
            if not isinstance(raw, dict):
                problems.append(f"{at}: must be a mapping")
                continue
            unknown = set(raw) - _ENTRY_KEYS
            if unknown:
                problems.append(f"{at}: unknown keys {sorted(unknown)}")
            citation = raw.get("citation")
            if not isinstance(citation, dict) or not citation.get("document") or not citation.get("article"):
                problems.append(f"{at}: needs a citation with a document (文号) and an article")
                continue
            value = _value(kind, raw.get("value"), at, problems)
            valid_from = _date(raw.get("valid_from"), f"{at} valid_from", problems)
            valid_to = _date(raw.get("valid_to"), f"{at} valid_to", problems, optional=True)
            published_on = _date(raw.get("published_on"), f"{at} published_on", problems)
            confirmed = raw.get("confirmed", True)
            if not isinstance(confirmed, bool):
                problems.append(f"{at}: confirmed must be true or false")
                continue
            if value is None or valid_from is None or published_on is None:
                continue
            entries.append(ParameterEntry(
                name=str(name), kind=kind, unit=unit, value=value, valid_from=valid_from, valid_to=valid_to,
                published_on=published_on,
                citation=Citation(str(citation["document"]), str(citation["article"])),
                note=str(raw.get("note") or ""), confirmed=confirmed,
                description=str(definition.get("description") or ""),
            ))
    if problems:
        raise ParameterError(problems)
    return entries


def load_entries(directory: Path = DIRECTORY) -> list[ParameterEntry]:
    """Every entry of every `*.yaml` file in `directory` (sorted by file name)."""
    entries: list[ParameterEntry] = []
    problems: list[str] = []
    owner: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        try:
            parsed = parse(document, path.name)
        except ParameterError as exc:
            problems.extend(exc.problems)
            continue
        for name in {e.name for e in parsed}:
            if name in owner:
                problems.append(f"{path.name}: {name} is already defined in {owner[name]}")
            owner.setdefault(name, path.name)
        entries.extend(parsed)
    if problems:
        raise ParameterError(problems)
    return entries


def load_parameters(directory: Path = DIRECTORY) -> ParameterSet:
    """A checked ParameterSet from the YAML files in `directory`."""
    return ParameterSet(load_entries(directory))


@lru_cache(maxsize=1)
def default_parameters() -> ParameterSet:
    """The shipped parameters, loaded once per process (they are immutable)."""
    return load_parameters()


_published: tuple[ParameterEntry, ...] = ()
_current: ParameterSet | None = None


def current_parameters() -> ParameterSet:
    """The parameter set in force in this process: the shipped YAML plus the confirmed publications installed."""
    return _current if _current is not None else default_parameters()


def combined(published: tuple[ParameterEntry, ...] | list[ParameterEntry]) -> ParameterSet:
    """The shipped entries with `published` on top, checked together (ParameterError on any conflict)."""
    return ParameterSet([*default_parameters().entries(), *published])


def install_published(published: tuple[ParameterEntry, ...] | list[ParameterEntry]) -> ParameterSet:
    """Make `published` (every confirmed publication) the overlay the engine answers from; returns the new set."""
    global _published, _current
    entries = tuple(published)
    if entries == _published and (_current is not None or not entries):
        return current_parameters()
    ps = combined(entries) if entries else None
    _published, _current = entries, ps
    return current_parameters()


def installed_published() -> tuple[ParameterEntry, ...]:
    return _published
