"""HTTP controllers of the incentives context: the programme and parameter catalogue, eligibility with its
explanation, stored determinations, batch evaluation and reform simulation. Thin and guarded: each route
names its roles, operation id, tags and problem responses, and calls one use case (`incentives.catalogue`,
`evaluations`, `determinations`, `batch_runs`, `reforms`) with the context the server built.

The evaluation POSTs read and explain; they move no value, so they take no Idempotency-Key.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody, Parameter

from core.csvfile import MEDIA_TYPE
from core.http import IDEMPOTENT, READ_PROBLEMS, WRITE_PROBLEMS, allow, problem_responses
from core.identity import Identity, Role
from core.schema import MAX_ID, CodePath, IdPath, NamePath
from incentives import batch_runs, catalogue, credit_history, determinations, evaluations, publications, reforms
from incentives import schemas as s
from incentives.context import IncentivesContext

R = Role
EVERY_ROLE = tuple(Role)
EVALUATORS = (R.EMITTER, R.REGULATOR, R.ENERGY_AUTHORITY, R.FINANCE_REVIEWER, R.FINANCE_APPROVER, R.AUDITOR)
ANALYSTS = (R.FINANCE_REVIEWER, R.FINANCE_APPROVER, R.REGULATOR, R.ENERGY_AUTHORITY, R.AUDITOR)
POST_PROBLEMS = problem_responses(400, 401, 403, 404, 413, 415, 422, 503)

BATCH_MAX_BODY_BYTES = 128 * 1024 * 1024
"""Batches of 100,000 enterprise-years are ~60 MB of CSV. Litestar honours this per route; the edge middleware
(core/http.py) still applies the global `max_body_bytes` until it reads a per-route `opt["max_body_bytes"]`."""
BATCH_OPT = {"accepts_files": True, "max_body_bytes": BATCH_MAX_BODY_BYTES}

Day = Annotated[dt.date | None, Parameter(description="ISO date (YYYY-MM-DD)")]


def ctx(request: Request[Any, Any, Any]) -> IncentivesContext:
    """The context of the incentives facade the server built (`app.state.incentives`)."""
    return request.app.state.incentives.ctx  # type: ignore[no-any-return]


def _codes(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [c.strip() for c in text.split(",") if c.strip()]


class ProgrammeController(Controller):
    path = "/api/v1/incentives"
    tags = ["incentives"]

    @get(
        "/programmes",
        operation_id="listProgrammes",
        guards=[allow(*EVERY_ROLE)],
        responses=READ_PROBLEMS,
        summary="Every programme: names (zh/en), citations, facts, gates, outputs; exclusions as of `on`",
    )
    async def list_programmes(self, request: Request[Identity, Any, Any], on: Day = None) -> list[dict[str, Any]]:
        return catalogue.list_programmes(on)

    @get(
        "/programmes/{code:str}",
        operation_id="getProgramme",
        guards=[allow(*EVERY_ROLE)],
        responses=READ_PROBLEMS,
        summary="One programme as data",
    )
    async def get_programme(
        self, request: Request[Identity, Any, Any], code: CodePath, on: Day = None
    ) -> dict[str, Any]:
        return catalogue.get_programme(code, on)

    @get(
        "/facts",
        operation_id="listFacts",
        guards=[allow(*EVERY_ROLE)],
        responses=READ_PROBLEMS,
        summary="The fact names the programmes read: kind, unit, meaning, default, yuan alias",
    )
    async def list_facts(self, request: Request[Identity, Any, Any]) -> list[dict[str, Any]]:
        return catalogue.list_facts()

    @get(
        "/parameters",
        operation_id="listParameters",
        guards=[allow(*EVERY_ROLE)],
        responses=READ_PROBLEMS,
        summary="Every dated parameter by name",
    )
    async def list_parameters(self, request: Request[Identity, Any, Any]) -> list[dict[str, Any]]:
        await publications.refresh(ctx(request))
        return catalogue.list_parameters()

    @get(
        "/parameters/{name:str}/history",
        operation_id="getParameterHistory",
        guards=[allow(*EVERY_ROLE)],
        responses=READ_PROBLEMS,
        summary="A parameter's bitemporal history: values, validity, publication days and citations",
    )
    async def parameter_history(
        self, request: Request[Identity, Any, Any], name: NamePath, on: Day = None, known_on: Day = None
    ) -> dict[str, Any]:
        await publications.refresh(ctx(request))
        return catalogue.parameter_history(name, on, known_on)


class EvaluationController(Controller):
    path = "/api/v1/incentives"
    tags = ["incentives"]

    @post(
        "/eligibility",
        operation_id="evaluateEligibility",
        guards=[allow(*EVALUATORS)],
        responses=POST_PROBLEMS,
        summary="Which programmes an enterprise or project qualifies for, how much, and why not for the others",
    )
    async def evaluate(
        self, request: Request[Identity, Any, Any], data: JSONBody[s.EvaluateEligibility]
    ) -> s.EligibilityOut:
        return await evaluations.evaluate_eligibility(ctx(request), request.user, data)

    @get(
        "/determinations/{determination_id:int}",
        operation_id="getDetermination",
        guards=[allow(*EVALUATORS)],
        responses=READ_PROBLEMS,
        summary="A stored determination with its digest",
    )
    async def get_determination(
        self, request: Request[Identity, Any, Any], determination_id: IdPath
    ) -> s.DeterminationOut:
        return await determinations.get_determination(ctx(request), request.user, determination_id)

    @post(
        "/determinations/{determination_id:int}/credit-position",
        operation_id="approveCreditPosition",
        guards=[allow(R.FINANCE_REVIEWER, R.FINANCE_APPROVER)],
        responses=POST_PROBLEMS,
        status_code=201,
        summary="Approve an equipment_credit determination as its enterprise's credit position for the tax year "
                "(the next year's evaluation fills the brought-forward credits from it)",
    )
    async def approve_credit_position(
        self, request: Request[Identity, Any, Any], determination_id: IdPath,
        data: JSONBody[s.ApproveCreditPosition],
    ) -> s.CreditPositionOut:
        return await credit_history.approve_credit_position(ctx(request), request.user, determination_id, data)

    @get(
        "/enterprises/{enterprise_id:int}/credit-positions",
        operation_id="listCreditPositions",
        guards=[allow(*EVALUATORS)],
        responses=READ_PROBLEMS,
        summary="An enterprise's approved equipment-credit positions, newest tax year first",
    )
    async def list_credit_positions(
        self, request: Request[Identity, Any, Any], enterprise_id: IdPath
    ) -> list[s.CreditPositionOut]:
        return await credit_history.list_credit_positions(ctx(request), request.user, enterprise_id)

    @post(
        "/batch",
        operation_id="evaluateBatch",
        guards=[allow(*ANALYSTS)],
        responses=POST_PROBLEMS,
        opt=BATCH_OPT,
        request_max_body_size=BATCH_MAX_BODY_BYTES,
        status_code=200,
        summary="Evaluate many enterprise-years: a text/csv body or JSON {records: [...]}; a table out",
        description="The body is a CSV whose header names fact columns (plus `on`, `enterprise_id`, `city`, "
        "`year`) or a JSON object {records, on, known_on, programmes}. The answer is JSON "
        "{summary, columns, rows} or, with `Accept: text/csv` or `?format=csv`, the table as CSV.",
    )
    async def batch(
        self,
        request: Request[Identity, Any, Any],
        on: Day = None,
        known_on: Day = None,
        programmes: Annotated[
            str | None, Parameter(description="comma-separated codes", max_length=33 * 64)
        ] = None,
        format: Literal["json", "csv"] | None = None,
    ) -> Response[bytes]:
        body = await request.body()
        ctype = (request.headers.get("content-type") or "application/json").split(";")[0].strip().lower()
        result = await batch_runs.evaluate_batch(
            ctx(request), request.user, body=body, content_type=ctype, on=on, known_on=known_on,
            programmes=_codes(programmes),
        )
        wants_csv = format == "csv" or (format is None and "text/csv" in (request.headers.get("accept") or ""))
        headers = {"X-Batch-Run-Id": str(result.run_id)}
        if wants_csv:
            return Response(result.to_csv(), media_type=MEDIA_TYPE, headers=headers)
        return Response(result.to_json(), media_type="application/json", headers=headers)

    @post(
        "/reforms",
        operation_id="simulateReform",
        guards=[allow(*ANALYSTS)],
        responses=POST_PROBLEMS,
        opt={"max_body_bytes": BATCH_MAX_BODY_BYTES},
        request_max_body_size=BATCH_MAX_BODY_BYTES,
        status_code=200,
        summary="Price a parameter change: cost difference per programme and per city",
    )
    async def reform(self, request: Request[Identity, Any, Any], data: JSONBody[s.SimulateReform]) -> dict[str, Any]:
        return await reforms.simulate_reform(ctx(request), request.user, data)


class PublicationController(Controller):
    """Publishing a dated parameter's new value (or catalogue edition) in the system, confirmed by a second
    person; the old entries stay, so what was known on a day stays answerable (`incentives.publications`)."""

    path = "/api/v1/incentives"
    tags = ["incentives"]

    @post(
        "/parameters/{name:str}/publications",
        operation_id="publishParameter",
        guards=[allow(*publications.PUBLISHERS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Publish a new value of a dated parameter with its validity and citation; pending a second person",
    )
    async def publish(
        self, request: Request[Identity, Any, Any], name: NamePath, data: JSONBody[s.PublishParameter]
    ) -> dict[str, Any]:
        return await publications.publish_parameter(ctx(request), request.user, name[:100], data)

    @post(
        "/parameter-publications/{publication_id:int}/confirmation",
        operation_id="confirmParameter",
        guards=[allow(*publications.PUBLISHERS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
        summary="The second person confirms (known from today) or rejects a pending parameter publication",
    )
    async def confirm(
        self, request: Request[Identity, Any, Any], publication_id: IdPath, data: JSONBody[s.ConfirmParameter]
    ) -> dict[str, Any]:
        return await publications.decide_publication(ctx(request), request.user, publication_id, data)

    @get(
        "/parameter-publications",
        operation_id="listParameterPublications",
        guards=[allow(*publications.READERS)],
        responses=READ_PROBLEMS,
        summary="Parameter publications, newest first: filter by parameter and status; page with before_id",
    )
    async def list_publications(
        self,
        request: Request[Identity, Any, Any],
        name: Annotated[str | None, Parameter(max_length=100)] = None,
        status: Literal["pending", "confirmed", "rejected"] | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
        before_id: Annotated[int | None, Parameter(ge=1, le=MAX_ID)] = None,
    ) -> list[dict[str, Any]]:
        return await publications.list_publications(
            ctx(request), request.user, name=name, status=status, limit=limit, before_id=before_id
        )


CONTROLLERS: list[Any] = [ProgrammeController, EvaluationController, PublicationController]
