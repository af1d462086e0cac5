"""The audit trail through the API: reading, paging, verification and detection of tampering (URS-AUD-02/03)."""
# ruff: noqa: F811  (pytest fixtures imported from test_api_support are parameters of the tests)
from __future__ import annotations

import pytest
from sqlalchemy import text
from test_api_support import api, app, assert_error  # noqa: F401  fixtures

from conftest import PASSWORD


@pytest.mark.urs("URS-AUD-03")
def test_system_audit_trail_is_read_in_pages_by_qa_and_auditors(api, loaded_runtime):
    loaded_runtime.add_user(None, "adam", "Adam Auditor", PASSWORD, ["Auditor"])
    api.login("olivia").raise_deviation()
    quinn = api.login("quinn")
    everything = quinn.get("/audit?limit=1000").get_json()
    assert everything["more"] is False and everything["since_seq"] == 0
    seqs = [e["seq"] for e in everything["items"]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert {"diagram_loaded", "create", "token_succeeded"} <= {e["action"] for e in everything["items"]}

    first = quinn.get("/audit?limit=3").get_json()
    assert [e["seq"] for e in first["items"]] == [1, 2, 3] and first["more"] is True
    second = quinn.get(f"/audit?since_seq={first['next_since_seq']}&limit=3").get_json()
    assert [e["seq"] for e in second["items"]] == [4, 5, 6]
    assert api.login("adam").get("/audit?limit=1").status_code == 200

    err = assert_error(quinn.get("/audit?limit=0"), 400, "validation_failed")
    assert err["details"]["errors"][0]["path"] == "limit"
    assert_error(quinn.get("/audit?since_seq=abc"), 400, "validation_failed")


@pytest.mark.urs("URS-AUD-02")
@pytest.mark.urs("URS-SEC-02")
def test_operators_may_not_read_or_verify_the_system_trail(api):
    for user in ("olivia", "ivan"):
        caller = api.login(user)
        err = assert_error(caller.get("/audit"), 403, "not_in_role")
        assert "Auditor" in err["details"]["required_roles"]
        assert_error(caller.get("/audit/verify"), 403, "not_in_role")


@pytest.mark.urs("URS-AUD-02")
def test_audit_verify_is_ok_and_finds_tampering(api, loaded_runtime):
    api.login("olivia").raise_deviation()
    quinn = api.login("quinn")
    ok = quinn.get("/audit/verify").get_json()
    trail = quinn.get("/audit?limit=1000").get_json()["items"]
    assert ok["ok"] is True and ok["entries"] == len(trail) and len(ok["head"]) == 64
    assert api.login("hannah").get("/audit/verify").get_json()["ok"] is True

    # Someone with database access edits an entry behind the application's back.
    victim = next(e for e in trail if e["action"] == "create" and e["entity"] == "records")
    with loaded_runtime.db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_no_change"))
        else:
            conn.execute(text("DROP TRIGGER audit_entries_no_update"))
        conn.execute(text("UPDATE audit_entries SET username = 'mallory' WHERE seq = :seq"), {"seq": victim["seq"]})
    bad = quinn.get("/audit/verify").get_json()
    assert bad["ok"] is False and bad["first_bad_seq"] == victim["seq"]
    assert bad["entries"] == victim["seq"] - 1
