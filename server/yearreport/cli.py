"""`greenrights report year --year YYYY [--out DIR]`: write the year's report from the configured database."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from core.db import Database
from core.sandbox import clock_for
from core.settings import get_settings
from server.yearreport import YEAR_MAX, YEAR_MIN, default_out_dir, write_year_report


def report_year(year: int, out: str | None) -> int:
    from server.migrate import schema_problem

    settings = get_settings()
    if not YEAR_MIN <= year <= YEAR_MAX:
        print(f"greenrights report year: --year must be between {YEAR_MIN} and {YEAR_MAX}", file=sys.stderr)
        return 2
    problem = schema_problem(settings.database_url)
    if problem:
        print(f"greenrights report year: {problem}", file=sys.stderr)
        return 1
    out_dir = Path(out) if out else default_out_dir(year)

    async def run() -> list[Path]:
        db = Database(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        try:
            # A sandbox's report is dated on its simulated clock, like everything else it records.
            return await write_year_report(db, year, out_dir, clock=clock_for(settings.database_url))
        finally:
            await db.dispose()

    files = asyncio.run(run())
    for path in files:
        print(f"{path}  {path.stat().st_size} bytes")
    print(f"report {year} written: {len(files)} files in {out_dir}")
    return 0
