"""Roles, assignment, segregation of duties and visibility, asked through the API (URS-PLT-02, SEC-02, SEC-03)."""
# ruff: noqa: F811  (pytest fixtures imported from test_api_support are parameters of the tests)
from __future__ import annotations

import pytest
from test_api_support import (  # noqa: F401  fixtures
    INVESTIGATION,
    api,
    app,
    assert_error,
    open_task,
    raise_and_reach_approval,
    triage_data,
)

from conftest import PASSWORD


@pytest.mark.urs("URS-PLT-02")
@pytest.mark.urs("URS-SEC-02")
def test_user_without_the_lane_role_cannot_complete_the_task(api):
    olivia, ivan = api.login("olivia"), api.login("ivan")
    record = olivia.raise_deviation()
    triage_id = open_task(olivia.record(record["id"]), "triage_deviation")

    err = assert_error(olivia.complete(triage_id, triage_data()), 403, "not_in_role")
    assert "QA" in err["message"]
    assert_error(ivan.complete(triage_id, triage_data()), 403, "not_in_role")
    # The task is still open and no one completed it.
    after = olivia.record(record["id"])
    assert open_task(after, "triage_deviation") == triage_id
    assert after["revision"] == olivia.record(record["id"])["revision"]
    # The task page tells why not; the inbox does not offer it.
    detail = olivia.get(f"/tasks/{triage_id}").get_json()
    assert detail["can_complete"] is False and detail["why_not"]["code"] == "not_in_role"
    assert olivia.get("/tasks").get_json() == []


@pytest.mark.urs("URS-PLT-02")
@pytest.mark.urs("URS-SEC-02")
def test_starting_a_deviation_needs_the_initiator_role(api):
    err = assert_error(api.login("ivan").post("/records", {"process": "deviation", "data": {}}), 403, "not_in_role")
    assert "Initiator" in err["message"]
    assert api.login("quinn").get("/records").get_json()["total"] == 0


@pytest.mark.urs("URS-PLT-02")
def test_task_assigned_to_another_investigator_is_refused(api):
    olivia, quinn, iris = api.login("olivia"), api.login("quinn"), api.login("iris")
    rid = olivia.raise_deviation()["id"]
    record = quinn.complete(open_task(quinn.record(rid), "triage_deviation"), triage_data("ivan")).get_json()
    investigate_id = open_task(record, "investigate_deviation")
    assert_error(iris.complete(investigate_id, INVESTIGATION), 403, "not_assigned")
    assert iris.get("/tasks").get_json() == []


@pytest.mark.urs("URS-SEC-03")
def test_creator_cannot_approve_own_deviation(api):
    # max holds Initiator and QA: he raises the deviation, then tries to approve it.
    record, approval_id = raise_and_reach_approval(api, initiator="max")
    max_ = api.login("max")
    assert approval_id not in [t["id"] for t in max_.get("/tasks").get_json()]
    err = assert_error(max_.complete(approval_id, {"decision": "approve"}, {"password": PASSWORD,
                                                                           "meaning": "approved"}),
                       403, "segregation_of_duties")
    assert "raised" in err["message"]
    after = max_.record(record["id"])
    assert after["signatures"] == [] and open_task(after, "approve_investigation") == approval_id
    assert after["revision"] == record["revision"]


@pytest.mark.urs("URS-SEC-03")
def test_investigator_cannot_approve_own_investigation(api, loaded_runtime):
    loaded_runtime.add_user(None, "vera", "Vera Versatile", PASSWORD, ["QA", "Investigator"])
    record, approval_id = raise_and_reach_approval(api, investigator="vera")
    vera = api.login("vera")
    err = assert_error(vera.complete(approval_id, {"decision": "approve"}, {"password": PASSWORD}),
                       403, "segregation_of_duties")
    assert "Investigation" in err["message"]
    after = vera.record(record["id"])
    assert after["signatures"] == [] and after["status"] == "open"
    # Another QA person may approve it.
    resp = api.login("quentin").complete(approval_id, {"decision": "approve"}, {"password": PASSWORD})
    assert resp.status_code == 200 and resp.get_json()["status"] == "closed"


@pytest.mark.urs("URS-SEC-02")
def test_records_and_tasks_of_processes_the_user_has_no_part_in_are_not_found(api, loaded_runtime):
    loaded_runtime.add_user(None, "lara", "Lara LIMS", PASSWORD, ["LIMS"])
    olivia = api.login("olivia")
    record = olivia.raise_deviation()
    triage_id = open_task(olivia.record(record["id"]), "triage_deviation")
    lara = api.login("lara")
    assert_error(lara.get(f"/records/{record['id']}"), 404, "not_found")
    assert_error(lara.get(f"/records/{record['number']}"), 404, "not_found")
    assert_error(lara.get(f"/records/{record['id']}/audit"), 404, "not_found")
    assert_error(lara.get(f"/tasks/{triage_id}"), 404, "not_found")
    assert_error(lara.complete(triage_id, triage_data()), 404, "not_found")
    assert lara.get("/records").get_json()["total"] == 0
    assert lara.get("/tasks").get_json() == []
