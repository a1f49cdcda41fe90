"""Import every context's tables so that SQLModel.metadata knows them all (for Alembic and tests)."""

from __future__ import annotations

import finance.models  # noqa: F401
import incentives.models  # noqa: F401
import registry.compliance.models
import registry.models  # noqa: F401
import scheduler.models  # noqa: F401
import trading.models
import trading.surveillance.models  # noqa: F401
