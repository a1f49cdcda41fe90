"""Surveillance alerts: one row per pattern found, with its evidence, kept until the regulator resolves it."""

from __future__ import annotations

import datetime as dt

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Index, Text
from sqlmodel import Field, SQLModel


class SurveillanceAlert(SQLModel, table=True):
    """`dedupe_key` (instrument, day, pattern, subject and evidence) is unique: the scan fired twice stores once."""

    __tablename__ = "trading_surveillance_alert"
    __table_args__ = (Index("ix_trading_alert_status", "status", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    instrument_id: int = Field(foreign_key="registry_instrument.id", index=True)
    trade_date: dt.date
    pattern: str = Field(max_length=32)
    severity: str = Field(max_length=8)
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id")
    detail: str = Field(max_length=500)
    evidence: str = Field(default="{}", sa_type=Text)  # {"trade_ids": [...], "order_ids": [...], "figures": {...}}
    status: str = Field(max_length=16, default="open")  # open | investigating | dismissed | confirmed
    note: str = Field(default="", max_length=1000)
    dedupe_key: str = Field(max_length=300, unique=True)
    created_at: dt.datetime = Field(sa_type=DateTimeUTC)
    updated_by: int | None = Field(default=None, sa_type=BigInteger)
    updated_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)
