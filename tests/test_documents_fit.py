"""Every kind of PDF the system issues is fit to file: built through the API from a rich example (an account
statement, a settled compliance report, a decision letter, a clawback decision, a bank's green-credit report),
each speaks Chinese only (no English word outside a short list of units and codes), each renders with
pdftoppm to the expected number of pages with nothing drawn outside the printable margins, and the PNGs are
kept under var/artefacts/ to be looked at."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from finance.service import SIGNING_KEY_ENV
from tests.finance.kit import BASE as FINANCE
from tests.finance.kit import act, at, budget, finance_world, submit
from tests.finance.test_green_credit import PROJECT
from tests.registry.compliance.kit import BASE, carbon_lines, carbon_world, enterprise, report, settle, surrender

ARTIFACTS = Path(__file__).resolve().parents[1] / "var" / "artefacts"
DPI = 100
MM = DPI / 25.4  # pixels per millimetre at 100 dpi

# What may stay in Latin letters inside a Chinese document: units in table headers and beside numbers,
# scheme and instrument codes, the identifiers of the standards and algorithms cited, and the URL of the
# verification page. Every other English word of three letters or more is a label somebody forgot.
ALLOWED_WORDS = frozenset(
    {
        "tCO2e", "MWh", "kgce", "tce", "GB", "CEA", "NATIONAL", "CCER", "CMS", "USCC", "SHA", "PDF", "QR",
        "Ed25519", "Base64", "JSON", "UTF", "greenrights", "http", "https", "verify", "localhost", "example",
        "test", "GET", "public", "key", "CN",
        # min/max in the printed formulas; the rule pack's version code (greenrights-incentives/2026.2)
        "min", "max", "incentives",
    }
)  # fmt: skip


@pytest.fixture(autouse=True)
def signing_key_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "signing-key.pem"
    monkeypatch.setenv(SIGNING_KEY_ENV, str(path))
    return path


async def every_pdf(env: Any) -> dict[str, bytes]:
    """One PDF of each kind, from an example with long names, big numbers and every status."""
    pdfs: dict[str, bytes] = {}
    # Finance first: its claims run on the test clock's March 2026.
    fw = await finance_world(env, 1)
    ent = fw.ents[0]
    await budget(fw, "10000000")
    c = await submit(fw, ent)
    await act(fw, fw.reviewer, c["id"], "formal-check", {"passed": True})
    await act(fw, fw.reviewer2, c["id"], "review", {"note": "复核无误"})
    await act(fw, fw.approver, c["id"], "approval", {})
    env.clock.set(at("2026-03-07"))
    await act(fw, fw.reviewer, c["id"], "finalisation")
    r = await env.get(f"{FINANCE}/claims/{c['id']}/decision-letter.pdf", ent["key"])
    assert r.status_code == 200, r.text
    pdfs["decision-letter"] = r.content
    r = await env.post(f"{FINANCE}/disbursements", fw.approver, {})
    assert r.status_code == 201, r.text
    await act(
        fw, fw.approver, c["id"], "clawback", {"reason": "设备已转让，不再符合首台（套）条件", "amount_yuan": "200000"}
    )
    r = await env.get(f"{FINANCE}/claims/{c['id']}/decision-letter.pdf", ent["key"])
    assert r.status_code == 200, r.text
    pdfs["clawback-letter"] = r.content

    r = await env.post(
        f"{FINANCE}/consents",
        ent["key"],
        {"enterprise_id": ent["id"], "bank_organisation_id": fw.bank_org, "purpose": "风电项目贷款审批"},
    )
    assert r.status_code == 201, r.text
    r = await env.post(
        f"{FINANCE}/green-credit/queries",
        fw.bank,
        {"enterprise_id": ent["id"], "purpose": "贷前审查", "project_ref": "WF-1", "project_facts": PROJECT},
    )
    assert r.status_code == 201, r.text
    r = await env.get(f"{FINANCE}/green-credit/queries/{r.json()['query_id']}/report.pdf", fw.bank)
    assert r.status_code == 200, r.text
    pdfs["bank-report"] = r.content

    # A carbon period with a compliant cement plant and a power plant short of 17,013 t.
    cw = await carbon_world(env, overrides={"allocation": "2026-02-15", "pre_allocation": "2026-02-01"})
    a = await enterprise(env, cw.reg, "江西南昌赣江新区示范水泥制造股份有限公司", "南昌", "C3011")
    b = await enterprise(env, cw.reg, "九江示范火力发电有限责任公司", "九江", "D4411")
    await report(cw, a, carbon_lines(1_250_000))
    await report(cw, b, carbon_lines(2_017_013))
    r = await env.post("/api/v1/transfers", cw.reg.key, {
        "from_account_id": cw.reg.allocation_account, "to_account_id": a["account_id"], "instrument_id": cw.cea,
        "quantity": "1250000"})  # fmt: skip
    if r.status_code != 201:  # allocation goes by allocation table where direct transfers are refused
        r = await env.post(f"{BASE}/periods/{cw.pid}/allocation-tables", cw.reg.key, {
            "kind": "allocation", "instrument_id": cw.cea,
            "lines": [{"enterprise_id": a["id"], "quantity": "1250000"},
                      {"enterprise_id": b["id"], "quantity": "2000000"}]})  # fmt: skip
        assert r.status_code == 201, r.text
        r = await env.post(f"/api/v1/compliance/allocation-tables/{r.json()['id']}/approval", cw.reg.key2,
                           {"decision": "approve"})  # fmt: skip
        assert r.status_code == 200, r.text
    assert (await surrender(cw, a, 1_250_000)).status_code == 201
    assert (await surrender(cw, b, 2_000_000)).status_code == 201
    r = await env.post(f"{BASE}/periods/{cw.pid}/reference-price", cw.reg.key, {"price_yuan": "98.00"})
    assert r.status_code == 200, r.text
    env.clock.set(at("2027-01-01", 1))
    r = await settle(cw)
    assert r.status_code == 200, r.text
    r = await env.get(f"{BASE}/periods/{cw.pid}/report.pdf", cw.reg.key)
    assert r.status_code == 200, r.text
    pdfs["compliance-report"] = r.content
    r = await env.get(f"/api/v1/accounts/{b['account_id']}/statement.pdf", b["key"])
    assert r.status_code == 200, r.text
    pdfs["statement"] = r.content
    return pdfs


def _text(data: bytes) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def english_words(text: str) -> set[str]:
    """ASCII words of three or more letters that are not units, codes, identifiers or the verification URL."""
    text = re.sub(r"https?://\S+", " ", text)
    text = re.sub(r"\b[A-Z2-7]{4}(?:-[A-Z2-7]{4}){3}\b", " ", text)  # verification codes (验证码)
    text = re.sub(r"[A-Za-z0-9+/=_-]{32,}", " ", text)  # signature values, key ids, digests
    text = re.sub(r"[A-Za-z0-9+/]*(?:\+|=)[A-Za-z0-9+/=]*", " ", text)  # the end of a wrapped Base64 value
    words = set(re.findall(r"(?<![A-Za-z0-9])[A-Za-z][A-Za-z0-9]{2,}", text))
    return {w for w in words if w not in ALLOWED_WORDS and not re.search(r"\d", w)}


async def test_every_pdf_speaks_chinese_with_units_and_codes_only(env) -> None:
    pdfs = await every_pdf(env)
    found = {kind: sorted(english_words(_text(data))) for kind, data in pdfs.items()}
    context = {
        kind: [m.group(0) for w in words for m in re.finditer(rf".{{0,20}}\b{w}\b.{{0,20}}", _text(pdfs[kind]))]
        for kind, words in found.items()
    }
    if any(found.values()):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "english-words.json").write_text(json.dumps(context, ensure_ascii=False, indent=1), "utf-8")
    assert found == {kind: [] for kind in pdfs}, context
    text = {kind: _text(data).replace("\n", "") for kind, data in pdfs.items()}
    # Numbers the same everywhere: separators, 元 on money, tonnes in words in running text.
    assert "17,013" in text["compliance-report"] and "吨二氧化碳当量" in text["compliance-report"]
    assert "C3011水泥制造" in text["compliance-report"].replace(" ", "")  # a cell may wrap at the space
    assert "1,200,000.00 元" in text["decision-letter"]
    for kind in ("decision-letter", "clawback-letter"):
        # 文号 and 落款 with the authority and the date in Chinese.
        assert re.search(r"赣财[^〔]*〔2026〕\d+号", text[kind]), text[kind][:300]
        assert "江西省财政厅" in text[kind] and "二〇二六年三月" in text[kind]


def _png_boxes(pdf: Path, out_prefix: Path) -> list[tuple[Path, tuple[int, int, int, int], tuple[int, int]]]:
    """Render every page to PNG; (png, non-white bounding box, (width, height)) per page."""
    from PIL import Image

    subprocess.run(["pdftoppm", "-r", str(DPI), "-png", str(pdf), str(out_prefix)], check=True)
    out = []
    for png in sorted(out_prefix.parent.glob(out_prefix.name + "-*.png")):
        with Image.open(png) as img:
            grey = img.convert("L").point(lambda v: 255 if v < 250 else 0)
            box = grey.getbbox()
            assert box is not None, f"{png} is blank"
            out.append((png, box, img.size))
    return out


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is installed by .ci/run")
async def test_every_pdf_renders_within_its_printable_margins(env) -> None:
    pdfs = await every_pdf(env)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expected_pages = {"statement": 1, "compliance-report": 2, "decision-letter": (2, 4), "clawback-letter": (2, 4),
                      "bank-report": (2, 3)}  # fmt: skip
    for kind, data in pdfs.items():
        for old in ARTIFACTS.glob(f"{kind}-*.png"):
            old.unlink()
        pdf = ARTIFACTS / f"{kind}.pdf"
        pdf.write_bytes(data)
        pages = _png_boxes(pdf, ARTIFACTS / kind)
        want = expected_pages[kind]
        lo, hi = (want, want) if isinstance(want, int) else want
        assert lo <= len(pages) <= hi, (kind, len(pages))
        assert len(pages) == len(PdfReader(io.BytesIO(data)).pages)
        for png, (x0, y0, x1, y1), (w, h) in pages:
            # Nothing within 10 mm of the paper's edge: printers cannot print there, and a punched or bound
            # file loses it. Text inside the frame but over its right edge shows as x1 beyond the margin.
            margin = 10 * MM
            assert x0 >= margin and y0 >= margin, (png.name, (x0, y0))
            assert x1 <= w - margin and y1 <= h - margin, (png.name, (x1, y1), (w, h))
