"""The audit trail: every change of a record is in it with old and new value (URS-AUD-01); it cannot
be changed through the system, the database refuses plain changes, and tampering by someone who
bypasses that is detected at the entry concerned (URS-AUD-02)."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from models import AuditEntry, AuditHead, Record, Task, verify_chain
from tests.conftest import IS_POSTGRES, PASSWORD, Dba, deviation_start_data
from tests.fixtures.cast import add_users

TRIAGE = {"classification": "minor", "investigator": "ivan", "rationale": "Short excursion."}
INVESTIGATION = {"root_cause": "Door seal worn.", "product_impact": "None.", "patient_impact": "None.",
                 "capa_required": True}
APPROVE = {"decision": "approve"}


def complete(rt, user, record_id, bpmn_id, data, signature=None):
    with rt.db.sessionmaker() as s:
        (task,) = [t for t in rt.open_tasks(s, user) if t.record_id == record_id and t.bpmn_id == bpmn_id]
    return rt.complete_task(task.id, user, data, signature)


@pytest.fixture
def journey(loaded_runtime):
    """A closed minor deviation: (runtime, cast, record id)."""
    rt = loaded_runtime
    cast = add_users(rt)
    record = rt.start_record(cast["olivia"], "deviation", deviation_start_data())
    complete(rt, cast["quinn"], record.id, "triage_deviation", TRIAGE)
    complete(rt, cast["ivan"], record.id, "investigate_deviation", INVESTIGATION)
    complete(rt, cast["quentin"], record.id, "approve_investigation", APPROVE,
             {"password": PASSWORD, "meaning": "approved"})
    return rt, cast, record.id


def verify(rt) -> dict:
    with rt.db.sessionmaker() as s:
        return verify_chain(s)


def entry_seq(rt, **where) -> int:
    with rt.db.sessionmaker() as s:
        stmt = select(AuditEntry.seq)
        for column, value in where.items():
            stmt = stmt.where(getattr(AuditEntry, column) == value)
        return s.scalar(stmt.order_by(AuditEntry.seq).limit(1))


def _set_new(conn, seq: int, value) -> None:
    cast = "CAST(:v AS json)" if IS_POSTGRES else ":v"
    conn.execute(text(f"UPDATE audit_entries SET new = {cast} WHERE seq = :seq"), {"v": json.dumps(value), "seq": seq})


@pytest.mark.urs("URS-AUD-02")
def test_the_audit_chain_verifies_after_a_deviation_journey(journey):
    rt, _cast, _record_id = journey
    result = verify(rt)
    assert result["ok"], result
    with rt.db.sessionmaker() as s:
        head = s.get(AuditHead, 1)
        assert result["entries"] == head.seq == s.scalar(select(func.count()).select_from(AuditEntry))
        assert result["head"] == head.hash


@pytest.mark.urs("URS-AUD-02")
def test_changing_an_entry_in_the_database_is_detected_at_that_entry(journey, db_url):
    rt, _cast, record_id = journey
    seq = entry_seq(rt, action="task_completed", field="triage_deviation")
    with Dba(db_url) as conn:
        _set_new(conn, seq, {**TRIAGE, "classification": "critical"})
    with rt.db.sessionmaker() as s:
        assert s.get(AuditEntry, seq).new["classification"] == "critical"  # the tampering really happened
    result = verify(rt)
    assert (result["ok"], result["first_bad_seq"], result["problem"]) == (
        False, seq, "content does not match its hash")
    assert result["entries"] == seq - 1


@pytest.mark.urs("URS-AUD-02")
def test_rewriting_an_entry_together_with_its_own_hash_breaks_the_link_of_the_next_entry(journey, db_url):
    rt, _cast, _record_id = journey
    seq = entry_seq(rt, action="task_completed", field="investigate_deviation")
    with rt.db.sessionmaker() as s:
        forged = s.get(AuditEntry, seq)
        forged.new = {**forged.new, "root_cause": "Operator error."}
        forged_hash = forged.compute_hash()
        s.rollback()
    with Dba(db_url) as conn:
        _set_new(conn, seq, {**INVESTIGATION, "root_cause": "Operator error."})
        conn.execute(text("UPDATE audit_entries SET hash = :h WHERE seq = :seq"), {"h": forged_hash, "seq": seq})
    result = verify(rt)
    assert (result["ok"], result["first_bad_seq"], result["problem"]) == (
        False, seq + 1, "link to the previous entry is broken")


@pytest.mark.urs("URS-AUD-02")
def test_deleting_an_entry_in_the_database_is_detected(journey, db_url):
    rt, _cast, _record_id = journey
    seq = entry_seq(rt, action="task_completed", field="approve_investigation")
    with Dba(db_url) as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE seq = :seq"), {"seq": seq})
    result = verify(rt)
    assert (result["ok"], result["first_bad_seq"], result["problem"]) == (False, seq, f"entry {seq} is missing")


@pytest.mark.urs("URS-AUD-02")
def test_deleting_the_latest_entries_in_the_database_is_detected(journey, db_url):
    rt, _cast, _record_id = journey
    with rt.db.sessionmaker() as s:
        last = s.get(AuditHead, 1).seq
    with Dba(db_url) as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE seq > :seq"), {"seq": last - 3})
    result = verify(rt)
    assert (result["ok"], result["first_bad_seq"], result["problem"]) == (
        False, last - 2, "entries after the last one are missing")


@pytest.mark.urs("URS-AUD-02")
def test_the_application_cannot_change_or_delete_an_audit_entry(journey):
    rt, _cast, _record_id = journey
    seq = entry_seq(rt, action="task_completed")
    with pytest.raises(PermissionError, match="append-only"), rt.db.unit_of_work(None) as s:
        s.get(AuditEntry, seq).new = {"forged": True}
    with pytest.raises(PermissionError, match="never deleted"), rt.db.unit_of_work(None) as s:
        s.delete(s.get(AuditEntry, seq))
    result = verify(rt)
    assert result["ok"], result
    with rt.db.sessionmaker() as s:
        assert s.get(AuditEntry, seq).new != {"forged": True}


@pytest.mark.urs("URS-AUD-02")
@pytest.mark.parametrize("statement", ["update", "delete"])
def test_the_database_refuses_a_plain_update_or_delete_of_the_audit_trail(journey, statement):
    rt, _cast, _record_id = journey
    seq = entry_seq(rt, action="task_completed")
    stmt = (update(AuditEntry).where(AuditEntry.seq == seq).values(reason="tidied up")
            if statement == "update" else delete(AuditEntry).where(AuditEntry.seq == seq))
    with pytest.raises(DBAPIError, match="append-only"), rt.db.engine.begin() as conn:
        conn.execute(stmt)
    assert verify(rt)["ok"]


@pytest.mark.urs("URS-AUD-02")
@pytest.mark.skipif(not IS_POSTGRES, reason="TRUNCATE exists only on PostgreSQL")
def test_postgresql_refuses_truncating_the_audit_trail(journey):
    rt, _cast, _record_id = journey
    with pytest.raises(DBAPIError, match="append-only"), rt.db.engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE audit_entries")
    assert verify(rt)["ok"]


@pytest.mark.urs("URS-AUD-01")
def test_every_change_of_the_record_and_its_tasks_is_in_the_trail_with_old_and_new_value(journey):
    rt, cast, record_id = journey
    with rt.db.sessionmaker() as s:
        trail = s.scalars(select(AuditEntry).where(AuditEntry.record_id == record_id).order_by(AuditEntry.seq)).all()
        record = s.get(Record, record_id)
        tasks = {t.id: t for t in s.scalars(select(Task).where(Task.record_id == record_id))}

    assert all(e.at.tzinfo is not None and e.at.utcoffset() == dt.timedelta(0) for e in trail)
    assert all(e.username for e in trail)

    created = [e for e in trail if e.action == "create" and e.entity == "records"]
    assert len(created) == 1
    assert created[0].username == "olivia"
    assert created[0].new["status"] == "open" and created[0].new["title"] == deviation_start_data()["title"]
    assert created[0].new["data"]["batch_ref"] == deviation_start_data()["batch_ref"]

    record_updates = {(e.field, json.dumps(e.old), json.dumps(e.new)): e.username
                      for e in trail if e.action == "update" and e.entity == "records"}
    assert record_updates[("status", '"open"', '"closed"')] == "quentin"
    for actor, submitted in (("quinn", TRIAGE), ("ivan", INVESTIGATION), ("quentin", APPROVE)):
        for key, value in submitted.items():
            assert record_updates.get((f"data.{key}", "null", json.dumps(value))) == actor, key
    # The due date the diagram computed is a change too, made in the triage's unit of work.
    assert record_updates[("data.investigation_due_at", "null", json.dumps(record.data["investigation_due_at"]))] \
        == "quinn"

    # Each task: created open, then completed by its person (old and new status).
    for task in tasks.values():
        changes = [e for e in trail if e.entity == "tasks" and e.entity_id == task.id]
        assert changes[0].action == "create" and changes[0].new["status"] == "open"
        status = [(e.old, e.new, e.username) for e in changes if e.field == "status"]
        assert status == [("open", "completed", task.completed_by.username)]
        assert any(e.field == "completed_by_id" and e.old is None and e.new == task.completed_by_id for e in changes)
        assert any(e.action == "task_completed" and e.new == task.submitted_data for e in changes)
    assert len(tasks) == 3

    # Every change of the record's audited columns between creation and now is accounted for:
    # replaying the trail's data changes over the created data gives the stored data.
    replayed = dict(created[0].new["data"])
    for e in trail:
        if e.action == "update" and e.entity == "records" and e.field.startswith("data."):
            key = e.field[len("data."):]
            assert replayed.get(key) == e.old, key
            replayed[key] = e.new
    assert {k: v for k, v in replayed.items() if v is not None} == record.data
