"""Energy-use compliance (用能权) of the simulated year, with green certificates: the energy authority's scheme and
period on the same dates as the carbon period, an obligation for every high-energy user, energy reports (coal and
purchased electricity), verification, green certificates bought from the wind and solar farms on the certificates'
own markets (opened by the GEC issuer) and retired (claimed) for the year's green electricity, then the surrender of
energy-use rights for what the verified figure less the certificates leaves. A reduced scenario without a
high-energy user (the first emitters of the file are power plants) skips all of it."""

from __future__ import annotations

from typing import Any

from core import figures
from greenrights.client import ApiError
from server.simulate.common import Enterprise, Run

COAL_KGCE_PER_KG = 0.7143  # GB/T 2589-2020 (registry/domain/factor_defaults.py)
ELECTRICITY_KGCE_PER_KWH = 0.3  # 等价值, as energy-use rights count electricity (registry/compliance/parameters.yaml)
ELECTRICITY_SHARE = 0.15  # of the energy used
GEC_MARKETS = 3  # the largest farms' certificates get a market
GEC_PRICE = "5.00"  # yuan per certificate (1 MWh): an assumption of the order of 2024-2025 GEC prices


def users(run: Run) -> list[Enterprise]:
    code = _eur(run)
    return [e for e in run.enterprises if code is not None and code in e.energy]


def _eur(run: Run) -> str | None:
    return next((c for c, i in run.instruments.items() if i.kind == "energy_use"), None)


async def farms(run: Run) -> None:
    """The farms as sellers of their certificates (they hold them from the load and need none)."""
    listed: dict[str, Any] = {}
    async for ent in run.regulator.pages("listEnterprises", query={"limit": 200}):
        listed[ent.uscc] = ent
    for f in run.world.sc.farms:
        ent, key = listed[f.uscc], run.world.keys.enterprises[f.uscc]
        run.farms.append(
            Enterprise(f.uscc, f.name, f.city, "farm", ent.id, ent.organisation_id, key.ref, 0, 0, 0, True)
        )


async def open_markets(run: Run) -> None:
    """The GEC issuer opens a continuous market for the certificates of the largest farms; each high-energy user
    wants certificates for about a tenth of its electricity, spread over those markets."""
    if not users(run):
        return
    gec = run.world.authority("gec_issuer")
    biggest = sorted(run.world.sc.farms, key=lambda f: (-f.monthly_mwh, f.uscc))[:GEC_MARKETS]
    codes = []
    for f in biggest:
        inst = next(i for i in run.instruments.values() if i.kind == "gec" and i.generator == f.generator)
        if inst.code not in run.markets:
            body = {"instrument_id": inst.id, "mode": "continuous", "reference_price": GEC_PRICE}
            await gec.call("createMarket", body)
        codes.append(inst.code)
    supply = {c: sum(f.monthly_mwh for f in biggest if c.endswith(f"-{f.generator}-T")) for c in codes}
    for e in users(run):
        wanted = _electricity_mwh(run, e) // 10
        for c in codes:
            e.energy[c] = min(wanted // len(codes), supply[c] // max(1, len(users(run))))
    for f in run.farms:
        for c in codes:
            f.energy[c] = 0
    from server.simulate.agents import refresh_markets

    await refresh_markets(run)


def _electricity_mwh(run: Run, e: Enterprise) -> int:
    kgce = e.energy[_eur(run) or ""]
    return round(kgce * ELECTRICITY_SHARE / ELECTRICITY_KGCE_PER_KWH / 1000)


async def open_period(run: Run) -> None:
    """The energy authority's scheme `JX-EUR` and its period, dated as the carbon period; obligations for every
    high-energy user."""
    if not users(run):
        return
    auth = run.world.authority("energy_authority")
    scheme = next((s for s in await auth.call("listSchemes") if s.code == "JX-EUR"), None)
    if scheme is None:
        scheme = await auth.call("createScheme", {"code": "JX-EUR", "name": "江西省用能权交易", "kind": "energy"})
    d = run.days
    overrides = {
        "allocation": d[6].isoformat(),
        "report_due": d[2].isoformat(),
        "verification_due": d[5].isoformat(),
        "surrender_deadline": d[11].isoformat(),
    }
    body = {"scheme_id": scheme.id, "year": run.year, "overrides": overrides, "eligible_vintages": [run.year]}
    run.energy_period = await auth.call("createPeriod", body)
    ids = [e.enterprise_id for e in users(run)]
    await auth.call("registerObligations", {"enterprise_ids": ids}, period_id=run.energy_period.id)
    run.counts["energy_obligations"] = len(ids)


async def submit_reports(run: Run) -> None:
    """Each high-energy user reports its coal (kg) and purchased electricity (kWh): its year's energy use."""
    if run.energy_period is None:
        return
    for e in users(run):
        kgce = e.energy[_eur(run) or ""]
        kwh = _electricity_mwh(run, e) * 1000
        coal = max(1, round((kgce - kwh * ELECTRICITY_KGCE_PER_KWH) / COAL_KGCE_PER_KG))
        lines = [
            {"item": "raw_coal", "quantity": str(coal), "unit": "kg"},
            {"item": "electricity", "quantity": str(kwh), "unit": "kWh"},
        ]
        body = {"lines": lines, "enterprise_id": e.enterprise_id}
        await run.client(e).call("submitReport", body, period_id=run.energy_period.id)
        run.counts["energy_reports"] += 1


async def verify_reports(run: Run) -> None:
    if run.energy_period is None:
        return
    verifier = run.world.authority("verifier")
    by_id = {e.enterprise_id: e for e in users(run)}
    code = _eur(run) or ""
    for r in sorted(await verifier.call("listReports", period_id=run.energy_period.id), key=lambda r: r.enterprise_id):
        body = {"decision": "verify", "version": r.current_version}
        out = await verifier.call("verifyReport", body, report_id=r.id)
        run.counts["energy_reports_verified"] += 1
        if r.enterprise_id in by_id:
            by_id[r.enterprise_id].energy[code] = int(out.verified_figure["kgce"])  # what it owes, from now on


async def retire_certificates(run: Run) -> None:
    """Each high-energy user retires (claims) the certificates it bought, in its own name, for the year."""
    if run.energy_period is None:
        return
    gec_codes = {c for c, i in run.instruments.items() if i.kind == "gec"}
    for e in users(run):
        for h in await run.client(e).call("listHoldings", account_id=e.account_id):
            if h.instrument.code in gec_codes and h.available_base > 0:
                body = {
                    "account_id": e.account_id,
                    "instrument_id": h.instrument.id,
                    "quantity": str(h.available_base),
                    "beneficiary": e.name,
                    "purpose": f"{run.year} 年度绿色电力消费（用能权履约）",
                }
                await run.client(e).call("retireUnits", body)
                run.counts["gec_retired_mwh"] += h.available_base
                run.counts["gec_retirements"] += 1


async def surrender(run: Run) -> None:
    """Energy-use rights for what remains of each obligation (a laggard surrenders 90 %); a surrender above the
    obligation net of the certificates is refused, and the net figure surrendered instead."""
    if run.energy_period is None:
        return
    code = _eur(run) or ""
    inst = run.instruments[code]
    for e in users(run):
        obligations = await run.client(e).call("listEnterpriseObligations", enterprise_id=e.enterprise_id)
        ob = next((o for o in obligations if o.period_id == run.energy_period.id), None)
        if ob is None or not ob.remaining:
            continue
        held = {
            h.instrument.code: h.available_base
            for h in await run.client(e).call("listHoldings", account_id=e.account_id)
        }
        q = min(held.get(code, 0), ob.remaining * 9 // 10 if e.laggard else ob.remaining)
        for _ in range(20):
            if q <= 0:
                break
            body = {
                "account_id": e.account_id,
                "instrument_id": inst.id,
                "quantity": figures.quantity_plain(q, inst.scale),
                "period": run.energy_period.code,
            }
            try:
                await run.client(e).call("surrenderUnits", body)
                run.counts["energy_surrenders"] += 1
                break
            except ApiError as exc:
                if exc.slug != "surrender-above-obligation":
                    run.counts[f"refused:energy-surrender:{exc.slug}"] += 1
                    break
                allowed = exc.problem.get("obligation_remaining") or exc.problem.get("remaining")
                q = int(allowed) if allowed else q * 99 // 100
