"""Training pages: the task page tells an untrained person which training is missing (URS-TRN-03);
they read and sign from their training page (URS-TRN-02, URS-SIG-01); the training matrix per
role and per person, filtered, and exported as CSV (URS-TRN-02), for QA, auditors, administrators
and training coordinators only (URS-SEC-02). Flask's test client on a real, migrated database.
"""
# ruff: noqa: F811  (the `rt` fixture imported from the training helpers is a parameter of the tests)
from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re

import pytest
from sqlalchemy import select

from engine import training
from engine.exceptions import Forbidden
from models import AuditEntry
from tests.conftest import PASSWORD
from tests.fixtures.training_gate.helpers import (
    GATED_CODE,
    ack_tasks,
    acknowledge,
    add_document,
    gated_task,
    make_effective,
    rt,  # noqa: F401  (a fixture)
    start_gated,
)
from tests.fixtures.training_gate.helpers import (
    cast as add_training_cast,
)

COURSE = "GMP-101"


@pytest.fixture
def people(rt):
    found = add_training_cast(rt)
    add_document(rt)
    training.require_training(rt, None, "Operator", GATED_CODE, "document", "Aseptic gowning", 14)
    return found


@pytest.fixture
def loaded_runtime(rt):
    """The pages' fixtures of tests/e2e/conftest.py (app, as_user) run on the training runtime."""
    return rt


@pytest.fixture
def cast(people):
    return people


def text(resp) -> str:
    return html.unescape(resp.get_data(as_text=True))


@pytest.fixture
def matrix_state(rt, people):
    """olga qualified on SOP-QA-001, otis overdue on it (assigned 30 days ago, due in 14); the
    course GMP-101 (Operator) due for both; quinn (QA) has no requirement."""
    rt.clock.offset = -dt.timedelta(days=30)
    try:
        make_effective(rt, major=1)
    finally:
        rt.clock.offset = dt.timedelta(0)
    acknowledge(rt, people["olga"])
    training.require_training(rt, None, "Operator", COURSE, "course", "=HYPERLINK(\"x\") GMP basics", 30)
    return people


# ----------------------------------------------------------------------------- gating on the task page
@pytest.mark.urs("URS-TRN-03")
def test_the_task_page_shows_an_untrained_operator_the_missing_training(rt, people, as_user):
    record = start_gated(rt, people["olga"])
    task = gated_task(rt, record)
    c = as_user("olga")

    resp = c.get(f"/tasks/{task.id}")
    assert resp.status_code == 403
    page = text(resp)
    assert "You cannot complete this task" in page and "Reason code: not_qualified" in page
    assert "SOP-QA-001 (Aseptic gowning: not trained)" in page
    assert 'name="result"' not in page  # no form to fill in
    posted = c.post(f"/tasks/{task.id}", data={"result": "Sealed"})
    assert posted.status_code == 403 and "SOP-QA-001" in text(posted)
    assert gated_task(rt, record).id == task.id  # nothing changed


@pytest.mark.urs("URS-TRN-03")
@pytest.mark.urs("URS-TRN-02")
@pytest.mark.urs("URS-SIG-01")
def test_the_operator_reads_and_signs_from_their_training_page_then_completes_the_step(rt, people, as_user):
    record = start_gated(rt, people["olga"])
    make_effective(rt, major=1)
    c = as_user("olga")

    mine = text(c.get("/training/me"))
    assert "My training" in mine and 'data-code="SOP-QA-001" data-status="due"' in mine
    (ack,) = ack_tasks(rt, "olga")
    assert f'href="/tasks/{ack.id}" class="ack-task">Read and sign</a>' in mine

    page = text(c.get(f"/tasks/{ack.id}"))
    assert 'name="read_and_understood"' in page and "Continue to signature" in page
    assert "SOP-QA-001" in page and "Aseptic gowning" in page  # the record's data beside the form
    unticked = c.post(f"/tasks/{ack.id}", data={"_action": "review"})
    assert unticked.status_code == 400
    review = c.post(f"/tasks/{ack.id}", data={"_action": "review", "read_and_understood": "true"})
    assert review.status_code == 200 and "Acknowledged" in text(review)
    signed = c.post(f"/tasks/{ack.id}", data={"_action": "sign", "read_and_understood": "true",
                                              "signature_password": PASSWORD})
    assert signed.status_code == 302

    assert 'data-code="SOP-QA-001" data-status="qualified"' in text(c.get("/training/me"))
    task = gated_task(rt, record)
    form = c.get(f"/tasks/{task.id}")
    assert form.status_code == 200 and 'name="result"' in text(form)
    done = c.post(f"/tasks/{task.id}", data={"result": "Sealed"})
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/records/{record.number}")


@pytest.mark.urs("URS-TRN-01")
@pytest.mark.urs("URS-TRN-03")
def test_after_a_new_version_the_task_page_names_the_version_to_read(rt, people, as_user):
    make_effective(rt, major=1)
    acknowledge(rt, people["olga"])
    record = start_gated(rt, people["olga"])
    make_effective(rt, major=2)
    resp = as_user("olga").get(f"/tasks/{gated_task(rt, record).id}")
    assert resp.status_code == 403
    assert "SOP-QA-001 (Aseptic gowning: not trained on the effective version 2.0)" in text(resp)


# ----------------------------------------------------------------------------- the matrix
@pytest.mark.urs("URS-TRN-02")
def test_the_matrix_per_role_shows_each_persons_status(matrix_state, as_user):
    resp = as_user("quinn").get("/training")
    assert resp.status_code == 200
    page = text(resp)
    assert "Training matrix" in page and 'data-role="Operator"' in page
    rows = dict(re.findall(r'<tr data-user="(\w+)">(.*?)</tr>', page, re.S))
    assert set(rows) == {"olga", "otis"}
    assert 'data-code="SOP-QA-001" data-status="qualified"' in rows["olga"]
    assert 'data-code="SOP-QA-001" data-status="overdue"' in rows["otis"]
    assert f'data-code="{COURSE}" data-status="due"' in rows["otis"]
    summary = re.search(r'id="matrix-summary">(.*?)</p>', page, re.S).group(1)
    assert "4 required trainings" in summary and "(25 % qualified)" in summary
    assert 'href="/training/matrix.csv"' in page
    assert '<a href="/training"' in page  # the navigation link


@pytest.mark.urs("URS-TRN-02")
def test_the_matrix_per_person_filters_by_status_role_and_name(matrix_state, as_user):
    c = as_user("quinn")
    overdue = text(c.get("/training?view=user&status=overdue"))
    assert re.findall(r'<tr data-user="(\w+)" data-code="([\w-]+)" data-status="(\w+)"', overdue) == [
        ("otis", "SOP-QA-001", "overdue")]
    assert 'href="/training/users/otis"' in overdue
    named = text(c.get("/training?view=user&q=Olga"))
    assert set(re.findall(r'<tr data-user="(\w+)" data-code', named)) == {"olga"}
    assert "No role requires" in text(c.get("/training?role=QA"))
    partial = c.get("/training?view=user&status=due", headers={"HX-Request": "true"})
    assert partial.status_code == 200 and "<html" not in text(partial)
    statuses = set(re.findall(r'<tr data-user="\w+" data-code="[\w-]+" data-status="(\w+)"', text(partial)))
    assert statuses == {"due"}


@pytest.mark.urs("URS-TRN-02")
def test_the_matrix_exports_as_csv_with_the_same_filters(matrix_state, as_user):
    c = as_user("quinn")
    resp = c.get("/training/matrix.csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert re.match(r"attachment; filename=training-matrix-\d{8}T\d{6}Z\.csv", resp.headers["Content-Disposition"])
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert list(rows[0]) == list(training.MATRIX_COLUMNS)
    assert {(r["username"], r["code"], r["status"]) for r in rows} == {
        ("olga", GATED_CODE, "qualified"), ("olga", COURSE, "due"),
        ("otis", GATED_CODE, "overdue"), ("otis", COURSE, "due")}
    olga = next(r for r in rows if r["username"] == "olga" and r["code"] == GATED_CODE)
    assert olga["effective_version"] == "1.0" and olga["completed_at_utc"].endswith("+00:00")
    assert olga["full_name"] == "Olga Operator" and olga["roles"] == "Operator"
    # A title that a spreadsheet would run as a formula is neutralised.
    course = next(r for r in rows if r["code"] == COURSE)
    assert course["title"].startswith("'=HYPERLINK")
    only = list(csv.DictReader(io.StringIO(c.get("/training/matrix.csv?status=overdue").get_data(as_text=True))))
    assert [(r["username"], r["code"]) for r in only] == [("otis", GATED_CODE)]


@pytest.mark.urs("URS-SEC-02")
@pytest.mark.urs("URS-TRN-02")
def test_the_matrix_is_for_qa_auditors_admins_and_training_coordinators(matrix_state, as_user):
    olga = as_user("olga")
    resp = olga.get("/training")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/training/me")
    assert olga.get("/training/matrix.csv").status_code == 403
    assert olga.get("/training/users/otis").status_code == 403
    assert olga.get("/training/users/olga").status_code == 200
    tess = as_user("tess")
    assert tess.get("/training").status_code == 200
    person = tess.get("/training/users/otis")
    assert person.status_code == 200
    page = text(person)
    assert "Training of Otis Operator" in page and 'data-status="overdue"' in page
    assert "Read and sign" not in page  # only the trainee gets the link to sign
    assert tess.get("/training/users/nobody").status_code == 404
    assert "No role of yours requires any training" in text(as_user("quinn").get("/training/me"))


# ----------------------------------------------------------------------------- requirements per role
@pytest.mark.urs("URS-TRN-01")
@pytest.mark.urs("URS-AUD-01")
def test_a_training_coordinator_adds_a_requirement_that_is_assigned_at_once(rt, people, as_user):
    tess = as_user("tess")
    assert 'id="manage-requirements"' in text(tess.get("/training"))
    page = text(tess.get("/training/requirements"))
    assert 'data-role="Operator" data-code="SOP-QA-001"' in page and "Aseptic gowning" in page
    resp = tess.post("/training/requirements", data={"role": "Operator", "kind": "course", "code": COURSE,
                                                     "title": "GMP basics", "due_days": "30"}, follow_redirects=True)
    assert "Operator now requires GMP-101; the role's current holders have it assigned." in text(resp)
    assert 'data-role="Operator" data-code="GMP-101"' in text(resp)
    with rt.db.sessionmaker() as session:
        cells = training.training_matrix(session, roles=["Operator"])
        assert sorted((c.username, c.status) for c in cells if c.code == COURSE) == [("olga", "due"), ("otis", "due")]
        entry = session.scalar(select(AuditEntry).where(AuditEntry.entity == "training_requirements",
                                                        AuditEntry.action == "create").order_by(AuditEntry.seq.desc()))
        assert entry.username == "tess" and entry.new["code"] == COURSE


@pytest.mark.urs("URS-TRN-01")
def test_a_bad_or_duplicate_requirement_is_refused_next_to_its_field_and_nothing_changes(rt, people, as_user):
    tess = as_user("tess")
    resp = tess.post("/training/requirements", data={"role": "", "kind": "video", "code": "bad code!",
                                                     "title": "", "due_days": "0"})
    assert resp.status_code == 400
    page = text(resp)
    for message in ("Name the role", "Choose one of: document, course.", "Use 1-64 letters",
                    "Give a title", "Must be a whole number of days from 1 to 3650."):
        assert message in page, message
    assert 'value="bad code!"' in page  # what was typed is kept
    resp = tess.post("/training/requirements", data={"role": "Operator", "kind": "document", "code": GATED_CODE,
                                                     "title": "Again", "due_days": "14"})
    assert resp.status_code == 409 and "already requires SOP-QA-001" in text(resp)
    with rt.db.sessionmaker() as session:
        assert [(r.role_name, r.code) for r in training.requirements(session)] == [("Operator", GATED_CODE)]


@pytest.mark.urs("URS-TRN-01")
@pytest.mark.urs("URS-AUD-04")
def test_withdrawing_a_requirement_needs_a_reason(rt, people, as_user):
    tess = as_user("tess")
    resp = tess.post("/training/requirements/withdraw", data={"role": "Operator", "code": GATED_CODE, "reason": ""},
                     follow_redirects=True)
    assert "Say why the requirement is withdrawn." in text(resp)
    resp = tess.post("/training/requirements/withdraw", data={"role": "Operator", "code": GATED_CODE,
                                                              "reason": "Gowning moved to GMP-101"},
                     follow_redirects=True)
    assert "Operator no longer requires SOP-QA-001" in text(resp)
    assert "No role requires any training yet." in text(resp)
    with rt.db.sessionmaker() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "training_requirement_withdrawn"))
        assert entry.reason == "Gowning moved to GMP-101" and entry.username == "tess"


@pytest.mark.urs("URS-SEC-02")
def test_only_qa_and_training_coordinators_manage_requirements(rt, people, as_user):
    olga = as_user("olga")
    assert olga.get("/training/requirements").status_code == 403
    resp = olga.post("/training/requirements", data={"role": "Operator", "kind": "course", "code": COURSE,
                                                     "title": "GMP basics", "due_days": "30"})
    assert resp.status_code == 403
    assert olga.post("/training/requirements/withdraw", data={"role": "Operator", "code": GATED_CODE,
                                                              "reason": "I would rather not"}).status_code == 403
    assert as_user("quinn").get("/training/requirements").status_code == 200
    with pytest.raises(Forbidden):  # the engine refuses the person, whichever door they come through
        training.require_training(rt, people["olga"], "Operator", COURSE, "course", "GMP basics")
    with rt.db.sessionmaker() as session:
        assert [(r.role_name, r.code) for r in training.requirements(session)] == [("Operator", GATED_CODE)]


@pytest.mark.urs("URS-TRN-02")
def test_the_read_and_understood_task_links_to_the_document_to_read(rt, people, as_user):
    make_effective(rt, major=1)
    (task,) = ack_tasks(rt, "olga")
    page = as_user("olga").get(f"/tasks/{task.id}").get_data(as_text=True)
    assert f'<a href="/documents/{GATED_CODE}">{GATED_CODE}</a>' in page
    # A course has no document page: its code is plain text.
    training.require_training(rt, None, "Operator", COURSE, "course", "GMP basics", 30)
    (course_task,) = [t for t in ack_tasks(rt, "olga") if t.id != task.id]
    page = as_user("olga").get(f"/tasks/{course_task.id}").get_data(as_text=True)
    assert COURSE in page and f'href="/documents/{COURSE}"' not in page
