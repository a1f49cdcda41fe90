"""Bank green-credit queries under consent: a consented bank gets a signed answer (catalogue codes under every
edition, benchmark status, compliance status, violations check, carbon-tool eligibility) and a PDF report;
a bank without consent gets exactly the 404 of an unknown enterprise; a revoked consent stops the next query;
every query is visible to the enterprise."""

from __future__ import annotations

import base64
import copy
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.identity import Role
from core.pdf import canonical_json
from tests.finance.kit import BASE, finance_world, org, pdf_text

QUERIES = f"{BASE}/green-credit/queries"
PROJECT: dict[str, Any] = {
    "loan_approved_on": "2025-10-01",
    "green_activity": "wind_power",
    "loan_principal_fen": 100_000_000_00,
    "industrial_structure_class": "permitted",
    "baseline_emissions_t": 100_000,
    "project_emissions_t": 20_000,
    "co2_method": "CCER CMS-002-V01",
    "carbon_tool_field": "clean_energy",
    "lender_eligible": True,
}


def verify_signature(public_key_b64: str, answer: dict[str, Any], signature: dict[str, str]) -> bool:
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
    try:
        key.verify(base64.b64decode(signature["value"]), canonical_json(answer))
    except Exception:
        return False
    return True



def same(r: Any) -> dict[str, Any]:
    """A problem body without its request id (each request has its own)."""
    return {k: v for k, v in r.json().items() if k != "request_id"}

async def test_a_consented_bank_gets_a_signed_answer_and_a_report_and_nothing_without_consent(env) -> None:
    fw = await finance_world(env, 2)
    a, b = fw.ents
    other_org = await org(env, "招商银行南昌分行", "bank")
    other_bank = await env.key(Role.BANK, other_org)

    banks = (await env.get(f"{BASE}/banks", a["key"])).json()
    assert {"organisation_id": fw.bank_org, "name": "中国银行江西省分行"} in banks
    assert {"organisation_id": other_org, "name": "招商银行南昌分行"} in banks
    r = await env.post(
        f"{BASE}/consents",
        a["key"],
        {"enterprise_id": a["id"], "bank_organisation_id": fw.bank_org, "purpose": "风电项目贷款审批"},
    )
    assert r.status_code == 201, r.text
    consent = r.json()
    assert (consent["status"], consent["active"], consent["bank_name"]) == ("active", True, "中国银行江西省分行")
    # An emitter consents only for its own enterprise, and only to a bank.
    r = await env.post(
        f"{BASE}/consents", a["key"], {"enterprise_id": b["id"], "bank_organisation_id": fw.bank_org, "purpose": "x"}
    )
    assert r.status_code == 404
    r = await env.post(
        f"{BASE}/consents", a["key"], {"enterprise_id": a["id"], "bank_organisation_id": 999_999, "purpose": "x"}
    )
    assert r.status_code == 404 and r.json()["field"] == "bank_organisation_id"

    r = await env.post(
        QUERIES,
        fw.bank,
        {"enterprise_id": a["id"], "purpose": "贷前审查", "project_ref": "WF-1", "project_facts": PROJECT},
    )
    assert r.status_code == 201, r.text
    out = r.json()
    answer, signature = out["answer"], out["signature"]
    assert answer["enterprise"]["uscc"] == a["uscc"] and answer["query_id"] == out["query_id"]
    loan = answer["green_loan"]
    assert loan["eligible"] is True and loan["catalogue_code"] == "2.1.1"
    assert loan["catalogue_codes"] == {
        "绿色产业指导目录（2019年版）": "3.2.1",
        "绿色债券支持项目目录（2021年版）": "1.6.1.1",
        "绿色低碳转型产业指导目录（2024年版）": "3.2.1",
        "绿色金融支持项目目录（2025年版）": "2.1.1",
    }
    assert loan["benchmark_status"] == "未提供能效数据"
    assert answer["compliance"]["open_shortfall"] is False
    assert answer["violations_check"]["checked"] is True and answer["violations_check"]["passed"] is True
    tool = answer["carbon_tool"]
    assert tool["eligible"] is True and tool["outputs"]["relending_fen"] == 60_000_000_00
    assert tool["outputs"]["relending_rate_bp"] == 125  # 1.25 % from 2026-01-19

    key = (await env.client.get("/verify/public-key")).json()  # public, no login
    assert key["algorithm"] == "Ed25519" and key["key_id"] == signature["key_id"]
    assert verify_signature(key["public_key_base64"], answer, signature)
    pem_key = serialization.load_pem_public_key(key["public_key_pem"].encode())
    assert isinstance(pem_key, Ed25519PublicKey)
    forged = copy.deepcopy(answer)
    forged["compliance"]["open_shortfall"] = True
    assert not verify_signature(key["public_key_base64"], forged, signature)

    r = await env.get(f"{QUERIES}/{out['query_id']}/report.pdf", fw.bank)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    txt = pdf_text(r.content).replace("\n", "").replace(" ", "")
    assert "绿色信贷查询报告" in txt and a["name"] in txt and "2.1.1" in txt and signature["key_id"] in txt
    code = next(part for part in txt.split("验证码：")[1:]).split("核验")[0][:19]
    v = await env.client.get(f"/verify/{code}")
    assert v.status_code == 200, (code, v.text)
    assert (v.json()["type"], v.json()["enterprise_name"]) == ("green_credit_report", a["name"])
    assert (await env.get(f"{QUERIES}/{out['query_id']}/report.pdf", other_bank)).status_code == 404

    # Without consent: exactly the answer for an enterprise that does not exist.
    unknown = await env.post(QUERIES, fw.bank, {"enterprise_id": 999_999, "purpose": "贷前审查"})
    no_consent = await env.post(QUERIES, fw.bank, {"enterprise_id": b["id"], "purpose": "贷前审查"})
    other = await env.post(QUERIES, other_bank, {"enterprise_id": a["id"], "purpose": "贷前审查"})
    assert unknown.status_code == no_consent.status_code == other.status_code == 404
    assert same(unknown) == same(no_consent) == same(other)
    by_uscc = await env.post(QUERIES, other_bank, {"uscc": a["uscc"], "purpose": "贷前审查"})
    assert by_uscc.status_code == 404
    bad_check = a["uscc"][:-1] + ("0" if a["uscc"][-1] != "0" else "1")
    for bad in (bad_check, "91360100ma35xxxxxx", a["uscc"] + " "):
        r = await env.post(QUERIES, fw.bank, {"uscc": bad, "purpose": "x"})
        assert r.status_code == 422 and r.json()["field"] == "uscc", (bad, r.text)
    r = await env.post(
        QUERIES, fw.bank, {"enterprise_id": a["id"], "purpose": "x", "project_facts": {"carbon_open_shortfall_t": 0}}
    )
    assert r.status_code == 422 and r.json()["field"] == "project_facts.carbon_open_shortfall_t"
    r = await env.post(
        QUERIES, fw.bank, {"enterprise_id": a["id"], "purpose": "x", "project_facts": {"loan_principal_fen": 1.5}}
    )
    assert r.status_code == 422 and r.json()["field"] == "project_facts.loan_principal_fen"

    # Revoking stops the next query; granting again restores it.
    r = await env.post(f"{BASE}/consents/{consent['id']}/revocation", a["key"], {})
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    r = await env.post(f"{BASE}/consents/{consent['id']}/revocation", b["key"], {})
    assert r.status_code == 404
    r = await env.post(QUERIES, fw.bank, {"enterprise_id": a["id"], "purpose": "贷后检查"})
    assert r.status_code == 404 and same(r) == same(unknown)

    # Who looked at my data: the enterprise sees every query about it, answered or refused.
    log = (await env.get(QUERIES, a["key"])).json()
    assert [(q["bank_name"], q["outcome"]) for q in log] == [
        ("中国银行江西省分行", "refused_no_consent"),
        ("招商银行南昌分行", "refused_no_consent"),
        ("招商银行南昌分行", "refused_no_consent"),
        ("中国银行江西省分行", "answered"),
    ]
    assert [q["outcome"] for q in (await env.get(QUERIES, b["key"])).json()] == ["refused_no_consent"]
    # A bank sees only its answered queries (its refusals would tell it who exists).
    assert [q["id"] for q in (await env.get(QUERIES, fw.bank)).json()] == [out["query_id"]]
    assert (await env.get(QUERIES, other_bank)).json() == []
    consents = (await env.get(f"{BASE}/consents", fw.bank)).json()
    assert [(c["enterprise_id"], c["active"]) for c in consents] == [(a["id"], False)]
    assert (await env.get(f"{BASE}/consents", other_bank)).json() == []
    assert (await env.post(QUERIES, a["key"], {"enterprise_id": a["id"], "purpose": "x"})).status_code == 403


async def test_an_answer_without_project_facts_still_states_compliance_and_what_was_not_evaluated(env) -> None:
    fw = await finance_world(env, 1)
    a = fw.ents[0]
    r = await env.post(
        f"{BASE}/consents",
        a["key"],
        {"enterprise_id": a["id"], "bank_organisation_id": fw.bank_org, "purpose": "授信", "valid_until": "2026-03-31"},
    )
    assert r.status_code == 201, r.text
    r = await env.post(QUERIES, fw.bank, {"uscc": a["uscc"], "purpose": "授信"})
    assert r.status_code == 201, r.text
    answer = r.json()["answer"]
    assert answer["green_loan"]["evaluated"] is False and "loan_approved_on" in answer["green_loan"]["missing_facts"]
    assert answer["violations_check"]["checked"] is False
    assert answer["compliance"]["carbon_open_shortfall_t"] == 0
    assert answer["consent"]["valid_until"] == "2026-03-31"
    r = await env.get(f"{QUERIES}/{r.json()['query_id']}/report.pdf", a["key"])  # the enterprise may read it too
    assert r.status_code == 200 and "未评估" in pdf_text(r.content)
    # The consent lapses after its last day.
    from tests.finance.kit import at

    env.clock.set(at("2026-04-01"))
    assert (await env.post(QUERIES, fw.bank, {"uscc": a["uscc"], "purpose": "授信"})).status_code == 404
