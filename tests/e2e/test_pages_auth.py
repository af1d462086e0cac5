"""Log-in, lock-out, idle expiry, CSRF, forced password change and security headers of the web pages."""
from __future__ import annotations

import time

import pytest

from tests.conftest import PASSWORD
from tests.e2e.conftest import csrf_token_of, login
from webapp import create_app

NEW_PASSWORD = "Brand-new-Secret-42"


@pytest.mark.urs("URS-SEC-01")
def test_login_page_has_csrf_token_and_security_headers(client):
    resp = client.get("/login")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert '<label for="username">' in html and '<label for="password">' in html
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Cache-Control"] == "no-store"
    assert "<script>" not in html.replace('<script src=', '')  # no inline script anywhere


@pytest.mark.urs("URS-SEC-01")
def test_session_cookie_is_secure_httponly_and_samesite_by_default(loaded_runtime, cast, monkeypatch):
    monkeypatch.delenv("CELLQMS_INSECURE_COOKIES", raising=False)
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "SECRET_KEY": "x"}, runtime=loaded_runtime)
    assert app.config["SESSION_COOKIE_SECURE"] is True
    c = app.test_client()
    resp = c.post("/login", data={"username": "quinn", "password": PASSWORD}, base_url="https://localhost")
    cookie = resp.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Expires" not in cookie  # a browser-session cookie: gone when the browser closes
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.urs("URS-SEC-01")
def test_login_then_logout(client):
    resp = login(client, "quinn")
    assert resp.status_code == 302 and resp.headers["Location"] == "/"
    inbox = client.get("/")
    assert inbox.status_code == 200 and "Quinn QA" in inbox.get_data(as_text=True)
    resp = client.post("/logout")
    assert resp.status_code == 302
    assert client.get("/").status_code == 302  # back to the log-in page


@pytest.mark.urs("URS-SEC-02")
def test_pages_need_a_login(client):
    for url in ("/", "/records", "/start", "/admin/users", "/records/DEV-2026-0001"):
        resp = client.get(url)
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/login"), url


@pytest.mark.urs("URS-SEC-04")
def test_wrong_password_and_unknown_user_get_the_same_message(client):
    wrong = client.post("/login", data={"username": "quinn", "password": "nope"})
    unknown = client.post("/login", data={"username": "nobody", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    message = "The username or password is not correct."
    assert message in wrong.get_data(as_text=True) and message in unknown.get_data(as_text=True)


@pytest.mark.urs("URS-SEC-04")
def test_account_locks_after_repeated_failures_and_says_for_how_long(client, loaded_runtime):
    for _ in range(loaded_runtime.settings.max_failed_logins - 1):
        assert client.post("/login", data={"username": "olivia", "password": "nope"}).status_code == 401
    resp = client.post("/login", data={"username": "olivia", "password": "nope"})
    assert resp.status_code == 423
    html = resp.get_data(as_text=True)
    assert "locked" in html and "30 minute" in html
    # Even the right password is refused while locked, and the page does not log in.
    resp = client.post("/login", data={"username": "olivia", "password": PASSWORD})
    assert resp.status_code == 423 and "locked" in resp.get_data(as_text=True)
    assert client.get("/").status_code == 302


@pytest.mark.urs("URS-SEC-04")
def test_idle_session_expires_with_a_session_expired_page(app, as_user):
    c = as_user("quinn")
    assert c.get("/").status_code == 200
    idle = app.config["IDLE_MINUTES"] * 60
    with c.session_transaction() as s:
        s["last_seen"] = time.time() - idle - 5
    resp = c.get("/records")
    assert resp.status_code == 302 and resp.headers["Location"] == "/session-expired"
    page = c.get("/session-expired")
    assert page.status_code == 401 and "Your session expired" in page.get_data(as_text=True)
    assert "15 minutes" in page.get_data(as_text=True)
    assert c.get("/").status_code == 302  # logged out for good


@pytest.mark.urs("URS-SEC-04")
def test_active_use_keeps_the_session_alive(app, as_user):
    c = as_user("quinn")
    idle = app.config["IDLE_MINUTES"] * 60
    with c.session_transaction() as s:
        s["last_seen"] = time.time() - idle + 30  # 30 s before expiry
    assert c.get("/").status_code == 200
    with c.session_transaction() as s:
        assert time.time() - s["last_seen"] < 5


@pytest.mark.urs("URS-SEC-04")
def test_idle_minutes_come_from_the_environment(loaded_runtime, cast, monkeypatch):
    monkeypatch.setenv("CELLQMS_IDLE_MINUTES", "5")
    app = create_app({"TESTING": True}, runtime=loaded_runtime)
    assert app.config["IDLE_MINUTES"] == 5


@pytest.mark.urs("URS-SEC-04")
def test_htmx_request_after_expiry_is_redirected_by_header(app, as_user):
    c = as_user("quinn")
    with c.session_transaction() as s:
        s["last_seen"] = time.time() - app.config["IDLE_MINUTES"] * 60 - 5
    resp = c.get("/?sort=age", headers={"HX-Request": "true"})
    assert resp.status_code == 401 and resp.headers["HX-Redirect"] == "/session-expired"


@pytest.mark.urs("URS-SEC-02")
def test_forms_without_csrf_token_are_refused(loaded_runtime, cast):
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": True, "SESSION_COOKIE_SECURE": False,
                      "SECRET_KEY": "csrf-test"}, runtime=loaded_runtime)
    c = app.test_client()
    resp = c.post("/login", data={"username": "quinn", "password": PASSWORD})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert "security token" in html and "Traceback" not in html
    token = csrf_token_of(c.get("/login").get_data(as_text=True))
    resp = c.post("/login", data={"username": "quinn", "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 302
    # Logged in, a state-changing form still needs its token.
    assert c.post("/logout").status_code == 400
    token = csrf_token_of(c.get("/").get_data(as_text=True))
    assert c.post("/logout", data={"csrf_token": token}).status_code == 302


@pytest.mark.urs("URS-INT-01")
def test_the_api_is_exempt_from_csrf_it_uses_bearer_tokens(loaded_runtime, cast):
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": True, "SECRET_KEY": "csrf-test"}, runtime=loaded_runtime)
    resp = app.test_client().post("/api/v1/tokens", json={"username": "quinn", "password": PASSWORD})
    assert resp.status_code == 201


@pytest.mark.urs("URS-SEC-01")
def test_redirect_after_login_stays_on_this_site(client):
    resp = client.post("/login?next=//evil.example/x", data={"username": "quinn", "password": PASSWORD})
    assert resp.headers["Location"] == "/"
    client.post("/logout")
    resp = client.post("/login?next=/records", data={"username": "quinn", "password": PASSWORD})
    assert resp.headers["Location"] == "/records"


@pytest.mark.urs("URS-SEC-05")
def test_password_reset_forces_a_change_at_next_login(as_user, app, loaded_runtime, admin):
    admin = as_user("ada")
    assert admin.post("/admin/users/olivia/password", data={"password": "Temporary-Pass-1"}).status_code == 302
    c = app.test_client()
    resp = login(c, "olivia", "Temporary-Pass-1")
    assert resp.headers["Location"] == "/password"
    # Every other page sends the user back until the password is changed.
    assert c.get("/records").headers["Location"] == "/password"
    page = c.get("/password").get_data(as_text=True)
    assert "Choose your own password" in page
    resp = c.post("/password", data={"current_password": "Temporary-Pass-1", "new_password": NEW_PASSWORD,
                                     "confirm_password": "different"})
    assert resp.status_code == 400 and "not the same" in resp.get_data(as_text=True)
    resp = c.post("/password", data={"current_password": "Temporary-Pass-1", "new_password": "short",
                                     "confirm_password": "short"})
    assert resp.status_code == 400 and "at least 10 characters" in resp.get_data(as_text=True)
    resp = c.post("/password", data={"current_password": "Temporary-Pass-1", "new_password": NEW_PASSWORD,
                                     "confirm_password": NEW_PASSWORD})
    assert resp.status_code == 302 and resp.headers["Location"] == "/"
    assert c.get("/records").status_code == 200
    assert loaded_runtime.user_by_username("olivia").must_change_password is False


@pytest.mark.urs("URS-SEC-05")
def test_a_password_reset_ends_the_users_open_sessions(as_user, admin):
    olivia = as_user("olivia")
    assert olivia.get("/").status_code == 200
    as_user("ada").post("/admin/users/olivia/password", data={"password": "Temporary-Pass-1"})
    assert olivia.get("/").status_code == 302


@pytest.mark.urs("URS-SEC-05")
def test_a_deactivated_user_cannot_log_in_and_is_logged_out(as_user, app, admin):
    olivia = as_user("olivia")
    as_user("ada").post("/admin/users/olivia/deactivate", data={"reason": "left the company"})
    assert olivia.get("/").status_code == 302
    resp = login(app.test_client(), "olivia")
    assert resp.status_code == 401
