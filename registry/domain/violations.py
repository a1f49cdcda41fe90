"""Failed compliance conditions as values with stable codes.

A surrender request, an activity line or a settlement parameter can break several rules at once. The
compliance modules collect every broken rule as a `Violation` (stable `code`, the failing `field`, a
message telling the user how to fix it, and the numbers involved) instead of stopping at the first, so
the API can answer one problem listing them all. Codes are the problem `type` suffixes the API exposes
(e.g. `vintage-not-eligible`, `offset-cap-exceeded`, `period-closed`); never rename one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Violation:
    """One failed condition: what rule, which field, how to fix it, and the values compared."""

    code: str
    field: str
    message: str
    detail: tuple[tuple[str, str], ...] = ()

    def detail_dict(self) -> dict[str, str]:
        return dict(self.detail)


class ComplianceParameterError(ValueError):
    """Parameters supplied by the authority or the scheduler are invalid (e.g. k outside 5..10).

    Raised rather than returned because it is a configuration fault of the caller, not a user's input;
    it still carries every violation found.
    """

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.code}: {v.message}" for v in self.violations))


@dataclass(frozen=True, slots=True)
class Rejected:
    """The outcome of a rule that refused its input: every violation found, never just the first."""

    violations: tuple[Violation, ...]

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(v.code for v in self.violations)
