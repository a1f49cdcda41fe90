"""The year's report on the web: `/reports/<year>/` (the page) and `/reports/<year>/<file>` (the PDF, the open data,
schema.md), from the report folder (`var/reports/<year>/`, or `app.state.reports_dir`), for everyone.

Public, without sign-in, like the market page (`/market`): the report states the public market data, the
published compliance results (domain.md 4.5: per enterprise status, totals per city and industry), subsidies
after their public notice (公示) and the largest holders; nothing on it is scoped to one organisation.

Only the report's own file names are served, and only when the file exists: a name is looked up in the fixed list
(`FILES`) before it ever touches the file system, so `..`, slashes, or any other file in the folder answer 404.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from litestar.response import File, Redirect

from core.errors import NotFound
from server.yearreport import REPORTS_DIR, YEAR_MAX, YEAR_MIN
from server.yearreport.html import CSP
from server.yearreport.opendata import DATASETS

# Litestar adds `; charset=utf-8` to text types itself: once (core/csvfile.py).
MEDIA_TYPES = {
    ".html": "text/html",
    ".pdf": "application/pdf",
    ".csv": "text/csv",
    ".parquet": "application/vnd.apache.parquet",
    ".md": "text/markdown",
}
FILES: frozenset[str] = frozenset(
    {"index.html", "report.pdf", "schema.md"}
    | {f"{ds.stem}.csv" for ds in DATASETS}
    | {f"{ds.stem}.parquet" for ds in DATASETS}
)
_DOWNLOADS = (".csv", ".parquet")


def reports_root(request: Request[Any, Any, Any]) -> Path:
    return Path(getattr(request.app.state, "reports_dir", None) or REPORTS_DIR)


def _report_file(request: Request[Any, Any, Any], year: int, name: str) -> Path:
    if not YEAR_MIN <= year <= YEAR_MAX or name not in FILES:
        raise NotFound("report file")
    path = reports_root(request) / str(year) / name
    if not path.is_file():
        raise NotFound("report" if name == "index.html" else "report file")
    return path


def _serve(path: Path) -> File:
    suffix = path.suffix
    headers = {"Content-Security-Policy": CSP} if suffix == ".html" else {}
    return File(
        path,
        filename=path.name,
        media_type=MEDIA_TYPES[suffix],
        content_disposition_type="attachment" if suffix in _DOWNLOADS else "inline",
        headers=headers,
    )


@get("/reports/{year:int}", include_in_schema=False, cache=False)
async def report_index(request: Request[Any, Any, Any], year: int) -> Response[Any]:
    """The report's page. Without the final slash it redirects to it, so the page's relative links (report.pdf,
    trades.csv) resolve inside /reports/<year>/."""
    path = _report_file(request, year, "index.html")
    # Litestar routes /reports/2025 and /reports/2025/ alike and normalises the path: the raw path tells them apart.
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    if not raw.split(b"?", 1)[0].endswith(b"/"):
        return Redirect(f"/reports/{year}/", status_code=308)
    return _serve(path)


@get("/reports/{year:int}/{name:str}", include_in_schema=False, cache=False)
async def report_file(request: Request[Any, Any, Any], year: int, name: str) -> File:
    return _serve(_report_file(request, year, name))


ROUTES: list[Any] = [report_index, report_file]
