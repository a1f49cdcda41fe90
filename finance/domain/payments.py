"""The payment file a disbursement batch hands to the bank: one CSV line per claim paid.

Columns are fixed and named in the header, amounts are given both in fen (the integer the bank books) and in
yuan with two decimals (what a clerk reads). Text cells that a spreadsheet would read as a formula (starting
with =, +, -, @, tab or carriage return) are prefixed with an apostrophe, so an enterprise name cannot run a
formula on the bank clerk's machine.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

from core.figures import yuan_plain

COLUMNS = (
    "batch_no",
    "line_no",
    "claim_no",
    "payee_name",
    "payee_uscc",
    "payee_bank",
    "payee_account_no",
    "currency",
    "amount_fen",
    "amount_yuan",
    "purpose",
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class PaymentLine:
    claim_no: str
    payee_name: str
    payee_uscc: str
    payee_bank: str
    payee_account_no: str
    amount_fen: int
    purpose: str


def safe_cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


def payment_file(batch_no: str, lines: Sequence[PaymentLine]) -> str:
    """The CSV text (header and one row per line, CRLF line ends as RFC 4180 says)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for number, line in enumerate(lines, start=1):
        if line.amount_fen <= 0:
            raise ValueError(f"line {number}: the amount must be positive")
        writer.writerow(
            [
                batch_no,
                str(number),
                line.claim_no,
                safe_cell(line.payee_name),
                line.payee_uscc,
                safe_cell(line.payee_bank),
                safe_cell(line.payee_account_no),
                "CNY",
                str(line.amount_fen),
                yuan_plain(line.amount_fen),
                safe_cell(line.purpose),
            ]
        )
    return out.getvalue()
