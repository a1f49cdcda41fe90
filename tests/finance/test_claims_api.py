"""Subsidy claims through the API (domain.md section 7): a first-set claim from submission to disbursement and
clawback, with the decision letter's text checked and its code verified without a login; four-eyes in the
service and in the database; every transition outside the workflow refused naming the current state; a
resubmission showing what changed; scoping of emitters, banks and foreign ids."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from core import ledger
from core.audit import link_and_verify
from core.db import UnitOfWork
from tests.finance.kit import (
    BASE,
    FS_AMOUNT_FEN,
    FW,
    act,
    at,
    budget,
    claim_body,
    finance_world,
    get_claim,
    pdf_text,
    submit,
)
from tests.helpers import documented_csv_header


async def invariants(env: Any) -> None:
    async def work(uow: UnitOfWork) -> list[str]:
        return await ledger.check_invariants(uow.session)

    assert await env.db.read(work) == []



def save_artefact(name: str, content: bytes) -> None:
    """Keep a rendered document as a test artefact (var/artefacts/) to look at."""
    from pathlib import Path

    out = Path(__file__).resolve().parents[2] / "var" / "artefacts"
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_bytes(content)


async def test_a_first_set_claim_goes_from_submission_to_clawback_through_the_api(env) -> None:
    fw = await finance_world(env)
    ent = fw.ents[0]
    b = await budget(fw, "10000000")
    assert (b["appropriated_fen"], b["available_fen"]) == (10_000_000_00, 10_000_000_00)

    c = await submit(fw, ent)
    assert c["state"] == "submitted" and c["claim_no"].startswith("CZ2026-")
    assert c["due_on"] == "2026-03-09"  # 5 working days after Monday 2 March
    assert c["allowed_actions"] == ["pass_formal_check", "return_for_correction", "reject"]
    r = await env.post(f"{BASE}/claims", ent["key"], claim_body(ent))
    assert r.status_code == 409 and r.json()["type"] == "/problems/duplicate", r.text

    c = await act(fw, fw.reviewer, c["id"], "formal-check", {"passed": True})
    assert c["state"] == "checked" and c["due_on"] == "2026-03-23"  # 15 working days
    c = await act(fw, fw.reviewer2, c["id"], "review", {"note": "复核无误"})
    assert (c["state"], c["eligible"], c["amount_fen"]) == ("reviewed", True, FS_AMOUNT_FEN)
    assert c["determination"]["programme"] == "first_set_insurance"
    assert c["determination"]["outputs"]["compensation_fen"] == FS_AMOUNT_FEN

    r = await env.post(f"{BASE}/claims/{c['id']}/approval", fw.reviewer, {})
    assert r.status_code == 403 and r.json()["type"] == "/problems/forbidden"
    c = await act(fw, fw.approver, c["id"], "approval", {})
    assert c["state"] == "in_notice"
    assert (c["notice_first_day"], c["notice_last_day"]) == ("2026-03-02", "2026-03-06")
    r = await env.get(f"{BASE}/budgets/{b['id']}", fw.auditor)
    assert (r.json()["committed_fen"], r.json()["available_fen"]) == (FS_AMOUNT_FEN, 10_000_000_00 - FS_AMOUNT_FEN)

    r = await env.post(f"{BASE}/claims/{c['id']}/finalisation", fw.reviewer, {})
    assert r.status_code == 409 and r.json()["type"] == "/problems/notice-period-running", r.text
    env.clock.set(at("2026-03-07"))
    c = await act(fw, fw.reviewer, c["id"], "finalisation")
    assert c["state"] == "approved" and c["due_on"] == "2026-03-20"  # 10 working days to pay
    [letter] = c["documents"]
    code = letter["verification_code"]

    r = await env.get(f"{BASE}/claims/{c['id']}/decision-letter.pdf", ent["key"])
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    save_artefact("decision-letter.pdf", r.content)
    txt = pdf_text(r.content)
    assert f"/verify/{code}" in txt.replace("\n", "")  # the QR code's address is printed beside it
    page = await env.client.get(f"/verify/{code}", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert code in page.text and "1,200,000.00 元" in page.text and "content-security-policy" in page.headers
    missing = await env.client.get("/verify/AAAA-AAAA-AAAA-AAAA", headers={"Accept": "text/html"})
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    assert (await env.client.get("/verify/AAAA-AAAA-AAAA-AAAA")).headers["content-type"].startswith(
        "application/problem+json"
    )
    compact = txt.replace("\n", "").replace(" ", "")
    assert "财政补贴资金审核决定书" in compact
    assert "人民币壹佰贰拾万元整" in compact
    assert "1,200,000.00" in compact
    assert "财建〔2015〕19号" in compact
    assert code.replace("-", "") in compact.replace("-", "")
    assert ent["name"] in compact

    r = await env.client.get(f"/verify/{code}")  # no Authorization header
    assert r.status_code == 200, r.text
    v = r.json()
    assert (v["valid"], v["type"], v["enterprise_name"], v["amount_fen"], v["date"]) == (
        True,
        "decision_letter",
        ent["name"],
        FS_AMOUNT_FEN,
        "2026-03-07",
    )
    assert v["amount_yuan"] == "1200000.00" and v["details"]["decision"] == "approved"
    r = await env.client.get(f"/verify/{code.lower().replace('-', ' ')}")  # as a reader types it
    assert r.status_code == 200
    for bad in ("AAAA-AAAA-AAAA-AAAA", "not a code", "x" * 500):
        r = await env.client.get(f"/verify/{bad}")
        assert r.status_code == 404 and r.json()["type"] == "/problems/not-found"

    r = await env.post(f"{BASE}/disbursements", fw.approver, {})
    assert r.status_code == 201, r.text
    batch = r.json()
    assert (batch["line_count"], batch["total_fen"], batch["claim_ids"]) == (1, FS_AMOUNT_FEN, [c["id"]])
    r = await env.get(f"{BASE}/disbursements/{batch['id']}/payment-file.csv", fw.approver)
    # For a bank clerk's Excel: UTF-8 with a BOM, and one charset in the header.
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.content.startswith("\ufeff".encode()) and not r.content.startswith(("\ufeff" * 2).encode())
    [row] = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert list(row) == documented_csv_header("payment-file.csv")  # docs/finance.md
    assert (row["payee_name"], row["payee_account_no"], row["amount_fen"], row["amount_yuan"]) == (
        ent["name"],
        "6217000000000001",
        str(FS_AMOUNT_FEN),
        "1200000.00",
    )
    c = await get_claim(fw, c["id"])
    assert c["state"] == "disbursed" and c["disbursement_batch_id"] == batch["id"]
    r = await env.get(f"{BASE}/budgets/{b['id']}", fw.auditor)
    got = r.json()
    assert (got["committed_fen"], got["disbursed_fen"], got["available_fen"]) == (
        0,
        FS_AMOUNT_FEN,
        10_000_000_00 - FS_AMOUNT_FEN,
    )

    r = await env.post(
        f"{BASE}/claims/{c['id']}/clawback", fw.approver, {"reason": "设备已转让", "amount_yuan": "200000"}
    )
    assert r.status_code == 200, r.text
    c = r.json()
    assert (c["state"], c["clawed_back_fen"]) == ("clawed_back", 200_000_00)
    assert [d["kind"] for d in c["documents"]] == ["decision_letter", "clawback_decision"]
    got = (await env.get(f"{BASE}/budgets/{b['id']}", fw.auditor)).json()
    assert (got["clawed_back_fen"], got["available_fen"]) == (200_000_00, 10_000_000_00 - FS_AMOUNT_FEN + 200_000_00)
    v = (await env.client.get(f"/verify/{c['documents'][1]['verification_code']}")).json()
    assert (v["type"], v["amount_fen"]) == ("clawback_decision", 200_000_00)
    # The approval letter still verifies, and now says that the claim was later clawed back.
    v = (await env.client.get(f"/verify/{code}")).json()
    assert v["details"]["claim_state_now"] == "clawed_back"
    # ... and that the clawback decision superseded it; the newest letter is the current one.
    first, second = c["documents"]
    assert (v["superseded"], v["superseded_by"], v["superseded_by_document_no"]) == (
        True, second["verification_code"], second["document_no"]
    )
    assert (await env.client.get(f"/verify/{second['verification_code']}")).json()["superseded"] is False
    # Every version of the claim's letters stays downloadable: the latest by default, any by its number.
    for doc in (first, second):
        r = await env.get(f"{BASE}/claims/{c['id']}/decision-letter.pdf?document_no={doc['document_no']}", fw.approver)
        assert r.status_code == 200, r.text
        assert doc["verification_code"] in pdf_text(r.content)
    latest = pdf_text((await env.get(f"{BASE}/claims/{c['id']}/decision-letter.pdf", fw.approver)).content)
    assert second["verification_code"] in latest and first["verification_code"] not in latest
    r = await env.get(f"{BASE}/claims/{c['id']}/decision-letter.pdf?document_no=JD1999-000001-01", fw.approver)
    assert r.status_code == 404 and r.json()["field"] == "document_no"

    assert [e["action"] for e in c["history"]] == [
        "submit",
        "pass_formal_check",
        "review",
        "approve",
        "finalise",
        "disburse",
        "clawback",
    ]
    await invariants(env)

    ok, entries, message = await link_and_verify(env.db)
    assert ok, message
    assert entries >= 10


async def test_an_approver_who_submitted_or_reviewed_the_claim_cannot_approve_it(env) -> None:
    fw = await finance_world(env, 1)
    ent = fw.ents[0]
    await budget(fw, "10000000")
    # Submitted by an approver on the enterprise's behalf (a paper application), reviewed by another person.
    r = await env.post(f"{BASE}/claims", fw.approver, claim_body(ent, "PAPER"))
    assert r.status_code == 201, r.text
    paper = r.json()
    await act(fw, fw.reviewer, paper["id"], "formal-check", {"passed": True})
    await act(fw, fw.reviewer2, paper["id"], "review", {})
    r = await env.post(f"{BASE}/claims/{paper['id']}/approval", fw.approver, {})
    assert r.status_code == 403 and r.json()["type"] == "/problems/four-eyes-required", r.text
    # Reviewed by an approver: that approver cannot approve either, a second approver can.
    c = await submit(fw, ent, "P-2")
    await act(fw, fw.reviewer, c["id"], "formal-check", {"passed": True})
    await act(fw, fw.approver2, c["id"], "review", {})
    r = await env.post(f"{BASE}/claims/{c['id']}/approval", fw.approver2, {})
    assert r.status_code == 403 and r.json()["type"] == "/problems/four-eyes-required", r.text
    assert (await get_claim(fw, c["id"]))["state"] == "reviewed"
    c = await act(fw, fw.approver, c["id"], "approval")
    assert c["approved_by"] != c["reviewed_by"] and c["approved_by"] != c["submitted_by"]

    # The database refuses it too, whatever code path might try.
    async def cheat(uow: UnitOfWork) -> None:
        await uow.session.execute(
            text("UPDATE finance_claim SET approved_by = reviewed_by WHERE id = :id"), {"id": c["id"]}
        )

    with pytest.raises(IntegrityError):
        await env.db.run(cheat)


async def _claim_in(fw: FW, state: str, project: str) -> dict[str, Any]:
    ent = fw.ents[0]
    if state == "draft":
        r = await fw.env.post(f"{BASE}/claims", ent["key"], claim_body(ent, project, draft=True))
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]
    c = await submit(fw, ent, project)
    if state == "submitted":
        return c
    if state == "returned":
        return await act(fw, fw.reviewer, c["id"], "formal-check", {"passed": False, "reason": "缺少保单"})  # type: ignore[no-any-return]
    await act(fw, fw.reviewer, c["id"], "formal-check", {"passed": True})
    if state == "checked":
        return await get_claim(fw, c["id"])
    if state == "rejected":
        return await act(fw, fw.reviewer, c["id"], "rejection", {"reason": "材料不实"})  # type: ignore[no-any-return]
    c = await act(fw, fw.reviewer2, c["id"], "review", {})
    if state == "reviewed":
        return c
    c = await act(fw, fw.approver, c["id"], "approval", {})
    if state == "in_notice":
        return c
    raise AssertionError(state)


# How each action is asked for through the API (route, body, who asks).
ACTIONS: dict[str, tuple[str, dict[str, Any], str]] = {
    "submit": ("submission", {}, "emitter"),
    "pass_formal_check": ("formal-check", {"passed": True}, "reviewer"),
    "return_for_correction": ("formal-check", {"passed": False, "reason": "补正"}, "reviewer"),
    "review": ("review", {}, "reviewer2"),
    "approve": ("approval", {}, "approver2"),
    "finalise": ("finalisation", {}, "reviewer"),
    "reject": ("rejection", {"reason": "不予支持"}, "reviewer"),
    "clawback": ("clawback", {"reason": "追回"}, "approver"),
    "disburse": ("", {}, "approver"),
}


async def _ask(fw: FW, claim_id: int, action: str) -> Any:
    route, body, who = ACTIONS[action]
    key = {
        "emitter": fw.ents[0]["key"],
        "reviewer": fw.reviewer,
        "reviewer2": fw.reviewer2,
        "approver": fw.approver,
        "approver2": fw.approver2,
    }[who]
    if action == "disburse":
        return await fw.env.post(f"{BASE}/disbursements", key, {"claim_ids": [claim_id]})
    return await fw.env.post(f"{BASE}/claims/{claim_id}/{route}", key, body)


async def test_every_action_outside_the_workflow_is_refused_naming_the_current_state(env) -> None:
    from finance.domain import workflow as wf

    fw = await finance_world(env, 1)
    await budget(fw, "100000000")
    claims = {
        s: await _claim_in(fw, s, f"S-{s}")
        for s in ("draft", "submitted", "returned", "checked", "reviewed", "in_notice", "rejected")
    }
    # approved, disbursed and clawed back: take three notice claims on after the notice period.
    extra = [await _claim_in(fw, "in_notice", f"S-late-{i}") for i in range(3)]
    env.clock.set(at("2026-03-09"))
    for c in extra:
        await act(fw, fw.reviewer, c["id"], "finalisation")
    claims["approved"] = await get_claim(fw, extra[0]["id"])
    r = await env.post(f"{BASE}/disbursements", fw.approver, {"claim_ids": [extra[1]["id"], extra[2]["id"]]})
    assert r.status_code == 201, r.text
    claims["disbursed"] = await get_claim(fw, extra[1]["id"])
    claims["clawed_back"] = await act(fw, fw.approver, extra[2]["id"], "clawback", {"reason": "追回"})

    checked = 0
    for state, claim in claims.items():
        assert claim["state"] == state
        allowed = {a.value for a in wf.allowed_actions(wf.State(state))}
        assert set(claim["allowed_actions"]) == allowed
        for action in ACTIONS:
            if action in allowed:
                continue
            r = await _ask(fw, claim["id"], action)
            assert r.status_code == 409, (state, action, r.text)
            problem = r.json()
            assert problem["type"] == "/problems/claim-transition-refused", (state, action, problem)
            assert problem["current_state"] == state and state in problem["detail"]
            assert set(problem["allowed_actions"]) == allowed
            checked += 1
        assert (await get_claim(fw, claim["id"]))["state"] == state  # nothing changed
    assert checked == sum(len(ACTIONS) - len(wf.allowed_actions(s)) for s in wf.State)
    await invariants(env)


async def test_a_rejected_claim_resubmitted_shows_what_changed_and_releases_its_budget_on_rejection(env) -> None:
    fw = await finance_world(env, 1)
    ent = fw.ents[0]
    b = await budget(fw, "5000000")
    bad = dict(claim_body(ent)["facts"], fs_first_insured_on="2022-06-01")  # policy year 4 on 2026-03-02
    c = await submit(fw, ent, facts=bad)
    await act(fw, fw.reviewer, c["id"], "formal-check", {"passed": True})
    c = await act(fw, fw.reviewer2, c["id"], "review", {})
    assert (c["eligible"], c["failed_gates"], c["amount_fen"]) == (False, ["policy_year"], 0)
    r = await env.post(f"{BASE}/claims/{c['id']}/approval", fw.approver, {})
    assert r.status_code == 409 and r.json()["type"] == "/problems/claim-not-eligible", r.text
    r = await env.post(f"{BASE}/claims/{c['id']}/rejection", fw.reviewer, {"reason": "  "})
    assert r.status_code == 422 and r.json()["field"] == "reason"
    c = await act(fw, fw.reviewer, c["id"], "rejection", {"reason": "保险年度超过3年"})
    assert c["state"] == "rejected" and c["reason"] == "保险年度超过3年"
    letter = await env.get(f"{BASE}/claims/{c['id']}/decision-letter.pdf", ent["key"])
    assert "保险年度超过3年" in pdf_text(letter.content).replace("\n", "")

    good = dict(bad, fs_first_insured_on="2024-06-01")  # policy year 2
    c = await act(fw, ent["key"], c["id"], "submission", {"facts": good, "note": "更正首次投保日期"})
    assert (c["state"], c["cycle"]) == ("submitted", 2)
    assert c["changes_since_last_decision"] == [
        {"fact": "fs_first_insured_on", "change": "changed", "before": "2022-06-01", "after": "2024-06-01"}
    ]
    assert c["reviewed_by"] is None and c["determination"] is None
    await act(fw, fw.reviewer, c["id"], "formal-check", {"passed": True})
    c = await act(fw, fw.reviewer2, c["id"], "review", {})
    assert c["eligible"] is True
    c = await act(fw, fw.approver, c["id"], "approval")
    assert (await env.get(f"{BASE}/budgets/{b['id']}", fw.auditor)).json()["committed_fen"] == FS_AMOUNT_FEN
    # An objection upheld during the notice: the commitment is released exactly once.
    c = await act(fw, fw.reviewer, c["id"], "rejection", {"reason": "公示期间收到实名异议，经核实成立"})
    got = (await env.get(f"{BASE}/budgets/{b['id']}", fw.auditor)).json()
    assert (got["committed_fen"], got["available_fen"]) == (0, 5_000_000_00)
    await invariants(env)


async def test_emitters_see_only_their_own_claims_and_banks_none(env) -> None:
    fw = await finance_world(env, 2)
    a, b = fw.ents
    mine = await submit(fw, a, "A-1")
    theirs = await submit(fw, b, "B-1")
    r = await env.get(f"{BASE}/claims/{theirs['id']}", a["key"])
    assert r.status_code == 404 and r.json()["type"] == "/problems/not-found"
    r = await env.get(f"{BASE}/claims/999999", a["key"])
    assert r.status_code == 404
    page = (await env.get(f"{BASE}/claims", a["key"])).json()
    assert [c["id"] for c in page["items"]] == [mine["id"]]
    assert len((await env.get(f"{BASE}/claims", fw.auditor)).json()["items"]) == 2
    # An emitter cannot claim for another enterprise, nor resubmit another's claim.
    r = await env.post(f"{BASE}/claims", a["key"], claim_body(b, "X"))
    assert r.status_code == 404 and r.json()["field"] == "enterprise_id"
    r = await env.post(f"{BASE}/claims/{theirs['id']}/submission", a["key"], {})
    assert r.status_code == 404
    r = await env.get(f"{BASE}/claims", fw.bank)
    assert r.status_code == 403
    r = await env.get(f"{BASE}/claims/{mine['id']}/decision-letter.pdf", a["key"])
    assert r.status_code == 404  # no decision yet


async def test_bad_claim_input_is_refused_with_the_field_and_changes_nothing(env) -> None:
    fw = await finance_world(env, 1)
    ent = fw.ents[0]
    cases = [
        ({"programme": "high_tech"}, "programme"),
        ({"facts": dict(claim_body(ent)["facts"], fs_premium_rate_bp=4.0)}, "facts.fs_premium_rate_bp"),
        ({"facts": dict(claim_body(ent)["facts"], unknown_fact=1)}, "facts.unknown_fact"),
        ({"facts": {"fs_policy_year": 1}}, "facts.fs_catalogue_code"),
        ({"payee_account_no": "12ab"}, "payee_account_no"),
        ({"project_ref": "P\u202e1"}, "project_ref"),
        ({"state": "approved"}, "state"),
        ({"approved_by": 1}, "approved_by"),
    ]
    for over, field in cases:
        r = await env.post(f"{BASE}/claims", ent["key"], claim_body(ent, **over))
        assert r.status_code == 422, (over, r.text)
        assert r.json()["field"] == field, (over, r.json())
    assert (await env.get(f"{BASE}/claims", fw.auditor)).json()["items"] == []
    r = await env.client.post(f"{BASE}/claims", json=claim_body(ent), headers={"Authorization": f"Bearer {ent['key']}"})
    assert r.status_code == 400 and r.json()["type"] == "/problems/idempotency-key-missing"
