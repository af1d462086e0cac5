"""The whole deviation lifecycle through the REST API, with a signed approval."""
# ruff: noqa: F811  (pytest fixtures imported from test_api_support are parameters of the tests)
from __future__ import annotations

import datetime as dt

import pytest
from test_api_support import INVESTIGATION, api, app, open_task, triage_data  # noqa: F401  fixtures

from conftest import PASSWORD


def _utc(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    assert parsed.utcoffset() == dt.timedelta(0), f"not UTC: {value}"
    return parsed


@pytest.mark.urs("URS-INT-01")
@pytest.mark.urs("URS-DEV-01")
@pytest.mark.urs("URS-DEV-02")
@pytest.mark.urs("URS-DEV-03")
@pytest.mark.urs("URS-SIG-01")
@pytest.mark.urs("URS-SIG-02")
def test_deviation_is_raised_triaged_investigated_and_approved_with_a_signature(api):
    olivia, quinn, ivan, quentin = (api.login(u) for u in ("olivia", "quinn", "ivan", "quentin"))

    # Raise (URS-DEV-01)
    resp = olivia.post("/records", {"process": "deviation", "data": {
        "title": "Incubator temperature excursion",
        "description": "Incubator INC-04 read 38.9 C for 40 minutes during expansion.",
        "area": "Cell processing", "occurred_at": "2026-11-20T08:30:00+00:00",
        "batch_ref": "COI-2026-0042", "immediate_actions": "Batch moved to INC-05."}})
    assert resp.status_code == 201
    created = resp.get_json()
    assert created["number"].startswith("DEV-") and created["process"] == "deviation"
    assert created["process_version"] == 1 and created["status"] == "open"
    assert created["created_by"] == "olivia"
    _utc(created["created_at"])
    assert resp.headers["Location"].endswith(f"/api/v1/records/{created['id']}")
    rid = created["id"]

    # Olivia sees no triage task in her inbox; Quinn does.
    assert olivia.get("/tasks").get_json() == []
    inbox = quinn.get("/tasks").get_json()
    assert [(t["task"], t["record"]["number"], t["role"]) for t in inbox] == \
        [("triage_deviation", created["number"], "QA")]

    # Triage (URS-DEV-02): the task carries its form.
    task = quinn.get(f"/tasks/{inbox[0]['id']}").get_json()
    assert task["name"] == "QA triage" and task["record"] == {"id": rid, "number": created["number"],
                                                              "title": "Incubator temperature excursion"}
    assert task["form"]["schema"]["required"] == ["classification", "investigator", "rationale"]
    assert task["form"]["ui_schema"]["ui:order"][0] == "classification"
    assert task["signature_required"] is False and task["signature_meaning"] is None
    assert task["can_complete"] is True
    resp = quinn.complete(task["id"], triage_data("ivan", "major"))
    assert resp.status_code == 200, resp.get_json()
    record = resp.get_json()
    assert record["data"]["classification"] == "major"
    investigation = [t for t in record["open_tasks"] if t["task"] == "investigate_deviation"]
    assert len(investigation) == 1 and investigation[0]["assignee"] == "ivan"
    assert investigation[0]["role"] == "Investigator"
    due = _utc(investigation[0]["due_at"])
    assert dt.timedelta(days=19) < due - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(days=20)

    # Investigate (URS-DEV-03)
    assert [t["task"] for t in ivan.get("/tasks").get_json()] == ["investigate_deviation"]
    resp = ivan.complete(investigation[0]["id"], INVESTIGATION)
    assert resp.status_code == 200, resp.get_json()
    approval_id = open_task(resp.get_json(), "approve_investigation")

    # Approve with a signature (URS-SIG-01): the task says so, and the meaning is stated.
    approval = quentin.get(f"/tasks/{approval_id}").get_json()
    assert approval["signature_required"] is True and approval["signature_meaning"] == "approved"
    resp = quentin.complete(approval_id, {"decision": "approve", "comment": "Root cause justified."},
                            {"password": PASSWORD, "meaning": "approved"})
    assert resp.status_code == 200, resp.get_json()
    closed = resp.get_json()
    assert closed["status"] == "closed" and closed["open_tasks"] == []
    _utc(closed["closed_at"])

    # The signature shows printed name, date and time, meaning, and still verifies (URS-SIG-02).
    assert len(closed["signatures"]) == 1
    sig = closed["signatures"][0]
    assert sig["signer"] == "quentin" and sig["signer_name"] == "Quentin QA"
    assert sig["meaning"] == "approved" and sig["task"] == "approve_investigation" and sig["valid"] is True
    assert abs(_utc(sig["signed_at"]) - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5)

    # The task history names who did what.
    done = {t["task"]: t["completed_by"] for t in closed["tasks"] if t["status"] == "completed"}
    assert done == {"triage_deviation": "quinn", "investigate_deviation": "ivan",
                    "approve_investigation": "quentin"}

    # Everybody who may see it reads the same, including by number.
    assert olivia.record(created["number"])["signatures"] == closed["signatures"]

    # The audit trail has the whole story, oldest first, with users and UTC times (URS-AUD-01).
    trail = quinn.get(f"/records/{rid}/audit").get_json()
    seqs = [e["seq"] for e in trail]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for entry in trail:
        assert set(entry) >= {"seq", "at", "user", "action", "field", "old", "new", "reason"}
        _utc(entry["at"])
    completed = [(e["user"], e["field"]) for e in trail if e["action"] == "task_completed"]
    assert completed == [("quinn", "triage_deviation"), ("ivan", "investigate_deviation"),
                         ("quentin", "approve_investigation")]
    assert ("olivia", "create") in {(e["user"], e["action"]) for e in trail if e["entity"] == "records"}
    assert any(e["entity"] == "signatures" and e["action"] == "create" and e["user"] == "quentin" for e in trail)
    status_changes = [(e["old"], e["new"]) for e in trail if e["field"] == "status" and e["entity"] == "records"]
    assert ("open", "closed") in status_changes


@pytest.mark.urs("URS-DEV-02")
@pytest.mark.urs("URS-SIG-01")
def test_critical_deviation_goes_to_the_qa_head_and_closes_only_after_both_branches(api):
    olivia, quinn, ivan, quentin, hannah = (api.login(u) for u in ("olivia", "quinn", "ivan", "quentin", "hannah"))
    rid = olivia.raise_deviation()["id"]
    record = quinn.complete(open_task(quinn.record(rid), "triage_deviation"),
                            triage_data("ivan", "critical")).get_json()
    assert {t["task"] for t in record["open_tasks"]} == {"qa_head_critical_review", "investigate_deviation"}
    assert [t["task"] for t in hannah.get("/tasks").get_json()] == ["qa_head_critical_review"]

    record = ivan.complete(open_task(record, "investigate_deviation"), INVESTIGATION).get_json()
    record = quentin.complete(open_task(record, "approve_investigation"), {"decision": "approve"},
                              {"password": PASSWORD}).get_json()
    assert record["status"] == "open"  # the QA head's review is still open
    resp = hannah.complete(open_task(record, "qa_head_critical_review"),
                           {"qa_head_assessment": "Hold related batches.", "notify_authorities": False},
                           {"password": PASSWORD, "meaning": "reviewed"})
    assert resp.status_code == 200, resp.get_json()
    record = resp.get_json()
    assert record["status"] == "closed"
    assert sorted((s["signer"], s["meaning"], s["valid"]) for s in record["signatures"]) == \
        [("hannah", "reviewed", True), ("quentin", "approved", True)]


@pytest.mark.urs("URS-DEV-03")
def test_rejected_investigation_goes_back_to_the_investigator(api):
    olivia, quinn, ivan, quentin = (api.login(u) for u in ("olivia", "quinn", "ivan", "quentin"))
    rid = olivia.raise_deviation()["id"]
    record = quinn.complete(open_task(quinn.record(rid), "triage_deviation"), triage_data()).get_json()
    record = ivan.complete(open_task(record, "investigate_deviation"), INVESTIGATION).get_json()
    resp = quentin.complete(open_task(record, "approve_investigation"),
                            {"decision": "reject", "comment": "Add the controller log."},
                            {"password": PASSWORD, "meaning": "approved"})
    assert resp.status_code == 200, resp.get_json()
    record = resp.get_json()
    assert record["status"] == "open"
    assert [(t["task"], t["assignee"]) for t in record["open_tasks"]] == [("investigate_deviation", "ivan")]
    assert record["data"]["comment"] == "Add the controller log."


@pytest.mark.urs("URS-REP-02")
@pytest.mark.urs("URS-INT-01")
def test_records_are_listed_and_searched_with_pages(api):
    olivia, quinn = api.login("olivia"), api.login("quinn")
    first = olivia.raise_deviation(title="Freezer alarm in warehouse")
    second = olivia.raise_deviation(title="Label mix-up at apheresis")
    third = olivia.raise_deviation(title="Third one")

    body = quinn.get("/records").get_json()
    assert body["total"] == 3 and body["page"] == 1 and body["per_page"] == 50
    assert [r["id"] for r in body["items"]] == [third["id"], second["id"], first["id"]]  # newest first
    assert set(body["items"][0]) >= {"id", "number", "process", "process_version", "status", "created_by",
                                     "created_at"}

    found = quinn.get("/records?q=LABEL").get_json()
    assert [r["number"] for r in found["items"]] == [second["number"]]
    assert quinn.get(f"/records?q={first['number']}").get_json()["items"][0]["id"] == first["id"]
    assert quinn.get("/records?process=deviation&status=open").get_json()["total"] == 3
    assert quinn.get("/records?status=closed").get_json() == {"items": [], "page": 1, "per_page": 50, "total": 0}
    assert quinn.get("/records?process=capa").get_json()["total"] == 0

    page2 = quinn.get("/records?per_page=2&page=2").get_json()
    assert page2["total"] == 3 and [r["id"] for r in page2["items"]] == [first["id"]]


@pytest.mark.urs("URS-PLT-07")
def test_each_record_shows_its_links_in_both_directions(api, loaded_runtime):
    from models import RecordLink

    olivia = api.login("olivia")
    first, second = olivia.raise_deviation(title="Source"), olivia.raise_deviation(title="Target")
    with loaded_runtime.db.unit_of_work(None) as session:  # no API creates links yet: the engine will
        session.add(RecordLink(source_id=first["id"], target_id=second["id"], kind="related"))
    out = olivia.record(first["id"])["links"]
    inc = olivia.record(second["id"])["links"]
    assert [(k["kind"], k["direction"], k["record"]) for k in out] == \
        [("related", "outgoing", {"id": second["id"], "number": second["number"], "process": "deviation"})]
    assert [(k["kind"], k["direction"], k["record"]["number"]) for k in inc] == \
        [("related", "incoming", first["number"])]
    _utc(out[0]["created_at"])


@pytest.mark.urs("URS-DEV-04")
@pytest.mark.urs("URS-PLT-07")
def test_investigation_that_needs_a_capa_raises_a_linked_capa_before_approval(api):
    olivia, quinn, ivan = api.login("olivia"), api.login("quinn"), api.login("ivan")
    deviation = olivia.raise_deviation()
    record = quinn.complete(open_task(quinn.record(deviation["id"]), "triage_deviation"), triage_data()).get_json()
    data = {k: v for k, v in INVESTIGATION.items() if k != "capa_rationale"} | {"capa_required": True}
    resp = ivan.complete(open_task(record, "investigate_deviation"), data)
    assert resp.status_code == 200, resp.get_json()
    record = resp.get_json()
    assert [t["task"] for t in record["open_tasks"]] == ["approve_investigation"]
    links = record["links"]
    assert [(k["kind"], k["direction"], k["record"]["process"]) for k in links] == [("raises", "outgoing", "capa")]
    capa = quinn.record(links[0]["record"]["id"])
    assert capa["number"] == links[0]["record"]["number"] and capa["process"] == "capa"
    assert [(k["kind"], k["direction"], k["record"]["number"]) for k in capa["links"]] == \
        [("raises", "incoming", deviation["number"])]
    assert quinn.get("/records?process=capa").get_json()["total"] == 1
