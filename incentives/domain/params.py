"""Bitemporal, cited parameters: what the law said on a day, as it was known on another day.

Each parameter (a rate, a cap, a catalogue edition) has a history of entries. An entry applies to the
days `valid_from <= day < valid_to` (`valid_to` exclusive, None for open-ended, as in `core.parameters`)
and became known on `published_on`. A later publication may change the past: 财税〔2018〕99号 was published on
2018-09-20 and raised the R&D extra deduction for the whole of 2018. So a query names two days:

    ParameterSet.value(name, on=D, known_on=K)

takes the entries published on or before K (all entries when K is None) that apply on D, and returns the
one published last. Two entries of one parameter published on the same day whose validity overlaps are
ambiguous for every knowledge date from that day on, and the set refuses to load them; so does an entry
without a citation (document and article) or an unconfirmed value without a note saying so.

This module is pure: the YAML loader (`incentives/parameters.py`) builds entries and hands them here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import pairwise

KINDS = ("int", "bool", "str", "ratio", "str_list", "catalogue")
"""The value kinds a parameter may declare. Rates are `int` basis points or an exact `ratio`, never floats."""


class ParameterError(ValueError):
    """The parameter set is malformed; carries every problem found, not only the first."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


class NotInForce(LookupError):
    """No entry of a parameter applies on the day asked (as known on the knowledge day)."""

    def __init__(self, name: str, on: date, known_on: date | None) -> None:
        self.name = name
        self.on = on
        self.known_on = known_on
        known = f" as known on {known_on.isoformat()}" if known_on else ""
        super().__init__(f"parameter {name} has no value in force on {on.isoformat()}{known}")


@dataclass(frozen=True, slots=True)
class Citation:
    """The legal text behind a rule or a number: the document (文号 or title) and the article."""

    document: str
    article: str

    @property
    def text(self) -> str:
        return f"{self.document} {self.article}".strip()

    def to_dict(self) -> dict[str, str]:
        return {"document": self.document, "article": self.article}


@dataclass(frozen=True, slots=True)
class Ratio:
    """An exact ratio kept in its legal form, e.g. 10/90 for "other costs ≤ 10 % of the total"."""

    numerator: int
    denominator: int

    def __post_init__(self) -> None:
        if self.numerator < 0 or self.denominator <= 0:
            raise ValueError(
                f"ratio {self.numerator}/{self.denominator} must be non-negative with a positive denominator")

    @property
    def text(self) -> str:
        return f"{self.numerator}/{self.denominator}"


AttributeValue = int | bool | str


@dataclass(frozen=True, slots=True)
class CatalogueItem:
    """One listed item of a catalogue edition: its code, its name, and rule attributes (e.g. a refund ratio)."""

    code: str
    name: str
    attributes: tuple[tuple[str, AttributeValue], ...] = ()

    def get(self, key: str, default: AttributeValue | None = None) -> AttributeValue | None:
        for k, v in self.attributes:
            if k == key:
                return v
        return default

    def int_attr(self, key: str) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError([f"catalogue item {self.code} has no integer attribute {key}"])
        return value

    def bool_attr(self, key: str, default: bool = False) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise ParameterError([f"catalogue item {self.code} attribute {key} is not a boolean"])
        return value


@dataclass(frozen=True, slots=True)
class Catalogue:
    """A catalogue edition (目录 版本): its label and its items, looked up by code (or by another key)."""

    edition: str
    items: tuple[CatalogueItem, ...]

    def find(self, code: str) -> CatalogueItem | None:
        for item in self.items:
            if item.code == code:
                return item
        return None

    def find_by(self, key: str, value: AttributeValue) -> CatalogueItem | None:
        for item in self.items:
            if item.get(key) == value:
                return item
        return None


Value = int | bool | str | Ratio | tuple[str, ...] | Catalogue


def value_to_json(value: Value) -> object:
    """The JSON form of a parameter value (for determinations, hashes and the API)."""
    if isinstance(value, Ratio):
        return {"numerator": value.numerator, "denominator": value.denominator}
    if isinstance(value, Catalogue):
        return {
            "edition": value.edition,
            "items": [{"code": i.code, "name": i.name, **dict(i.attributes)} for i in value.items],
        }
    if isinstance(value, tuple):
        return list(value)
    return value


def check_kind(kind: str, value: object) -> bool:
    """Whether `value` is of the declared kind (bool is not an int here: True is never a rate)."""
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "ratio":
        return isinstance(value, Ratio)
    if kind == "str_list":
        return isinstance(value, tuple) and all(isinstance(v, str) for v in value)
    if kind == "catalogue":
        return isinstance(value, Catalogue)
    return False


@dataclass(frozen=True, slots=True)
class ParameterEntry:
    """One dated, cited value of a parameter."""

    name: str
    kind: str
    unit: str
    value: Value
    valid_from: date
    valid_to: date | None
    published_on: date
    citation: Citation
    note: str = ""
    confirmed: bool = True
    description: str = field(default="", compare=False)
    id: str = field(init=False, compare=False)
    """A stable identifier of this entry: name, start of validity and knowledge day."""

    def __post_init__(self) -> None:
        # Computed once: determinations record the id of every entry they read.
        object.__setattr__(self, "id", f"{self.name}@{self.valid_from.isoformat()}#{self.published_on.isoformat()}")

    def applies_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)

    def known_on(self, day: date | None) -> bool:
        return day is None or self.published_on <= day

    def to_dict(self, *, compact: bool = False) -> dict[str, object]:
        """The entry as JSON; `compact` replaces a catalogue's items by their count and SHA-256 (a
        determination pins the edition without copying the whole catalogue into every record)."""
        value = value_to_json(self.value)
        if compact and isinstance(self.value, Catalogue):
            text = json.dumps(value, sort_keys=True, ensure_ascii=False)
            value = {"edition": self.value.edition, "item_count": len(self.value.items),
                     "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "unit": self.unit,
            "value": value,
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
            "published_on": self.published_on.isoformat(),
            "citation": self.citation.to_dict(),
            "note": self.note,
            "confirmed": self.confirmed,
        }


def _problems_of(entry: ParameterEntry) -> list[str]:
    problems: list[str] = []
    where = f"{entry.name} (from {entry.valid_from.isoformat()}, published {entry.published_on.isoformat()})"
    if not entry.citation.document.strip() or not entry.citation.article.strip():
        problems.append(f"{where}: citation needs both a document (文号) and an article")
    if entry.kind not in KINDS:
        problems.append(f"{where}: unknown kind {entry.kind!r}")
    elif not check_kind(entry.kind, entry.value):
        problems.append(f"{where}: value {entry.value!r} is not of kind {entry.kind}")
    if entry.valid_to is not None and entry.valid_to <= entry.valid_from:
        problems.append(f"{where}: valid_to {entry.valid_to.isoformat()} is not after valid_from")
    if not entry.confirmed and "not confirmed" not in entry.note.lower():
        problems.append(f"{where}: an unconfirmed value needs a note saying it is not confirmed")
    return problems


class ParameterSet:
    """All entries of all parameters, checked on construction, queried by day and knowledge day."""

    def __init__(self, entries: Iterable[ParameterEntry]) -> None:
        by_name: dict[str, list[ParameterEntry]] = {}
        problems: list[str] = []
        for entry in entries:
            problems.extend(_problems_of(entry))
            by_name.setdefault(entry.name, []).append(entry)
        for name, history in by_name.items():
            history.sort(key=lambda e: (e.valid_from, e.published_on))
            kinds = {e.kind for e in history}
            if len(kinds) > 1:
                problems.append(f"{name}: entries disagree on the kind ({', '.join(sorted(kinds))})")
            problems.extend(_overlaps(name, history))
        if problems:
            raise ParameterError(problems)
        self._by_name = {name: tuple(history) for name, history in sorted(by_name.items())}
        self._cache: dict[tuple[str, date, date | None], ParameterEntry] = {}

    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def entries(self) -> tuple[ParameterEntry, ...]:
        return tuple(e for history in self._by_name.values() for e in history)

    def history(self, name: str) -> tuple[ParameterEntry, ...]:
        """Every entry of `name`, ordered by validity then knowledge day."""
        if name not in self._by_name:
            raise KeyError(f"unknown parameter {name}")
        return self._by_name[name]

    def entry(self, name: str, on: date, known_on: date | None = None) -> ParameterEntry:
        """The entry in force on `on` as known on `known_on` (None: as known from every entry loaded)."""
        key = (name, on, known_on)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        best: ParameterEntry | None = None
        for e in self.history(name):
            if e.applies_on(on) and e.known_on(known_on) and (best is None or e.published_on > best.published_on):
                best = e
        if best is None:
            raise NotInForce(name, on, known_on)
        self._cache[key] = best
        return best

    def value(self, name: str, on: date, known_on: date | None = None) -> Value:
        """The value of `name` as the law stood on `on`, as known on `known_on`."""
        return self.entry(name, on, known_on).value

    def change_days(self, name: str) -> tuple[date, ...]:
        """Days on which the value in force (as known today) may change: every entry's start and end."""
        days = {e.valid_from for e in self.history(name)} | {e.valid_to for e in self.history(name) if e.valid_to}
        return tuple(sorted(days))

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of every entry: names the exact parameter set a result used."""
        text = json.dumps([e.to_dict() for e in self.entries()], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def replaced(self, old: ParameterEntry, new: ParameterEntry) -> ParameterSet:
        """A new set with one entry swapped (used by mutation tests and reforms)."""
        return ParameterSet([new if e is old else e for e in self.entries()])

    def with_overrides(self, overrides: Mapping[str, Value], *, label: str,
                       valid_from: date | None = None, valid_to: date | None = None) -> ParameterSet:
        """A reform: each named parameter takes the given value from `valid_from` (default: always).

        The reform entries are published after every existing entry, so that "as known now" sees them,
        and they cite the reform `label` so that a determination shows it used a hypothetical value.
        """
        entries = list(self.entries())
        latest = max((e.published_on for e in entries), default=date(2000, 1, 1))
        published = latest + timedelta(days=1)
        for name, value in overrides.items():
            history = self.history(name)
            kind = history[0].kind
            entries.append(ParameterEntry(
                name=name, kind=kind, unit=history[0].unit, value=value,
                valid_from=valid_from or date(1900, 1, 1), valid_to=valid_to, published_on=published,
                citation=Citation(document=f"reform: {label}", article="what-if"),
                note="hypothetical value for a what-if simulation; not confirmed against an official text",
                confirmed=False,
            ))
        return ParameterSet(entries)


def _overlaps(name: str, history: list[ParameterEntry]) -> list[str]:
    """Entries published on the same day must not overlap: nothing would decide between them."""
    problems: list[str] = []
    by_day: dict[date, list[ParameterEntry]] = {}
    for e in history:
        by_day.setdefault(e.published_on, []).append(e)
    for day, same in by_day.items():
        same.sort(key=lambda e: e.valid_from)
        for a, b in pairwise(same):
            if a.valid_to is None or a.valid_to > b.valid_from:
                problems.append(
                    f"{name}: entries from {a.valid_from.isoformat()} and {b.valid_from.isoformat()} "
                    f"overlap and were both published on {day.isoformat()}"
                )
    return problems


class ParameterView:
    """The parameters one determination reads, with each entry it used recorded for the trace.

    A programme asks the view, never the set, so that the determination lists exactly the entries (with
    their citations and knowledge days) that decided it.
    """

    def __init__(self, params: ParameterSet, on: date, known_on: date | None) -> None:
        self.params = params
        self.on = on
        self.known_on = known_on
        self.used: dict[str, ParameterEntry] = {}

    def entry(self, name: str, at: date | None = None) -> ParameterEntry:
        """The entry of `name` in force on `at` (default: the evaluation day), recorded as used."""
        e = self.params.entry(name, self.on if at is None else at, self.known_on)
        self.used[e.id] = e
        return e

    def number(self, name: str, at: date | None = None) -> int:
        value = self.entry(name, at).value
        assert isinstance(value, int) and not isinstance(value, bool), name
        return value

    def flag(self, name: str, at: date | None = None) -> bool:
        value = self.entry(name, at).value
        assert isinstance(value, bool), name
        return value

    def text(self, name: str, at: date | None = None) -> str:
        value = self.entry(name, at).value
        assert isinstance(value, str), name
        return value

    def ratio(self, name: str, at: date | None = None) -> Ratio:
        value = self.entry(name, at).value
        assert isinstance(value, Ratio), name
        return value

    def texts(self, name: str, at: date | None = None) -> tuple[str, ...]:
        value = self.entry(name, at).value
        assert isinstance(value, tuple), name
        return value

    def catalogue(self, name: str, at: date | None = None) -> Catalogue:
        value = self.entry(name, at).value
        assert isinstance(value, Catalogue), name
        return value

    def citation(self, name: str, at: date | None = None) -> Citation:
        return self.entry(name, at).citation

    def editions(self, name: str) -> tuple[ParameterEntry, ...]:
        """Every entry of a catalogue known on the knowledge day (for "the code under each version")."""
        known = tuple(e for e in self.params.history(name) if e.known_on(self.known_on))
        for e in known:
            self.used.setdefault(e.id, e)
        return known

    def used_entries(self) -> tuple[ParameterEntry, ...]:
        return tuple(sorted(self.used.values(), key=lambda e: (e.name, e.valid_from, e.published_on)))

