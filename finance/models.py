"""Tables of this context (being built)."""

from __future__ import annotations
