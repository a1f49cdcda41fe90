"""Programme results on the vector path: one programme over all rows (evaluated mask, gate results in gate
order, named outputs), and the helpers every programme's vector twin builds its result with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from incentives.batch.arith import I64, Arr
from incentives.domain.programmes import PROGRAMMES
from incentives.domain.rules import Programme


@dataclass
class Result:
    """One programme over all rows: evaluated mask, gate results in gate order, outputs."""

    programme: Programme
    evaluated: Arr
    gates: dict[str, tuple[Arr, Arr]]  # code -> (recorded, passed)
    outputs: dict[str, Arr]

    @property
    def eligible(self) -> Arr:
        ok = self.evaluated.copy()
        for recorded, passed in self.gates.values():
            ok &= ~recorded | passed
        return ok

    def failed_mask(self) -> Arr:
        mask = np.zeros(len(self.evaluated), dtype=I64)
        for bit, code in enumerate(self.programme.gate_codes):
            if code in self.gates:
                recorded, passed = self.gates[code]
                mask |= (self.evaluated & recorded & ~passed).astype(I64) << bit
        return mask


def _always(n: int) -> Arr:
    return np.ones(n, dtype=bool)


def _fail_rows(problems: list[tuple[str, str]], name: str, rows: Arr, message: str) -> Arr:
    """Record malformed rows; the caller leaves them out of the arithmetic and the batch is refused at the end."""
    if rows.any():
        problems.append((name, f"{message} (rows {np.flatnonzero(rows)[:5].tolist()})"))
    return rows


def _finish(programme: Programme, evaluated: Arr, gates: dict[str, tuple[Arr, Arr]],
            outputs: dict[str, Arr]) -> Result:
    """The programme's result; a row not evaluated has every output 0, as in the scalar table."""
    result = Result(programme, evaluated, gates, {})
    for spec in programme.outputs:
        result.outputs[spec.name] = np.where(evaluated, outputs[spec.name], 0).astype(I64, copy=False)
    return result


def _programme(code: str) -> Programme:
    for programme in PROGRAMMES:
        if programme.code == code:
            return programme
    raise KeyError(code)
