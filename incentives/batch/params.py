"""Parameters per row on the vector path: resolved once per distinct day through the same ParameterSet as
the scalar path, so both paths read the same entries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import numpy as np

from incentives.batch.arith import I64, Arr
from incentives.batch.frames import StrCol
from incentives.domain.params import Catalogue, NotInForce, ParameterSet, Ratio


class Params:
    """Parameter values as columns, with a mask of rows where the parameter is in force.

    A parameter's value (as known on `known_on`) is constant between the days its entries start or end, so
    each parameter is resolved once per such segment through the same ParameterSet as the scalar path, and
    rows find their segment by binary search on the yyyymmdd keys.
    """

    def __init__(self, params: ParameterSet, known_on: date | None) -> None:
        self.params = params
        self.known_on = known_on
        self._segments: dict[str, tuple[Arr, list[Any], Arr]] = {}
        # Most lookups share one day column; its distinct days are found once (the cache keeps the array
        # itself, so its id cannot be reused while cached) and each parameter is searched on those only.
        self._distinct: dict[int, tuple[Arr, Arr, Arr]] = {}

    def _segment_table(self, name: str) -> tuple[Arr, list[Any], Arr]:
        """(segment start keys, distinct values, value index per segment; -1 where nothing is in force)."""
        hit = self._segments.get(name)
        if hit is not None:
            return hit
        history = [e for e in self.params.history(name) if e.known_on(self.known_on)]
        starts = sorted({e.valid_from for e in history} | {e.valid_to for e in history if e.valid_to})
        values: list[Any] = []
        ids: dict[str, int] = {}
        index: list[int] = []
        for day in starts:
            try:
                entry = self.params.entry(name, day, self.known_on)
            except NotInForce:
                index.append(-1)
                continue
            if entry.id not in ids:
                ids[entry.id] = len(values)
                values.append(entry.value)
            index.append(ids[entry.id])
        keys = np.asarray([d.year * 10_000 + d.month * 100 + d.day for d in starts], dtype=I64)
        hit = (keys, values, np.asarray([*index, -1], dtype=I64))
        self._segments[name] = hit
        return hit

    def _per_day(self, name: str, keys: Arr) -> tuple[list[Any], Arr, Arr]:
        """(distinct values, value index per row (-1: not in force), in-force mask)."""
        starts, values, index = self._segment_table(name)
        hit = self._distinct.get(id(keys))
        if hit is None or hit[0] is not keys:
            uniq, inverse = np.unique(keys, return_inverse=True)
            hit = (keys, uniq, inverse)
            self._distinct[id(keys)] = hit
        _, uniq, inverse = hit
        segment = np.searchsorted(starts, uniq, side="right") - 1
        per_day = np.where(uniq > 0, index[segment], -1)  # segment -1 (before the first start) picks the -1
        row_index = per_day[inverse]
        return values, row_index, row_index >= 0

    def num(self, name: str, keys: Arr) -> tuple[Arr, Arr]:
        values, row_index, ok = self._per_day(name, keys)
        return np.asarray([*[v if isinstance(v, int) else 0 for v in values], 0], dtype=I64)[row_index], ok

    def ratio(self, name: str, keys: Arr) -> tuple[Arr, Arr, Arr]:
        values, row_index, ok = self._per_day(name, keys)
        nums = np.asarray([*[v.numerator for v in values if isinstance(v, Ratio)], 0], dtype=I64)[row_index]
        dens = np.asarray([*[v.denominator for v in values if isinstance(v, Ratio)], 1], dtype=I64)[row_index]
        return nums, dens, ok

    def text(self, name: str, keys: Arr) -> tuple[list[Any], Arr, Arr]:
        """(distinct values, value index per row, ok): for a str parameter compared by the caller."""
        return self._per_day(name, keys)

    def member(self, name: str, keys: Arr, column: StrCol, transform: Callable[[str], str] = str) -> tuple[Arr, Arr]:
        """Whether each row's text is in the str_list parameter in force on the row's day."""
        values, row_index, ok = self._per_day(name, keys)
        result = np.zeros(len(keys), dtype=bool)
        for index, listed in enumerate(values):
            rows = row_index == index
            table = column.take([transform(c) in listed for c in column.categories], False, bool)
            result[rows] = table[rows]
        return result, ok

    def contains(self, name: str, keys: Arr, item: str) -> tuple[Arr, Arr]:
        """Whether the str_list parameter in force on each row's day contains `item`."""
        values, row_index, ok = self._per_day(name, keys)
        return np.asarray([*[item in v for v in values], False], dtype=bool)[row_index], ok

    def catalogue(self, name: str, keys: Arr, column: StrCol, *, key: str = "code",
                  attrs: Sequence[tuple[str, Any]] = ()) -> tuple[Arr, Arr, dict[str, Arr]]:
        """(found, ok, attribute columns) of each row's text in the edition in force on the row's key day."""
        values, row_index, ok = self._per_day(name, keys)
        n = len(keys)
        found = np.zeros(n, dtype=bool)
        out = {a: np.full(n, default, dtype=type(default)) for a, default in attrs}
        for index, catalogue in enumerate(values):
            assert isinstance(catalogue, Catalogue)
            rows = row_index == index
            lookup = {(item.code if key == "code" else item.get(key)): item for item in catalogue.items}
            found[rows] = column.take([c in lookup for c in column.categories], False, bool)[rows]
            for a, default in attrs:
                per_category = [lookup[c].get(a, default) if c in lookup else default for c in column.categories]
                out[a][rows] = column.take(per_category, default, type(default))[rows]
        return found, ok, out
