"""Every error of the API has one JSON shape and the status of the contract (API.md, Errors)."""
# ruff: noqa: F811  (pytest fixtures imported from test_api_support are parameters of the tests)
from __future__ import annotations

import pytest
from sqlalchemy import text
from test_api_support import API, api, app, assert_error, open_task, triage_data  # noqa: F401  fixtures

from conftest import deviation_start_data


@pytest.mark.urs("URS-PLT-03")
def test_start_form_data_that_fails_its_schema_is_refused_with_field_paths(api):
    olivia = api.login("olivia")
    resp = olivia.post("/records", {"process": "deviation", "data": {
        "title": "", "description": "x", "area": "Kitchen", "occurred_at": "yesterday",
        "immediate_actions": "None", "colour": "red"}})
    err = assert_error(resp, 400, "validation_failed")
    paths = {e["path"]: e["message"] for e in err["details"]["errors"]}
    assert set(paths) == {"", "title", "area", "occurred_at", "batch_ref"}
    assert paths["batch_ref"] == "This field is required."
    assert paths["area"].startswith("Choose one of:")
    assert "colour" in paths[""]
    assert api.login("quinn").get("/records").get_json()["total"] == 0  # nothing was created


@pytest.mark.urs("URS-SEC-02")
def test_a_process_the_system_starts_is_refused_by_hand_with_403_not_startable(api):
    max_ = api.login("max")
    resp = max_.post("/records", {"process": "training_acknowledgement", "data": {"title": "Self-made"}})
    err = assert_error(resp, 403, "not_startable")
    assert "started by the system" in err["message"]
    assert api.login("quinn").get("/records").get_json()["total"] == 0


@pytest.mark.urs("URS-PLT-03")
def test_task_form_data_that_fails_its_schema_is_refused_and_the_task_stays_open(api):
    olivia, quinn = api.login("olivia"), api.login("quinn")
    rid = olivia.raise_deviation()["id"]
    before = quinn.record(rid)
    triage_id = open_task(before, "triage_deviation")
    err = assert_error(quinn.complete(triage_id, {"classification": "catastrophic", "rationale": ""}),
                       400, "validation_failed")
    assert [e["path"] for e in err["details"]["errors"]] == ["classification", "investigator", "rationale"]
    # An investigator who does not hold the lane's role is refused by the engine, also with a path.
    err = assert_error(quinn.complete(triage_id, triage_data(investigator="olivia")), 400, "validation_failed")
    assert err["details"]["errors"][0]["path"] == "investigator"
    after = quinn.record(rid)
    assert after["revision"] == before["revision"] and open_task(after, "triage_deviation") == triage_id


def test_request_body_members_are_checked(api):
    quinn = api.login("quinn")
    err = assert_error(quinn.post("/records", {"data": {}}), 400, "validation_failed")
    assert err["details"]["errors"] == [{"path": "process", "message": "This field is required."}]
    err = assert_error(quinn.post("/records", {"process": "deviation", "data": []}), 400, "validation_failed")
    assert err["details"]["errors"][0]["path"] == "data"
    err = assert_error(quinn.post("/tasks/x/complete", {"data": {}, "signature": "secret"}), 400,
                       "validation_failed")
    assert err["details"]["errors"][0]["path"] == "signature"
    err = assert_error(quinn.post("/records", ["deviation"]), 400, "validation_failed")
    assert err["details"]["errors"][0]["path"] == ""
    err = assert_error(quinn.get("/records?status=pending"), 400, "validation_failed")
    assert err["details"]["errors"][0]["path"] == "status"
    for query in ("page=0", "page=two", "per_page=201"):
        err = assert_error(quinn.get(f"/records?{query}"), 400, "validation_failed")
        assert err["details"]["errors"][0]["path"] == query.split("=")[0]


def test_malformed_json_is_400_bad_json(api):
    quinn = api.login("quinn")
    deep = b'{"process": "deviation", "data": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    for body in (b'{"process": "deviation", ', b"{'process': 'deviation'}", b'{"value": NaN}', b"\xff\xfe{}", b"",
                 deep):
        resp = quinn.post_raw("/records", body, "application/json")
        assert_error(resp, 400, "bad_json")
    assert_error(api.anonymous.post(f"{API}/tokens", data=b"{", content_type="application/json"), 400, "bad_json")


def test_wrong_content_type_is_415(api):
    quinn = api.login("quinn")
    assert_error(quinn.post_raw("/records", b"process=deviation", "application/x-www-form-urlencoded"),
                 415, "unsupported_media_type")
    assert_error(quinn.post_raw("/tasks/x/complete", b'{"data": {}}', "text/plain"), 415, "unsupported_media_type")
    assert_error(api.anonymous.post(f"{API}/tokens", data=b'{"username": "quinn"}', content_type="text/plain"),
                 415, "unsupported_media_type")


def test_missing_or_invalid_token_is_401(api):
    anon = api.anonymous
    for path in ("/records", "/tasks", "/processes", "/audit", "/records/x", "/tasks/x"):
        resp = anon.get(API + path)
        assert_error(resp, 401, "not_authenticated")
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(anon.get(f"{API}/tasks", headers={"Authorization": "Bearer not-a-token"}), 401, "not_authenticated")
    assert_error(anon.get(f"{API}/tasks", headers={"Authorization": "Basic cXVpbm46eA=="}), 401, "not_authenticated")
    assert_error(anon.get(f"{API}/tasks", headers={"Authorization": "Bearer "}), 401, "not_authenticated")
    assert_error(anon.post(f"{API}/records", json={"process": "deviation", "data": {}}), 401, "not_authenticated")


def test_unknown_ids_are_404(api):
    quinn = api.login("quinn")
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(quinn.get(f"/records/{missing}"), 404, "not_found")
    assert_error(quinn.get("/records/DEV-1999-0001"), 404, "not_found")
    assert_error(quinn.get(f"/records/{missing}/audit"), 404, "not_found")
    assert_error(quinn.get(f"/tasks/{missing}"), 404, "not_found")
    assert_error(quinn.complete(missing, {}), 404, "not_found")
    assert_error(quinn.get("/processes/deviation/versions/99/bpmn"), 404, "not_found")
    assert_error(quinn.get("/processes/nonesuch/versions/1/bpmn"), 404, "not_found")
    assert_error(api.login("olivia").post("/records", {"process": "nonesuch", "data": {}}), 404, "not_found")


def test_unknown_paths_and_methods_answer_json(api):
    quinn = api.login("quinn")
    assert_error(quinn.get("/nonesuch"), 404, "not_found")
    assert_error(api.anonymous.get(f"{API}/processes/deviation/versions/one/bpmn"), 404, "not_found")
    resp = api.anonymous.delete(f"{API}/records")
    err = assert_error(resp, 405, "method_not_allowed")
    assert err["details"]["allowed_methods"] == ["GET", "POST"]
    assert "POST" in resp.headers["Allow"]
    assert_error(quinn.client.put(f"{API}/tasks/x/complete", headers=quinn.headers), 405, "method_not_allowed")


def test_oversized_request_body_is_413(app, api):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    quinn = api.login("quinn")
    resp = quinn.post("/records", {"process": "deviation", "data": {"description": "x" * 4096}})
    err = assert_error(resp, 413, "too_large")
    assert err["details"]["limit_bytes"] == 1024


def test_batches_are_not_implemented_yet(api):
    quinn = api.login("quinn")
    err = assert_error(quinn.get("/batches/COI-2026-0042"), 501, "not_implemented")
    assert "roadmap" in err["message"]
    assert_error(quinn.post("/batches/COI-2026-0042/results", {"test": "viability", "value": 92.5}), 501,
                 "not_implemented")
    assert_error(api.anonymous.get(f"{API}/batches/COI-2026-0042"), 401, "not_authenticated")


def test_an_unexpected_server_error_is_json_without_internals(api, loaded_runtime):
    quinn = api.login("quinn")
    with loaded_runtime.db.engine.begin() as conn:  # break the database under the running app
        conn.execute(text("ALTER TABLE record_counters RENAME TO record_counters_gone"))
    resp = api.login("olivia").post("/records", {"process": "deviation", "data": deviation_start_data()})
    err = assert_error(resp, 500, "internal_error")
    body = resp.get_data(as_text=True)
    assert "Traceback" not in body and "record_counters" not in body and "<html" not in body.lower()
    assert err["details"] == {}
    assert quinn.get("/records").get_json()["total"] == 0  # the failed start left nothing behind
