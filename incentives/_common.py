"""What the incentives use cases share: the programme index and read-any roles, the engine's errors as
problems (each a stable type naming every offending field), exact yuan text, canonical JSON, the off-loop
runner for pandas work, the programme filter and the record of a batch or reform run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import anyio.to_thread

from core.db import UnitOfWork
from core.errors import AppError
from core.http import field_from_msgspec
from core.identity import Identity, Role
from incentives.batch import BatchInputError
from incentives.context import IncentivesContext
from incentives.domain.params import NotInForce
from incentives.domain.programmes import PROGRAMMES
from incentives.domain.rules import Programme
from incentives.models import IncentiveBatchRun

T = TypeVar("T")

BY_CODE: dict[str, Programme] = {p.code: p for p in PROGRAMMES}

# Roles that may read any enterprise's determinations (the guards name the same roles).
READ_ANY = frozenset({Role.REGULATOR, Role.ENERGY_AUTHORITY, Role.FINANCE_REVIEWER, Role.FINANCE_APPROVER,
                      Role.AUDITOR})


# ---------------------------------------------------------------------------------------------------------
# Engine errors as problems.


def facts_problem(problems: Iterable[tuple[str, str]], prefix: str = "facts.") -> AppError:
    """A 422 naming every offending fact; `field` is the first one."""
    listed = list(dict.fromkeys(problems))
    detail = "; ".join(f"{name}: {message}" for name, message in listed)
    return AppError(
        "facts-invalid",
        detail,
        field=f"{prefix}{listed[0][0]}" if listed else prefix.rstrip("."),
        extra={"problems": [{"field": f"{prefix}{name}", "message": message} for name, message in listed]},
    )


def not_in_force_problem(exc: NotInForce) -> AppError:
    return AppError(
        "parameter-not-in-force",
        f"{exc}. Evaluate on a day the programme's parameters apply, or with a later known_on.",
        field="on",
        extra={"parameter": exc.name},
    )


def batch_problem(exc: BatchInputError | Sequence[str]) -> AppError:
    problems = list(exc.problems if isinstance(exc, BatchInputError) else exc)
    first = problems[0].split(":", 1)[0].strip() if problems else "body"
    return AppError("batch-input-invalid", "; ".join(problems), field=first, extra={"problems": problems})


def reform_problem(problems: Sequence[str], field: str = "overrides") -> AppError:
    return AppError("reform-invalid", "; ".join(problems), field=field, extra={"problems": list(problems)})


def _jsonable(value: object) -> object:
    return value.isoformat() if isinstance(value, dt.date) else value


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_jsonable)


async def _in_thread(fn: Callable[[], T]) -> T:
    """CPU-bound pandas work off the event loop, so other requests keep being served meanwhile."""
    return await anyio.to_thread.run_sync(fn)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _msgspec_field(message: str) -> str:
    return field_from_msgspec(message) or "body"


def _wanted(codes: Sequence[str] | None) -> set[str] | None:
    """The programme codes a caller named (None: all), each checked to exist."""
    if codes is None:
        return None
    unknown = [c for c in codes if c not in BY_CODE]
    if unknown:
        raise AppError("unknown-programme", f"Unknown programme codes: {', '.join(unknown)}.",
                       field="programmes", status=422)
    return set(codes)


async def _record_run(ctx: IncentivesContext, who: Identity, kind: str, rows: int, fmt: str, digest: str,
                      on: dt.date | None, known_on: dt.date | None, summary: object) -> int:
    """Record a batch or reform run (who, when, input hash, summary) in its own unit of work; returns its id."""
    async def work(uow: UnitOfWork) -> int:
        run = IncentiveBatchRun(
            kind=kind, rows=rows, input_format=fmt, input_sha256=digest, evaluated_on=on, known_on=known_on,
            summary_json=_dumps(summary), requested_by=who.principal_id, organisation_id=who.organisation_id,
            created_at=ctx.clock.now(),
        )
        uow.session.add(run)
        await uow.session.flush()
        assert run.id is not None
        uow.audit(who.actor, f"incentives.{kind}", "incentives_batch_run", str(run.id),
                  {"rows": rows, "input_sha256": digest})
        return run.id

    return await ctx.db.run(work)
