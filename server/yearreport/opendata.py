"""The report's open data: the public market data and the compliance and subsidy results, as CSV and as Parquet,
with `schema.md` describing every column. The column list below is the one source of all three.

Conventions (stated in schema.md and docs/year-report.md):
- money is integer fen in columns named `*_fen` (int64; 1 元 = 100 fen), never a float;
- a quantity is in the display unit of its instrument (tCO2e, tce, t, MWh) with that unit's decimals: in CSV
  written with exactly the unit's decimals (`1200`, `17013.500`), in Parquet a decimal128(24, 3) value (exact;
  units with no decimals end in .000); the `unit` column names the unit;
- dates are Asia/Shanghai business dates (ISO 8601), instants carry their +08:00 offset;
- CSV: UTF-8 with a byte-order mark, a header row, plain numbers (no thousands separators), `true`/`false`, text
  cells that a spreadsheet would run as a formula prefixed with an apostrophe (core/csvfile.py).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core import figures
from core.clock import SHANGHAI
from core.csvfile import BOM, cell
from server.yearreport.queries import YearData

QUANTITY_SCALE_MAX = 3  # the largest display scale of any unit class (registry.domain.instruments.KIND_RULES)
QUANTITY_TYPE = pa.decimal128(24, QUANTITY_SCALE_MAX)


@dataclass(frozen=True)
class Quantity:
    """A quantity cell: base units and the scale of its display unit."""

    base: int
    scale: int


@dataclass(frozen=True)
class Column:
    name: str
    arrow: pa.DataType
    unit: str
    meaning: str
    value: Callable[[Any], Any]
    text: bool = False  # free text: protected against spreadsheet formulas in CSV

    @property
    def type_name(self) -> str:
        return str(self.arrow)


@dataclass(frozen=True)
class Dataset:
    stem: str
    title: str
    rows_are: str
    columns: tuple[Column, ...]
    rows: Callable[[YearData], Sequence[Any]]


def _text(name: str, meaning: str, value: Callable[[Any], Any], *, free: bool = False) -> Column:
    return Column(name, pa.string(), "", meaning, value, text=free)


def _fen(name: str, meaning: str, value: Callable[[Any], Any]) -> Column:
    return Column(name, pa.int64(), "fen (0.01 元)", meaning, value)


def _int(name: str, meaning: str, value: Callable[[Any], Any]) -> Column:
    return Column(name, pa.int64(), "", meaning, value)


def _qty(name: str, meaning: str, value: Callable[[Any], Any]) -> Column:
    return Column(name, QUANTITY_TYPE, "display unit (column `unit`)", meaning, value)


def _date(name: str, meaning: str, value: Callable[[Any], Any]) -> Column:
    return Column(name, pa.date32(), "Asia/Shanghai date", meaning, value)


TRADES = Dataset(
    "trades",
    "成交明细 Trades",
    "one executed trade of the year (every venue), in market then time order; no account or participant is named",
    (
        _int("trade_id", "The trade's number in the registry (for citing it).", lambda t: t.trade_id),
        _date("trade_date", "The trading day.", lambda t: t.trade_date),
        Column(
            "traded_at",
            pa.timestamp("s", tz="Asia/Shanghai"),
            "instant, +08:00",
            "When the trade executed, to the second.",
            lambda t: t.at.astimezone(SHANGHAI).replace(microsecond=0),
        ),
        _int("market_id", "The market (one per instrument).", lambda t: t.market.market_id),
        _text("instrument_code", "The unit class traded, e.g. CEA-NATIONAL-2025.", lambda t: t.market.code),
        _text("instrument_kind", "cea, ccer, energy_use, gec or discharge.", lambda t: t.market.kind),
        _text(
            "venue",
            "listed, continuous, block, one-way-auction or primary-auction.",
            lambda t: t.venue,
        ),
        _fen("price_fen", "Price per display unit.", lambda t: t.price_fen),
        _qty("quantity", "Quantity traded.", lambda t: Quantity(t.quantity, t.market.scale)),
        _text("unit", "The display unit of `quantity` (tCO2e, tce, t, MWh).", lambda t: t.market.unit),
        _fen("turnover_fen", "What the buyer paid the seller before fees.", lambda t: t.notional_fen),
    ),
    lambda d: d.trades,
)

MARKET_DAILY = Dataset(
    "market-daily",
    "每日行情 Daily market summary",
    "one market on one trading day with at least one trade",
    (
        _date("trade_date", "The trading day.", lambda r: r.trade_date),
        _int("market_id", "The market.", lambda r: r.market.market_id),
        _text("instrument_code", "The unit class.", lambda r: r.market.code),
        _text("instrument_kind", "cea, ccer, energy_use, gec or discharge.", lambda r: r.market.kind),
        _fen("open_fen", "First trade's price (any venue).", lambda r: r.open_fen),
        _fen("high_fen", "Highest trade price.", lambda r: r.high_fen),
        _fen("low_fen", "Lowest trade price.", lambda r: r.low_fen),
        _fen(
            "close_fen",
            "Official close: volume-weighted average of the day's listed and continuous trades (block trades and "
            "auctions do not set it); the previous close on a day without such trades.",
            lambda r: r.close_fen,
        ),
        _fen(
            "vwap_fen",
            "Volume-weighted average price of all the day's trades, rounded half up to the fen.",
            lambda r: r.vwap_fen,
        ),
        _qty("volume", "Quantity traded, every venue.", lambda r: Quantity(r.volume, r.market.scale)),
        _qty("block_volume", "Of which block trades.", lambda r: Quantity(r.block_volume, r.market.scale)),
        _text("unit", "The display unit of the quantities.", lambda r: r.market.unit),
        _fen("turnover_fen", "Sum of the trades' amounts.", lambda r: r.turnover_fen),
        _int("trade_count", "Number of trades.", lambda r: r.trade_count),
    ),
    lambda d: d.days,
)

COMPLIANCE = Dataset(
    "compliance",
    "履约结果 Compliance results",
    "the settled result of one obligation (one enterprise in one scheme, per pollutant for discharge permits)",
    (
        _text("period_code", "The compliance period, e.g. CN-CEA-2025.", lambda r: r.period_code),
        _text("scheme_code", "The compliance scheme.", lambda r: r.scheme_code),
        _text("scheme_kind", "carbon, energy, discharge or green_power.", lambda r: r.kind),
        _text("pollutant", "For discharge permits: SO2, NOx, COD, NH3-N, VOCs; else empty.", lambda r: r.pollutant),
        _text("uscc", "The enterprise's unified social credit code.", lambda r: r.uscc),
        _text("name", "The enterprise's name.", lambda r: r.name, free=True),
        _text("city", "Prefecture-level city.", lambda r: r.city),
        _text("industry", "Industry class (GB/T 4754-2017), e.g. D4411.", lambda r: r.industry),
        _qty(
            "verified",
            "The verified obligation (empty when no report was verified: status C).",
            lambda r: None if r.obligation is None else Quantity(r.obligation, r.scale),
        ),
        _qty(
            "surrendered",
            "Surrendered against it, forced surrender included.",
            lambda r: Quantity(r.surrendered, r.scale),
        ),
        _qty("shortfall", "Obligation minus surrendered, at least 0.", lambda r: Quantity(r.shortfall, r.scale)),
        _text("unit", "The display unit of the quantities (tCO2e, tce, t, MWh).", lambda r: r.unit),
        _fen("fine_fen", "The fine settled (0 when none).", lambda r: r.fine_fen),
        _text("status", "A compliant, B shortfall, C not reported.", lambda r: r.status),
        _text("timeliness", "on_time or late (surrendered after the deadline).", lambda r: r.timeliness),
        Column("report_late", pa.bool_(), "", "The annual report came after its deadline.", lambda r: r.report_late),
    ),
    lambda d: d.compliance,
)

SUBSIDIES = Dataset(
    "subsidies",
    "补贴发放 Subsidies by programme and city",
    "one programme in one city: the claims paid out of that programme's budget of the year",
    (
        _text("programme", "The programme, e.g. first_set_insurance.", lambda r: r.programme),
        _text("city", "The enterprise's prefecture-level city.", lambda r: r.city),
        _int("claims", "Claims paid.", lambda r: r.claims),
        _fen("disbursed_fen", "Paid out.", lambda r: r.disbursed_fen),
        _fen("clawed_back_fen", "Of which recovered by clawback.", lambda r: r.clawed_back_fen),
        _fen("net_fen", "disbursed_fen - clawed_back_fen.", lambda r: r.net_fen),
    ),
    lambda d: d.subsidies,
)

DATASETS: tuple[Dataset, ...] = (TRADES, MARKET_DAILY, COMPLIANCE, SUBSIDIES)


def _csv_value(column: Column, value: Any) -> str:
    if isinstance(value, Quantity):
        return figures.quantity_plain(value.base, value.scale)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return cell(value, text=column.text)


def _arrow_value(value: Any) -> Any:
    if isinstance(value, Quantity):
        return Decimal(value.base).scaleb(-value.scale).quantize(Decimal(1).scaleb(-QUANTITY_SCALE_MAX))
    return value


def csv_text(dataset: Dataset, data: YearData) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.name for c in dataset.columns])
    for row in dataset.rows(data):
        writer.writerow([_csv_value(c, c.value(row)) for c in dataset.columns])
    return BOM + out.getvalue()


def arrow_table(dataset: Dataset, data: YearData) -> pa.Table:
    rows = dataset.rows(data)
    schema = pa.schema(
        [
            pa.field(c.name, c.arrow, nullable=True, metadata={"unit": c.unit, "meaning": c.meaning})
            for c in dataset.columns
        ]
    )
    arrays = [pa.array([_arrow_value(c.value(r)) for r in rows], type=c.arrow) for c in dataset.columns]
    return pa.Table.from_arrays(arrays, schema=schema)


def schema_markdown(year: int) -> str:
    lines = [
        f"# {year} 年度报告开放数据说明 / Open data of the {year} report",
        "",
        "Each data set is written twice, as `NAME.csv` and `NAME.parquet`, with the same columns in the same order.",
        "",
        "- Money: integer fen in the columns named `*_fen` (1 元 = 100 fen); no floats.",
        "- Quantities: the instrument's display unit (column `unit`) with its decimals; CSV writes exactly the unit's",
        f"  decimals, Parquet holds an exact decimal128(24, {QUANTITY_SCALE_MAX}).",
        "- Dates: Asia/Shanghai business dates; instants with their +08:00 offset.",
        "- CSV: UTF-8 with a byte-order mark, one header row, plain numbers without separators, `true`/`false`.",
        "",
    ]
    for ds in DATASETS:
        lines += [f"## `{ds.stem}` — {ds.title}", "", f"One row is {ds.rows_are}.", ""]
        lines += ["| column | type | unit | meaning |", "|---|---|---|---|"]
        lines += [f"| `{c.name}` | {c.type_name} | {c.unit} | {c.meaning} |" for c in ds.columns]
        lines.append("")
    return "\n".join(lines)


def open_data_files(data: YearData) -> dict[str, bytes]:
    """Each data set as `NAME.csv` and `NAME.parquet`, and `schema.md`: file name -> bytes."""
    files: dict[str, bytes] = {}
    for ds in DATASETS:
        files[f"{ds.stem}.csv"] = csv_text(ds, data).encode("utf-8")
        sink = pa.BufferOutputStream()
        pq.write_table(arrow_table(ds, data), sink, compression="zstd")
        files[f"{ds.stem}.parquet"] = sink.getvalue().to_pybytes()
    files["schema.md"] = schema_markdown(data.year).encode("utf-8")
    return files
