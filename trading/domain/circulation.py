"""Money in the market, in fen: the arithmetic of the reconciliation a regulator reads (pure).

Yuan enter the market only by a deposit the settlement bank confirmed and leave it only by a withdrawal it confirmed
(`trading/funds.py`: both post against the bank's settlement account, the one CNY source of the market). Inside,
money moves only by ledger transfers between the members' fund accounts, the CNY clearing account (the
pass-through of every settlement: holds post into it and it pays out in the same unit of work, so its posted
balance is zero between units of work) and the fee account (credited with both sides' fees of every trade).
Money held for open orders, bids and requested withdrawals is a pending debit and stays in its fund account's posted
balance. The identity checked (all posted balances; the figures on the right come from the fund movements' records,
not the ledger):

    funds + fees + clearing  ==  confirmed deposits − confirmed withdrawals

and, to say where a difference is: the settlement account's net debit (money the bank brought in, by the ledger)
equals the same difference; the fee account equals the fees the trades record (buyer's + seller's of every trade);
clearing is zero. The finance context's CNY (budgets, subsidies, fines) has sources of its own and never touches a
fund account, so it is outside this identity (the ledger's per-asset balance still covers it).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.figures import yuan

CURRENCY = "CNY"


@dataclass(frozen=True)
class MoneyFigures:
    """`deposits`, `withdrawals` (confirmed fund movements) and `fees_charged` (trades) are records; the rest are
    ledger posted balances: every fund account, the fee account, the CNY clearing account, the bank's net debit."""

    deposits: int
    withdrawals: int
    fees_charged: int
    funds: int
    fees: int
    clearing: int
    bank_net: int


@dataclass(frozen=True)
class MoneyReconciliation:
    figures: MoneyFigures
    differences: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.differences

    def line(self) -> str:
        f = self.figures
        text = (
            f"{CURRENCY}: funds {yuan(f.funds)} + fees {yuan(f.fees)} + clearing {yuan(f.clearing)} = "
            f"deposits {yuan(f.deposits)} - withdrawals {yuan(f.withdrawals)}; "
            f"fees charged on trades {yuan(f.fees_charged)}"
        )
        return f"{text}: OK" if self.ok else f"{text}: MISMATCH ({'; '.join(self.differences)})"


def reconcile_money(f: MoneyFigures) -> MoneyReconciliation:
    inside = f.deposits - f.withdrawals
    out: list[str] = []
    if f.funds + f.fees + f.clearing != inside:
        out.append(f"in the market {yuan(f.funds + f.fees + f.clearing)} != {yuan(inside)} by the fund movements")
    if f.bank_net != inside:
        out.append(f"settlement account {yuan(f.bank_net)} != {yuan(inside)} by the fund movements")
    if f.fees != f.fees_charged:
        out.append(f"fee account {yuan(f.fees)} != fees charged {yuan(f.fees_charged)}")
    if f.clearing != 0:
        out.append(f"clearing {yuan(f.clearing)} != 0.00")
    return MoneyReconciliation(f, tuple(out))
