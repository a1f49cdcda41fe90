"""Incentives HTTP controllers (being built: issue 5)."""

from __future__ import annotations

from typing import Any

CONTROLLERS: list[Any] = []
