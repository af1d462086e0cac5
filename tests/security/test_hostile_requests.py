"""Requests a person should not be able to make: internal field names, tasks of other roles or of
other people, tasks that do not exist. Each is refused with its reason and changes nothing."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from engine.exceptions import Forbidden, NotFound, ValidationFailed
from models import AuditEntry, Record, Task, TaskStatus
from tests.conftest import PASSWORD, deviation_start_data
from tests.fixtures.cast import add_users

TRIAGE = {"classification": "minor", "investigator": "ivan", "rationale": "Short excursion."}
INVESTIGATION = {"root_cause": "x", "product_impact": "y", "patient_impact": "z", "capa_required": True}


@pytest.fixture
def cast(loaded_runtime):
    return add_users(loaded_runtime)


def task_of(rt, record_id, bpmn_id) -> Task:
    with rt.db.sessionmaker() as s:
        (task,) = [t for t in rt.record_tasks(s, s.get(Record, record_id))
                   if t.bpmn_id == bpmn_id and t.status == TaskStatus.OPEN]
        return task


def unchanged(rt, record_id):
    with rt.db.sessionmaker() as s:
        record = s.get(Record, record_id)
        return (record.version, dict(record.data),
                sorted((t.bpmn_id, t.status) for t in rt.record_tasks(s, record)),
                s.scalar(select(func.count()).select_from(AuditEntry)))


@pytest.mark.urs("URS-PLT-04")
@pytest.mark.urs("URS-PLT-03")
def test_form_data_with_a_field_name_starting_with_an_underscore_is_rejected(loaded_runtime, cast):
    rt = loaded_runtime
    record = rt.start_record(cast["olivia"], "deviation", deviation_start_data())
    before = unchanged(rt, record.id)
    for key in ("_private", "__class__", "__builtins__", "_"):
        with pytest.raises(ValidationFailed) as refused:
            rt.start_record(cast["olivia"], "deviation", {**deviation_start_data(), key: "x"})
        assert refused.value.errors[0]["path"] == key
        with pytest.raises(ValidationFailed) as refused:
            rt.complete_task(task_of(rt, record.id, "triage_deviation").id, cast["quinn"], {**TRIAGE, key: 1})
        assert "may not start with '_'" in refused.value.message, key
        assert unchanged(rt, record.id) == before, key


@pytest.mark.urs("URS-PLT-03")
def test_form_data_that_fails_its_schema_is_rejected_before_the_engine_moves(loaded_runtime, cast):
    rt = loaded_runtime
    record = rt.start_record(cast["olivia"], "deviation", deviation_start_data())
    before = unchanged(rt, record.id)
    with pytest.raises(ValidationFailed) as refused:
        rt.complete_task(task_of(rt, record.id, "triage_deviation").id, cast["quinn"],
                         {"classification": "catastrophic", "investigator": "ivan", "extra": 1})
    assert {e["path"] for e in refused.value.errors} == {"classification", "rationale", ""}
    assert unchanged(rt, record.id) == before


@pytest.mark.urs("URS-PLT-02")
@pytest.mark.urs("URS-SEC-02")
def test_a_user_outside_the_tasks_role_is_refused_with_not_in_role(loaded_runtime, cast):
    rt = loaded_runtime
    record = rt.start_record(cast["olivia"], "deviation", deviation_start_data())
    before = unchanged(rt, record.id)
    for outsider in ("olivia", "ivan", "hannah"):
        with pytest.raises(Forbidden) as refused:
            rt.complete_task(task_of(rt, record.id, "triage_deviation").id, cast[outsider], TRIAGE)
        assert refused.value.code == "not_in_role"
        assert "QA" in refused.value.message
    assert unchanged(rt, record.id) == before


@pytest.mark.urs("URS-SEC-02")
def test_starting_a_process_needs_the_role_of_its_start_lane(loaded_runtime, cast):
    rt = loaded_runtime
    with pytest.raises(Forbidden) as refused:
        rt.start_record(cast["quinn"], "deviation", deviation_start_data())
    assert refused.value.code == "not_in_role"
    with rt.db.sessionmaker() as s:
        assert s.scalar(select(func.count()).select_from(Record)) == 0


@pytest.mark.urs("URS-PLT-02")
def test_a_task_assigned_to_one_investigator_is_refused_to_another(loaded_runtime, cast):
    rt = loaded_runtime
    record = rt.start_record(cast["olivia"], "deviation", deviation_start_data())
    rt.complete_task(task_of(rt, record.id, "triage_deviation").id, cast["quinn"], TRIAGE)
    before = unchanged(rt, record.id)
    with pytest.raises(Forbidden) as refused:
        rt.complete_task(task_of(rt, record.id, "investigate_deviation").id, cast["iris"], INVESTIGATION)
    assert refused.value.code == "not_assigned"
    assert unchanged(rt, record.id) == before
    with rt.db.sessionmaker() as s:
        assert [t.bpmn_id for t in rt.open_tasks(s, cast["iris"])] == []


@pytest.mark.urs("URS-SEC-03")
def test_the_person_who_raised_a_deviation_cannot_approve_its_investigation(loaded_runtime, cast):
    rt = loaded_runtime
    record = rt.start_record(cast["max"], "deviation", deviation_start_data())  # Max holds Initiator and QA
    rt.complete_task(task_of(rt, record.id, "triage_deviation").id, cast["quinn"], TRIAGE)
    rt.complete_task(task_of(rt, record.id, "investigate_deviation").id, cast["ivan"], INVESTIGATION)
    before = unchanged(rt, record.id)
    approval = task_of(rt, record.id, "approve_investigation")
    with pytest.raises(Forbidden) as refused:
        rt.complete_task(approval.id, cast["max"], {"decision": "approve"},
                         {"password": PASSWORD, "meaning": "approved"})
    assert refused.value.code == "segregation_of_duties"
    assert "raised it" in refused.value.message
    assert unchanged(rt, record.id) == before
    with rt.db.sessionmaker() as s:
        assert approval.id not in [t.id for t in rt.open_tasks(s, cast["max"])]


def test_an_unknown_task_or_process_is_not_found(loaded_runtime, cast):
    for task_id in (str(uuid.uuid4()), "../../etc/passwd", "' OR 1=1 --", ""):
        with pytest.raises(NotFound):
            loaded_runtime.complete_task(task_id, cast["quinn"], TRIAGE)
    with pytest.raises(NotFound):
        loaded_runtime.start_record(cast["olivia"], "no_such_process", deviation_start_data())
