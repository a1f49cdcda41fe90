"""Tests of registry/reports_import.py: every bad row reported with its spreadsheet row, nothing partial."""

from __future__ import annotations

import io
from dataclasses import replace
from decimal import Decimal

import openpyxl
import pytest
from stdnum.cn import uscc

from registry.domain.accounting import CarbonAccount, account_carbon
from registry.domain.factor_defaults import default_carbon_factors
from registry.reports_import import (
    ParsedReport,
    ReportRejected,
    RowError,
    carbon_rules,
    parse_report,
)

USCC = "91110000600037341L"
OTHER = "91360100" + "MA35ABCD0"
OTHER = OTHER + uscc.calc_check_digit(OTHER)
HEADER = "uscc,year,line_type,item,quantity,unit"


def _csv(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def _errors(result: ParsedReport | ReportRejected) -> list[tuple[int, str | None, str]]:
    assert isinstance(result, ReportRejected), result
    return [(e.row, e.column, e.code) for e in result.errors]


def _xlsx(rows: list[list[object]]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_valid_csv_parses_every_line_type_with_exact_decimals() -> None:
    result = parse_report(
        _csv(
            f"{USCC},2024,fuel,raw_coal,120000.5,t",
            f"{USCC},2024,fuel,natural_gas,85.2,10^4Nm3",
            f"{USCC},2024,process,clinker,1000000,t",
            f"{USCC},2024,electricity,,95000,MWh",
            f"{USCC},2024,heat,purchased,12000,GJ",
        ),
        filename="report.csv",
    )
    assert isinstance(result, ParsedReport)
    assert [r.row for r in result.rows] == [2, 3, 4, 5, 6]
    assert result.rows[0].quantity == Decimal("120000.5")
    assert isinstance(result.rows[0].quantity, Decimal)
    assert result.rows[3].line_type == "electricity"


def test_parsed_rows_feed_the_accounting_rules() -> None:
    parsed = parse_report(_csv(f"{USCC},2022,electricity,purchased,1000,MWh"), filename="r.csv")
    assert isinstance(parsed, ParsedReport)
    account = account_carbon([r.activity_line() for r in parsed.rows], default_carbon_factors(2022))
    assert isinstance(account, CarbonAccount)
    assert account.total_tco2e == 537


@pytest.mark.parametrize(
    ("row", "column", "code"),
    [
        (f"{USCC},2024,fuel,raw_coal,12a,t", "quantity", "not-a-number"),
        (f'{USCC},2024,fuel,raw_coal,"1,234",t', "quantity", "not-a-number"),
        (f"{USCC},2024,fuel,raw_coal,1e,t", "quantity", "not-a-number"),
        (f"{USCC},2024,fuel,raw_coal,Infinity,t", "quantity", "not-a-number"),
        (f"{USCC},2024,fuel,raw_coal,１２,t", "quantity", "not-a-number"),
        (f"{USCC},2024,fuel,raw_coal,5e-05,t", "quantity", "too-many-decimals"),
        (f"{USCC},2024,fuel,raw_coal,NaN,t", "quantity", "not-a-number"),
        (f"{USCC},2024,fuel,raw_coal,-5,t", "quantity", "negative-quantity"),
        (f"{USCC},2024,fuel,raw_coal,1.23456,t", "quantity", "too-many-decimals"),
        (f"{USCC},2024,fuel,raw_coal,,t", "quantity", "required"),
        (f"{USCC},2024,fuel,peat,10,t", "item", "unknown-fuel"),
        (f"{USCC},2024,process,lime,10,t", "item", "unknown-process"),
        (f"{USCC},2024,steam,purchased,10,GJ", "line_type", "unknown-line-type"),
        (f"{USCC},2024,fuel,raw_coal,10,barrel", "unit", "unknown-unit"),
        (f"{USCC},2024,fuel,raw_coal,10,MWh", "unit", "unit-mismatch"),
        ("91110000600037341X,2024,fuel,raw_coal,10,t", "uscc", "invalid-uscc"),
        (f"{USCC.lower()},2024,fuel,raw_coal,10,t", "uscc", "invalid-uscc"),
        (",2024,fuel,raw_coal,10,t", "uscc", "required"),
        (f"{USCC},24,fuel,raw_coal,10,t", "year", "invalid-year"),
        (f"{USCC},1999,fuel,raw_coal,10,t", "year", "invalid-year"),
    ],
)
def test_each_bad_row_type_is_reported_with_row_and_column_and_nothing_imported(
    row: str, column: str, code: str
) -> None:
    result = parse_report(_csv(f"{USCC},2024,fuel,diesel,1,t", row), filename="r.csv")
    assert _errors(result) == [(3, column, code)]
    assert isinstance(result, ReportRejected)
    assert not hasattr(result, "rows")


def test_trailing_zeros_do_not_count_as_decimals_and_exponents_are_exact() -> None:
    result = parse_report(
        _csv(f"{USCC},2024,fuel,diesel,1.500000,t", f"{USCC},2024,fuel,diesel,1e3,t", f"{USCC},2024,fuel,diesel,-0,t"),
        filename="r.csv",
    )
    assert isinstance(result, ParsedReport)
    assert [r.quantity for r in result.rows] == [Decimal("1.5"), Decimal(1000), Decimal(0)]


def test_every_bad_row_is_listed_with_spreadsheet_row_numbers_across_blank_lines() -> None:
    data = _csv(
        f"{USCC},2024,fuel,raw_coal,100,t",  # row 2: good
        "",  # row 3: blank, skipped but counted
        f"{USCC},2024,fuel,peat,-1,t",  # row 4: two errors
        f"{USCC},2024,fuel,diesel,1,t",  # row 5: good
        f"{USCC.lower()},2024,process,clinker,abc,t",  # row 6: two errors
    )
    assert _errors(parse_report(data, filename="r.csv")) == [
        (4, "item", "unknown-fuel"),
        (4, "quantity", "negative-quantity"),
        (6, "uscc", "invalid-uscc"),
        (6, "quantity", "not-a-number"),
    ]


def test_errors_carry_the_offending_value_and_a_fixing_message() -> None:
    result = parse_report(_csv(f"{USCC},2024,fuel,peat,1,t"), filename="r.csv")
    assert isinstance(result, ReportRejected)
    [error] = result.errors
    assert error == RowError(2, "item", "unknown-fuel", error.message, "peat")
    assert "raw_coal" in error.message


def test_missing_and_duplicate_columns_are_reported_on_row_1() -> None:
    result = parse_report(_csv(f"{USCC},2024,1", header="USCC,Year,quantity"), filename="r.csv")
    assert _errors(result) == [
        (1, "line_type", "missing-column"),
        (1, "item", "missing-column"),
        (1, "unit", "missing-column"),
    ]
    dup = parse_report(_csv(f"{USCC},2024,fuel,diesel,1,t,2", header=HEADER + ",quantity"), filename="r.csv")
    assert _errors(dup) == [(1, "quantity", "duplicate-column")]


def test_header_names_are_case_insensitive_and_extra_columns_ignored() -> None:
    data = _csv(f"note,{USCC},2024,fuel,diesel,1,t", header="Remark,USCC,Year,Line_Type,Item,Quantity,Unit")
    result = parse_report(data, filename="r.csv")
    assert isinstance(result, ParsedReport)
    assert result.rows[0].item == "diesel"


def test_excel_file_rows_are_numbered_as_in_the_spreadsheet() -> None:
    data = _xlsx(
        [
            ["uscc", "year", "line_type", "item", "quantity", "unit"],
            [USCC, 2024, "fuel", "raw_coal", 1234.5, "t"],
            [None, None, None, None, None, None],
            [USCC, 2024, "fuel", "raw_coal", "abc", "t"],
            [USCC, 2024, "fuel", "diesel", 0.12345, "t"],
            [USCC, 2024, "fuel", "diesel", -3, "t"],
        ]
    )
    assert _errors(parse_report(data, filename="report.xlsx")) == [
        (4, "quantity", "not-a-number"),
        (5, "quantity", "too-many-decimals"),
        (6, "quantity", "negative-quantity"),
    ]


def test_valid_excel_file_with_numeric_cells_parses_exactly() -> None:
    data = _xlsx(
        [
            ["uscc", "year", "line_type", "item", "quantity", "unit"],
            [USCC, 2024, "fuel", "raw_coal", 1234.5, "t"],
            [USCC, 2024, "electricity", "purchased", 95000, "MWh"],
        ]
    )
    result = parse_report(data, filename="report.xlsx")
    assert isinstance(result, ParsedReport)
    assert [(r.row, r.year, r.quantity) for r in result.rows] == [
        (2, 2024, Decimal("1234.5")),
        (3, 2024, Decimal(95000)),
    ]


def test_gbk_encoded_csv_from_chinese_excel_is_read() -> None:
    data = ("uscc,year,line_type,item,quantity,unit,备注\n" + f"{USCC},2024,fuel,diesel,1,t,柴油\n").encode("gbk")
    assert isinstance(parse_report(data, filename="r.csv"), ParsedReport)


def test_rows_must_belong_to_the_enterprise_and_year_being_reported() -> None:
    data = _csv(f"{OTHER},2024,fuel,diesel,1,t", f"{USCC},2023,fuel,diesel,1,t")
    result = parse_report(data, filename="r.csv", expected_uscc=USCC, expected_year=2024)
    assert _errors(result) == [(2, "uscc", "uscc-mismatch"), (3, "year", "year-mismatch")]


@pytest.mark.parametrize(
    ("data", "filename", "code"),
    [
        (b"", "r.csv", "empty-file"),
        (b"  \n", "r.csv", "empty-file"),
        (HEADER.encode() + b"\n", "r.csv", "no-data-rows"),
        (b"PK\x03\x04 not really a workbook", "r.xlsx", "unreadable-file"),
        (HEADER.encode() + b"\n" + f"{USCC},2024,fuel,diesel,1,t,extra,more\n".encode(), "r.csv", "unreadable-file"),
    ],
)
def test_unusable_files_are_refused_whole(data: bytes, filename: str, code: str) -> None:
    result = parse_report(data, filename=filename)
    assert isinstance(result, ReportRejected)
    assert [e.code for e in result.errors] == [code]


def test_row_and_size_limits() -> None:
    rules = replace(carbon_rules(), max_rows=2)
    data = _csv(*[f"{USCC},2024,fuel,diesel,1,t"] * 3)
    assert _errors(parse_report(data, filename="r.csv", rules=rules)) == [(4, None, "too-many-rows")]
    tiny = replace(carbon_rules(), max_bytes=10)
    assert _errors(parse_report(data, filename="r.csv", rules=tiny)) == [(1, None, "file-too-large")]


def test_energy_report_layout() -> None:
    data = _csv(
        f"{USCC},2024,raw_coal,5000,t",
        f"{USCC},2024,electricity,1200000,kWh",
        f"{USCC},2024,hydrogen,1,kg",
        header="uscc,year,item,quantity,unit",
    )
    assert _errors(parse_report(data, filename="e.csv", kind="energy")) == [(4, "item", "unknown-item")]
    ok = parse_report(data.rsplit(b"\n", 2)[0] + b"\n", filename="e.csv", kind="energy")
    assert isinstance(ok, ParsedReport)
    assert [r.energy_line().item for r in ok.rows] == ["raw_coal", "electricity"]


def test_discharge_report_layout() -> None:
    data = _csv(
        f"{USCC},2024,SO2,12.5,t",
        f"{USCC},2024,CO2,1,t",
        f"{USCC},2024,NOx,3,GJ",
        header="uscc,year,pollutant,quantity,unit",
    )
    assert _errors(parse_report(data, filename="d.csv", kind="discharge")) == [
        (3, "pollutant", "unknown-pollutant"),
        (4, "unit", "unit-mismatch"),
    ]
    ok = parse_report(
        _csv(f"{USCC},2024,SO2,12.5,t", header="uscc,year,pollutant,quantity,unit"), filename="d.csv", kind="discharge"
    )
    assert isinstance(ok, ParsedReport)
    assert ok.rows[0].discharge_line().pollutant == "SO2"
