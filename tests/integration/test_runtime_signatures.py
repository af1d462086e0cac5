"""A deviation from raising to closure through the Runtime, with Part 11 signatures: bound to the
content signed (URS-SIG-03), bound to their record (URS-SIG-04), re-authenticated at the moment of
signing (URS-SIG-01) and protected by lock-out (URS-SEC-04)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.exceptions import AccountLocked, WrongPassword
from models import AuditEntry, Record, RecordStatus, Signature, Task, TaskStatus, User
from tests.conftest import PASSWORD, deviation_start_data
from tests.fixtures.cast import add_users

TRIAGE = {"classification": "major", "investigator": "ivan", "rationale": "Temperature above limit for 40 minutes."}
INVESTIGATION = {"root_cause": "Door seal worn.", "product_impact": "None: within the validated range.",
                 "patient_impact": "None.", "capa_required": False, "capa_rationale": "Seal replaced; isolated."}
APPROVE = {"decision": "approve", "comment": "Justified root cause."}


@pytest.fixture
def cast(loaded_runtime):
    return add_users(loaded_runtime)


def the_task(rt, user, record_id, bpmn_id) -> Task:
    with rt.db.sessionmaker() as s:
        tasks = [t for t in rt.open_tasks(s, user) if t.record_id == record_id and t.bpmn_id == bpmn_id]
    assert len(tasks) == 1, f"{user.username} should have exactly one open {bpmn_id}"
    return tasks[0]


def raise_and_investigate(rt, cast, classification="major") -> Record:
    """Raised by Olivia, triaged by Quinn, investigated by Ivan: waiting for the signed QA approval."""
    record = rt.start_record(cast["olivia"], "deviation", deviation_start_data())
    rt.complete_task(the_task(rt, cast["quinn"], record.id, "triage_deviation").id, cast["quinn"],
                     {**TRIAGE, "classification": classification})
    return rt.complete_task(the_task(rt, cast["ivan"], record.id, "investigate_deviation").id, cast["ivan"],
                            INVESTIGATION)


def signatures_of(rt, record_id):
    with rt.db.sessionmaker() as s:
        record = s.get(Record, record_id)
        return [(sig.meaning, sig.signer_name, ok) for sig, ok in rt.signatures(s, record)]


def snapshot(rt, record_id):
    """What a refused signing must leave untouched."""
    with rt.db.sessionmaker() as s:
        record = s.get(Record, record_id)
        return {
            "version": record.version, "status": record.status, "data": dict(record.data),
            "open": sorted(t.bpmn_id for t in rt.record_tasks(s, record) if t.status == TaskStatus.OPEN),
            "signatures": s.scalar(select(func.count()).select_from(Signature)),
        }


def audit_actions(rt, username):
    with rt.db.sessionmaker() as s:
        return [a for (a,) in s.execute(select(AuditEntry.action).where(AuditEntry.username == username)
                                        .order_by(AuditEntry.seq))]


@pytest.mark.urs("URS-DEV-03")
@pytest.mark.urs("URS-SIG-01")
@pytest.mark.urs("URS-SIG-02")
def test_a_critical_deviation_runs_to_closure_with_two_valid_signatures(loaded_runtime, cast):
    rt = loaded_runtime
    record = raise_and_investigate(rt, cast, classification="critical")
    review = the_task(rt, cast["hannah"], record.id, "qa_head_critical_review")
    rt.complete_task(review.id, cast["hannah"], {"qa_head_assessment": "Hold batch COI-2026-0042.",
                                                 "notify_authorities": True},
                     {"password": PASSWORD, "meaning": "reviewed"})
    record = rt.complete_task(the_task(rt, cast["quinn"], record.id, "approve_investigation").id, cast["quinn"],
                              APPROVE, {"password": PASSWORD, "meaning": "approved"})

    assert record.status == RecordStatus.CLOSED
    assert sorted(signatures_of(rt, record.id)) == [("approved", "Quinn QA", True), ("reviewed", "Hannah Head", True)]
    with rt.db.sessionmaker() as s:
        record = s.get(Record, record.id)
        assert record.closed_at is not None
        assert {k: record.data[k] for k in ("classification", "root_cause", "decision", "notify_authorities")} == {
            "classification": "critical", "root_cause": "Door seal worn.", "decision": "approve",
            "notify_authorities": True}
        assert not [t for t in rt.record_tasks(s, record) if t.status == TaskStatus.OPEN]
        approval = s.scalar(select(Signature).where(Signature.meaning == "approved"))
        assert approval.signer_id == cast["quinn"].id
        assert approval.content["record_number"] == record.number
        assert approval.content["submitted"] == APPROVE
        assert {k: approval.content["record_data"][k] for k in APPROVE} == APPROVE
        assert approval.content["record_data"]["root_cause"] == "Door seal worn."  # the investigation approved
        assert approval.signed_at.tzinfo is not None


def _approved_deviation(rt, cast) -> Record:
    record = raise_and_investigate(rt, cast)
    record = rt.complete_task(the_task(rt, cast["quinn"], record.id, "approve_investigation").id, cast["quinn"],
                              APPROVE, {"password": PASSWORD, "meaning": "approved"})
    assert signatures_of(rt, record.id) == [("approved", "Quinn QA", True)]
    return record


def _edit_after_signing(rt, cast, record_id, field) -> None:
    """Someone changes a field of the closed record directly (a unit of work outside any task)."""
    with rt.db.unit_of_work(cast["max"], reason="edited after signing") as s:
        stored = s.get(Record, record_id)
        stored.data = {**stored.data, field: str(stored.data[field]) + " (edited)"}
    with rt.db.sessionmaker() as s:  # the edit itself is in the audit trail, with old and new value
        entry = s.scalars(select(AuditEntry).where(AuditEntry.record_id == record_id,
                                                   AuditEntry.field == f"data.{field}")
                          .order_by(AuditEntry.seq.desc())).first()
        assert entry.username == "max" and entry.reason == "edited after signing"
        assert entry.new == str(entry.old) + " (edited)"


@pytest.mark.urs("URS-SIG-03")
def test_a_later_change_of_signed_data_shows_the_signature_as_no_longer_valid(loaded_runtime, cast):
    rt = loaded_runtime
    for field in ("decision", "comment"):  # the values the approver entered and signed
        record = _approved_deviation(rt, cast)
        _edit_after_signing(rt, cast, record.id, field)
        assert signatures_of(rt, record.id) == [("approved", "Quinn QA", False)], field


@pytest.mark.urs("URS-SIG-03")
def test_a_later_change_of_the_approved_investigation_shows_the_approval_as_no_longer_valid(loaded_runtime, cast):
    rt = loaded_runtime
    for field in ("root_cause", "title"):
        record = _approved_deviation(rt, cast)
        _edit_after_signing(rt, cast, record.id, field)
        assert signatures_of(rt, record.id) == [("approved", "Quinn QA", False)], field


@pytest.mark.urs("URS-SIG-03")
def test_a_change_of_data_the_signature_did_not_cover_leaves_it_valid(loaded_runtime, cast):
    rt = loaded_runtime
    record = raise_and_investigate(rt, cast)
    record = rt.complete_task(the_task(rt, cast["quinn"], record.id, "approve_investigation").id, cast["quinn"],
                              APPROVE, {"password": PASSWORD, "meaning": "approved"})
    with rt.db.unit_of_work(cast["max"]) as s:
        stored = s.get(Record, record.id)
        stored.data = {**stored.data, "capa_reference": "CAPA-2026-0001"}
    assert signatures_of(rt, record.id) == [("approved", "Quinn QA", True)]


@pytest.mark.urs("URS-SIG-04")
@pytest.mark.parametrize("how", ["moved", "copied"])
def test_a_signature_cannot_be_transferred_to_another_record(loaded_runtime, cast, how):
    rt = loaded_runtime
    signed = raise_and_investigate(rt, cast)
    signed = rt.complete_task(the_task(rt, cast["quinn"], signed.id, "approve_investigation").id, cast["quinn"],
                              APPROVE, {"password": PASSWORD, "meaning": "approved"})
    # A second deviation with the very same data, waiting for its own approval.
    other = raise_and_investigate(rt, cast)
    other_task = the_task(rt, cast["quinn"], other.id, "approve_investigation")

    with rt.db.unit_of_work(None) as s:
        sig = s.scalar(select(Signature).where(Signature.record_id == signed.id))
        if how == "moved":
            sig.record_id = other.id
        else:
            s.add(Signature(record_id=other.id, task_id=other_task.id, signer_id=sig.signer_id,
                            signer_name=sig.signer_name, meaning=sig.meaning, signed_at=sig.signed_at,
                            content=dict(sig.content), content_sha256=sig.content_sha256))

    assert signatures_of(rt, other.id) == [("approved", "Quinn QA", False)]
    assert signatures_of(rt, signed.id) == ([] if how == "moved" else [("approved", "Quinn QA", True)])


@pytest.mark.urs("URS-SIG-01")
def test_a_wrong_signing_password_changes_nothing_and_is_audited(loaded_runtime, cast):
    rt = loaded_runtime
    record = raise_and_investigate(rt, cast)
    task = the_task(rt, cast["quinn"], record.id, "approve_investigation")
    before = snapshot(rt, record.id)

    with pytest.raises(WrongPassword):
        rt.complete_task(task.id, cast["quinn"], APPROVE, {"password": PASSWORD + "x", "meaning": "approved"})

    assert snapshot(rt, record.id) == before
    assert before["open"] == ["approve_investigation"] and before["signatures"] == 0
    assert audit_actions(rt, "quinn")[-1] == "signature_failed"
    with rt.db.sessionmaker() as s:
        assert s.get(User, cast["quinn"].id).failed_logins == 1
    # The right password then signs, and the count of failures starts again.
    record = rt.complete_task(task.id, cast["quinn"], APPROVE, {"password": PASSWORD, "meaning": "approved"})
    assert record.status == RecordStatus.CLOSED
    with rt.db.sessionmaker() as s:
        assert s.get(User, cast["quinn"].id).failed_logins == 0


@pytest.mark.urs("URS-SEC-04")
def test_five_wrong_signing_passwords_lock_the_account_even_against_the_right_password(loaded_runtime, cast):
    rt = loaded_runtime
    record = raise_and_investigate(rt, cast)
    task = the_task(rt, cast["quinn"], record.id, "approve_investigation")
    before = snapshot(rt, record.id)
    wrong = {"password": "Not-the-password-1", "meaning": "approved"}

    for _ in range(4):
        with pytest.raises(WrongPassword):
            rt.complete_task(task.id, cast["quinn"], APPROVE, wrong)
    with pytest.raises(AccountLocked) as locked:
        rt.complete_task(task.id, cast["quinn"], APPROVE, wrong)
    assert "locked" in locked.value.message and locked.value.details["locked_until"]

    with pytest.raises(AccountLocked):
        rt.complete_task(task.id, cast["quinn"], APPROVE, {"password": PASSWORD, "meaning": "approved"})
    with pytest.raises(AccountLocked):
        rt.authenticate("quinn", PASSWORD)

    assert snapshot(rt, record.id) == before
    actions = audit_actions(rt, "quinn")
    assert actions.count("signature_failed") == 5
    assert "account_locked" in actions
    assert actions[-2:] == ["signature_refused_locked", "login_refused_locked"]
    with rt.db.sessionmaker() as s:
        lock = s.scalar(select(AuditEntry).where(AuditEntry.action == "account_locked"))
        assert lock.reason == "5 consecutive failed attempts" and lock.new["locked_until"]
        quinn = s.get(User, cast["quinn"].id)
        assert quinn.failed_logins == 5 and quinn.locked_until is not None
    # Another QA person is not affected and signs.
    record = rt.complete_task(task.id, cast["quentin"], APPROVE, {"password": PASSWORD, "meaning": "approved"})
    assert record.status == RecordStatus.CLOSED
