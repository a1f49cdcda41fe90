"""Every CSV the API writes has its header stated in docs/ (a ```csv columns=NAME block with a meaning for each
column, tests/helpers.py). Swept from the OpenAPI document, so a new CSV download is covered the day it is added;
the tests that download each file compare the header it actually writes with the documented one
(test_walkthrough: results.csv, test_claims_api: payment-file.csv, test_api_batch: evaluateBatch.csv)."""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from server.app import create_app
from tests.conftest import fresh_database_url
from tests.helpers import documented_csv_blocks, documented_csv_header

# CSV answers that the document declares as JSON too (content negotiation): named by their operation.
NEGOTIATED = {"evaluateBatch": "evaluateBatch.csv"}


def test_every_csv_the_api_writes_has_its_columns_documented(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=fresh_database_url("sqlite", tmp_path), scheduler_embedded=False))
    doc = app.openapi_schema.to_schema()
    files: dict[str, str] = {}
    for path, item in doc["paths"].items():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            for response in op.get("responses", {}).values():
                if any(ct.startswith("text/csv") for ct in response.get("content", {})):
                    files[op["operationId"]] = path.rsplit("/", 1)[-1]
            if op.get("operationId") in NEGOTIATED:
                files[op["operationId"]] = NEGOTIATED[op["operationId"]]
    assert {"exportComplianceResults", "downloadPaymentFile", "evaluateBatch"} <= set(files), files
    blocks = documented_csv_blocks()
    for operation, name in sorted(files.items()):
        documented_csv_header(name)  # stated, and every column given a meaning
        page = (Path(__file__).resolve().parents[1] / "docs" / blocks[name][0]).read_text(encoding="utf-8")
        assert operation in page, f"docs/{blocks[name][0]} states {name} but never names {operation}"
