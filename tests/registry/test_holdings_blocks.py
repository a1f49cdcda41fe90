"""An account's holdings list the first serial ranges of each holding, in serial order, from one statement: a
fragmented holding (more ranges than are shown) is cut at `BLOCKS_SHOWN_MAX`, and the visibility test that rides
in the statement still tells a foreign account (404) from an empty one ([])."""

from __future__ import annotations

from sqlalchemy import select

from core.models import LedgerAccount, SerialBlock
from registry._common import OWNER
from registry.domain.instruments import unit_identifier
from registry.holdings import BLOCKS_SHOWN_MAX
from tests.conftest import Env
from tests.core.test_http_path import counting, engine_of
from tests.helpers import allocate, world

EXTRA = 5  # ranges beyond those shown


async def test_a_fragmented_holding_lists_its_first_ranges_in_serial_order(env: Env) -> None:
    w = await world(env, n_enterprises=2, issue=10_000)
    a, other = w.enterprises
    await allocate(env, w, a["account_id"], 1_000)
    opened = []
    for _ in range(2):
        r = await env.post("/api/v1/accounts", w.regulator, {"type": "holding", "enterprise_id": a["id"]})
        assert r.status_code == 201, r.text
        opened.append(r.json()["id"])
    fragmented = opened[0]
    # One unit to each in turn: the fragmented account gets every other serial, one range per unit.
    n = BLOCKS_SHOWN_MAX + EXTRA
    for _ in range(n):
        for dest in opened:
            body = {
                "from_account_id": a["account_id"],
                "to_account_id": dest,
                "instrument_id": w.instrument_id,
                "quantity": "1",
            }
            r = await env.post("/api/v1/transfers", a["key"], body)
            assert r.status_code == 201 and r.json()["status"] == "completed", r.text

    async def stored(uow):  # type: ignore[no-untyped-def]
        return (
            await uow.session.execute(
                select(SerialBlock.serial_start, SerialBlock.serial_end)
                .join(LedgerAccount, LedgerAccount.id == SerialBlock.ledger_account_id)
                .where(LedgerAccount.owner_id == fragmented, LedgerAccount.owner_kind == OWNER)
                .order_by(SerialBlock.serial_start)
            )
        ).all()

    blocks = await env.db.read(stored)
    assert len(blocks) == n  # the setup did fragment it

    with counting(engine_of(env)) as c:
        r = await env.get(f"/api/v1/accounts/{fragmented}/holdings", a["key"])
    assert r.status_code == 200, r.text
    assert c.selects() == 1, [(s.verb, s.table) for s in c.statements]
    [held] = r.json()
    assert held["balance_base"] == n
    code = held["instrument"]["code"]
    assert held["serial_blocks"] == [
        {"first": unit_identifier(code, start), "last": unit_identifier(code, end - 1), "quantity": end - start}
        for start, end in blocks[:BLOCKS_SHOWN_MAX]
    ]

    # Another enterprise's account is not there for this caller; an account that holds nothing is empty.
    r = await env.get(f"/api/v1/accounts/{other['account_id']}/holdings", a["key"])
    assert r.status_code == 404 and r.json()["type"] == "/problems/unknown-account", r.text
    r = await env.post("/api/v1/accounts", w.regulator, {"type": "holding", "enterprise_id": a["id"]})
    assert r.status_code == 201, r.text
    r = await env.get(f"/api/v1/accounts/{r.json()['id']}/holdings", a["key"])
    assert r.status_code == 200 and r.json() == [], r.text
