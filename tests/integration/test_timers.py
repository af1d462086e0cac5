"""Timers fire without a person present, also after a restart (URS-PLT-05): an overdue
investigation escalates to the QA head by itself (URS-DEV-05), and several timer workers on
PostgreSQL fire each due timer exactly once.

SpiffWorkflow decides whether a timer is due by the real clock, while the runtime's clock may be
shifted to act in the past. To make a timer that is *not yet* due when it is set and due a moment
later, triage is done 30 days minus a few seconds in the past: the minor class gives 30 days, so
the investigation falls due a few seconds from now (real time).
"""
from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import func, select

from engine.runtime import Runtime
from models import AuditEntry, Record, Task, TaskStatus, TimerJob
from tests.conftest import IS_POSTGRES, deviation_start_data
from tests.fixtures.cast import add_users

TRIAGE = {"classification": "minor", "investigator": "ivan", "rationale": "Short excursion."}


def triage_in_the_past(rt, cast, record_id, offset: dt.timedelta) -> None:
    with rt.db.sessionmaker() as s:
        (task,) = [t for t in rt.open_tasks(s, cast["quinn"]) if t.record_id == record_id]
    rt.clock.offset = offset
    try:
        rt.complete_task(task.id, cast["quinn"], TRIAGE)
    finally:
        rt.clock.offset = dt.timedelta(0)


def raise_deviation_due_soon(rt, cast, seconds: int = 2) -> str:
    """A minor deviation whose investigation falls due `seconds` from now (see the module docstring)."""
    record = rt.start_record(cast["olivia"], "deviation", deviation_start_data())
    triage_in_the_past(rt, cast, record.id, -dt.timedelta(days=30) + dt.timedelta(seconds=seconds))
    return record.id


def open_tasks(rt, record_id) -> dict[str, Task]:
    with rt.db.sessionmaker() as s:
        return {t.bpmn_id: t for t in rt.record_tasks(s, s.get(Record, record_id)) if t.status == TaskStatus.OPEN}


def wait_until_due(rt) -> None:
    with rt.db.sessionmaker() as s:
        latest = s.scalar(select(func.max(TimerJob.due_at)).where(TimerJob.fired_at.is_(None)))
    pause = (latest - dt.datetime.now(dt.timezone.utc)).total_seconds() + 0.05
    assert 0 < pause < 5, "the timer should fall due a few seconds from now"
    time.sleep(pause)


def timer_fired_entries(rt) -> list[AuditEntry]:
    with rt.db.sessionmaker() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == "timer_fired")))


@pytest.mark.urs("URS-PLT-05")
@pytest.mark.urs("URS-DEV-05")
def test_an_overdue_investigation_escalates_through_the_timer_worker_after_a_restart(loaded_runtime, settings):
    rt = loaded_runtime
    cast = add_users(rt)
    record_id = raise_deviation_due_soon(rt, cast)

    tasks = open_tasks(rt, record_id)
    assert set(tasks) == {"investigate_deviation"}
    with rt.db.sessionmaker() as s:
        (job,) = s.scalars(select(TimerJob).where(TimerJob.record_id == record_id)).all()
        assert job.fired_at is None and job.event_name == "Investigation overdue"
        assert job.due_at == tasks["investigate_deviation"].due_at
    assert rt.fire_due_timers() == 0, "nothing is due yet"

    rt.db.dispose()  # the process that set the timer goes away
    wait_until_due(rt)
    restarted = Runtime(settings)  # a brand-new runtime: empty caches, specs read from the database
    try:
        assert restarted.fire_due_timers() == 1
        tasks = open_tasks(restarted, record_id)
        # Non-interrupting: the investigation stays open with Ivan, the QA head gets the escalation.
        assert set(tasks) == {"investigate_deviation", "escalate_overdue_investigation"}
        assert tasks["escalate_overdue_investigation"].role == "QA Head"
        with restarted.db.sessionmaker() as s:
            inbox = [t.bpmn_id for t in restarted.open_tasks(s, cast["hannah"]) if t.record_id == record_id]
            assert inbox == ["escalate_overdue_investigation"]
            assert s.get(TimerJob, job.id).fired_at is not None
        (fired,) = timer_fired_entries(restarted)
        assert (fired.record_id, fired.username, fired.field) == (record_id, "system", "Investigation overdue")
        assert restarted.fire_due_timers() == 0, "a timer fires once"
        # The escalation is handled and the investigation goes on.
        restarted.complete_task(tasks["escalate_overdue_investigation"].id, cast["hannah"],
                                {"escalation_action": "Agreed a new date with Ivan."})
        assert set(open_tasks(restarted, record_id)) == {"investigate_deviation"}
    finally:
        restarted.db.dispose()


@pytest.mark.urs("URS-DEV-05")
def test_a_triage_acted_31_days_in_the_past_leaves_the_investigation_overdue_and_escalated(loaded_runtime):
    rt = loaded_runtime
    cast = add_users(rt)
    record = rt.start_record(cast["olivia"], "deviation", deviation_start_data())
    triage_in_the_past(rt, cast, record.id, -dt.timedelta(days=31))
    assert rt.clock.offset == dt.timedelta(0)

    rt.fire_due_timers()
    with rt.db.sessionmaker() as s:
        due = dt.datetime.fromisoformat(s.get(Record, record.id).data["investigation_due_at"])
        assert due < dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=23)
        escalations = [t for t in rt.record_tasks(s, s.get(Record, record.id))
                       if t.bpmn_id == "escalate_overdue_investigation"]
        assert [t.status for t in escalations] == [TaskStatus.OPEN]
        assert [t.bpmn_id for t in rt.open_tasks(s, cast["hannah"])] == ["escalate_overdue_investigation"]
    # Already overdue when it was set, the timer fired at once, in the triage's own transaction;
    # the worker has nothing left to do and does not escalate twice.
    assert rt.fire_due_timers() == 0
    assert set(open_tasks(rt, record.id)) == {"investigate_deviation", "escalate_overdue_investigation"}


@pytest.mark.urs("URS-PLT-05")
def test_a_timer_of_a_record_closed_before_it_fell_due_escalates_nothing(loaded_runtime):
    rt = loaded_runtime
    cast = add_users(rt)
    record_id = raise_deviation_due_soon(rt, cast, seconds=3)
    tasks = open_tasks(rt, record_id)
    rt.complete_task(tasks["investigate_deviation"].id, cast["ivan"],
                     {"root_cause": "x", "product_impact": "y", "patient_impact": "z", "capa_required": True})
    with rt.db.sessionmaker() as s:
        assert s.scalar(select(func.count()).select_from(TimerJob).where(TimerJob.fired_at.is_(None))) == 0
    assert rt.fire_due_timers() == 0
    assert set(open_tasks(rt, record_id)) == {"approve_investigation"}
    assert timer_fired_entries(rt) == []


@pytest.mark.urs("URS-PLT-05")
@pytest.mark.urs("URS-OPS-01")
@pytest.mark.skipif(not IS_POSTGRES, reason="several timer workers run against PostgreSQL only (SKIP LOCKED)")
def test_two_timer_workers_firing_at_once_fire_each_due_timer_exactly_once(loaded_runtime, settings):
    rt = loaded_runtime
    cast = add_users(rt)
    record_ids = [raise_deviation_due_soon(rt, cast, seconds=3) for _ in range(6)]
    wait_until_due(rt)

    workers = [Runtime(settings), Runtime(settings)]
    barrier = threading.Barrier(len(workers))
    fired = [0] * len(workers)
    errors = []

    def work(i):
        barrier.wait()
        try:
            fired[i] = workers[i].fire_due_timers()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(workers))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for w in workers:
            w.db.dispose()

    assert errors == []
    assert sum(fired) == 6, fired
    entries = timer_fired_entries(rt)
    assert sorted(e.record_id for e in entries) == sorted(record_ids)
    for record_id in record_ids:
        assert set(open_tasks(rt, record_id)) == {"investigate_deviation", "escalate_overdue_investigation"}
    with rt.db.sessionmaker() as s:
        assert s.scalar(select(func.count()).select_from(Task).where(
            Task.bpmn_id == "escalate_overdue_investigation")) == 6
        assert s.scalar(select(func.count()).select_from(TimerJob).where(TimerJob.fired_at.is_(None))) == 0
