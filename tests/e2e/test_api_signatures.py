"""Signing through the API: a wrong password changes nothing but is recorded (URS-SIG-01)."""
# ruff: noqa: F811  (pytest fixtures imported from test_api_support are parameters of the tests)
from __future__ import annotations

import pytest
from test_api_support import api, app, assert_error, raise_and_reach_approval  # noqa: F401  fixtures

from conftest import PASSWORD


@pytest.mark.urs("URS-SIG-01")
def test_wrong_signing_password_is_refused_and_changes_nothing(api):
    record, approval_id = raise_and_reach_approval(api)
    quentin, quinn = api.login("quentin"), api.login("quinn")
    before = quentin.record(record["id"])
    audit_before = quinn.get("/audit?limit=1000").get_json()["items"]

    resp = quentin.complete(approval_id, {"decision": "approve"}, {"password": "Not-the-password-1",
                                                                   "meaning": "approved"})
    err = assert_error(resp, 401, "wrong_password")
    assert "nothing was signed" in err["message"]
    assert "WWW-Authenticate" not in resp.headers  # the token is fine; the signing password was wrong

    after = quentin.record(record["id"])
    assert after["revision"] == before["revision"]
    assert after["status"] == "open" and after["signatures"] == []
    assert after["data"] == before["data"]
    task = quentin.get(f"/tasks/{approval_id}").get_json()
    assert task["status"] == "open" and task["can_complete"] is True

    # The failure is in the system trail, attributed to the signer; nothing else was written.
    new = quinn.get(f"/audit?since_seq={audit_before[-1]['seq']}").get_json()["items"]
    assert [(e["action"], e["user"]) for e in new] == [("signature_failed", "quentin")]
    assert new[0]["reason"] == "wrong password"

    # The right password still works afterwards.
    resp = quentin.complete(approval_id, {"decision": "approve"}, {"password": PASSWORD, "meaning": "approved"})
    assert resp.status_code == 200 and resp.get_json()["signatures"][0]["valid"] is True


@pytest.mark.urs("URS-SIG-01")
def test_signature_is_required_with_its_stated_meaning(api):
    record, approval_id = raise_and_reach_approval(api)
    quentin = api.login("quentin")
    err = assert_error(quentin.complete(approval_id, {"decision": "approve"}), 400, "validation_failed")
    assert [e["path"] for e in err["details"]["errors"]] == ["signature.password"]
    err = assert_error(quentin.complete(approval_id, {"decision": "approve"},
                                        {"password": PASSWORD, "meaning": "reviewed"}), 400, "validation_failed")
    assert [e["path"] for e in err["details"]["errors"]] == ["signature.meaning"]
    assert "approved" in err["details"]["errors"][0]["message"]
    after = quentin.record(record["id"])
    assert after["signatures"] == [] and after["revision"] == record["revision"]


@pytest.mark.urs("URS-SIG-01")
@pytest.mark.urs("URS-SEC-04")
def test_repeated_wrong_signing_passwords_lock_the_signer(api):
    _record, approval_id = raise_and_reach_approval(api)
    quentin = api.login("quentin")
    statuses = [quentin.complete(approval_id, {"decision": "approve"}, {"password": f"Wrong-pass-{i}x"}).status_code
                for i in range(5)]
    assert statuses == [401, 401, 401, 401, 423]
    assert_error(quentin.complete(approval_id, {"decision": "approve"}, {"password": PASSWORD}), 423,
                 "account_locked")
    assert_error(api.token("quentin"), 423, "account_locked")
