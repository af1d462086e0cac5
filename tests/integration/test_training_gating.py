"""Training gating through the runtime (URS-TRN-03) and retraining on a new effective version (URS-TRN-01).

The tiny fixture diagram ``gated_step`` (tests/fixtures/training_gate) has one task that requires
SOP-QA-001. Operators must read and understand that SOP (role requirement); document control
makes versions effective, which assigns the training in the same transaction; each operator
signs a "read and understood" on their own training_acknowledgement record. Real runtime, real
database (SQLite or PostgreSQL, see tests/conftest.py).
"""
# ruff: noqa: F811  (the `rt` fixture imported from the training helpers is a parameter of the tests)
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine import training
from engine.exceptions import CellqmsError, Forbidden
from models import (
    AuditEntry,
    DocumentVersion,
    DocumentVersionStatus,
    Record,
    RecordStatus,
    Signature,
    Task,
    TaskStatus,
    TrainingStatus,
    User,
    verify_chain,
)
from tests.conftest import PASSWORD
from tests.fixtures.training_gate.helpers import (
    GATED_CODE,
    ack_tasks,
    acknowledge,
    add_document,
    cast,
    gated_task,
    make_effective,
    rt,  # noqa: F401  (a fixture)
    start_gated,
    training_records,
)


@pytest.fixture
def people(rt):
    return cast(rt)


@pytest.fixture
def sop(rt, people):
    """SOP-QA-001 exists, operators must read it (14 days), no version is effective yet."""
    add_document(rt)
    training.require_training(rt, None, "Operator", GATED_CODE, "document", "Aseptic gowning", 14)
    return GATED_CODE


def refusal(rt, user, task) -> Forbidden:
    with pytest.raises(Forbidden) as caught:
        rt.complete_task(task.id, user, {"result": "Filled and sealed"})
    return caught.value


def missing(rt, username: str, codes=(GATED_CODE,)) -> list[dict]:
    with rt.db.sessionmaker() as session:
        user = session.scalar(select(User).where(User.username == username))
        return training.missing_trainings(session, user, list(codes))


@pytest.mark.urs("URS-TRN-03")
def test_an_untrained_operator_cannot_complete_the_step_and_is_told_which_training_is_missing(rt, people, sop):
    record = start_gated(rt, people["olga"])
    task = gated_task(rt, record)
    assert task.requires_training == [GATED_CODE]

    exc = refusal(rt, people["olga"], task)
    assert exc.code == "not_qualified" and exc.status == 403
    assert exc.details["missing"] == [{"code": GATED_CODE, "title": "Aseptic gowning", "reason": "not trained"}]
    assert GATED_CODE in exc.message and "Aseptic gowning" in exc.message
    # A refusal writes nothing: the task is still open, the record unchanged.
    assert gated_task(rt, record).id == task.id
    # The inbox does not offer a task the person may not complete.
    with rt.db.sessionmaker() as session:
        assert task.id not in {t.id for t in rt.open_tasks(session, people["olga"])}


@pytest.mark.urs("URS-TRN-03")
@pytest.mark.urs("URS-TRN-02")
@pytest.mark.urs("URS-SIG-01")
def test_after_acknowledging_the_effective_version_the_operator_completes_the_step(rt, people, sop):
    record = start_gated(rt, people["olga"])
    assigned = make_effective(rt, major=1)
    assert len(assigned) == 2  # olga and otis hold Operator; quinn and tess do not

    (tr,) = training_records(rt, "olga")
    assert tr.status == TrainingStatus.ASSIGNED and tr.due_at is not None and tr.record_id
    (ack,) = ack_tasks(rt, "olga")
    assert ack.record_id == tr.record_id and ack.due_at == tr.due_at.replace(microsecond=0)
    assert ack.signature_meaning == "acknowledged" and ack.role == "Employee"
    # Assigned is not qualified: the step is still refused until the acknowledgement is signed.
    assert refusal(rt, people["olga"], gated_task(rt, record)).code == "not_qualified"

    ack_record = acknowledge(rt, people["olga"], comments="Clear.")
    assert ack_record.status == RecordStatus.CLOSED
    assert ack_record.data["training_completion"]["credited"] is True

    (tr,) = training_records(rt, "olga")
    assert tr.status == TrainingStatus.COMPLETED and tr.completed_at is not None
    with rt.db.sessionmaker() as session:
        sig = session.get(Signature, tr.signature_id)
        assert sig.meaning == "acknowledged" and sig.signer_id == people["olga"].id and sig.record_id == tr.record_id
        signatures = rt.signatures(session, session.get(Record, tr.record_id))
        assert [(s.id, ok) for s, ok in signatures] == [(sig.id, True)]
    assert missing(rt, "olga") == []

    done = rt.complete_task(gated_task(rt, record).id, people["olga"], {"result": "Filled and sealed"})
    assert done.status == RecordStatus.CLOSED
    # otis was assigned too and is still not qualified.
    assert missing(rt, "otis")[0]["reason"] == "not trained"


@pytest.mark.urs("URS-TRN-01")
@pytest.mark.urs("URS-TRN-03")
def test_a_new_effective_version_makes_the_operator_unqualified_again_until_they_acknowledge_it(rt, people, sop):
    make_effective(rt, major=1)
    acknowledge(rt, people["olga"])
    record = start_gated(rt, people["olga"])

    assigned = make_effective(rt, major=2)
    assert len(assigned) == 2
    exc = refusal(rt, people["olga"], gated_task(rt, record))
    assert exc.code == "not_qualified"
    assert exc.details["missing"] == [{"code": GATED_CODE, "title": "Aseptic gowning",
                                       "reason": "not trained on the effective version 2.0"}]
    assert "2.0" in exc.message
    # The training on 1.0 stays as history; the new assignment is for 2.0.
    old, new = training_records(rt, "olga")
    assert old.status == TrainingStatus.COMPLETED and old.signature_id is not None
    assert new.status == TrainingStatus.ASSIGNED and new.document_version_id != old.document_version_id
    (ack,) = ack_tasks(rt, "olga")
    with rt.db.sessionmaker() as session:
        assert session.get(Record, ack.record_id).data["version_label"] == "2.0"

    acknowledge(rt, people["olga"])
    assert rt.complete_task(gated_task(rt, record).id, people["olga"], {"result": "ok"}).status == RecordStatus.CLOSED


@pytest.mark.urs("URS-TRN-01")
@pytest.mark.urs("URS-AUD-04")
def test_an_open_assignment_for_the_older_version_is_cancelled_with_its_task(rt, people, sop):
    make_effective(rt, major=1)
    (first,) = ack_tasks(rt, "otis")
    make_effective(rt, major=1, minor=1)

    old, new = training_records(rt, "otis")
    assert old.status == TrainingStatus.CANCELLED and new.status == TrainingStatus.ASSIGNED
    (second,) = ack_tasks(rt, "otis")
    assert second.id != first.id
    with rt.db.sessionmaker() as session:
        assert session.get(Task, first.id).status == TaskStatus.CANCELLED
        cancelled = session.get(Record, old.record_id)
        assert cancelled.status == RecordStatus.CANCELLED and cancelled.closed_at is not None
        reasons = session.scalars(select(AuditEntry.reason).where(
            AuditEntry.record_id == old.record_id, AuditEntry.action == "record_cancelled")).all()
        assert reasons == ["superseded: version 1.1 of SOP-QA-001 became effective"]
    # The cancelled task cannot be completed any more.
    with pytest.raises(CellqmsError) as caught:
        rt.complete_task(first.id, people["otis"], {"read_and_understood": True},
                         signature={"password": PASSWORD, "meaning": "acknowledged"})
    assert caught.value.code == "conflict"


@pytest.mark.urs("URS-TRN-02")
@pytest.mark.urs("URS-SIG-01")
@pytest.mark.urs("URS-SEC-02")
def test_only_the_trainee_can_acknowledge_and_only_with_the_box_ticked_and_a_signature(rt, people, sop):
    make_effective(rt, major=1)
    (task,) = ack_tasks(rt, "olga")
    sign = {"password": PASSWORD, "meaning": "acknowledged"}

    with pytest.raises(CellqmsError) as caught:
        rt.complete_task(task.id, people["otis"], {"read_and_understood": True}, signature=sign)
    assert caught.value.code == "not_assigned"
    for data, signature, code in [
        ({"read_and_understood": False}, sign, "validation_failed"),
        ({}, sign, "validation_failed"),
        ({"read_and_understood": True}, None, "validation_failed"),
        ({"read_and_understood": True}, {"password": "Wrong-password-1", "meaning": "acknowledged"}, "wrong_password"),
        ({"read_and_understood": True}, {"password": PASSWORD, "meaning": "approved"}, "validation_failed"),
    ]:
        with pytest.raises(CellqmsError) as caught:
            rt.complete_task(task.id, people["olga"], data, signature=signature)
        assert caught.value.code == code, (data, signature)
    (tr,) = training_records(rt, "olga")
    assert tr.status == TrainingStatus.ASSIGNED and tr.signature_id is None
    acknowledge(rt, people["olga"])


@pytest.mark.urs("URS-TRN-02")
@pytest.mark.urs("URS-SEC-02")
def test_an_acknowledgement_cannot_be_started_by_hand(rt, people, sop):
    """The diagram's start event sets manualStart=false: only an assignment starts it, so nobody can
    make up an acknowledgement for somebody else's training record."""
    make_effective(rt, major=1)
    (otis_training,) = training_records(rt, "otis")
    with rt.db.sessionmaker() as session:
        before = session.scalar(select(func.count()).select_from(Record))
    with pytest.raises(Forbidden) as caught:
        rt.start_record(people["olga"], training.TRAINING_PROCESS, {
            "title": "Self-made", "trainee": "olga", "kind": "document", "code": GATED_CODE,
            "version_label": "1.0", "training_title": "Aseptic gowning",
            "training_record_id": otis_training.id, "due_at": "2030-01-01T00:00:00+00:00"})
    assert caught.value.code == "not_startable"
    assert "started by the system" in caught.value.message
    with rt.db.sessionmaker() as session:
        assert session.scalar(select(func.count()).select_from(Record)) == before
    assert [t.status for t in training_records(rt, "otis")] == [TrainingStatus.ASSIGNED]


@pytest.mark.urs("URS-TRN-02")
def test_an_acknowledgement_started_by_the_system_without_an_assignment_credits_no_training(rt, people, sop):
    """Defence in depth: a record that names somebody else's training record credits nothing."""
    make_effective(rt, major=1)
    (otis_training,) = training_records(rt, "otis")
    record = rt.start_record_by_system(training.TRAINING_PROCESS, {
        "title": "Not an assignment", "trainee": "olga", "kind": "document", "code": GATED_CODE,
        "version_label": "1.0", "training_title": "Aseptic gowning", "training_record_id": otis_training.id,
        "due_at": "2030-01-01T00:00:00+00:00"})
    (task,) = [t for t in ack_tasks(rt, "olga") if t.record_id == record.id]
    closed = rt.complete_task(task.id, people["olga"], {"read_and_understood": True},
                              signature={"password": PASSWORD, "meaning": "acknowledged"})
    assert closed.status == RecordStatus.CLOSED
    assert closed.data["training_completion"]["credited"] is False
    assert [t.status for t in training_records(rt, "otis")] == [TrainingStatus.ASSIGNED]
    assert missing(rt, "olga")[0]["code"] == GATED_CODE
    with rt.db.sessionmaker() as session:
        assert session.scalar(select(AuditEntry.action).where(
            AuditEntry.record_id == record.id, AuditEntry.action == "training_not_credited")) is not None


@pytest.mark.urs("URS-TRN-01")
def test_making_the_same_version_effective_twice_assigns_once(rt, people, sop):
    make_effective(rt, major=1)
    with rt.db.unit_of_work(None) as session:
        version = session.scalar(select(DocumentVersion).where(
            DocumentVersion.status == DocumentVersionStatus.EFFECTIVE))
        assert training.assign_for_effective_version(session, rt, version) == []
    assert len(training_records(rt, "olga")) == 1 and len(ack_tasks(rt, "olga")) == 1


@pytest.mark.urs("URS-AUD-01")
@pytest.mark.urs("URS-TRN-02")
def test_assignment_and_completion_are_in_the_acknowledgement_record_audit_trail(rt, people, sop):
    make_effective(rt, major=1)
    acknowledge(rt, people["olga"])
    (tr,) = training_records(rt, "olga")
    with rt.db.sessionmaker() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.record_id == tr.record_id)
                                  .order_by(AuditEntry.seq)).all()
        actions = [(e.action, e.entity, e.field) for e in entries]
        assert ("training_assigned", "training_records", None) in actions
        assert ("update", "training_records", "status") in actions
        assert ("update", "training_records", "signature_id") in actions
        status_change = next(e for e in entries if e.entity == "training_records" and e.field == "status")
        assert (status_change.old, status_change.new, status_change.username) == ("assigned", "completed", "olga")
        assert verify_chain(session)["ok"]
