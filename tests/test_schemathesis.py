"""schemathesis against the real app, in-process (ASGI), on SQLite and on PostgreSQL when
GREENRIGHTS_TEST_DATABASE_URL is set (issue 13, item 6).

The world: a database built by the real migrations (`server.migrate.upgrade`), then the shared test world
(tests/helpers.py: a regulator, an allocation account, 1000 CEA issued and approved, two enterprises with holding
accounts, 100 units allocated to the first) and one API key for every role of `core.identity.Role`. The app the
fuzzer calls is built afresh on that database, so its engine and pool live on schemathesis's own event loop.

Who calls: every role's key (the regulator's is the world's, the emitter's is the first enterprise's), no key at
all, and a foreign enterprise's emitter key (an enterprise registered beside the world's, owning none of its units).

What is checked on every response: `not_a_server_error` (no 5xx), `status_code_conformance` (the status is
declared for the operation), `content_type_conformance` (the media type is declared for that status) and
`response_schema_conformance` (the body matches the declared schema). Zero failures.

Budget (fits CI, deterministic): every operation × every principal, generation mode "all" (valid and invalid
inputs), Hypothesis phases explicit + generate only (no shrinking, no example database), `derandomize=True`, a
fixed schemathesis seed, `deadline=None`, MAX_EXAMPLES examples per operation and principal. schemathesis's
coverage phase (its systematic boundary cases) is off to keep within the budget; the negative cases still reach
the bounds (a too-large id, a too-long text, a negative integer).

Stateful phase: the OpenAPI document declares no links (Litestar writes none). The stateful test runs on the links
schemathesis infers from the document itself (its dependency analysis: an `id` in one operation's response feeds
the matching `{..._id}` parameter or body field of another, about a thousand links), for the principals that can
create things (STATEFUL_PRINCIPALS), with the same checks. No links are declared or faked in the document. The
sequences leave out revokeApiKey (listApiKeys would feed it the caller's own key, and the rest of the run would be
401s); it is fuzzed with every other operation.

Excluded operations: none from the fuzzing (the stateful sequences leave out revokeApiKey, above). The file
downloads (PDF statements, letters and reports, CSV exports) run in-process like the rest; their declared media
types are checked by `content_type_conformance`. `/metrics` is not in the document (include_in_schema=False) and is
not fuzzed.

State-changing operations are fuzzed: each run has its own fresh database (module-scoped, one per backend).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import ASGIClient, get_client, shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.clock import FixedClock
from core.identity import Role
from core.settings import Settings
from server.app import create_app
from server.migrate import upgrade
from tests.conftest import BACKENDS, START, fresh_database_url, make_env
from tests.helpers import allocate, enterprise, world

NO_KEY = "no_key"
FOREIGN = "foreign_enterprise"
PRINCIPALS = [*(r.value for r in Role), NO_KEY, FOREIGN]
STATEFUL_PRINCIPALS = [Role.REGULATOR.value, Role.EMITTER.value]
MAX_EXAMPLES = 3
STATEFUL_EXAMPLES = 10
STATEFUL_STEPS = 8
SEED = 20260302
BASE_URL = "http://testserver"  # the host schemathesis's ASGI client sends

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _config(*, stateful: bool) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": False},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": stateful},
            },
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none", "mode": "all"},
        }
    )


def _document() -> dict[str, Any]:
    """The document the app serves at /schema/openapi.json (built from the routes; no database is opened)."""
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", scheduler_embedded=False))
    return app.openapi_schema.to_schema()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=_config(stateful=False))
# revokeApiKey is left out of the sequences only: listApiKeys feeds it real prefixes, so a sequence revokes the
# caller's own key and every later step is a 401 (the operation is still fuzzed above, by every principal).
stateful_schema = schemathesis.openapi.from_dict(DOCUMENT, config=_config(stateful=True)).exclude(
    operation_id="revokeApiKey"
)

BUDGET = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


@dataclass
class FuzzWorld:
    keys: dict[str, str | None]
    http: ASGIClient

    def headers(self, principal: str) -> dict[str, str]:
        """A fresh Idempotency-Key per call (a state-changing route refuses a call without one), and the key."""
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        key = self.keys[principal]
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return headers


@pytest.fixture(scope="module", params=BACKENDS)
async def fuzz_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FuzzWorld]:
    url = fresh_database_url(request.param, Path(tmp_path_factory.mktemp("fuzz")))
    upgrade(url)  # the real migrations: /ready finds the schema at head, as on a served database
    env, client = await make_env(url)
    w = await world(env)
    await allocate(env, w, w.enterprises[0]["account_id"], 100)
    foreign = await enterprise(env, w.regulator, "外地企业")
    keys: dict[str, str | None] = {Role.REGULATOR.value: w.regulator, Role.EMITTER.value: w.enterprises[0]["key"]}
    for role in Role:
        if role.value not in keys:
            keys[role.value] = await env.key(role)
    keys[NO_KEY] = None
    keys[FOREIGN] = foreign["key"]
    await client.__aexit__(None, None, None)
    await env.db.dispose()
    app = create_app(
        Settings(database_url=url, scheduler_embedded=False, api_rate_limit_per_minute=0), FixedClock(START)
    )
    with get_client(app) as http:
        try:
            yield FuzzWorld(keys, http)
        finally:
            shutdown_lifespans()  # the app's shutdown: scheduler off, engine disposed


@pytest.fixture(params=PRINCIPALS)
def principal(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@schema.parametrize()
@BUDGET
def test_every_operation_for_every_principal(case: Any, principal: str, fuzz_world: FuzzWorld) -> None:
    case.call_and_validate(
        session=fuzz_world.http, base_url=BASE_URL, headers=fuzz_world.headers(principal), checks=CHECKS
    )


@pytest.mark.parametrize("who", STATEFUL_PRINCIPALS)
def test_stateful_sequences_on_inferred_links(fuzz_world: FuzzWorld, who: str) -> None:
    machine = stateful_schema.as_state_machine()

    class Workflow(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"session": fuzz_world.http, "base_url": BASE_URL, "headers": fuzz_world.headers(who)}

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    Workflow.run(
        settings=settings(
            BUDGET, max_examples=STATEFUL_EXAMPLES, stateful_step_count=STATEFUL_STEPS, phases=[Phase.generate]
        )
    )
