"""core.documents: issuing a document is idempotent on its record, also when two transactions issue the same record at
once (two readers downloading the same compliance report): one row, one code, no error for either."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import documents
from core.db import Database, UnitOfWork
from core.models import IssuedDocument
from tests.conftest import BACKENDS, schema_database_url

AT = dt.datetime(2026, 12, 4, 2, 0, tzinfo=dt.UTC)
RECORD = {"period": "CEA-2025", "results": 2, "status": [1, 1, 0]}


async def _issue(uow: UnitOfWork, hold: asyncio.Event | None = None, go: asyncio.Event | None = None) -> str:
    doc = await documents.issue(
        uow.session, kind="compliance_report", ref="period:1", title="CEA-2025 履约情况报告", issued_by="生态环境厅",
        record=RECORD, facts={"纳入企业": "2"}, issued_at=AT,
    )  # fmt: skip
    if hold is not None and go is not None:
        hold.set()  # inserted, not committed: the other transaction now races for the same code
        await go.wait()
    return doc.code


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_same_record_issued_by_two_transactions_at_once_is_one_document(backend: str, tmp_path: Path) -> None:
    url = schema_database_url(backend, tmp_path)
    first, second = Database(url), Database(url)
    try:
        if first.sqlite:
            # One writer at a time on SQLite: the second finds the first's row.
            codes = [await first.run(_issue), await second.run(_issue)]
        else:
            inserted, release = asyncio.Event(), asyncio.Event()
            a = asyncio.create_task(first.run(_issue, inserted, release))
            await inserted.wait()
            b = asyncio.create_task(second.run(_issue))  # waits on the unique index until `a` commits
            await asyncio.sleep(0.3)
            release.set()
            codes = [await a, await b]
        assert codes[0] == codes[1]

        async def count(uow: UnitOfWork) -> int:
            return int((await uow.session.execute(select(func.count()).select_from(IssuedDocument))).scalar_one())

        assert await first.read(count) == 1
        found = await first.read(lambda uow: documents.verify(uow.session, codes[0]))
        assert found is not None and found.superseded_by is None
    finally:
        await first.dispose()
        await second.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_numbers_taken_at_once_are_distinct_and_a_rolled_back_one_is_given_again(
    backend: str, tmp_path: Path
) -> None:
    """The 文号 series (`documents.next_number`): 12 units of work on two engines take numbers at once and get
    1..12, each once; the next year starts at 1 again; a unit of work that rolls back leaves its number free."""
    url = schema_database_url(backend, tmp_path)
    dbs = [Database(url), Database(url)]
    try:

        async def take(uow: UnitOfWork, year: int = 2026) -> int:
            n = await documents.next_number(uow.session, "finance-letters", year)
            await asyncio.sleep(0.01)  # hold the row a moment, so that others queue behind it
            return n

        got = await asyncio.gather(*(dbs[i % 2].run(take) for i in range(12)))
        assert sorted(got) == list(range(1, 13))
        assert await dbs[0].run(lambda uow: take(uow, 2027)) == 1

        class Refused(Exception):
            pass

        async def refused(uow: UnitOfWork) -> None:
            assert await documents.next_number(uow.session, "finance-letters", 2026) == 13
            raise Refused

        with pytest.raises(Refused):
            await dbs[1].run(refused)
        assert await dbs[0].run(take) == 13
    finally:
        for db in dbs:
            await db.dispose()
