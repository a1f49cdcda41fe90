"""Dated parameters: a value applies from `valid_from` (inclusive) to `valid_to` (exclusive, or open), and
every entry names the text it comes from. Values not confirmed against an official text say so in `note`.

Used for the registry's and the compliance calendar's configurable numbers; the incentives engine keeps its own
bitemporal set (it also needs "as known on").
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class DatedValue:
    name: str
    value: Any
    valid_from: dt.date
    valid_to: dt.date | None
    citation: str
    note: str = ""


class DatedParameters:
    def __init__(self, entries: list[DatedValue]) -> None:
        self.entries: dict[str, list[DatedValue]] = {}
        for e in entries:
            if not e.citation.strip():
                raise ValueError(f"parameter {e.name} from {e.valid_from} has no citation")
            self.entries.setdefault(e.name, []).append(e)
        for name, values in self.entries.items():
            values.sort(key=lambda v: v.valid_from)
            for a, b in itertools.pairwise(values):
                if a.valid_to is None or a.valid_to > b.valid_from:
                    raise ValueError(f"parameter {name}: {a.valid_from} and {b.valid_from} overlap")

    @classmethod
    def load(cls, path: Path) -> DatedParameters:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        entries = [
            DatedValue(
                name=name,
                value=e["value"],
                valid_from=e["valid_from"],
                valid_to=e.get("valid_to"),
                citation=str(e.get("citation") or ""),
                note=str(e.get("note") or ""),
            )
            for name, history in raw.items()
            for e in history
        ]
        return cls(entries)

    def entry(self, name: str, on: dt.date) -> DatedValue:
        for e in reversed(self.entries.get(name, [])):
            if e.valid_from <= on and (e.valid_to is None or on < e.valid_to):
                return e
        raise KeyError(f"no value of {name} applies on {on.isoformat()}")

    def value(self, name: str, on: dt.date) -> Any:
        return self.entry(name, on).value
