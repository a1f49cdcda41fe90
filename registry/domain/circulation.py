"""Units in circulation, per instrument: the arithmetic of the reconciliation a regulator reads (pure).

Units leave circulation in this registry only by a completed registry transaction into one of the four exit
accounts (the registry operator's system accounts): **surrender** (a compliance surrender, or a forced surrender
from the provincial reserve at settlement; surrendered units stay in the surrender account, they are not moved on
to cancellation), **retirement** (a voluntary retirement or a green-certificate claim), **cancellation** (kept for
the authority's 注销; no use case moves units there yet, so its figure is 0 unless one does) and **expiry** (expired
certificates, 过期核销). Everything else a ledger account of the instrument holds is in circulation: holding,
trading and allocation accounts, the provincial reserve, the auction and freeze system accounts, and the market's
clearing account (which nets to zero between trades). Frozen units and units on sell orders are holds (pending
debits) and stay in their holder's posted balance, so they are counted as held.

The identity checked, per instrument (all figures in base units, positive):

    held (ledger)  ==  issued (log) − surrendered (log) − retired (log) − cancelled (log) − expired (log)

where *held* is the sum of the posted balances (credits posted − debits posted) of every circulation account of
the instrument's asset, and the right-hand side comes from the registry's transaction log alone (completed
transactions out of the issuance account, and into each exit account, net of any back out). The two sides come
from different records, so an edited balance row, a lost or invented transaction, or a movement that bypassed the
registry shows as a MISMATCH. Also checked, to say *where* a difference is:
- each exit account's ledger balance equals its log figure, and the issuance account's net debit equals *issued*;
- the serial blocks held by circulation accounts sum to *held*, and the serials cut from the asset's counter
  (its next serial number) equal *issued*.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.figures import quantity

ISSUANCE = "issuance"
# The exit accounts, in the order the identity subtracts them, with the word a line prints for each.
EXITS: tuple[tuple[str, str], ...] = (
    ("surrender", "surrendered"),
    ("retirement", "retired"),
    ("cancellation", "cancelled"),
    ("expiry", "expired"),
)
EXIT_TYPES = frozenset(t for t, _ in EXITS)


@dataclass(frozen=True)
class UnitFigures:
    """What the registry's records say about one instrument. `log_*` come from completed registry transactions,
    `ledger_*` from ledger balances, `serials_*` from serial blocks and the asset's serial counter."""

    code: str
    scale: int
    log_issued: int
    log_exits: Mapping[str, int]
    ledger_held: int
    ledger_issued: int
    ledger_exits: Mapping[str, int]
    serials_held: int
    serials_cut: int


@dataclass(frozen=True)
class UnitReconciliation:
    figures: UnitFigures
    expected_held: int
    differences: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.differences

    def line(self) -> str:
        """One line a person reads: the instrument, the identity with its figures, and OK or MISMATCH (why)."""
        f = self.figures

        def q(n: int) -> str:
            return quantity(n, f.scale)

        exits = " ".join(f"- {word} {q(f.log_exits.get(t, 0))}" for t, word in EXITS)
        text = (
            f"{f.code}: held {q(f.ledger_held)} = issued {q(f.log_issued)} {exits}; "
            f"serials held {q(f.serials_held)} of {q(f.serials_cut)} cut"
        )
        return f"{text}: OK" if self.ok else f"{text}: MISMATCH ({'; '.join(self.differences)})"


def reconcile_units(f: UnitFigures) -> UnitReconciliation:
    """Check the identity of the module docstring for one instrument; every difference is named."""

    def q(n: int) -> str:
        return quantity(n, f.scale)

    expected = f.log_issued - sum(f.log_exits.get(t, 0) for t, _ in EXITS)
    out: list[str] = []
    if f.ledger_held != expected:
        out.append(f"held {q(f.ledger_held)} != {q(expected)} by the transaction log")
    if f.ledger_issued != f.log_issued:
        out.append(f"issuance account {q(f.ledger_issued)} != issued {q(f.log_issued)}")
    for t, word in EXITS:
        have, want = f.ledger_exits.get(t, 0), f.log_exits.get(t, 0)
        if have != want:
            out.append(f"{t} account {q(have)} != {word} {q(want)}")
    if f.serials_held != f.ledger_held:
        out.append(f"serial blocks held {q(f.serials_held)} != held {q(f.ledger_held)}")
    if f.serials_cut != f.log_issued:
        out.append(f"serials cut {q(f.serials_cut)} != issued {q(f.log_issued)}")
    return UnitReconciliation(f, expected, tuple(out))
