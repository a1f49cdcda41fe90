"""Incentives units of work: evaluate an enterprise or project with an explanation and store the determination;
evaluate many enterprise-years at once; price a reform; read the programme and parameter catalogue.

The rules themselves live in the engine (`incentives.engine`, pure and tested on its own); the use cases are
the edge around it: they turn facts from the wire into the engine's units (yuan strings to integer fen,
exactly), fill in what the registry knows of an enterprise, scope who may see what, and store every
determination as the engine produced it (canonical JSON and its SHA-256 digest) so that the finance context
and banks can show and verify it later. Each public async function of a use-case module is one unit of work:

- `incentives.catalogue`: the programme and parameter catalogue (no database);
- `incentives.evaluations`: eligibility of one enterprise or project, and the pure `evaluate`;
- `incentives.determinations`: stored determinations (record, store, read, find by digest);
- `incentives.batch_runs`: batch evaluation of a CSV body or JSON records;
- `incentives.reforms`: reform simulation;

`incentives.facts_input` and `incentives.batch_input` read the wire, `incentives._common` holds what they
share, and `incentives.context.IncentivesContext` is the context they take first.

This module is the small published interface of the context: the server builds `IncentivesService` once per
process and the finance context recomputes and stores determinations through it. It holds the context and
delegates; the incentives API calls the use cases directly.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from core.clock import Clock
from core.db import Database, UnitOfWork
from core.identity import Identity
from incentives import determinations, evaluations
from incentives import schemas as s
from incentives._common import facts_problem
from incentives.context import IncentivesContext
from incentives.domain.rules import Determination
from registry.compliance.service import ComplianceService
from registry.service import RegistryService

__all__ = ["IncentivesService", "facts_problem"]


class IncentivesService:
    """The incentives context as other contexts call it: the shared context and one delegating line per method."""

    def __init__(self, db: Database, clock: Clock, registry: RegistryService, compliance: ComplianceService) -> None:
        self.ctx = IncentivesContext(db=db, clock=clock, registry=registry, compliance=compliance)

    def evaluate(
        self, programme_code: str, facts: dict[str, Any], on: dt.date, known_on: dt.date | None = None
    ) -> Any:
        """One programme's determination (pure: the rules engine over the given facts). Finance calls this to
        recompute a claim's determination at review; it raises engine errors for bad facts."""
        return evaluations.evaluate(programme_code, facts, on, known_on=known_on)

    async def get_determination(self, who: Identity | None, determination_id: int) -> s.DeterminationOut:
        """A stored determination; `who=None` is a trusted in-process caller (see `determinations`)."""
        return await determinations.get_determination(self.ctx, who, determination_id)

    async def determination_by_digest(self, digest: str) -> s.DeterminationOut | None:
        """The stored determination with this digest, or None. Trusted callers only."""
        return await determinations.determination_by_digest(self.ctx, digest)

    async def record_determination(self, uow: UnitOfWork, who: Identity, determination: Determination, *,
                                   enterprise_id: int | None = None, enterprise_organisation_id: int | None = None,
                                   project_ref: str = "") -> tuple[int, str]:
        """Store a determination inside the caller's unit of work; returns (id, digest)."""
        return await determinations.record_determination(
            self.ctx, uow, who, determination, enterprise_id=enterprise_id,
            enterprise_organisation_id=enterprise_organisation_id, project_ref=project_ref)

    async def store_determination(self, who: Identity, determination: Determination, *,
                                  enterprise_id: int | None = None, project_ref: str = "") -> s.DeterminationOut:
        """Store a determination in its own unit of work."""
        return await determinations.store_determination(self.ctx, who, determination, enterprise_id=enterprise_id,
                                                        project_ref=project_ref)
