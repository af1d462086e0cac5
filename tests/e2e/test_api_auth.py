"""Bearer tokens and lock-out through the API (URS-SEC-04, URS-INT-01)."""
# ruff: noqa: F811  (pytest fixtures imported from test_api_support are parameters of the tests)
from __future__ import annotations

import datetime as dt

import pytest
from test_api_support import API, api, app, assert_error  # noqa: F401  fixtures

from conftest import PASSWORD


@pytest.mark.urs("URS-INT-01")
def test_token_is_issued_for_good_credentials_and_names_the_caller(api):
    resp = api.token("quinn")
    assert resp.status_code == 201
    body = resp.get_json()
    assert body["token_type"] == "Bearer" and len(body["token"]) >= 32
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert expires.utcoffset() == dt.timedelta(0) and expires > dt.datetime.now(dt.timezone.utc)
    # The token works; a second token is a different one.
    headers = {"Authorization": f"Bearer {body['token']}"}
    assert api.anonymous.get(f"{API}/tasks", headers=headers).status_code == 200
    assert api.token("quinn").get_json()["token"] != body["token"]


@pytest.mark.urs("URS-SEC-04")
def test_wrong_credentials_are_401(api):
    assert_error(api.token("quinn", "Wrong-password-1"), 401, "not_authenticated")
    assert_error(api.token("nobody", PASSWORD), 401, "not_authenticated")
    err = assert_error(api.anonymous.post(f"{API}/tokens", json={"username": "quinn"}), 400, "validation_failed")
    assert err["details"]["errors"] == [{"path": "password", "message": "This field is required."}]


@pytest.mark.urs("URS-SEC-04")
def test_five_wrong_passwords_lock_the_account_with_a_message(api):
    statuses = [api.token("olivia", f"Wrong-password-{i}").status_code for i in range(5)]
    assert statuses == [401, 401, 401, 401, 423]
    err = assert_error(api.token("olivia", PASSWORD), 423, "account_locked")  # the right password does not help
    assert "locked" in err["message"] and "minute" in err["message"]
    locked_until = dt.datetime.fromisoformat(err["details"]["locked_until"])
    assert dt.timedelta(minutes=29) < locked_until - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(minutes=30)
    # The lock-out is recorded in the audit trail (URS-SEC-04).
    trail = api.login("quinn").get("/audit?limit=1000").get_json()["items"]
    olivia = [(e["action"], e["user"]) for e in trail if e["user"] == "olivia"]
    assert olivia.count(("token_failed", "olivia")) == 5
    assert ("account_locked", "olivia") in olivia and ("token_refused_locked", "olivia") in olivia


def test_openapi_document_is_public(api):
    resp = api.anonymous.get(f"{API}/openapi.json")
    assert resp.status_code == 200 and resp.get_json()["openapi"].startswith("3.1")
