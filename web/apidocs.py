"""The OpenAPI documentation pages (/schema/swagger, /schema/redoc) from the app's own static files, never a CDN.

Swagger UI and ReDoc are vendored under web/static/ with pinned versions and their licences beside them (docs/api.md
lists them and where they came from). Litestar's own render plugins load both from CDNs and start them with inline
script carrying the whole OpenAPI document; these pages instead name only same-origin scripts and stylesheets and
start the viewer from a static script (web/static/apidocs.js) that reads the document's URL from a data attribute,
so both pages run under a Content-Security-Policy without inline script: Swagger UI under the workbench's own,
ReDoc under REDOC_CSP."""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import RedocRenderPlugin, SwaggerRenderPlugin

SWAGGER_UI_VERSION = "5.35.0"  # npm swagger-ui-dist
REDOC_VERSION = "2.5.4"  # npm redoc (2.x: the global Redoc.init)

SWAGGER_JS = f"/static/swagger-ui-bundle-{SWAGGER_UI_VERSION}.js"
SWAGGER_CSS = f"/static/swagger-ui-{SWAGGER_UI_VERSION}.css"
REDOC_JS = f"/static/redoc-{REDOC_VERSION}.standalone.js"
STARTER_JS = "/static/apidocs.js"
DOCS_CSS = "/static/apidocs.css"
FAVICON = "<link rel='icon' href='/static/favicon.svg' type='image/svg+xml'>"

# ReDoc's policy (/schema/redoc): the workbench's (web.app.CSP) plus what ReDoc needs and nothing from elsewhere.
# It styles itself with styled-components, which writes <style> elements at run time ('unsafe-inline' for styles
# only, never for script), and runs its search index in a Web Worker made from a blob: URL (worker-src blob:).
# Swagger UI runs under the workbench's own policy unchanged. ReDoc's sidebar footer names a logo image on
# redoc.ly that the bundle hard-codes: img-src 'self' refuses it (a console line; nothing leaves this origin).
REDOC_CSP = (
    "default-src 'self'; script-src 'self'; worker-src 'self' blob:; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def _page(title: str, head: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html><html lang='en'><head>"
        f"<meta charset='utf-8'><meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title>{FAVICON}<link rel='stylesheet' href='{DOCS_CSS}'>{head}</head>"
        f"<body>{body}<script src='{STARTER_JS}'></script></body></html>"
    ).encode()


class LocalSwagger(SwaggerRenderPlugin):
    """Swagger UI from /static, started by apidocs.js with the document's URL (no inline script)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(js_url=SWAGGER_JS, css_url=SWAGGER_CSS, favicon=FAVICON, style="", **kwargs)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        spec = escape(self.get_openapi_json_route(request), quote=True)
        return _page(
            openapi_schema["info"]["title"],
            f"<link rel='stylesheet' href='{self.css_url}'><script src='{self.js_url}'></script>",
            f"<div id='swagger-container' data-viewer='swagger' data-spec-url='{spec}'></div>",
        )

    def receive_router(self, router: Any) -> None:
        """No /schema/oauth2-redirect.html: the API has no OAuth2 flow (bearer tokens and API keys), and Litestar's
        page is inline script the policy would refuse."""
        return


class LocalRedoc(RedocRenderPlugin):
    """ReDoc from /static without Google Fonts, started by apidocs.js with the document's URL (no inline script)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(js_url=REDOC_JS, google_fonts=False, favicon=FAVICON, style="", **kwargs)

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        spec = escape(self.get_openapi_json_route(request), quote=True)
        return _page(
            openapi_schema["info"]["title"],
            f"<script src='{self.js_url}'></script>",
            f"<div id='redoc-container' data-viewer='redoc' data-spec-url='{spec}'></div>",
        )


def render_plugins() -> list[Any]:
    """Swagger UI at /schema/swagger and ReDoc at /schema/redoc; the JSON document stays at /schema/openapi.json."""
    return [LocalSwagger(), LocalRedoc()]
