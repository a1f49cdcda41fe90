"""What the public reads in a parameter's note or a calendar's description speaks to users (issue 15: "Public
parameter notes speak to users; internal remarks go elsewhere"): no pointer into the design documents, no
maintainers' markers. Maintainers' remarks on incentive parameters go in `remark`, which is never served."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from incentives import catalogue
from incentives.parameters import load_entries
from registry.domain.calendar import NATIONAL_CARBON_TEMPLATE

REPO = Path(__file__).resolve().parents[1]
INTERNAL = re.compile(r"\.md\b|\[configurable|\bTODO\b|\bFIXME\b|\bXXX\b|design card|this session", re.I)


def _served_incentive_notes() -> list[tuple[str, str]]:
    out = []
    for p in catalogue.list_parameters():
        for e in catalogue.parameter_history(p["name"], None, None)["entries"]:
            out.append((f"{p['name']} from {e['valid_from']}", e["note"]))
    return out


def _calendar_texts() -> list[tuple[str, str]]:
    texts = [("national_carbon note", NATIONAL_CARBON_TEMPLATE.note)]
    texts += [(f"national_carbon {r.kind.value}", r.description) for r in NATIONAL_CARBON_TEMPLATE.rules]
    raw = yaml.safe_load((REPO / "registry" / "compliance" / "parameters.yaml").read_text(encoding="utf-8"))
    for name, history in raw.items():
        if not name.startswith("calendar_"):
            continue
        for entry in history:
            template = entry["value"]
            texts.append((f"{name} note", template.get("note", "")))
            texts += [(f"{name} {e['kind']}", e.get("description", "")) for e in template["events"]]
    return texts


def test_served_parameter_notes_and_calendar_texts_carry_no_internal_remarks() -> None:
    notes = _served_incentive_notes()
    texts = _calendar_texts()
    # The sweep reads what is there (else it would pass by reading nothing).
    assert len(notes) > 50 and len(texts) > 25
    assert any("not confirmed" in n.lower() for _, n in notes)
    internal = [(where, text) for where, text in notes + texts if INTERNAL.search(text)]
    assert internal == []


def test_a_maintainers_remark_is_loaded_but_never_served() -> None:
    remarked = [e for e in load_entries() if e.name == "carbon_tool.rate_bp"]
    assert remarked, "the example parameter exists"
    served = catalogue.parameter_history("carbon_tool.rate_bp", None, None)["entries"]
    assert all("remark" not in e for e in served)
    assert all("domain.md" not in e["note"] for e in served)
    raw = (REPO / "incentives" / "parameters" / "green_finance.yaml").read_text(encoding="utf-8")
    assert 'remark: domain.md says "from 2025-05"' in raw
