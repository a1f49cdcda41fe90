"""HTTP controllers of the registry: thin, guarded, each route with its operation id, tags and problems."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody, Parameter

from core.http import IDEMPOTENT, READ_PROBLEMS, WRITE_PROBLEMS, allow, request_key
from core.identity import Identity, Role
from core.schema import MAX_ID, IdPath
from registry import accounts, enterprises, freezes, holdings, issuance, surrenders, transfers
from registry import schemas as s
from registry.context import RegistryContext

R = Role
ALL_READERS = (R.REGULATOR, R.ENERGY_AUTHORITY, R.GEC_ISSUER, R.AUDITOR, R.EMITTER, R.MEMBER)
ISSUERS = (R.REGULATOR, R.ENERGY_AUTHORITY, R.GEC_ISSUER)
HOLDERS = (R.EMITTER, R.MEMBER)


def ctx(request: Request[Any, Any, Any]) -> RegistryContext:
    """The registry context of the process (held by the `RegistryService` the composition root built)."""
    return request.app.state.registry.ctx  # type: ignore[no-any-return]


class EnterpriseController(Controller):
    path = "/api/v1/enterprises"
    tags = ["registry"]

    @post(
        "/",
        operation_id="createEnterprise",
        guards=[allow(R.REGULATOR, R.ENERGY_AUTHORITY)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        summary="Register an enterprise by its unified social credit code",
    )
    async def create(self, request: Request[Identity, Any, Any], data: JSONBody[s.CreateEnterprise]) -> s.EnterpriseOut:
        return await enterprises.create_enterprise(ctx(request), request.user, data)

    @get(
        "/",
        operation_id="listEnterprises",
        responses=READ_PROBLEMS,
        guards=[allow(*ALL_READERS, R.FINANCE_REVIEWER, R.FINANCE_APPROVER)],
        summary="Search enterprises by name (part of it), USCC, city and industry code (prefix); sort; page by offset",
    )
    async def list_all(
        self,
        request: Request[Identity, Any, Any],
        name: Annotated[str | None, Parameter(max_length=100)] = None,
        uscc: Annotated[str | None, Parameter(max_length=18)] = None,
        city: Annotated[str | None, Parameter(max_length=8)] = None,
        industry: Annotated[str | None, Parameter(max_length=8)] = None,
        sort: Literal["name", "-name", "id", "-id", "city"] = "id",
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
        offset: Annotated[int, Parameter(ge=0, le=1_000_000)] = 0,
    ) -> s.EnterprisePage:
        return await enterprises.list_enterprises(
            ctx(request), request.user, name=name, uscc=uscc, city=city, industry=industry, sort=sort,
            limit=limit, offset=offset,
        )  # fmt: skip

    @get(
        "/{enterprise_id:int}",
        operation_id="getEnterprise",
        responses=READ_PROBLEMS,
        guards=[allow(*ALL_READERS, R.FINANCE_REVIEWER, R.FINANCE_APPROVER)],
    )
    async def get_one(self, request: Request[Identity, Any, Any], enterprise_id: IdPath) -> s.EnterpriseOut:
        return await enterprises.get_enterprise(ctx(request), request.user, enterprise_id)


class AccountController(Controller):
    path = "/api/v1/accounts"
    tags = ["registry"]

    @post("/", operation_id="openAccount", guards=[allow(*ISSUERS)], opt=IDEMPOTENT, responses=WRITE_PROBLEMS)
    async def open(self, request: Request[Identity, Any, Any], data: JSONBody[s.OpenAccount]) -> s.AccountOut:
        return await accounts.open_account(ctx(request), request.user, data)

    @get("/{account_id:int}", operation_id="getAccount", responses=READ_PROBLEMS, guards=[allow(*ALL_READERS)])
    async def get_one(self, request: Request[Identity, Any, Any], account_id: IdPath) -> s.AccountOut:
        return await accounts.get_account(ctx(request), request.user, account_id)

    @get(
        "/{account_id:int}/holdings", operation_id="listHoldings", responses=READ_PROBLEMS, guards=[allow(*ALL_READERS)]
    )
    async def holdings(self, request: Request[Identity, Any, Any], account_id: IdPath) -> list[s.HoldingOut]:
        return await holdings.list_holdings(ctx(request), request.user, account_id)

    @get(
        "/{account_id:int}/transactions",
        operation_id="listAccountTransactions",
        responses=READ_PROBLEMS,
        guards=[allow(*ALL_READERS)],
    )
    async def transactions(
        self,
        request: Request[Identity, Any, Any],
        account_id: IdPath,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
        before_id: Annotated[int | None, Parameter(ge=1, le=MAX_ID)] = None,
    ) -> s.Page:
        return await holdings.list_account_transactions(
            ctx(request), request.user, account_id, limit=limit, before_id=before_id
        )

    @get(
        "/{account_id:int}/statement.pdf",
        operation_id="downloadAccountStatement",
        responses=READ_PROBLEMS,
        guards=[allow(*ALL_READERS)],
        media_type="application/pdf",
    )
    async def statement(self, request: Request[Identity, Any, Any], account_id: IdPath) -> Response[bytes]:
        from registry.pdf import render_statement

        now = request.app.state.clock.now()
        data = await holdings.statement_data(ctx(request), request.user, account_id, issued_at=now)
        pdf = render_statement(data, generated_at=now)
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="statement-{account_id}.pdf"'},
        )

    @post(
        "/{account_id:int}/trusted",
        operation_id="addTrustedAccount",
        guards=[allow(*HOLDERS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
    )
    async def trust(
        self, request: Request[Identity, Any, Any], account_id: IdPath, data: JSONBody[s.TrustAccount]
    ) -> dict[str, Any]:
        return await accounts.add_trusted(ctx(request), request.user, account_id, data)


class UnitsController(Controller):
    path = "/api/v1"
    tags = ["registry"]

    @get("/instruments", operation_id="listInstruments", responses=READ_PROBLEMS, guards=[allow(*ALL_READERS)])
    async def instruments(self, request: Request[Identity, Any, Any]) -> list[s.InstrumentOut]:
        return await holdings.list_instruments(ctx(request))

    @post("/issuances", operation_id="issueUnits", guards=[allow(*ISSUERS)], opt=IDEMPOTENT, responses=WRITE_PROBLEMS)
    async def issue(self, request: Request[Identity, Any, Any], data: JSONBody[s.IssueUnits]) -> s.TransactionOut:
        return await issuance.issue_units(ctx(request), request.user, data, request_key(request))

    @post(
        "/allocations", operation_id="allocateUnits", guards=[allow(*ISSUERS)], opt=IDEMPOTENT, responses=WRITE_PROBLEMS
    )
    async def allocate(self, request: Request[Identity, Any, Any], data: JSONBody[s.AllocateUnits]) -> s.TransactionOut:
        return await issuance.allocate_units(ctx(request), request.user, data, request_key(request))

    @post(
        "/transfers", operation_id="createTransfer", guards=[allow(*HOLDERS)], opt=IDEMPOTENT, responses=WRITE_PROBLEMS
    )
    async def transfer(self, request: Request[Identity, Any, Any], data: JSONBody[s.MoveUnits]) -> s.TransactionOut:
        return await transfers.create_transfer(ctx(request), request.user, data, request_key(request))

    @post(
        "/transactions/{transaction_id:int}/approval",
        operation_id="approveTransfer",
        guards=[allow(*ISSUERS, *HOLDERS)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
    )
    async def approve(
        self, request: Request[Identity, Any, Any], transaction_id: IdPath, data: JSONBody[s.Decision]
    ) -> s.TransactionOut:
        return await transfers.approve_transfer(ctx(request), request.user, transaction_id, data)

    @post(
        "/freezes",
        operation_id="freezeUnits",
        guards=[allow(R.REGULATOR, R.ENERGY_AUTHORITY)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
    )
    async def freeze(self, request: Request[Identity, Any, Any], data: JSONBody[s.FreezeUnits]) -> s.TransactionOut:
        return await freezes.freeze_units(ctx(request), request.user, data, request_key(request))

    @post(
        "/freezes/{transaction_id:int}/release",
        operation_id="unfreezeUnits",
        guards=[allow(R.REGULATOR, R.ENERGY_AUTHORITY)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
        status_code=200,
    )
    async def unfreeze(
        self, request: Request[Identity, Any, Any], transaction_id: IdPath, data: JSONBody[s.Unfreeze]
    ) -> s.TransactionOut:
        return await freezes.unfreeze_units(ctx(request), request.user, transaction_id, data)

    @post(
        "/surrenders",
        operation_id="surrenderUnits",
        guards=[allow(R.EMITTER, R.REGULATOR)],
        opt=IDEMPOTENT,
        responses=WRITE_PROBLEMS,
    )
    async def surrender(
        self, request: Request[Identity, Any, Any], data: JSONBody[s.SurrenderUnits]
    ) -> s.TransactionOut:
        return await surrenders.surrender_units(ctx(request), request.user, data, request_key(request))

    @post(
        "/retirements", operation_id="retireUnits", guards=[allow(*HOLDERS)], opt=IDEMPOTENT, responses=WRITE_PROBLEMS
    )
    async def retire(self, request: Request[Identity, Any, Any], data: JSONBody[s.RetireUnits]) -> s.TransactionOut:
        return await surrenders.retire_units(ctx(request), request.user, data, request_key(request))

    @get(
        "/transactions/{transaction_id:int}",
        operation_id="getTransaction",
        responses=READ_PROBLEMS,
        guards=[allow(*ALL_READERS)],
    )
    async def get_tx(self, request: Request[Identity, Any, Any], transaction_id: IdPath) -> s.TransactionOut:
        return await holdings.get_transaction(ctx(request), request.user, transaction_id)


CONTROLLERS = [EnterpriseController, AccountController, UnitsController]
