"""Facts at the edge: the engine's facts from the wire (yuan strings to integer fen, exactly), unknown names
refused, every problem reported at once under the name the caller used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from core.errors import AppError
from core.quantity import parse_money_fen
from incentives import schemas as s
from incentives._common import facts_problem
from incentives.domain.facts import FACTS, FactsError, normalise


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
