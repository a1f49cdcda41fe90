"""Units in circulation per instrument, read from the registry's transaction log, the ledger and the serial blocks,
and checked by `registry.domain.circulation` (its docstring states the identity). A read, in the caller's session:
`greenrights audit reconcile` and the year-end simulator run it in one snapshot with the ledger's own invariants
(`trading.circulation.reconcile_circulation`)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core.models import LedgerAccount, LedgerAsset, SerialBlock
from registry.domain.circulation import EXIT_TYPES, ISSUANCE, UnitFigures, UnitReconciliation, reconcile_units
from registry.domain.instruments import KIND_RULES, Kind
from registry.models import Instrument, RegistryAccount, RegistryTransaction

SYSTEM = frozenset({ISSUANCE, *EXIT_TYPES})


async def unit_figures(ses: AsyncSession) -> list[UnitFigures]:
    """The figures of every instrument, ordered by code; each sum is computed by the database (GROUP BY)."""
    instruments = (await ses.execute(select(Instrument).order_by(Instrument.code))).scalars().all()
    # Log: completed transactions out of and into the issuance and exit accounts, net, per instrument and type.
    log: dict[tuple[int, str], int] = {}
    for side, sign in ((RegistryTransaction.to_account_id, 1), (RegistryTransaction.from_account_id, -1)):
        acc = aliased(RegistryAccount)
        rows = await ses.execute(
            select(RegistryTransaction.instrument_id, acc.type, func.sum(RegistryTransaction.quantity))
            .join(acc, acc.id == side)
            .where(RegistryTransaction.status == "completed", acc.type.in_(SYSTEM))  # type: ignore[attr-defined]
            .group_by(RegistryTransaction.instrument_id, acc.type)
        )
        for inst_id, type_, total in rows:
            log[(inst_id, type_)] = log.get((inst_id, type_), 0) + sign * int(total)
    # Ledger: posted balance per instrument and account role (a registry account's ledger role is its type).
    ledger: dict[tuple[int, str], int] = {}
    for asset_id, role, total in await ses.execute(
        select(
            LedgerAccount.asset_id,
            LedgerAccount.role,
            func.sum(LedgerAccount.credits_posted - LedgerAccount.debits_posted),
        ).group_by(LedgerAccount.asset_id, LedgerAccount.role)
    ):
        ledger[(asset_id, role)] = int(total)
    serials: dict[tuple[int, str], int] = {}
    for asset_id, role, total in await ses.execute(
        select(SerialBlock.asset_id, LedgerAccount.role, func.sum(SerialBlock.serial_end - SerialBlock.serial_start))
        .join(LedgerAccount, LedgerAccount.id == SerialBlock.ledger_account_id)
        .group_by(SerialBlock.asset_id, LedgerAccount.role)
    ):
        serials[(asset_id, role)] = int(total)
    counters = {i: n for i, n in (await ses.execute(select(LedgerAsset.id, LedgerAsset.next_serial))).all()}
    out: list[UnitFigures] = []
    for inst in instruments:
        a = inst.asset_id
        out.append(
            UnitFigures(
                code=inst.code,
                scale=KIND_RULES[Kind(inst.kind)].scale,
                # Out of the issuance account is negative in the net flow into it.
                log_issued=-log.get((inst.id or 0, ISSUANCE), 0),
                log_exits={t: log.get((inst.id or 0, t), 0) for t in EXIT_TYPES},
                ledger_held=sum(v for (asset, role), v in ledger.items() if asset == a and role not in SYSTEM),
                ledger_issued=-ledger.get((a, ISSUANCE), 0),
                ledger_exits={t: ledger.get((a, t), 0) for t in EXIT_TYPES},
                serials_held=sum(v for (asset, role), v in serials.items() if asset == a and role not in SYSTEM),
                serials_cut=int(counters.get(a, 0)),
            )
        )
    return out


async def unit_circulation(ses: AsyncSession) -> list[UnitReconciliation]:
    """Every instrument's units in circulation against issued − surrendered − retired − cancelled − expired."""
    return [reconcile_units(f) for f in await unit_figures(ses)]
