"""Two people completing the same task at the same moment: exactly one wins, the other gets a clean
Conflict, and the task, the record and the audit trail show one completion (URS-OPS-01)."""
from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select

from engine.exceptions import Conflict
from models import AuditEntry, Record, Task, TaskStatus, verify_chain
from tests.conftest import deviation_start_data
from tests.fixtures.cast import add_users

TRIAGE = {"classification": "minor", "investigator": "ivan", "rationale": "Short excursion."}


def race(calls):
    """Run the calls in threads released together by a barrier; return (results, errors) in call order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - every outcome is inspected by the test
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a completion hung"
    return results, errors


@pytest.mark.urs("URS-OPS-01")
def test_two_people_completing_the_same_task_at_once_give_one_success_and_one_conflict(loaded_runtime):
    rt = loaded_runtime
    cast = add_users(rt, {"olivia": ("Olivia Operator", ["Initiator"]), "quinn": ("Quinn QA", ["QA"]),
                          "quentin": ("Quentin QA", ["QA"]), "ivan": ("Ivan Investigator", ["Investigator"])})
    for round_ in range(3):
        _race_for_one_triage(rt, cast, reload_first=round_ == 2)


def _race_for_one_triage(rt, cast, reload_first: bool) -> None:
    record = rt.start_record(cast["olivia"], "deviation", deviation_start_data())
    with rt.db.sessionmaker() as s:
        (task,) = [t for t in rt.record_tasks(s, s.get(Record, record.id)) if t.bpmn_id == "triage_deviation"]
    if reload_first:
        rt.cache.clear()  # both threads load the workflow from the rows rather than one taking the cached object

    results, errors = race([
        lambda: rt.complete_task(task.id, cast["quinn"], {**TRIAGE, "rationale": "by quinn"}),
        lambda: rt.complete_task(task.id, cast["quentin"], {**TRIAGE, "rationale": "by quentin"}),
    ])

    winners = [i for i, r in enumerate(results) if r is not None]
    assert len(winners) == 1, errors
    loser = 1 - winners[0]
    assert isinstance(errors[loser], Conflict), repr(errors[loser])
    winner = ("quinn", "quentin")[winners[0]]
    with rt.db.sessionmaker() as s:
        stored_task = s.get(Task, task.id)
        assert stored_task.status == TaskStatus.COMPLETED
        assert stored_task.completed_by.username == winner
        stored = s.get(Record, record.id)
        assert stored.data["rationale"] == f"by {winner}"
        assert stored.version == results[winners[0]].version
        completions = s.scalars(select(AuditEntry).where(AuditEntry.action == "task_completed",
                                                         AuditEntry.entity_id == task.id)).all()
        assert [(c.username, c.new["rationale"]) for c in completions] == [(winner, f"by {winner}")]
        # The engine moved on once: one investigation, no duplicate.
        assert s.scalar(select(func.count()).select_from(Task).where(
            Task.record_id == record.id, Task.bpmn_id == "investigate_deviation")) == 1
        assert verify_chain(s)["ok"]
    # And the record goes on from the winner's state.
    with rt.db.sessionmaker() as s:
        (inv,) = [t for t in rt.open_tasks(s, cast["ivan"]) if t.record_id == record.id]
    rt.complete_task(inv.id, cast["ivan"], {"root_cause": "x", "product_impact": "y", "patient_impact": "z",
                                            "capa_required": True})


@pytest.mark.urs("URS-OPS-01")
def test_the_first_records_of_a_year_started_at_once_get_distinct_numbers(loaded_runtime):
    """The number counter of a new prefix and year does not exist yet: both starts create it at
    once. Neither fails on the unique constraint; they get 0001 and 0002. Each round is a new year
    (the runtime's clock moved on), so each round races on a counter that does not exist yet."""
    rt = loaded_runtime
    cast = add_users(rt, {"olivia": ("Olivia Operator", ["Initiator"]), "iris": ("Iris Initiator", ["Initiator"])})
    try:
        for round_ in range(1, 4):
            rt.clock.offset = dt.timedelta(days=370 * round_)
            year = rt.clock.now().year
            results, errors = race([lambda u=u: rt.start_record(cast[u], "deviation", deviation_start_data())
                                    for u in ("olivia", "iris")])
            assert errors == [None, None], errors
            assert sorted(r.number for r in results) == [f"DEV-{year}-0001", f"DEV-{year}-0002"]
    finally:
        rt.clock.offset = dt.timedelta(0)
