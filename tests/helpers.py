"""Builders for test scenarios: valid USCCs, enterprises with holding accounts, issued and allocated units."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.identity import Role

_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_seq = itertools.count(1)
DOCS = Path(__file__).resolve().parents[1] / "docs"
_CSV_BLOCK = re.compile(r"```csv columns=(\S+)\n(.*?)\n```", re.S)


def documented_csv_blocks() -> dict[str, tuple[str, str]]:
    """Every CSV header the docs state, by file name: {name: (doc file, header line)} from ```csv columns=NAME."""
    found: dict[str, tuple[str, str]] = {}
    for doc in sorted(DOCS.glob("*.md")):
        for name, header in _CSV_BLOCK.findall(doc.read_text(encoding="utf-8")):
            assert name not in found, f"{name} is documented twice: {found[name][0]} and {doc.name}"
            found[name] = (doc.name, header.strip())
    return found


def documented_csv_header(name: str) -> list[str]:
    """The columns that docs/ states for the CSV file `name` (a ```csv columns=NAME block holding the header line),
    each of which must also have a row `| `column` | meaning |` in the same page."""
    blocks = documented_csv_blocks()
    assert name in blocks, f"no docs page states the header of {name} (a ```csv columns={name} block)"
    doc, header = blocks[name]
    columns = header.split(",")
    text = (DOCS / doc).read_text(encoding="utf-8")
    undescribed = [c for c in columns if f"| `{c}` |" not in text]
    assert undescribed == [], f"docs/{doc}: columns of {name} without a meaning: {undescribed}"
    return columns


def make_uscc(n: int | None = None) -> str:
    """A valid unified social credit code (GB 32100-2015 check character) for test enterprise number n."""
    n = next(_seq) if n is None else n
    body = f"91360100{n:09d}"[:17]
    total = sum(_ALPHABET.index(c) * w for c, w in zip(body, _WEIGHTS, strict=True))
    return body + _ALPHABET[(31 - total % 31) % 31]


@dataclass
class World:
    regulator: str
    regulator2: str
    regulator_org: int
    allocation_account: int
    enterprises: list[dict[str, Any]]
    instrument_id: int


async def enterprise(env: Any, regulator: str, name: str = "测试企业") -> dict[str, Any]:
    r = await env.post(
        "/api/v1/enterprises",
        regulator,
        {"uscc": make_uscc(), "name": name, "city": "南昌", "industry_code": "D4411", "is_key_emitter": True},
    )
    assert r.status_code == 201, r.text
    ent = r.json()
    r = await env.post("/api/v1/accounts", regulator, {"type": "holding", "enterprise_id": ent["id"]})
    assert r.status_code == 201, r.text
    ent["account_id"] = r.json()["id"]
    ent["key"] = await env.key(Role.EMITTER, ent["organisation_id"])
    ent["key2"] = await env.key(Role.EMITTER, ent["organisation_id"])
    return ent


async def world(env: Any, n_enterprises: int = 2, issue: int = 1000, vintage: int = 2025) -> World:
    """A regulator with two keys, an allocation account, `issue` CEA units issued and approved, and enterprises."""
    from core.db import UnitOfWork
    from core.identity import create_organisation

    async def org(uow: UnitOfWork) -> int:
        o = await create_organisation(uow.session, "江西省生态环境厅", "regulator", env.clock.now())
        return o.id or 0

    org_id = await env.db.run(org)
    reg = await env.key(Role.REGULATOR, org_id)
    reg2 = await env.key(Role.REGULATOR, org_id)
    r = await env.post("/api/v1/accounts", reg, {"type": "allocation"})
    assert r.status_code == 201, r.text
    alloc = r.json()["id"]
    r = await env.post(
        "/api/v1/issuances", reg, {"kind": "cea", "scheme": "national", "vintage": vintage, "quantity": str(issue)}
    )
    assert r.status_code == 201, r.text
    tx = r.json()
    r = await env.post(f"/api/v1/transactions/{tx['id']}/approval", reg2, {"decision": "approve"})
    assert r.status_code == 200, r.text
    ents = [await enterprise(env, reg, f"企业{i}") for i in range(n_enterprises)]
    return World(reg, reg2, org_id, alloc, ents, tx["instrument_id"])


async def allocate(env: Any, w: World, account_id: int, quantity: int, key: str | None = None) -> dict[str, Any]:
    """Allocate `quantity` display units by the regulator (or the instrument's issuer, `key`)."""
    r = await env.post(
        "/api/v1/allocations",
        key or w.regulator,
        {"to_account_id": account_id, "instrument_id": w.instrument_id, "quantity": str(quantity)},
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def holding(env: Any, key: str, account_id: int, instrument_id: int) -> dict[str, Any] | None:
    r = await env.get(f"/api/v1/accounts/{account_id}/holdings", key)
    assert r.status_code == 200, r.text
    for h in r.json():
        if h["instrument"]["id"] == instrument_id:
            return h  # type: ignore[no-any-return]
    return None
