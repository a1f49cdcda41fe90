"""The demo seeds a market, a settlement bank and funded fund accounts, so that trading works out of the box
(issue 15: "The demo seeds a market, fund accounts and a bank"): what `greenrights demo` printed is what the API
says."""

from __future__ import annotations

import httpx

from tests.client.conftest import Demo
from tests.e2e.conftest import Server


def _get(d: Demo, path: str, key: str) -> httpx.Response:
    return httpx.get(f"{d.url}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_the_demo_seeds_a_continuous_market_and_funded_accounts_at_its_bank(demo: tuple[Demo, Server]) -> None:
    d, _ = demo
    r = _get(d, "/api/v1/markets", d.keys["power"])
    assert r.status_code == 200, r.text
    markets = r.json()
    assert [(m["instrument_id"], m["mode"], m["instrument_code"]) for m in markets] == [
        (d.instrument_id, "continuous", "CEA-NATIONAL-2025")
    ]
    funded = {}
    for who in ("power", "cement"):
        r = _get(d, "/api/v1/funds", d.keys[who])
        assert r.status_code == 200, r.text
        funded[who] = (r.json()["balance_fen"], r.json()["available_fen"], r.json()["held_fen"])
    assert funded == {"power": (100_000_000, 100_000_000, 0), "cement": (300_000_000, 300_000_000, 0)}
    # The bank sees its customers' deposits, each confirmed; an emitter's key cannot act as the bank.
    r = _get(d, "/api/v1/funds/movements", d.keys["bank"])
    assert r.status_code == 200, r.text
    deposits = sorted((m["kind"], m["status"], m["amount_fen"]) for m in r.json())
    assert deposits == [("deposit", "confirmed", 100_000_000), ("deposit", "confirmed", 300_000_000)]
