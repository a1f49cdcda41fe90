"""The pure arithmetic of the circulation reconciliation (`registry.domain.circulation`,
`trading.domain.circulation`): the identity holds on consistent figures, and each kind of difference is named."""

from __future__ import annotations

from dataclasses import replace

from registry.domain.circulation import UnitFigures, reconcile_units
from trading.domain.circulation import MoneyFigures, reconcile_money

UNITS = UnitFigures(
    code="CEA-N-2025",
    scale=3,
    log_issued=10_000,
    log_exits={"surrender": 1_000, "retirement": 250, "cancellation": 0, "expiry": 50},
    ledger_held=8_700,
    ledger_issued=10_000,
    ledger_exits={"surrender": 1_000, "retirement": 250, "cancellation": 0, "expiry": 50},
    serials_held=8_700,
    serials_cut=10_000,
)
MONEY = MoneyFigures(
    deposits=500_000, withdrawals=120_000, fees_charged=75, funds=379_925, fees=75, clearing=0, bank_net=380_000
)


def test_consistent_unit_figures_are_ok_and_the_line_shows_display_units() -> None:
    r = reconcile_units(UNITS)
    assert r.ok and r.expected_held == 8_700
    assert r.line() == (
        "CEA-N-2025: held 8.700 = issued 10.000 - surrendered 1.000 - retired 0.250 - cancelled 0.000 - "
        "expired 0.050; serials held 8.700 of 10.000 cut: OK"
    )


def test_each_unit_difference_is_named() -> None:
    r = reconcile_units(replace(UNITS, ledger_held=8_705, serials_held=8_705))
    assert r.differences == ("held 8.705 != 8.700 by the transaction log",)
    # A surrender that bypassed the registry's log: the ledger's surrender account has more than the log says.
    r = reconcile_units(replace(UNITS, ledger_held=8_600, serials_held=8_600,
                                ledger_exits={**UNITS.ledger_exits, "surrender": 1_100}))  # fmt: skip
    assert r.differences == (
        "held 8.600 != 8.700 by the transaction log",
        "surrender account 1.100 != surrendered 1.000",
    )
    r = reconcile_units(replace(UNITS, serials_held=8_699, serials_cut=10_001))
    assert r.differences == ("serial blocks held 8.699 != held 8.700", "serials cut 10.001 != issued 10.000")
    assert r.line().endswith("MISMATCH (serial blocks held 8.699 != held 8.700; serials cut 10.001 != issued 10.000)")


def test_money_in_the_market_is_deposits_less_withdrawals_and_fees_stay_inside() -> None:
    r = reconcile_money(MONEY)
    assert r.ok, r.differences
    assert r.line() == (
        "CNY: funds 3,799.25 + fees 0.75 + clearing 0.00 = deposits 5,000.00 - withdrawals 1,200.00; "
        "fees charged on trades 0.75: OK"
    )
    r = reconcile_money(replace(MONEY, funds=379_926))
    assert r.differences == ("in the market 3,800.01 != 3,800.00 by the fund movements",)
    r = reconcile_money(replace(MONEY, fees=70, clearing=5))
    assert r.differences == ("fee account 0.70 != fees charged 0.75", "clearing 0.05 != 0.00")
    r = reconcile_money(replace(MONEY, withdrawals=119_000))
    assert not r.ok and "settlement account 3,800.00 != 3,810.00 by the fund movements" in r.differences
