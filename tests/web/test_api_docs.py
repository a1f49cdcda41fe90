"""The OpenAPI pages (/schema/swagger, /schema/redoc) load only same-origin, vendored assets (web/apidocs.py), run
without inline script, and render the operations in a real browser without a console error."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest

from web.apidocs import REDOC_CSP, REDOC_VERSION, SWAGGER_UI_VERSION
from web.app import CSP, STATIC

SRC = re.compile(r"""<(script|link)\b[^>]*?\b(?:src|href)=['"]([^'"]+)['"]""", re.I)
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.I)
PINNED = {
    f"swagger-ui-bundle-{SWAGGER_UI_VERSION}.js": "e6a898692f2d768e807c3ba4626068a69a2c5dd960dd6c76f3e4d3a3de180af2",
    f"swagger-ui-{SWAGGER_UI_VERSION}.css": "5ed08757e53da3e026d6cbecc61fe5d43585c9560b302d534ad56692519a273d",
    f"redoc-{REDOC_VERSION}.standalone.js": "dcaf76612bc4a3fbcc923a8966dee2f6146a5f32e5ce1b6f02dd60cbbf89500b",
}
TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@pytest.mark.parametrize("path", ["/schema/swagger", "/schema/redoc"])
async def test_the_docs_pages_name_only_same_origin_assets_that_answer(web_env: Any, path: str) -> None:
    client = web_env.client
    resp = await client.get(path)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    csp = resp.headers["content-security-policy"]
    assert csp == (REDOC_CSP if path == "/schema/redoc" else CSP)
    assert "script-src 'self';" in csp and "'unsafe-eval'" not in csp  # never inline or evaluated script
    assert not INLINE_SCRIPT.search(resp.text), "the page carries inline script"
    urls = [u for _, u in SRC.findall(resp.text)]
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "http" not in resp.text.replace("https://www.w3.org", ""), "a page names another origin"
    for url in urls:
        asset = await client.get(url)
        suffix = url[url.rfind(".") :]
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(TYPES[suffix]), (url, asset.headers["content-type"])
    assert (await client.get("/schema/openapi.json")).status_code == 200


def test_the_vendored_viewers_are_pinned_with_their_licences() -> None:
    for name in [
        f"swagger-ui-bundle-{SWAGGER_UI_VERSION}.js",
        f"swagger-ui-{SWAGGER_UI_VERSION}.css",
        f"swagger-ui-{SWAGGER_UI_VERSION}.LICENSE",
        f"swagger-ui-{SWAGGER_UI_VERSION}.NOTICE",
        f"swagger-ui-bundle-{SWAGGER_UI_VERSION}.js.LICENSE.txt",
        f"redoc-{REDOC_VERSION}.standalone.js",
        f"redoc-{REDOC_VERSION}.LICENSE",
        f"redoc-{REDOC_VERSION}.standalone.js.LICENSE.txt",
    ]:
        assert (STATIC / name).is_file(), name
    for name, digest in PINNED.items():  # the packages' own bytes, unchanged (docs/api.md says where they came from)
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == digest, name
    assert "Apache License" in (STATIC / f"swagger-ui-{SWAGGER_UI_VERSION}.LICENSE").read_text()
    assert "MIT License" in (STATIC / f"redoc-{REDOC_VERSION}.LICENSE").read_text()


# ReDoc's sidebar footer hard-codes a logo on redoc.ly; the policy refuses it (the request never leaves) and ReDoc
# hides the image. That one refusal is expected; any other console error, or any request that reaches another
# origin, fails the test.
REDOC_LOGO_REFUSED = "Loading the image 'https://cdn.redoc.ly/redoc/logo-mini.svg' violates"


async def _open(live: Any, page: Any, path: str) -> list[str]:
    """Open a docs page; returns the console errors (CSP refusals land there) and the requests to other origins
    that were answered."""
    problems: list[str] = []

    def console(m: Any) -> None:
        if m.type == "error" and not m.text.startswith(REDOC_LOGO_REFUSED):
            problems.append(f"console {m.type}: {m.text}")

    def finished(r: Any) -> None:
        if not r.url.startswith((live.base_url, f"blob:{live.base_url}", "data:")):
            problems.append(f"off-site {r.url}")

    page.on("console", console)
    page.on("requestfinished", finished)
    await page.goto(f"{live.base_url}{path}")
    await page.wait_for_load_state("networkidle")
    return problems


async def test_swagger_ui_renders_the_operations_in_chromium(live, page) -> None:  # type: ignore[no-untyped-def]
    problems = await _open(live, page, "/schema/swagger")
    await page.wait_for_selector(".opblock", timeout=20_000)
    assert await page.locator(".opblock").count() > 50
    assert await page.locator("#operations-auth-createToken").count() == 1
    await page.locator("#operations-auth-createToken .opblock-summary").click()  # opens: the operation's detail
    await page.wait_for_selector("#operations-auth-createToken .opblock-body", timeout=10_000)
    assert not problems, problems


async def test_redoc_renders_the_operations_in_chromium(live, page) -> None:  # type: ignore[no-untyped-def]
    problems = await _open(live, page, "/schema/redoc")
    await page.wait_for_selector("[data-section-id^='operation/']", timeout=30_000)
    assert await page.locator("[data-section-id^='operation/']").count() > 50
    assert await page.locator("[data-section-id='operation/createToken']").count() == 1
    await page.fill("input.search-input", "createToken")  # the search index runs in the blob: worker
    await page.wait_for_selector("[data-role='search:results'] li", timeout=10_000)
    assert not problems, problems
