"""Trading HTTP controllers (being built: issue 4)."""

from __future__ import annotations

from typing import Any

CONTROLLERS: list[Any] = []
