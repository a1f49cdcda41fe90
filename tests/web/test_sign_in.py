"""Sign-in, sessions, CSRF, throttling and security headers of the workbench."""

from __future__ import annotations

import datetime as dt

from core.identity import LOCK_AFTER, Role
from tests.conftest import Env
from tests.web.conftest import PASSWORD, browser_sign_in, csrf_of, form_post, make_user, screenshot, sign_in


async def test_sign_in_lands_on_the_role_home_and_sign_out_ends_the_session(web_env: Env) -> None:
    user, _ = await make_user(web_env, Role.FINANCE_REVIEWER)
    r = await sign_in(web_env.client, user)
    assert r.status_code == 303 and r.headers["location"] == "/finance/claims"
    cookie = r.headers["set-cookie"]
    assert "gr_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    home = await web_env.client.get("/", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/finance/claims"
    out = await form_post(web_env.client, "/logout", "/login", {})
    assert out.status_code == 303
    again = await web_env.client.get("/", follow_redirects=False)
    assert again.headers["location"] == "/login"


async def test_a_session_cookie_kept_after_sign_out_signs_nobody_in(web_env: Env) -> None:
    user, _ = await make_user(web_env, Role.REGULATOR)
    r = await sign_in(web_env.client, user)
    token = r.cookies.get("gr_session") or r.headers["set-cookie"].split("gr_session=", 1)[1].split(";", 1)[0]
    await form_post(web_env.client, "/logout", "/login", {})
    web_env.client.cookies.set("gr_session", token)
    back = await web_env.client.get("/", follow_redirects=False)
    assert back.headers["location"] == "/login"


async def test_an_idle_session_expires(web_env: Env) -> None:
    user, _ = await make_user(web_env, Role.BANK)
    await sign_in(web_env.client, user)
    assert (await web_env.client.get("/", follow_redirects=False)).headers["location"] == "/bank"
    web_env.clock.advance(dt.timedelta(minutes=31))
    assert (await web_env.client.get("/", follow_redirects=False)).headers["location"] == "/login"


async def test_a_form_post_without_the_csrf_token_is_refused_and_changes_nothing(web_env: Env) -> None:
    user, _ = await make_user(web_env, Role.EMITTER)
    await web_env.client.get("/login")  # the CSRF cookie alone is not enough
    r = await web_env.client.post("/login", data={"username": user, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403
    assert "gr_session" not in r.headers.get("set-cookie", "")
    assert "text/html" in r.headers["content-type"]
    forged = await web_env.client.post(
        "/login", data={"username": user, "password": PASSWORD, "_csrf_token": "0" * 64}, follow_redirects=False
    )
    assert forged.status_code == 403


async def test_wrong_passwords_lock_the_user_for_the_page_and_the_api(web_env: Env) -> None:
    user, _ = await make_user(web_env, Role.FINANCE_APPROVER)
    for _ in range(LOCK_AFTER):
        r = await sign_in(web_env.client, user, "wrong-password-123")
    assert r.status_code == 429
    assert "15" in r.text
    locked = await sign_in(web_env.client, user)  # the right password while locked
    assert locked.status_code == 429
    api = await web_env.client.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
    assert api.status_code == 429 and api.json()["type"] == "/problems/sign-in-locked"
    assert int(api.headers["retry-after"]) > 0
    web_env.clock.advance(dt.timedelta(minutes=16))
    assert (await sign_in(web_env.client, user)).status_code == 303


async def test_after_sign_in_only_a_local_next_is_followed(web_env: Env) -> None:
    user, _ = await make_user(web_env, Role.REGULATOR)
    page = await web_env.client.get("/login")
    token = csrf_of(page.text)
    for target, expected in (
        ("https://evil.example/", "/compliance"),
        ("//evil.example", "/compliance"),
        ("/enterprises?x=1", "/enterprises?x=1"),
    ):
        r = await web_env.client.post(
            "/login",
            data={"username": user, "password": PASSWORD, "_csrf_token": token, "next": target},
            follow_redirects=False,
        )
        assert r.headers["location"] == expected


async def test_pages_send_security_headers_and_a_page_asks_nobody_for_a_bearer_token(web_env: Env) -> None:
    r = await web_env.client.get("/login")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert "<script>" not in r.text and " on" not in r.text.replace(" one", "")  # no inline script or handlers
    api = await web_env.client.get("/api/v1/finance/claims")
    assert api.status_code == 401 and api.headers["content-type"].startswith("application/problem+json")


async def test_english_on_request_and_remembered(web_env: Env) -> None:
    zh = await web_env.client.get("/login")
    assert "登录" in zh.text
    en = await web_env.client.get("/login?lang=en")
    assert "Sign in" in en.text and "gr_lang=en" in en.headers["set-cookie"]
    again = await web_env.client.get("/login")
    assert "Sign in" in again.text


async def test_sign_in_in_chromium(live, page) -> None:  # type: ignore[no-untyped-def]
    user, _ = live.call(lambda state: make_user(state.db, Role.REGULATOR))
    await page.goto(f"{live.base_url}/login")
    await screenshot(page, "login")
    await browser_sign_in(page, live.base_url, user)
    assert page.url.endswith("/compliance") or "/compliance" in page.url


def test_every_page_text_has_both_languages_and_every_key_used_exists() -> None:
    import re
    from pathlib import Path

    from web.i18n import catalogue

    texts = catalogue()  # raises on a key missing a language or defined twice
    root = Path(__file__).resolve().parents[2] / "web"
    used = set()
    for path in [*root.rglob("*.html"), *root.rglob("*.py")]:
        used |= set(re.findall(r"""\bt(?:ranslate)?\(\s*["']([a-z_][\w.-]*)["']""", path.read_text(encoding="utf-8")))
    prefixes = {k for k in used if k.endswith(".")}  # t("claim.state." ~ state): a family of keys
    assert used and not sorted(k for k in used - prefixes if k not in texts)
    assert not sorted(p for p in prefixes if not any(k.startswith(p) for k in texts))
