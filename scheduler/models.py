"""The claim table that makes scheduled work exactly-once."""

from __future__ import annotations

import datetime as dt

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class JobRun(SQLModel, table=True):
    __tablename__ = "scheduler_job_run"
    __table_args__ = (UniqueConstraint("job", "period_key", name="uq_job_run_job_period"),)
    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(max_length=64)
    period_key: str = Field(max_length=64)
    status: str = Field(max_length=12)  # running, done, failed
    owner: str = Field(max_length=64)
    attempts: int = Field(default=1)
    lease_until: dt.datetime = Field(sa_type=DateTimeUTC)
    started_at: dt.datetime = Field(sa_type=DateTimeUTC)
    finished_at: dt.datetime | None = Field(default=None, sa_type=DateTimeUTC)
    result: str = Field(default="{}", sa_type=Text)
    trigger: str = Field(default="schedule", max_length=16)
