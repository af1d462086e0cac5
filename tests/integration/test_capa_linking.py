"""A deviation raises its CAPA, and a CAPA that was not effective raises its follow-up, as real
linked records (URS-PLT-07, URS-DEV-04), through the real runtime and database (SQLite or
PostgreSQL, see tests/conftest.py).

The CAPA itself (URS-CAPA-01..03): one task per action for its owner, signed; QA approves plan
and closure; the effectiveness check waits for its timer after closure and may not be done by
an action owner.
"""
from __future__ import annotations

import datetime as dt
import shutil
import time
import uuid

import pytest
from sqlalchemy import func, select

from engine import state as engine_state
from engine.exceptions import CellqmsError, Forbidden, ValidationFailed
from engine.settings import REPO_ROOT
from models import AuditEntry, Record, RecordStatus, Task, TaskStatus, TimerJob, verify_chain
from tests.conftest import PASSWORD, deviation_start_data
from tests.fixtures.cast import DEVIATION_CAST, add_users

CAPA_CAST = {
    **DEVIATION_CAST,
    "anna": ("Anna Owner", ["Action Owner"]),
    "otto": ("Otto Owner", ["Action Owner", "QA"]),  # an action owner who also holds QA
}
INVESTIGATION = {
    "root_cause": "The reagent inventory does not flag lots that expire during an open campaign.",
    "product_impact": "Repeat assay within specification; no effect on the batch.",
    "patient_impact": "None; release was not delayed.",
    "capa_required": True,
}
PLAN = {
    "actions": [
        {"description": "Add an expiry check to the reagent issue step of SOP-QC-031.", "owner": "anna",
         "due_date": "2027-01-31"},
        {"description": "Configure expiry alerts in the reagent inventory.", "owner": "otto",
         "due_date": "2027-02-28"},
    ],
    "plan_rationale": "The check stops expired lots at issue; the alert removes them before they reach the bench.",
}


def sign(meaning: str) -> dict:
    return {"password": PASSWORD, "meaning": meaning}


def inbox(rt, user, record_id: str) -> dict[str, Task]:
    """The user's open tasks on one record, by BPMN id (what the inbox would list)."""
    with rt.db.sessionmaker() as s:
        return {t.bpmn_id: t for t in rt.open_tasks(s, user) if t.record_id == record_id}


def the_task(rt, user, record_id: str, bpmn_id: str) -> Task:
    tasks = inbox(rt, user, record_id)
    assert bpmn_id in tasks, f"{user.username} has no '{bpmn_id}' on the record (has {sorted(tasks)})"
    return tasks[bpmn_id]


def open_ids(rt, record_id: str) -> list[str]:
    with rt.db.sessionmaker() as s:
        return sorted(t.bpmn_id for t in rt.record_tasks(s, s.get(Record, record_id)) if t.status == TaskStatus.OPEN)


def links_of(rt, record_id: str) -> list[tuple[str, str, str]]:
    """(source number, kind, target number) of every link of the record, either direction."""
    with rt.db.sessionmaker() as s:
        return sorted((link.source.number, link.kind, link.target.number)
                      for link in rt.links(s, s.get(Record, record_id)))


def linked_audit(rt, record_id: str) -> list[dict]:
    with rt.db.sessionmaker() as s:
        return [e.new for e in s.scalars(select(AuditEntry).where(
            AuditEntry.record_id == record_id, AuditEntry.action == "record_linked").order_by(AuditEntry.seq))]


def get_record(rt, record_id: str) -> Record:
    with rt.db.sessionmaker() as s:
        record = s.get(Record, record_id)
        _ = record.process_version.definition.key
        return record


def capa_records(rt) -> list[Record]:
    with rt.db.sessionmaker() as s:
        return list(s.scalars(select(Record).where(Record.number.like("CAPA-%")).order_by(Record.number)))


def investigated_deviation(rt, cast) -> Record:
    """A major deviation whose investigation requires a CAPA, completed by ivan."""
    record = rt.start_record(cast["olivia"], "deviation", deviation_start_data(
        title="Viability assay run with expired reagent", area="QC laboratory"))
    rt.complete_task(the_task(rt, cast["quinn"], record.id, "triage_deviation").id, cast["quinn"],
                     {"classification": "major", "investigator": "ivan", "rationale": "Release test affected."})
    return rt.complete_task(the_task(rt, cast["ivan"], record.id, "investigate_deviation").id, cast["ivan"],
                            INVESTIGATION)


def load_diagrams(rt, tmp_path, *keys: str) -> None:
    """Release only these diagrams, so an unfinished neighbour in processes/ cannot fail these tests."""
    folder = tmp_path / "processes"
    folder.mkdir()
    for key in keys:
        shutil.copy(REPO_ROOT / "processes" / f"{key}.bpmn", folder)
    rt.load_processes(directory=folder)


@pytest.fixture
def loaded_runtime(runtime, tmp_path):
    """The runtime with the deviation and CAPA diagrams released."""
    load_diagrams(runtime, tmp_path, "deviation", "capa")
    return runtime


@pytest.fixture
def cast(loaded_runtime):
    return add_users(loaded_runtime, CAPA_CAST)


@pytest.mark.urs("URS-DEV-04")
@pytest.mark.urs("URS-PLT-07")
@pytest.mark.urs("URS-CAPA-01")
def test_a_deviation_that_requires_a_capa_raises_it_linked_both_ways_before_qa_can_approve(loaded_runtime, cast):
    rt = loaded_runtime
    deviation = investigated_deviation(rt, cast)

    (capa,) = capa_records(rt)
    assert capa.status == RecordStatus.OPEN and capa.created_by_id == cast["ivan"].id
    assert capa.data["source"] == "deviation" and capa.data["source_reference"] == deviation.number
    assert capa.data["title"] == f"CAPA for {deviation.number}: Viability assay run with expired reagent"
    assert INVESTIGATION["root_cause"] in capa.data["root_cause_reference"]
    assert deviation.data["capa"] == {"id": capa.id, "number": capa.number}

    # Linked both ways: the one link shows on both records, and each record's audit trail has it.
    link = (deviation.number, "raises", capa.number)
    assert links_of(rt, deviation.id) == [link]
    assert links_of(rt, capa.id) == [link]
    expected_entry = {"source": deviation.number, "target": capa.number, "kind": "raises"}
    assert linked_audit(rt, deviation.id) == [expected_entry]
    assert linked_audit(rt, capa.id) == [expected_entry]

    # The CAPA is a live record: its plan waits for QA. The deviation's approval opened with it.
    assert open_ids(rt, capa.id) == ["plan_capa"]
    assert open_ids(rt, deviation.id) == ["approve_investigation"]
    approval = the_task(rt, cast["quentin"], deviation.id, "approve_investigation")
    assert approval.created_at >= capa.created_at

    closed = rt.complete_task(approval.id, cast["quentin"], {"decision": "approve"}, signature=sign("approved"))
    assert closed.status == RecordStatus.CLOSED
    with rt.db.sessionmaker() as s:
        ((signature, valid),) = rt.signatures(s, s.get(Record, deviation.id))
    assert valid and signature.signed_at > capa.created_at
    assert get_record(rt, capa.id).status == RecordStatus.OPEN  # closing the deviation leaves its CAPA running
    assert len(capa_records(rt)) == 1
    with rt.db.sessionmaker() as s:
        assert verify_chain(s)["ok"]


@pytest.mark.urs("URS-DEV-04")
@pytest.mark.urs("URS-PLT-07")
def test_a_reworked_investigation_keeps_its_one_capa(loaded_runtime, cast):
    rt = loaded_runtime
    deviation = investigated_deviation(rt, cast)
    rt.complete_task(the_task(rt, cast["quinn"], deviation.id, "approve_investigation").id, cast["quinn"],
                     {"decision": "reject", "comment": "Add the reagent issue log."}, signature=sign("approved"))
    rt.complete_task(the_task(rt, cast["ivan"], deviation.id, "investigate_deviation").id, cast["ivan"],
                     INVESTIGATION)

    assert open_ids(rt, deviation.id) == ["approve_investigation"]
    (capa,) = capa_records(rt)
    assert links_of(rt, deviation.id) == [(deviation.number, "raises", capa.number)]


@pytest.mark.urs("URS-DEV-04")
def test_an_investigation_is_not_completed_when_its_capa_cannot_be_raised(runtime, tmp_path):
    """Raising the CAPA is part of the investigation's transaction: if it fails, nothing is saved."""
    rt = runtime
    load_diagrams(rt, tmp_path, "deviation")  # no released CAPA process
    cast = add_users(rt, CAPA_CAST)

    with pytest.raises(CellqmsError):
        investigated_deviation(rt, cast)

    (deviation,) = [r for r in _all_records(rt) if r.number.startswith("DEV-")]
    assert open_ids(rt, deviation.id) == ["investigate_deviation"]
    assert capa_records(rt) == [] and links_of(rt, deviation.id) == []
    assert "capa_required" not in deviation.data


@pytest.mark.urs("URS-DEV-04")
def test_a_capa_that_cannot_be_raised_is_reported_with_its_reason(runtime, tmp_path):
    rt = runtime
    load_diagrams(rt, tmp_path, "deviation")
    cast = add_users(rt, CAPA_CAST)
    with pytest.raises(CellqmsError, match="capa"):
        investigated_deviation(rt, cast)


def _all_records(rt) -> list[Record]:
    with rt.db.sessionmaker() as s:
        return list(s.scalars(select(Record)))


@pytest.mark.urs("URS-CAPA-01")
@pytest.mark.urs("URS-CAPA-02")
@pytest.mark.urs("URS-CAPA-03")
@pytest.mark.urs("URS-PLT-07")
@pytest.mark.urs("URS-PLT-05")
def test_a_capa_runs_its_actions_closure_and_effectiveness_check_and_a_failed_check_raises_a_linked_follow_up(
        loaded_runtime, cast):
    rt = loaded_runtime
    deviation = investigated_deviation(rt, cast)
    (capa,) = capa_records(rt)

    # URS-CAPA-01, -02: QA plans two actions for two owners and approves the plan with a signature.
    plan = the_task(rt, cast["quinn"], capa.id, "plan_capa")
    with pytest.raises(Forbidden) as refused:
        rt.complete_task(plan.id, cast["anna"], PLAN, signature=sign("approved"))
    assert refused.value.code == "not_in_role"
    rt.complete_task(plan.id, cast["quinn"], PLAN, signature=sign("approved"))

    # Each owner has exactly their own action in the inbox, due at the end of its due date,
    # and the engine instance behind it holds that action.
    anna_tasks = [t for t in _inbox_rows(rt, cast["anna"]) if t.record_id == capa.id]
    otto_tasks = [t for t in _inbox_rows(rt, cast["otto"]) if t.record_id == capa.id]
    assert [(t.assignee, t.due_at) for t in anna_tasks] == [
        ("anna", dt.datetime(2027, 1, 31, 23, 59, 59, tzinfo=dt.timezone.utc))]
    assert [(t.assignee, t.due_at) for t in otto_tasks] == [
        ("otto", dt.datetime(2027, 2, 28, 23, 59, 59, tzinfo=dt.timezone.utc))]
    assert _engine_data(rt, capa.id, anna_tasks[0].id)["action"] == PLAN["actions"][0]
    assert _engine_data(rt, capa.id, otto_tasks[0].id)["action"] == PLAN["actions"][1]
    with pytest.raises(Forbidden) as refused:
        rt.complete_task(otto_tasks[0].id, cast["anna"], {"completion_evidence": "x", "completed_on": "2026-12-01"},
                         signature=sign("authored"))
    assert refused.value.code == "not_assigned"

    # URS-CAPA-02: each owner completes and signs their own action; closure waits for both.
    rt.complete_task(anna_tasks[0].id, cast["anna"],
                     {"completion_evidence": "SOP-QC-031 version 5 effective.", "completed_on": "2026-12-20"},
                     signature=sign("authored"))
    assert "approve_closure" not in inbox(rt, cast["quinn"], capa.id)
    rt.complete_task(otto_tasks[0].id, cast["otto"],
                     {"completion_evidence": "Expiry alerts configured (VR-2026-044).", "completed_on": "2026-12-10"},
                     signature=sign("authored"))
    record = get_record(rt, capa.id)
    assert [(r["owner"], r["completed_on"]) for r in record.data["action_results"]] == [
        ("anna", "2026-12-20"), ("otto", "2026-12-10")]

    # URS-SEC-03: an action owner holding QA may not approve the closure.
    closure = the_task(rt, cast["quinn"], capa.id, "approve_closure")
    assert "approve_closure" not in inbox(rt, cast["otto"], capa.id)
    with pytest.raises(Forbidden) as refused:
        rt.complete_task(closure.id, cast["otto"], {"closure_summary": "Done."}, signature=sign("approved"))
    assert refused.value.code == "segregation_of_duties"

    # URS-CAPA-03: the closure schedules the effectiveness check, 90 days later. Acting 90 days
    # minus two seconds in the past makes it fall due two seconds from now (the engine's timers
    # use the real clock); then the worker's call fires it.
    rt.clock.offset = -dt.timedelta(days=90) + dt.timedelta(seconds=2)
    try:
        rt.complete_task(closure.id, cast["quinn"], {"closure_summary": "Both actions verified."},
                         signature=sign("approved"))
    finally:
        rt.clock.offset = dt.timedelta(0)
    assert open_ids(rt, capa.id) == []
    with rt.db.sessionmaker() as s:
        (job,) = s.scalars(select(TimerJob).where(TimerJob.record_id == capa.id, TimerJob.fired_at.is_(None))).all()
        record = s.get(Record, capa.id)
        assert job.event_name == "Effectiveness check due"
        assert job.due_at == dt.datetime.fromisoformat(record.data["effectiveness_check_due"])
    assert rt.fire_due_timers() == 0, "not due yet"
    time.sleep(max(0.0, (job.due_at - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 0.1)
    assert rt.fire_due_timers() == 1
    assert open_ids(rt, capa.id) == ["check_effectiveness"]

    # URS-CAPA-03: not by an action owner.
    check = the_task(rt, cast["quinn"], capa.id, "check_effectiveness")
    assert "check_effectiveness" not in inbox(rt, cast["otto"], capa.id)
    with pytest.raises(Forbidden) as refused:
        rt.complete_task(check.id, cast["otto"], {"effective": True, "effectiveness_evidence": "Fine."},
                         signature=sign("verified"))
    assert refused.value.code == "segregation_of_duties"

    # Not effective: the CAPA closes and a follow-up CAPA starts, linked to it (URS-PLT-07).
    closed = rt.complete_task(check.id, cast["quentin"], {
        "effective": False, "effectiveness_evidence": "Two expired lots issued since closure."},
        signature=sign("verified"))
    assert closed.status == RecordStatus.CLOSED
    first, follow_up = capa_records(rt)
    assert first.id == capa.id and follow_up.status == RecordStatus.OPEN
    assert follow_up.created_by_id == cast["quentin"].id
    assert follow_up.data["source"] == "other" and follow_up.data["source_reference"] == capa.number
    assert "Two expired lots issued since closure." in follow_up.data["problem_statement"]
    assert closed.data["follow_up_capa"] == {"id": follow_up.id, "number": follow_up.number}
    assert open_ids(rt, follow_up.id) == ["plan_capa"]

    follow_up_link = (capa.number, "follow_up", follow_up.number)
    assert links_of(rt, follow_up.id) == [follow_up_link]
    assert links_of(rt, capa.id) == sorted([(deviation.number, "raises", capa.number), follow_up_link])
    assert linked_audit(rt, follow_up.id) == [{"source": capa.number, "target": follow_up.number,
                                               "kind": "follow_up"}]
    assert [e["kind"] for e in linked_audit(rt, capa.id)] == ["raises", "follow_up"]

    with rt.db.sessionmaker() as s:
        signed = [(sig.meaning, sig.signer.username) for sig, _valid in rt.signatures(s, s.get(Record, capa.id))]
        assert verify_chain(s)["ok"]
    assert signed == [("approved", "quinn"), ("authored", "anna"), ("authored", "otto"),
                      ("approved", "quinn"), ("verified", "quentin")]


@pytest.mark.urs("URS-CAPA-02")
@pytest.mark.urs("URS-SIG-01")
def test_each_action_owners_signature_still_verifies_after_the_other_owner_signs(loaded_runtime, cast):
    rt = loaded_runtime
    capa = rt.start_record(cast["olivia"], "capa", {"title": "Expired reagents", "problem_statement": "P.",
                                                    "source": "trend"})
    rt.complete_task(the_task(rt, cast["quinn"], capa.id, "plan_capa").id, cast["quinn"], PLAN,
                     signature=sign("approved"))
    for owner, evidence in (("anna", "SOP updated."), ("otto", "Alerts configured.")):
        (task,) = [t for t in _inbox_rows(rt, cast[owner]) if t.record_id == capa.id]
        rt.complete_task(task.id, cast[owner], {"completion_evidence": evidence, "completed_on": "2026-12-10"},
                         signature=sign("authored"))
    with rt.db.sessionmaker() as s:
        validity = {sig.signer.username: valid for sig, valid in rt.signatures(s, s.get(Record, capa.id))
                    if sig.meaning == "authored"}
    assert validity == {"anna": True, "otto": True}


def _inbox_rows(rt, user) -> list[Task]:
    with rt.db.sessionmaker() as s:
        return list(rt.open_tasks(s, user))


def _engine_data(rt, record_id: str, task_id: str) -> dict:
    """The data of the engine task behind a task row, read from the stored engine state."""
    with rt.db.sessionmaker() as s:
        record = s.get(Record, record_id)
        info = rt.spec_info(record.process_version)
        live = engine_state.load(s, record, info.spec, info.subprocess_specs, rt.script_engine)
        return dict(live.workflow.get_task_from_id(uuid.UUID(task_id)).data)


@pytest.mark.urs("URS-PLT-02")
@pytest.mark.urs("URS-SIG-01")
def test_trying_a_step_before_signing_says_what_the_process_refuses_and_changes_nothing(loaded_runtime, cast):
    """check_completion runs the step for real and rolls it back: the investigation that would raise
    a CAPA raises none, no number is used up, the audit trail is untouched; a plan naming an owner
    without the Action Owner role is refused with the reason before anyone signs."""
    rt = loaded_runtime
    record = rt.start_record(cast["olivia"], "deviation", deviation_start_data(title="Expired reagent"))
    rt.complete_task(the_task(rt, cast["quinn"], record.id, "triage_deviation").id, cast["quinn"],
                     {"classification": "major", "investigator": "ivan", "rationale": "Release test affected."})
    investigate = the_task(rt, cast["ivan"], record.id, "investigate_deviation")

    def state():
        with rt.db.sessionmaker() as s:
            return (s.scalar(select(func.count()).select_from(AuditEntry)), len(_all_records(rt)),
                    s.get(Task, investigate.id).status, s.get(Record, record.id).version)

    before = state()
    assert rt.check_completion(investigate.id, cast["ivan"], INVESTIGATION) is None
    assert state() == before and capa_records(rt) == []
    done = rt.complete_task(investigate.id, cast["ivan"], INVESTIGATION)  # for real: the CAPA is raised
    year = rt.clock.now().year
    assert [c.number for c in capa_records(rt)] == [f"CAPA-{year}-0001"]  # the trial used up no number

    plan = the_task(rt, cast["quinn"], done.data["capa"]["id"], "plan_capa")
    bad = {**PLAN, "actions": [{**PLAN["actions"][0], "owner": "ivan"}]}
    with pytest.raises(ValidationFailed) as refused:
        rt.check_completion(plan.id, cast["quinn"], bad)
    assert "'ivan' is not an active user holding the role 'Action Owner'" in refused.value.errors[0]["message"]
    with rt.db.sessionmaker() as s:
        assert s.get(Task, plan.id).status == TaskStatus.OPEN
        assert verify_chain(s)["ok"]
