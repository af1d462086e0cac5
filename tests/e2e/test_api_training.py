"""Training gating through the REST API (URS-TRN-03, URS-INT-01): a task that requires SOP-QA-001
answers 403 `not_qualified` with `details.missing` to an untrained caller; the caller signs the
"read and understood" through the same API and may then complete it; a new effective version
makes them unqualified again (URS-TRN-01). Flask's test client on a real, migrated database.
"""
# ruff: noqa: F811  (the `rt` fixture imported from the training helpers is a parameter of the tests)
from __future__ import annotations

import pytest

from engine import training
from tests.conftest import PASSWORD
from tests.fixtures.training_gate.helpers import (
    GATED_CODE,
    add_document,
    cast,
    make_effective,
    rt,  # noqa: F401  (a fixture)
    )
from webapp import create_app

API = "/api/v1"


@pytest.fixture
def client(rt):
    cast(rt)
    add_document(rt)
    training.require_training(rt, None, "Operator", GATED_CODE, "document", "Aseptic gowning", 14)
    return create_app({"TESTING": True}, runtime=rt).test_client()


def bearer(client, username: str) -> dict:
    resp = client.post(f"{API}/tokens", json={"username": username, "password": PASSWORD})
    assert resp.status_code == 201, resp.get_json()
    return {"Authorization": f"Bearer {resp.get_json()['token']}"}


def start_gated(client, headers) -> dict:
    resp = client.post(f"{API}/records", json={"process": "gated_step", "data": {"title": "Fill bag COI-0042"}},
                       headers=headers)
    assert resp.status_code == 201, resp.get_json()
    record = client.get(f"{API}/records/{resp.get_json()['id']}", headers=headers).get_json()
    (task,) = [t for t in record["open_tasks"] if t["task"] == "perform_step"]
    return task


def acknowledge_via_api(client, headers) -> dict:
    """The trainee finds their read-and-understood task in GET /tasks and signs it."""
    (task,) = [t for t in client.get(f"{API}/tasks", headers=headers).get_json()
               if t["task"] == training.ACKNOWLEDGE_TASK]
    assert task["signature_required"] is True and task["due_at"]
    detail = client.get(f"{API}/tasks/{task['id']}", headers=headers).get_json()
    assert detail["signature_meaning"] == "acknowledged" and detail["can_complete"] is True
    resp = client.post(f"{API}/tasks/{task['id']}/complete", headers=headers, json={
        "data": {"read_and_understood": True},
        "signature": {"password": PASSWORD, "meaning": "acknowledged"}})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


@pytest.mark.urs("URS-TRN-03")
@pytest.mark.urs("URS-INT-01")
def test_an_untrained_caller_gets_403_not_qualified_with_the_missing_training(client):
    olga = bearer(client, "olga")
    task = start_gated(client, olga)

    resp = client.post(f"{API}/tasks/{task['id']}/complete", headers=olga, json={"data": {"result": "Sealed"}})
    assert resp.status_code == 403
    error = resp.get_json()["error"]
    assert error["code"] == "not_qualified"
    assert error["details"]["missing"] == [{"code": GATED_CODE, "title": "Aseptic gowning", "reason": "not trained"}]
    assert GATED_CODE in error["message"]
    # GET /tasks/{id} says why not; the caller's inbox does not offer the task.
    detail = client.get(f"{API}/tasks/{task['id']}", headers=olga).get_json()
    assert detail["can_complete"] is False and detail["why_not"]["code"] == "not_qualified"
    assert task["id"] not in {t["id"] for t in client.get(f"{API}/tasks", headers=olga).get_json()}


@pytest.mark.urs("URS-TRN-03")
@pytest.mark.urs("URS-TRN-01")
@pytest.mark.urs("URS-TRN-02")
def test_after_signing_read_and_understood_the_caller_completes_the_step_until_a_new_version(client, rt):
    olga = bearer(client, "olga")
    make_effective(rt, major=1)
    first = start_gated(client, olga)
    second = start_gated(client, olga)

    ack = acknowledge_via_api(client, olga)
    assert ack["status"] == "closed" and ack["data"]["training_completion"]["credited"] is True
    assert [(s["meaning"], s["signer"], s["valid"]) for s in ack["signatures"]] == [("acknowledged", "olga", True)]

    done = client.post(f"{API}/tasks/{first['id']}/complete", headers=olga, json={"data": {"result": "Sealed"}})
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["status"] == "closed"

    make_effective(rt, major=2)
    refused = client.post(f"{API}/tasks/{second['id']}/complete", headers=olga, json={"data": {"result": "Sealed"}})
    assert refused.status_code == 403
    error = refused.get_json()["error"]
    assert error["code"] == "not_qualified"
    assert error["details"]["missing"] == [{"code": GATED_CODE, "title": "Aseptic gowning",
                                            "reason": "not trained on the effective version 2.0"}]

    acknowledge_via_api(client, olga)
    again = client.post(f"{API}/tasks/{second['id']}/complete", headers=olga, json={"data": {"result": "Sealed"}})
    assert again.status_code == 200, again.get_json()
