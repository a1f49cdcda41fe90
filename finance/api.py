"""Finance HTTP controllers (being built: issue 6)."""

from __future__ import annotations

from typing import Any

CONTROLLERS: list[Any] = []
