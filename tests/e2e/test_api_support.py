"""Fixtures and helpers shared by the REST API tests (tests/e2e/test_api_*.py).

Imported by the test modules (`from test_api_support import ...`); it holds no tests itself.
Everything goes through HTTP with Flask's test client against a real, migrated database.
"""
from __future__ import annotations

import pytest

from conftest import PASSWORD, deviation_start_data
from webapp import create_app

API = "/api/v1"


class Caller:
    """One signed-in API client: a test client plus its bearer token."""

    def __init__(self, client, username: str, token: str):
        self.client = client
        self.username = username
        self.token = token

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **kw):
        return self.client.get(API + path, headers=self.headers, **kw)

    def post(self, path: str, body=None, **kw):
        return self.client.post(API + path, json=body, headers=self.headers, **kw)

    def post_raw(self, path: str, data: bytes, content_type: str):
        return self.client.post(API + path, data=data, content_type=content_type, headers=self.headers)

    # ---- the deviation journey, step by step
    def raise_deviation(self, **overrides) -> dict:
        resp = self.post("/records", {"process": "deviation", "data": deviation_start_data(**overrides)})
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()

    def record(self, record_id: str) -> dict:
        resp = self.get(f"/records/{record_id}")
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()

    def complete(self, task_id: str, data: dict, signature: dict | None = None):
        body = {"data": data}
        if signature is not None:
            body["signature"] = signature
        return self.post(f"/tasks/{task_id}/complete", body)


class Api:
    """Hands out signed-in callers; `anonymous` is a client without a token."""

    def __init__(self, app):
        self.app = app
        self.anonymous = app.test_client()

    def token(self, username: str, password: str = PASSWORD, client=None):
        client = client or self.anonymous
        return client.post(f"{API}/tokens", json={"username": username, "password": password})

    def login(self, username: str, password: str = PASSWORD, client=None) -> Caller:
        client = client or self.app.test_client()
        resp = self.token(username, password, client)
        assert resp.status_code == 201, resp.get_json()
        return Caller(client, username, resp.get_json()["token"])


@pytest.fixture
def app(loaded_runtime):
    return create_app({"TESTING": True}, runtime=loaded_runtime)


@pytest.fixture
def api(app, users):
    return Api(app)


def open_task(record: dict, bpmn_id: str) -> str:
    """The id of the record's open task with this BPMN id."""
    ids = [t["id"] for t in record["open_tasks"] if t["task"] == bpmn_id]
    assert len(ids) == 1, f"expected one open {bpmn_id}, got {record['open_tasks']}"
    return ids[0]


def triage_data(investigator: str = "ivan", classification: str = "minor") -> dict:
    return {"classification": classification, "investigator": investigator,
            "rationale": "Short excursion, product within specification per data review."}


INVESTIGATION = {
    "root_cause": "Door seal of INC-04 worn; temperature controller overshoot after door openings.",
    "product_impact": "Viability 94 % at harvest, within specification; no impact on identity or potency.",
    "patient_impact": "None: infusion on schedule.",
    "capa_required": False,
    "capa_rationale": "Isolated event; the worn seal was replaced the same day.",
}


def raise_and_reach_approval(api: Api, initiator: str = "olivia", investigator: str = "ivan") -> tuple[dict, str]:
    """Raise a deviation, triage it (quinn) and investigate it; return (record, approval task id)."""
    starter = api.login(initiator)
    record = starter.raise_deviation()
    quinn = api.login("quinn")
    resp = quinn.complete(open_task(quinn.record(record["id"]), "triage_deviation"), triage_data(investigator))
    assert resp.status_code == 200, resp.get_json()
    inv = api.login(investigator)
    resp = inv.complete(open_task(resp.get_json(), "investigate_deviation"), INVESTIGATION)
    assert resp.status_code == 200, resp.get_json()
    after = resp.get_json()
    return after, open_task(after, "approve_investigation")


def assert_error(resp, status: int, code: str | None = None) -> dict:
    """The response is the API's error shape with this status (and code); returns the error object."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:500])
    assert resp.mimetype == "application/json", resp.mimetype
    body = resp.get_json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"code", "message", "details"}
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["details"], dict)
    if code is not None:
        assert err["code"] == code, err
    return err
