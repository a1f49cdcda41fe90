"""The programmes of domain.md section 6, in their canonical order (the order of stacking ties and of the
batch output's columns)."""

from __future__ import annotations

from incentives.domain.programmes import emc, equipment, first_set, green, high_tech, rd, resource
from incentives.domain.rules import RELIEVED_INCOME, Programme

PROGRAMMES: tuple[Programme, ...] = (
    rd.PROGRAMME,
    equipment.PROGRAMME,
    resource.VAT_PROGRAMME,
    resource.CIT_PROGRAMME,
    emc.PROGRAMME,
    high_tech.PROGRAMME,
    first_set.FS_PROGRAMME,
    first_set.JX_PROGRAMME,
    first_set.FB_PROGRAMME,
    green.GL_PROGRAMME,
    green.CT_PROGRAMME,
)

BY_CODE: dict[str, Programme] = {p.code: p for p in PROGRAMMES}

_relievers = [i for i, p in enumerate(PROGRAMMES) if p.relieves_income]
_takers = [i for i, p in enumerate(PROGRAMMES) if RELIEVED_INCOME in p.facts]
assert not _relievers or not _takers or max(_relievers) < min(_takers), (
    "a programme relieving income must come before the programmes that leave it out (evaluation order)")


def get(code: str) -> Programme:
    """The programme with this code; KeyError names the codes that exist."""
    try:
        return BY_CODE[code]
    except KeyError:
        raise KeyError(f"unknown programme {code!r}; known: {', '.join(BY_CODE)}") from None
