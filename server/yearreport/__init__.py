"""The year's report (年度报告): a province-year of the market, compliance and incentives, read from the database
and written as a web page, a PDF and open data files into one folder (default `var/reports/<year>/`), which the app
serves at `/reports/<year>/`.

Guarantees:
- Read-only: the report reads one consistent snapshot (one read transaction) and changes nothing.
- Every figure is an integer of its base unit until it is written; text goes through core.figures.
- The files of one run state the same figures: the page, the PDF and the open data come from one `YearData`.
- Written atomically per file (a temporary name, then rename), so a reader never gets half a file.

Modules: `queries` (what is read), `html` + `index.html` + `svg` (the page), `pdf` (the PDF), `opendata` (CSV,
Parquet, schema.md), `web` (the routes), `labels` (Chinese names of codes).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from core.clock import Clock, SystemClock
from core.db import Database

if TYPE_CHECKING:
    from server.yearreport.queries import Coverage

REPORTS_DIR = Path("var") / "reports"
YEAR_MIN, YEAR_MAX = 2000, 2200


def default_out_dir(year: int, root: Path | None = None) -> Path:
    return (root or REPORTS_DIR) / str(year)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def write_year_report(
    db: Database,
    year: int,
    out_dir: Path | None = None,
    *,
    clock: Clock | None = None,
    coverage: Coverage | None = None,
) -> list[Path]:
    """Write the report of `year` into `out_dir` (default var/reports/<year>/) and return the files written.

    The generated-at time printed on the page and the PDF comes from `clock` (a sandbox's simulated clock when the
    caller passes it; system time otherwise). `coverage` (queries.Coverage) names the trade dates and fiscal year
    of a year run on a sandbox's days; by default calendar year `year`."""
    from server.yearreport.html import render_html
    from server.yearreport.opendata import open_data_files
    from server.yearreport.pdf import render_pdf
    from server.yearreport.queries import load_year

    if not YEAR_MIN <= year <= YEAR_MAX:
        raise ValueError(f"year must be between {YEAR_MIN} and {YEAR_MAX}, got {year}")
    out = Path(out_dir) if out_dir is not None else default_out_dir(year)
    out.mkdir(parents=True, exist_ok=True)
    now = (clock or SystemClock()).now().astimezone(dt.UTC).replace(microsecond=0)
    data = await load_year(db, year, now, coverage)
    files = {
        "index.html": render_html(data).encode("utf-8"),
        "report.pdf": render_pdf(data),
        **open_data_files(data),
    }
    written = []
    for name, content in files.items():
        _write_atomic(out / name, content)
        written.append(out / name)
    return written
