"""Every page area's routes, collected for server/app.py."""

from __future__ import annotations

from typing import Any

from web.pages import bank, compliance, enterprise, finance, market, policy

ROUTES: list[Any] = [
    *finance.ROUTES,
    *compliance.ROUTES,
    *enterprise.ROUTES,
    *bank.ROUTES,
    *market.ROUTES,
    *policy.ROUTES,
]
