"""Compliance HTTP controllers (being built: issue 3)."""

from __future__ import annotations

from typing import Any

CONTROLLERS: list[Any] = []
