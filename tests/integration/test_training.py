"""Training management through engine/training.py and the `cellqms training` commands: requirements
per role (URS-TRN-01), assignment when a role is gained or a requirement added, courses (signed
through the acknowledgement, or instructor-led), and the training matrix (URS-TRN-02).
Real runtime, real database (SQLite or PostgreSQL, see tests/conftest.py).
"""
# ruff: noqa: F811  (the `rt` fixture imported from the training helpers is a parameter of the tests)
from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cellqms.cli import main
from engine import training
from engine.exceptions import Conflict, Forbidden, NotFound, ValidationFailed
from models import (
    AuditEntry,
    Record,
    RecordStatus,
    TrainingKind,
    TrainingRequirement,
    TrainingStatus,
    User,
    utcnow,
    verify_chain,
)
from tests.conftest import PASSWORD
from tests.fixtures.cast import add_users
from tests.fixtures.training_gate.helpers import (
    GATED_CODE,
    ack_tasks,
    acknowledge,
    add_document,
    cast,
    make_effective,
    rt,  # noqa: F401  (a fixture)
    training_records,
    training_settings,
)

COURSE = "GMP-101"


@pytest.fixture
def people(rt):
    return cast(rt)


def user(rt, username: str) -> User:
    with rt.db.sessionmaker() as session:
        found = session.scalar(select(User).where(User.username == username))
        _ = found.roles
        return found


def matrix(rt, **kw) -> dict[tuple[str, str], training.MatrixCell]:
    with rt.db.sessionmaker() as session:
        return {(c.username, c.code): c for c in training.training_matrix(session, **kw)}


# ----------------------------------------------------------------------------- requirements
@pytest.mark.urs("URS-TRN-01")
@pytest.mark.urs("URS-AUD-01")
def test_a_requirement_is_audited_and_assigned_at_once_to_the_roles_current_holders(rt, people):
    actor = people["tess"]
    training.require_training(rt, actor, "Operator", COURSE, "course", "GMP basics", 30)

    for name in ("olga", "otis"):
        (tr,) = training_records(rt, name)
        assert (tr.kind, tr.code, tr.title, tr.status) == (TrainingKind.COURSE, COURSE, "GMP basics",
                                                          TrainingStatus.ASSIGNED)
        assert dt.timedelta(days=29) < tr.due_at - utcnow() <= dt.timedelta(days=30)
        (task,) = ack_tasks(rt, name)
        with rt.db.sessionmaker() as session:
            data = session.get(Record, task.record_id).data
        assert data["kind"] == "course" and data["code"] == COURSE and data["trainee"] == name
        assert data["training_record_id"] == tr.id and data["version_label"] == ""
    assert training_records(rt, "quinn") == []
    with rt.db.sessionmaker() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.entity == "training_requirements"))
        assert entry.action == "create" and entry.username == "tess"
        assert entry.new == {"role_name": "Operator", "kind": "course", "code": COURSE, "title": "GMP basics",
                             "due_days": 30}


@pytest.mark.urs("URS-TRN-01")
def test_a_document_requirement_waits_for_an_effective_version_before_anyone_is_assigned(rt, people):
    add_document(rt)
    training.require_training(rt, None, "Operator", GATED_CODE, "document", "Aseptic gowning")
    assert training_records(rt, "olga") == [] and ack_tasks(rt, "olga") == []
    assert matrix(rt)[("olga", GATED_CODE)].status == training.NOT_ASSIGNED
    make_effective(rt, major=1)
    assert [t.status for t in training_records(rt, "olga")] == [TrainingStatus.ASSIGNED]


def test_requirements_are_checked_and_unique_per_role_and_code(rt, people):
    with pytest.raises(ValidationFailed) as caught:
        training.require_training(rt, None, "", "bad code!", "video", "", 0)
    assert {e["path"] for e in caught.value.errors} == {"role", "kind", "code", "title", "due_days"}
    training.require_training(rt, None, "Operator", COURSE, "course", "GMP basics")
    with pytest.raises(Conflict):
        training.require_training(rt, None, "Operator", COURSE, "course", "GMP basics")
    with pytest.raises(Conflict, match="both a document and a course"):
        training.require_training(rt, None, "QA", COURSE, "document", "GMP basics")
    training.require_training(rt, None, "QA", COURSE, "course", "GMP basics", 7)
    with rt.db.sessionmaker() as session:
        assert [(r.role_name, r.due_days) for r in training.requirements(session)] == [("Operator", 14), ("QA", 7)]


@pytest.mark.urs("URS-TRN-01")
@pytest.mark.urs("URS-AUD-01")
@pytest.mark.urs("URS-AUD-04")
def test_withdrawing_a_requirement_is_audited_with_its_reason_and_cancels_only_unneeded_assignments(rt, people):
    rt.set_roles(None, "otis", ["Operator", "QA"])
    training.require_training(rt, None, "Operator", COURSE, "course", "GMP basics")
    training.require_training(rt, None, "QA", COURSE, "course", "GMP basics")
    (olga_task,) = ack_tasks(rt, "olga")

    with pytest.raises(ValidationFailed):
        training.withdraw_training(rt, people["tess"], "Operator", COURSE, "")
    with pytest.raises(NotFound):
        training.withdraw_training(rt, people["tess"], "Nobody", COURSE, "no such requirement")
    cancelled = training.withdraw_training(rt, people["tess"], "Operator", COURSE, "Replaced by GMP-102")
    assert cancelled == 1  # olga's; otis still needs it through QA, quinn through QA
    assert [t.status for t in training_records(rt, "olga")] == [TrainingStatus.CANCELLED]
    assert [t.status for t in training_records(rt, "otis")] == [TrainingStatus.ASSIGNED]
    with rt.db.sessionmaker() as session:
        assert session.get(Record, olga_task.record_id).status == RecordStatus.CANCELLED
        deleted = session.scalar(select(AuditEntry).where(AuditEntry.entity == "training_requirements",
                                                          AuditEntry.action == "delete"))
        assert deleted.reason == "Replaced by GMP-102" and deleted.username == "tess"
        assert deleted.old["role_name"] == "Operator"
        assert [r.role_name for r in session.scalars(select(TrainingRequirement))] == ["QA"]


# ----------------------------------------------------------------------------- roles
@pytest.mark.urs("URS-TRN-01")
def test_a_person_who_gains_a_role_is_assigned_what_the_role_requires(rt, people):
    add_document(rt)
    add_document(rt, "SOP-QA-002", "Line clearance")
    training.require_training(rt, None, "Operator", GATED_CODE, "document", "Aseptic gowning")
    training.require_training(rt, None, "Operator", "SOP-QA-002", "document", "Line clearance")
    training.require_training(rt, None, "Operator", COURSE, "course", "GMP basics")
    make_effective(rt, major=3)
    nina = add_users(rt, {"nina": ("Nina Newhire", ["QA"])})["nina"]
    assert training_records(rt, "nina") == []

    rt.set_roles(None, "nina", ["QA", "Operator"])  # Runtime._set_roles assigns what the new role requires
    assert sorted(r.code for r in training_records(rt, "nina")) == [COURSE, GATED_CODE]  # SOP-QA-002: no effective
    with rt.db.unit_of_work(None) as session:
        assert training.assign_for_role(session, rt, session.get(User, nina.id), "Operator") == []  # nothing twice
    assert {t.bpmn_id for t in ack_tasks(rt, "nina")} == {training.ACKNOWLEDGE_TASK}
    assert len(ack_tasks(rt, "nina")) == 2
    cells = matrix(rt, users=["nina"])
    assert {k[1]: c.status for k, c in cells.items()} == {GATED_CODE: "due", COURSE: "due",
                                                          "SOP-QA-002": "not_assigned"}
    assert cells[("nina", GATED_CODE)].version == "3.0"


@pytest.mark.urs("URS-TRN-01")
def test_a_person_who_loses_a_role_keeps_completed_trainings_and_loses_open_assignments(rt, people):
    add_document(rt)
    training.require_training(rt, None, "Operator", GATED_CODE, "document", "Aseptic gowning")
    training.require_training(rt, None, "Operator", COURSE, "course", "GMP basics")
    make_effective(rt, major=1)
    (gowning_task,) = [t for t in ack_tasks(rt, "olga") if "Aseptic" in t.record.title]
    rt.complete_task(gowning_task.id, people["olga"], {"read_and_understood": True},
                     signature={"password": PASSWORD, "meaning": "acknowledged"})

    rt.set_roles(None, "olga", ["QA"])  # Runtime._set_roles releases what no remaining role needs
    with rt.db.unit_of_work(None) as session:
        assert training.release_for_role(session, session.get(User, people["olga"].id), "Operator") == 0
    statuses = {t.code: t.status for t in training_records(rt, "olga")}
    assert statuses == {GATED_CODE: TrainingStatus.COMPLETED, COURSE: TrainingStatus.CANCELLED}
    assert ack_tasks(rt, "olga") == []


# ----------------------------------------------------------------------------- courses
@pytest.mark.urs("URS-TRN-02")
@pytest.mark.urs("URS-SIG-01")
def test_a_course_is_completed_with_the_trainees_signed_acknowledgement(rt, people):
    training.require_training(rt, None, "Operator", COURSE, "course", "GMP basics")
    record = acknowledge(rt, people["otis"])
    assert record.data["training_completion"]["credited"] is True
    (tr,) = training_records(rt, "otis")
    assert tr.status == TrainingStatus.COMPLETED and tr.signature_id is not None
    assert matrix(rt)[("otis", COURSE)].status == training.QUALIFIED
    with rt.db.sessionmaker() as session:
        # assign_course returns the existing assignment instead of assigning twice.
        assert training.assign_course(session, user(rt, "otis"), COURSE).id == tr.id


@pytest.mark.urs("URS-TRN-02")
@pytest.mark.urs("URS-AUD-01")
def test_an_instructor_led_course_is_recorded_with_the_instructor_as_actor_and_closes_the_open_task(rt, people):
    training.require_training(rt, None, "Operator", COURSE, "course", "GMP basics")
    (task,) = ack_tasks(rt, "olga")
    when = utcnow() - dt.timedelta(hours=3)
    tr = training.record_course_completion(rt, "tess", "olga", COURSE, entered_by="cli:admin", completed_at=when)
    assert tr.status == TrainingStatus.COMPLETED and tr.signature_id is None and tr.completed_at == when
    assert ack_tasks(rt, "olga") == []
    with rt.db.sessionmaker() as session:
        assert session.get(Record, task.record_id).status == RecordStatus.CANCELLED
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "training_completed"))
        assert entry.username == "tess" and entry.new["instructor"] == "tess" and entry.new["signed"] is False
        assert entry.reason == f"instructor-led course {COURSE}; entered by cli:admin"
    assert matrix(rt)[("olga", COURSE)].status == training.QUALIFIED
    # Without an assignment: a completed record is created (the title comes from the requirement).
    training.record_course_completion(rt, "tess", "quinn", COURSE, title="GMP basics")
    assert [t.status for t in training_records(rt, "quinn")] == [TrainingStatus.COMPLETED]


def test_course_completion_refuses_self_certification_documents_and_unknown_courses(rt, people):
    add_document(rt)
    training.require_training(rt, None, "Operator", GATED_CODE, "document", "Aseptic gowning")
    training.require_training(rt, None, "Training Coordinator", COURSE, "course", "GMP basics")
    with pytest.raises(Forbidden) as caught:
        training.record_course_completion(rt, "tess", "tess", COURSE)
    assert caught.value.code == "segregation_of_duties"
    with pytest.raises(ValidationFailed, match="is a document"):
        training.record_course_completion(rt, "tess", "olga", GATED_CODE)
    with pytest.raises(ValidationFailed, match="give its title"):
        training.record_course_completion(rt, "tess", "olga", "UNKNOWN-1")
    with pytest.raises(NotFound):
        training.record_course_completion(rt, "nobody", "olga", COURSE)
    with pytest.raises(ValidationFailed, match="future"):
        training.record_course_completion(rt, "tess", "olga", COURSE, completed_at=utcnow() + dt.timedelta(days=1))


# ----------------------------------------------------------------------------- the matrix
@pytest.fixture
def matrix_setup(rt, people):
    """SOP-QA-001 (QA and Operator) effective 30 days ago and due 14 days after: olga acknowledged it,
    otis and quinn are overdue. GMP-101 (Operator) assigned today: due. SOP-QA-002 has no
    effective version: not assigned."""
    add_document(rt)
    add_document(rt, "SOP-QA-002", "Line clearance")
    training.require_training(rt, None, "Operator", GATED_CODE, "document", "Aseptic gowning", 14)
    training.require_training(rt, None, "QA", GATED_CODE, "document", "Aseptic gowning", 14)
    training.require_training(rt, None, "Operator", "SOP-QA-002", "document", "Line clearance")
    rt.clock.offset = -dt.timedelta(days=30)
    try:
        make_effective(rt, major=1)
    finally:
        rt.clock.offset = dt.timedelta(0)
    acknowledge(rt, people["olga"])
    training.require_training(rt, None, "Operator", COURSE, "course", "GMP basics", 30)
    return people


@pytest.mark.urs("URS-TRN-02")
def test_the_matrix_shows_who_is_qualified_due_overdue_or_not_assigned(rt, matrix_setup):
    cells = matrix(rt)
    assert {k: c.status for k, c in cells.items()} == {
        ("olga", GATED_CODE): "qualified", ("olga", COURSE): "due", ("olga", "SOP-QA-002"): "not_assigned",
        ("otis", GATED_CODE): "overdue", ("otis", COURSE): "due", ("otis", "SOP-QA-002"): "not_assigned",
        ("quinn", GATED_CODE): "overdue",
    }
    olga = cells[("olga", GATED_CODE)]
    assert olga.version == "1.0" and olga.trained_version == "1.0" and olga.completed_at is not None
    assert olga.roles == ("Operator",) and olga.kind == "document" and olga.title == "Aseptic gowning"
    assert cells[("otis", GATED_CODE)].due_at < utcnow() < cells[("otis", COURSE)].due_at
    # Qualified in the matrix means exactly what the gating means.
    with rt.db.sessionmaker() as session:
        for (username, code), cell in cells.items():
            person = session.scalar(select(User).where(User.username == username))
            assert (cell.status == "qualified") == (training.missing_trainings(session, person, [code]) == [])
    # Filters: a role's requirements, some people; tess (no requirement) never appears.
    assert set(matrix(rt, roles=["QA"])) == {("quinn", GATED_CODE)}
    assert set(matrix(rt, users=["otis"])) == {("otis", GATED_CODE), ("otis", COURSE), ("otis", "SOP-QA-002")}
    assert matrix(rt, users=["tess"]) == {}
    # Seen later, the course is overdue too.
    with rt.db.sessionmaker() as session:
        later = training.training_matrix(session, users=["olga"], now=utcnow() + dt.timedelta(days=31))
    assert {c.code: c.status for c in later} == {GATED_CODE: "qualified", COURSE: "overdue",
                                                "SOP-QA-002": "not_assigned"}


@pytest.mark.urs("URS-TRN-02")
@pytest.mark.urs("URS-TRN-01")
def test_a_new_version_turns_qualified_into_due_and_keeps_the_trained_version(rt, matrix_setup):
    make_effective(rt, major=2)
    cell = matrix(rt)[("olga", GATED_CODE)]
    assert (cell.status, cell.version, cell.trained_version) == ("due", "2.0", "1.0")
    # otis's overdue assignment for 1.0 was replaced by a fresh one for 2.0.
    assert matrix(rt)[("otis", GATED_CODE)].status == "due"


@pytest.mark.urs("URS-TRN-02")
def test_the_matrix_table_is_the_export_with_utc_times(rt, matrix_setup):
    with rt.db.sessionmaker() as session:
        rows = training.matrix_table(training.training_matrix(session, users=["olga"]))
    assert rows[0] == list(training.MATRIX_COLUMNS)
    by_code = {r[3]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert by_code[GATED_CODE]["status"] == "qualified" and by_code[GATED_CODE]["effective_version"] == "1.0"
    assert by_code[GATED_CODE]["completed_at_utc"].endswith("+00:00") and by_code[GATED_CODE]["due_at_utc"] == ""
    assert by_code[COURSE]["status"] == "due" and by_code[COURSE]["due_at_utc"].endswith("+00:00")
    assert by_code["SOP-QA-002"]["status"] == "not_assigned"
    assert by_code[COURSE]["full_name"] == "Olga Operator" and by_code[COURSE]["roles"] == "Operator"


def test_a_persons_assignments_list_open_ones_first_with_their_task(rt, matrix_setup):
    with rt.db.sessionmaker() as session:
        olga = session.scalar(select(User).where(User.username == "olga"))
        items = training.user_assignments(session, olga)
    assert [(a.training.code, a.status) for a in items] == [(COURSE, "assigned"), (GATED_CODE, "completed")]
    assert items[0].open_task_id == ack_tasks(rt, "olga")[0].id and items[0].record_number.startswith("TRN-")
    assert items[1].open_task_id is None and items[1].version == "1.0"
    with rt.db.sessionmaker() as session:
        otis = session.scalar(select(User).where(User.username == "otis"))
        assert {a.training.code: a.status for a in training.user_assignments(session, otis)} == {
            GATED_CODE: "overdue", COURSE: "assigned"}
        assert verify_chain(session)["ok"]


# ----------------------------------------------------------------------------- the command line
@pytest.fixture
def cli(db_url, tmp_path):
    settings = training_settings(db_url, tmp_path / "cli")
    runner = CliRunner()
    env = {"DATABASE_URL": db_url, "CELLQMS_PROCESSES_DIR": str(settings.processes_dir),
           "CELLQMS_FORMS_DIR": str(settings.forms_dir)}

    def invoke(*args):
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.mark.urs("URS-TRN-01")
@pytest.mark.urs("URS-TRN-02")
def test_the_training_commands_require_list_complete_export_and_withdraw(cli, db_url, rt, people):
    result = cli("training", "require", "Operator", COURSE, "--kind", "course", "--title", "GMP basics",
                 "--due-days", "30")
    assert result.exit_code == 0, result.output
    assert "assigned to 2 person(s)" in result.output
    assert cli("training", "require", "Operator", "bad code!", "--kind", "course", "--title", "x").exit_code == 1

    listed = cli("training", "list")
    assert listed.exit_code == 0 and "Operator" in listed.output and COURSE in listed.output

    done = cli("training", "complete-course", "olga", COURSE, "--instructor", "tess",
               "--date", "2026-11-20T09:30:00")
    assert done.exit_code == 0, done.output
    assert "olga completed course GMP-101 (GMP basics) on 2026-11-20T09:30:00Z, instructor tess" in done.output
    refused = cli("training", "complete-course", "tess", COURSE, "--instructor", "tess")
    assert refused.exit_code == 1 and "own training" in refused.output

    exported = cli("training", "matrix", "--role", "Operator")
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(io.StringIO(exported.output)))
    assert {(r["username"], r["status"]) for r in rows} == {("olga", "qualified"), ("otis", "due")}
    assert rows[0]["completed_at_utc"] == "2026-11-20T09:30:00+00:00"

    withdrawn = cli("training", "withdraw", "Operator", COURSE, "--reason", "Course retired")
    assert withdrawn.exit_code == 0 and "1 open assignment(s) cancelled" in withdrawn.output
    assert "no training requirements" in cli("training", "list").output
    with rt.db.sessionmaker() as session:
        actors = set(session.scalars(select(AuditEntry.username).where(
            AuditEntry.entity == "training_requirements")))
        assert len(actors) == 1 and next(iter(actors)).startswith("cli:")
