"""Mutation test of the parameters: changing any single parameter value makes at least one golden case fail.

Every entry of every parameter is mutated leaf by leaf (an integer by +1 and by −1, a ratio's numerator and
denominator by ±1, a flag flipped, a text changed, each listed item or catalogue item removed, each item
attribute changed), and the golden cases that read that entry are re-run against the mutated set. A
mutation that no golden case notices is a parameter the golden tables do not pin down.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from incentives.domain.params import Catalogue, CatalogueItem, ParameterEntry, ParameterSet, Ratio, Value
from incentives.parameters import default_parameters
from tests.incentives.golden import check, load_cases, run

DESCRIPTIVE = {"name"}


def _item_mutations(item: CatalogueItem) -> Iterator[tuple[str, CatalogueItem]]:
    yield "code changed", replace(item, code=item.code + "✗")
    for index, (key, value) in enumerate(item.attributes):
        if key in DESCRIPTIVE:
            continue
        changed: list[tuple[str, object]] = []
        if isinstance(value, bool):
            changed.append((f"{key} flipped", not value))
        elif isinstance(value, int):
            changed += [(f"{key} +1", value + 1), (f"{key} −1", value - 1)]
        else:
            changed.append((f"{key} changed", value + "✗"))
        for label, new in changed:
            attributes = list(item.attributes)
            attributes[index] = (key, new)  # type: ignore[assignment]
            yield label, replace(item, attributes=tuple(attributes))


def mutations(value: Value) -> Iterator[tuple[str, Value]]:
    """Every single-leaf change of a parameter value."""
    if isinstance(value, bool):
        yield "flipped", not value
    elif isinstance(value, int):
        yield "+1", value + 1
        yield "−1", value - 1
    elif isinstance(value, str):
        yield "changed", value + "✗"
    elif isinstance(value, Ratio):
        yield "numerator +1", Ratio(value.numerator + 1, value.denominator)
        if value.numerator > 0:
            yield "numerator −1", Ratio(value.numerator - 1, value.denominator)
        yield "denominator +1", Ratio(value.numerator, value.denominator + 1)
        if value.denominator > 1:
            yield "denominator −1", Ratio(value.numerator, value.denominator - 1)
    elif isinstance(value, tuple):
        for i, item in enumerate(value):
            yield f"without {item}", value[:i] + value[i + 1:]
    elif isinstance(value, Catalogue):
        for i, item in enumerate(value.items):
            yield f"without item {item.code}", replace(value, items=value.items[:i] + value.items[i + 1:])
            for label, changed in _item_mutations(item):
                items = list(value.items)
                items[i] = changed
                yield f"item {item.code} {label}", replace(value, items=tuple(items))


def test_every_single_parameter_change_fails_a_golden_case():
    params = default_parameters()
    cases = load_cases()
    readers: dict[str, list] = {}
    for case in cases:
        if case.expect.get("error"):
            continue
        for entry in run(case, params).parameters:
            readers.setdefault(entry.id, []).append(case)
    undetected: list[str] = []
    count = 0
    for entry in params.entries():
        for label, value in mutations(entry.value):
            count += 1
            mutated = ParameterSet(_swap(params, entry, replace(entry, value=value)))
            if not any(check(case, mutated) for case in readers.get(entry.id, [])):
                undetected.append(f"{entry.id}: {label}")
    assert count > 200
    assert undetected == []


def _swap(params: ParameterSet, old: ParameterEntry, new: ParameterEntry) -> list[ParameterEntry]:
    return [new if e is old else e for e in params.entries()]


def test_a_mutation_the_golden_cases_would_miss_is_reported():
    # The check itself can fail: a parameter entry that no golden case reads goes undetected.
    params = default_parameters()
    entry = params.history("rd.extra_deduction_bp")[0]
    readers = [c for c in load_cases() if c.programme == "equipment_credit" and not c.expect.get("error")]
    mutated = ParameterSet(_swap(params, entry, replace(entry, value=entry.value + 1)))
    assert not any(check(case, mutated) for case in readers)
