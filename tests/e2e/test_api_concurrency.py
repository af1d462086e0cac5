"""Two people completing the same task at the same moment: exactly one wins (URS-OPS-01)."""
# ruff: noqa: F811  (pytest fixtures imported from test_api_support are parameters of the tests)
from __future__ import annotations

import threading

import pytest
from test_api_support import api, app, assert_error, open_task, triage_data  # noqa: F401  fixtures


@pytest.mark.urs("URS-OPS-01")
def test_two_simultaneous_completions_give_one_success_and_one_conflict(api):
    olivia = api.login("olivia")
    rid = olivia.raise_deviation()["id"]
    # Two QA people, each with their own HTTP client (as two browsers or two LIMS workers would be).
    quinn, quentin = api.login("quinn"), api.login("quentin")
    triage_id = open_task(quinn.record(rid), "triage_deviation")
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def complete(caller, investigator):
        barrier.wait(timeout=30)
        results[caller.username] = caller.complete(triage_id, triage_data(investigator))

    threads = [threading.Thread(target=complete, args=(quinn, "ivan")),
               threading.Thread(target=complete, args=(quentin, "iris"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)

    statuses = sorted(r.status_code for r in results.values())
    assert statuses == [200, 409], {k: (r.status_code, r.get_json()) for k, r in results.items()}
    winner = next(name for name, r in results.items() if r.status_code == 200)
    loser = next(r for r in results.values() if r.status_code == 409)
    assert_error(loser, 409, "conflict")

    # The record shows one completion, by the winner, and exactly one investigation for the winner's choice.
    record = olivia.record(rid)
    triages = [t for t in record["tasks"] if t["task"] == "triage_deviation"]
    assert [(t["status"], t["completed_by"]) for t in triages] == [("completed", winner)]
    expected = "ivan" if winner == "quinn" else "iris"
    assert [(t["task"], t["assignee"]) for t in record["open_tasks"]] == [("investigate_deviation", expected)]
    completions = [e for e in quinn.get(f"/records/{rid}/audit").get_json() if e["action"] == "task_completed"]
    assert [(e["user"], e["field"]) for e in completions] == [(winner, "triage_deviation")]
    assert quinn.get("/audit/verify").get_json()["ok"] is True
