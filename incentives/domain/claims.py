"""Claims keys: one enterprise × project × equipment serial × invoice may be claimed once.

A claim is keyed by the enterprise's unified social credit code, the project, the equipment serial number and
the invoice number, normalised (NFKC, so full-width "ＡＢ１" equals "AB1"; upper case; blanks removed) so that
a retyped key still collides. Two claims conflict when they share an enterprise and either the whole key, a
non-empty equipment serial or a non-empty invoice, and they are under the same programme or under two
programmes that exclude each other. The finance context stores the key with a unique index; this module
decides, purely, which pairs in a batch conflict and why.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


def _norm(part: str) -> str:
    return "".join(unicodedata.normalize("NFKC", part).upper().split())


@dataclass(frozen=True, slots=True, order=True)
class ClaimKey:
    """The normalised parts of a claims key; empty parts are allowed (not every claim has an invoice)."""

    enterprise: str
    project: str
    equipment_serial: str
    invoice: str

    @property
    def text(self) -> str:
        """The key as one string, parts separated by '|' (stored with a unique index)."""
        return "|".join((self.enterprise, self.project, self.equipment_serial, self.invoice))


def claim_key(enterprise: str, project: str = "", equipment_serial: str = "", invoice: str = "") -> ClaimKey:
    """Build a normalised key; the enterprise is required."""
    key = ClaimKey(_norm(enterprise), _norm(project), _norm(equipment_serial), _norm(invoice))
    if not key.enterprise:
        raise ValueError("a claims key needs the enterprise's credit code")
    if any("|" in part for part in (key.project, key.equipment_serial, key.invoice)):
        raise ValueError("claims key parts may not contain '|'")
    return key


@dataclass(frozen=True, slots=True)
class Claim:
    programme: str
    key: ClaimKey
    reference: str = ""


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two claims that may not both be paid, and the shared part that makes them collide."""

    first: Claim
    second: Claim
    shared: str
    reason: str


def _shared(a: ClaimKey, b: ClaimKey) -> str | None:
    if a.enterprise != b.enterprise:
        return None
    if a == b:
        return "key"
    if a.equipment_serial and a.equipment_serial == b.equipment_serial:
        return "equipment_serial"
    if a.invoice and a.invoice == b.invoice:
        return "invoice"
    return None


def conflicts(claims: Iterable[Claim], excludes: Mapping[str, Iterable[str]]) -> list[Conflict]:
    """Every conflicting pair among `claims`, in input order.

    `excludes` maps a programme to the programmes it excludes (the stacking parameters); exclusion is
    symmetric. The claims are grouped by enterprise first, so the work is quadratic only per enterprise.
    """
    exclusive: set[tuple[str, str]] = set()
    for programme, others in excludes.items():
        for other in others:
            exclusive.add((programme, other))
            exclusive.add((other, programme))
    by_enterprise: dict[str, list[Claim]] = {}
    for claim in claims:
        by_enterprise.setdefault(claim.key.enterprise, []).append(claim)
    found: list[Conflict] = []
    for group in by_enterprise.values():
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                shared = _shared(a.key, b.key)
                if shared is None:
                    continue
                if a.programme == b.programme:
                    found.append(Conflict(a, b, shared, "claimed twice under the same programme"))
                elif (a.programme, b.programme) in exclusive:
                    found.append(Conflict(a, b, shared, f"{a.programme} and {b.programme} exclude each other"))
    return found
