"""Corrections after submission: a reason is required, old and new values and the reason are audited,
signatures over the changed data read as invalidated, and the running process keeps the correction."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from models import AuditEntry, Record, Task, TaskStatus
from tests.conftest import PASSWORD
from tests.e2e.conftest import investigate, open_task, raise_deviation, triage

INVESTIGATION = {"root_cause": "Door seal worn", "product_impact": "None: viability 94 %",
                 "patient_impact": "None", "capa_rationale": "Seal replaced; isolated event."}


def completed_task(rt, record, bpmn_id):
    with rt.db.sessionmaker() as s:
        return s.scalars(select(Task).where(Task.record_id == record.id, Task.bpmn_id == bpmn_id,
                                            Task.status == TaskStatus.COMPLETED)).first()


@pytest.mark.urs("URS-AUD-01")
@pytest.mark.urs("URS-SIG-03")
def test_qa_corrects_a_completed_step_with_a_reason_and_the_signature_reads_invalidated(as_user, closed,
                                                                                        loaded_runtime):
    rt = loaded_runtime
    task = completed_task(rt, closed, "investigate_deviation")
    c = as_user("quinn")
    page = c.get(f"/records/{closed.number}")
    assert f'href="/records/{closed.number}/correct/{task.id}"' in page.get_data(as_text=True)
    form = c.get(f"/records/{closed.number}/correct/{task.id}").get_data(as_text=True)
    assert ">Door seal worn</textarea>" in form and "Reason for the change" in form
    resp = c.post(f"/records/{closed.number}/correct/{task.id}", data={
        **INVESTIGATION, "root_cause": "Door seal worn and gasket cracked",
        "reason": "Transcription error: the engineering report names both parts."})
    assert resp.status_code == 302
    with rt.db.sessionmaker() as s:
        record = s.get(Record, closed.id)
        assert record.data["root_cause"] == "Door seal worn and gasket cracked"
        assert s.get(Task, task.id).submitted_data["root_cause"] == "Door seal worn and gasket cracked"
        entries = s.scalars(select(AuditEntry).where(AuditEntry.record_id == closed.id,
                                                     AuditEntry.field.like("%root_cause"),
                                                     AuditEntry.seq > 0).order_by(AuditEntry.seq)).all()
        corrected = [e for e in entries if e.reason and "Transcription error" in e.reason]
        assert {e.action for e in corrected} == {"data_corrected", "update"}
        assert all(e.old == "Door seal worn" and e.new == "Door seal worn and gasket cracked" for e in corrected)
        assert all(e.username == "quinn" for e in corrected)
        assert [ok for _sig, ok in rt.signatures(s, record)] == [False]
    html = c.get(f"/records/{closed.number}").get_data(as_text=True)
    assert "Invalidated: the signed data changed" in html
    assert "Transcription error: the engineering report names both parts." in html  # in the audit trail


@pytest.mark.urs("URS-AUD-01")
def test_a_correction_needs_a_reason_and_a_change_and_keeps_what_was_typed(as_user, closed, loaded_runtime):
    task = completed_task(loaded_runtime, closed, "investigate_deviation")
    c = as_user("quinn")
    resp = c.post(f"/records/{closed.number}/correct/{task.id}",
                  data={**INVESTIGATION, "root_cause": "Something else", "reason": ""})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert "Give the reason for the change" in html and ">Something else</textarea>" in html
    resp = c.post(f"/records/{closed.number}/correct/{task.id}", data={**INVESTIGATION, "reason": "No change"})
    assert resp.status_code == 400 and "Nothing was changed" in resp.get_data(as_text=True)
    resp = c.post(f"/records/{closed.number}/correct/{task.id}",
                  data={**INVESTIGATION, "root_cause": "", "reason": "Remove it entirely please"})
    assert resp.status_code == 400 and "This field is required." in resp.get_data(as_text=True)
    with loaded_runtime.db.sessionmaker() as s:
        assert s.get(Record, closed.id).data["root_cause"] == "Door seal worn"


@pytest.mark.urs("URS-SEC-02")
def test_only_the_correcting_roles_may_correct(as_user, closed, loaded_runtime):
    task = completed_task(loaded_runtime, closed, "investigate_deviation")
    c = as_user("ivan")
    assert "Correct data" not in c.get(f"/records/{closed.number}").get_data(as_text=True)
    resp = c.post(f"/records/{closed.number}/correct/{task.id}",
                  data={**INVESTIGATION, "root_cause": "Mine", "reason": "I want to change it"})
    assert resp.status_code == 403 and "for the role(s) QA" in resp.get_data(as_text=True)


@pytest.mark.urs("URS-AUD-01")
def test_correcting_the_start_form_changes_the_title(as_user, loaded_runtime, cast):
    record = raise_deviation(loaded_runtime, cast["olivia"], title="Incubater excursion")
    c = as_user("quinn")
    form = c.get(f"/records/{record.number}/correct/start").get_data(as_text=True)
    assert 'value="Incubater excursion"' in form
    assert 'value="2026-11-20T08:30"' in form  # the stored UTC date-time, in the user's zone (UTC)
    resp = c.post(f"/records/{record.number}/correct/start", data={
        "title": "Incubator excursion", "area": "Cell processing", "occurred_at": "2026-11-20T08:30",
        "batch_ref": "COI-2026-0042", "description": "Incubator INC-04 read 38.9 C for 40 minutes during expansion.",
        "immediate_actions": "Batch moved to INC-05; engineering informed.", "reason": "Spelling of the title"})
    assert resp.status_code == 302
    with loaded_runtime.db.sessionmaker() as s:
        rec = s.get(Record, record.id)
        assert rec.title == "Incubator excursion" and rec.data["title"] == "Incubator excursion"
        assert rec.data["occurred_at"] == "2026-11-20T08:30:00+00:00"  # unchanged, not re-typed


@pytest.mark.urs("URS-AUD-01")
def test_a_correction_survives_the_next_step_of_a_running_process(as_user, loaded_runtime, cast):
    rt = loaded_runtime
    record = raise_deviation(rt, cast["olivia"])
    triage(rt, record, cast["quinn"])
    investigate(rt, record, cast["ivan"])
    task = completed_task(rt, record, "investigate_deviation")
    resp = as_user("quinn").post(f"/records/{record.number}/correct/{task.id}", data={
        **INVESTIGATION, "root_cause": "Corrected cause", "reason": "Wrong cause typed in first"})
    assert resp.status_code == 302
    # QA approves afterwards (the engine's own data must not bring the old value back).
    approval = open_task(rt, record, "approve_investigation")
    rt.complete_task(approval.id, cast["quentin"], {"decision": "approve"},
                     signature={"password": PASSWORD, "meaning": "approved"})
    with rt.db.sessionmaker() as s:
        rec = s.get(Record, record.id)
        assert rec.status.value == "closed" and rec.data["root_cause"] == "Corrected cause"
        assert [ok for _sig, ok in rt.signatures(s, rec)] == [True]  # signed after the correction


@pytest.mark.urs("URS-AUD-01")
def test_a_correction_on_a_record_changed_meanwhile_is_a_409(as_user, closed, loaded_runtime):
    task = completed_task(loaded_runtime, closed, "investigate_deviation")
    with loaded_runtime.db.sessionmaker() as s:
        stale = s.get(Record, closed.id).version - 1
    resp = as_user("quinn").post(f"/records/{closed.number}/correct/{task.id}", data={
        **INVESTIGATION, "root_cause": "X", "reason": "Reason long enough", "version": str(stale)})
    assert resp.status_code == 409 and "Someone else changed this record" in resp.get_data(as_text=True)
