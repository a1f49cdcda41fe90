"""A working-day date the registry must compute in a year whose holiday notice is not published is refused with
409 `calendar-not-published`, and nothing changes: no guess lands a date on a holiday."""

from __future__ import annotations

import datetime as dt

from tests.helpers import world

# Thursday 28 December 2028, 10:00 Asia/Shanghai: the 4th working day after it is in 2029, whose notice is not
# published (the suite publishes test notices for 2027 and 2028 only, tests/data/).
DEC_28_2028 = dt.datetime(2028, 12, 28, 2, 0, tzinfo=dt.UTC)


async def test_adding_a_trusted_account_whose_delay_ends_in_an_unpublished_year_is_refused(env) -> None:
    w = await world(env, n_enterprises=2, issue=10)
    a, b = w.enterprises
    env.clock.set(DEC_28_2028)
    r = await env.post(f"/api/v1/accounts/{a['account_id']}/trusted", a["key"], {"trusted_account_id": b["account_id"]})
    assert r.status_code == 409, r.text
    problem = r.json()
    assert (problem["type"], problem["year"]) == ("/problems/calendar-not-published", 2029)
    assert "2029" in problem["detail"]
    # Nothing was recorded: on a day whose delay ends inside 2026 the same request succeeds.
    env.clock.set(DEC_28_2028 - dt.timedelta(days=14))
    r = await env.post(f"/api/v1/accounts/{a['account_id']}/trusted", a["key"], {"trusted_account_id": b["account_id"]})
    assert r.status_code in (200, 201), r.text
    assert r.json()["effective_from"] == "2028-12-19T16:00:00Z"  # Wednesday 20 December, 00:00 in Shanghai
