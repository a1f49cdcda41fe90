"""The finance bureau's pages: the queue filters in the query, a claim shows every gate with its citation, the
review actions go through the same services as the API (four-eyes holds), and the decision letter downloads.
The browser journey runs in Chromium against the live app."""

from __future__ import annotations

from typing import Any

import httpx

from core.db import Database
from core.identity import Role
from tests.finance.kit import BASE, act, at, budget, claim_body, finance_world, submit
from tests.web.conftest import LiveServer, browser_sign_in, form_post, make_user, screenshot, sign_in
from tests.web.conftest import submit as submit_form


class LiveEnv:
    """The finance kit's `env` over the live server: API calls over HTTP, keys minted in its database."""

    def __init__(self, live: LiveServer, db: Database) -> None:
        self.live = live
        self.db = db
        self.clock = live.clock
        self.client = httpx.AsyncClient(base_url=live.base_url, timeout=60)
        self.counter = 0

    async def key(self, role: Role, organisation_id: int | None = None, name: str | None = None) -> str:
        from tests.conftest import Env

        return await Env.key(self, role, organisation_id, name)  # type: ignore[arg-type]

    def h(self, key: str, idem: str | None = None) -> dict[str, str]:
        self.counter += 1
        return {"Authorization": f"Bearer {key}", "Idempotency-Key": idem or f"web-{self.counter}-{id(self)}"}

    async def post(self, path: str, key: str, body: Any, idem: str | None = None) -> Any:
        return await self.client.post(path, json=body, headers=self.h(key, idem))

    async def get(self, path: str, key: str) -> Any:
        return await self.client.get(path, headers={"Authorization": f"Bearer {key}"})


async def bureau_org(env: Any) -> int:
    from sqlalchemy import select

    from core.models import Organisation

    async def work(uow: Any) -> int:
        return int((await uow.session.execute(select(Organisation.id).where(Organisation.kind == "finance"))).scalar())

    return await env.db.read(work)


async def test_the_queue_filters_sorts_and_refuses_other_roles(web_env) -> None:
    fw = await finance_world(web_env)
    await budget(fw, "10000000")
    small = await submit(fw, fw.ents[0], "P-1")
    big = await submit(fw, fw.ents[1], "P-2", facts=dict(claim_body(fw.ents[1])["facts"]))
    reviewer, _ = await make_user(web_env, Role.FINANCE_REVIEWER, await bureau_org(web_env))
    assert (await sign_in(web_env.client, reviewer)).status_code == 303
    page = await web_env.client.get("/finance/claims")
    assert page.status_code == 200 and small["claim_no"] in page.text and big["claim_no"] in page.text
    only = await web_env.client.get("/finance/claims?state=submitted&programme=first_set_insurance&sort=-amount")
    assert only.status_code == 200 and small["claim_no"] in only.text
    none = await web_env.client.get("/finance/claims?city=九江")
    assert small["claim_no"] not in none.text and big["claim_no"] not in none.text  # both are in 南昌
    bad = await web_env.client.get("/finance/claims?amount_min=abc")
    assert bad.status_code == 422 and "amount_min" in bad.text and "text/html" in bad.headers["content-type"]
    out_of_range = await web_env.client.get("/finance/claims?amount_min=1&amount_max=0.5")
    assert out_of_range.status_code == 422
    # The API takes the same filters.
    r = await web_env.get(f"{BASE}/claims?sort=-amount&city=南昌", fw.reviewer)
    assert r.status_code == 200 and {c["id"] for c in r.json()["items"]} == {small["id"], big["id"]}
    r = await web_env.get(f"{BASE}/claims?city=九江", fw.reviewer)
    assert r.json()["items"] == []

    bank_user, _ = await make_user(web_env, Role.BANK)
    await form_post(web_env.client, "/logout", "/finance/claims", {})
    await sign_in(web_env.client, bank_user)
    assert (await web_env.client.get("/finance/claims", follow_redirects=False)).status_code == 403
    assert (await web_env.client.get(f"/finance/claims/{small['id']}")).status_code == 403


async def test_a_reject_without_a_reason_is_refused_on_the_page_and_changes_nothing(web_env) -> None:
    fw = await finance_world(web_env, 1)
    c = await submit(fw, fw.ents[0])
    reviewer, _ = await make_user(web_env, Role.FINANCE_REVIEWER, await bureau_org(web_env))
    await sign_in(web_env.client, reviewer)
    r = await form_post(
        web_env.client, f"/finance/claims/{c['id']}/reject", f"/finance/claims/{c['id']}", {"reason": " "}
    )
    assert r.status_code == 422 and "reason" in r.text
    assert (await web_env.get(f"{BASE}/claims/{c['id']}", fw.reviewer)).json()["state"] == "submitted"


async def test_reviewer_and_approver_in_chromium(live, page, browser) -> None:  # type: ignore[no-untyped-def]
    db = Database(live.app.state.db.url)
    env = LiveEnv(live, db)
    try:
        fw = await finance_world(env)
        await budget(fw, "10000000")
        bad_facts = dict(claim_body(fw.ents[0])["facts"], fs_first_insured_on="2022-06-01")  # policy year 4
        bad = await submit(fw, fw.ents[0], "P-BAD", facts=bad_facts)
        good = await submit(fw, fw.ents[1], "P-GOOD")
        bureau = await bureau_org(env)
        reviewer, _ = await make_user(db, Role.FINANCE_REVIEWER, bureau, now=live.clock.now())
        approver, _ = await make_user(db, Role.FINANCE_APPROVER, bureau, now=live.clock.now())

        # The reviewer: the queue, then the bad claim: formal check, review, and the failed gate with its citation.
        await browser_sign_in(page, live.base_url, reviewer)
        assert page.url.endswith("/finance/claims")
        await screenshot(page, "finance-claims")
        await submit_form(page, f"text={bad['claim_no']}")
        await submit_form(page, "text=形式审查通过")
        await submit_form(page, "text=审核（重新计算判定）")
        row = page.locator("tr", has_text="不符合")
        assert await row.count() == 1
        text = await row.inner_text()
        assert "财" in text or "号" in text  # the citation's 文号
        await screenshot(page, "finance-claim-failed-gate")
        # The good claim: sent on to the approver.
        await page.goto(f"{live.base_url}/finance/claims/{good['id']}")
        await submit_form(page, "text=形式审查通过")
        await submit_form(page, "text=审核（重新计算判定）")
        assert await page.locator("text=已审核").count() >= 1
        await submit_form(page, "text=退出")

        # The approver: a second person approves; after the notice the decision letter downloads.
        await browser_sign_in(page, live.base_url, approver)
        await page.goto(f"{live.base_url}/finance/claims/{good['id']}")
        await submit_form(page, "text=审批通过")
        assert await page.locator("text=公示中").count() >= 1
        await screenshot(page, "finance-claim-approved")
        live.clock.set(at("2026-03-13"))  # the notice is over (and the idle session with it: sign in again)
        await browser_sign_in(page, live.base_url, approver)
        await page.goto(f"{live.base_url}/finance/claims/{good['id']}")
        await submit_form(page, "text=公示期满，作出决定")
        async with page.expect_download() as info:
            await page.click("text=下载决定书（PDF）")
        download = await info.value
        path = await download.path()
        assert path is not None and path.read_bytes()[:5] == b"%PDF-"
        await page.goto(f"{live.base_url}/finance/budgets")
        assert await page.locator("canvas[data-chart]").count() == 1
        await page.wait_for_timeout(300)
        await screenshot(page, "finance-budgets")
        claim = (await env.get(f"{BASE}/claims/{good['id']}", fw.reviewer)).json()
        assert claim["state"] == "approved" and claim["approved_by"] != claim["reviewed_by"]
    finally:
        await env.client.aclose()
        await db.dispose()


async def test_the_reviewer_cannot_approve_what_they_reviewed(web_env) -> None:
    fw = await finance_world(web_env, 1)
    await budget(fw, "10000000")
    c = await submit(fw, fw.ents[0])
    bureau = await bureau_org(web_env)
    # An approver who also did the review (the review needs only finance staff) may not approve it.
    approver, _ = await make_user(web_env, Role.FINANCE_APPROVER, bureau)
    await sign_in(web_env.client, approver)
    await act(fw, fw.reviewer, c["id"], "formal-check", {"passed": True})
    r = await form_post(web_env.client, f"/finance/claims/{c['id']}/review", f"/finance/claims/{c['id']}", {})
    assert r.status_code == 303
    page = await web_env.client.get(f"/finance/claims/{c['id']}")
    assert "审批须由另一人办理" in page.text
    r = await form_post(web_env.client, f"/finance/claims/{c['id']}/approve", f"/finance/claims/{c['id']}", {})
    assert r.status_code == 403 and "未办理" in r.text
    assert (await web_env.get(f"{BASE}/claims/{c['id']}", fw.reviewer)).json()["state"] == "reviewed"
