"""Task page: the form with the record's context, errors next to fields, who may not complete and why,
the signing step, wrong passwords and the 409 when someone else was quicker."""
from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from models import AuditEntry, Record, Signature, Task, TaskStatus, User
from tests.conftest import PASSWORD
from tests.e2e.conftest import investigate, open_task, raise_deviation, triage


@pytest.fixture
def deviation(loaded_runtime, cast):
    return raise_deviation(loaded_runtime, cast["olivia"], title="Incubator excursion")


@pytest.fixture
def to_approve(loaded_runtime, cast, deviation):
    triage(loaded_runtime, deviation, cast["quinn"])
    investigate(loaded_runtime, deviation, cast["ivan"])
    return deviation


def field_block(html: str, name: str) -> str:
    m = re.search(rf'<(div|fieldset) class="field[^"]*"[^>]*>(?:(?!<(?:div|fieldset) class="field).)*?'
                  rf'id="f-{name}".*?</(div|fieldset)>', html, re.S)
    assert m, f"no field block for {name}"
    return m.group(0)


@pytest.mark.urs("URS-PLT-03")
def test_task_page_shows_the_form_and_the_records_context(as_user, deviation, loaded_runtime):
    task = open_task(loaded_runtime, deviation, "triage_deviation")
    html = as_user("quinn").get(f"/tasks/{task.id}").get_data(as_text=True)
    assert "<h1>QA triage" in html
    assert "Classify the deviation" in html  # the diagram's instructions for the user
    assert '<select id="f-classification"' in html and '<option value="critical">Critical</option>' in html
    assert '<textarea id="f-rationale"' in html
    # Context: the data so far (with the start form's titles), earlier steps and attachments.
    assert "Data so far" in html and "What happened" in html and "Incubator excursion" in html
    assert "Raised" in html and "Olivia Operator" in html
    assert "Attach a file to this task" in html
    assert "Complete task" in html and "Continue to signature" not in html


@pytest.mark.urs("URS-PLT-03")
def test_task_errors_show_next_to_their_fields_and_values_are_kept(as_user, deviation, loaded_runtime):
    task = open_task(loaded_runtime, deviation, "triage_deviation")
    resp = as_user("quinn").post(f"/tasks/{task.id}", data={"classification": "major", "investigator": "",
                                                             "rationale": "Could affect <potency>"})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    block = field_block(html, "investigator")
    assert "This field is required." in block and 'aria-invalid="true"' in block
    assert "This field is required." not in field_block(html, "rationale")
    assert ">Could affect &lt;potency&gt;</textarea>" in html
    assert '<option value="major" selected>Major</option>' in html
    assert open_task(loaded_runtime, deviation, "triage_deviation").status == TaskStatus.OPEN


@pytest.mark.urs("URS-PLT-02")
def test_completing_a_task_moves_the_record_on(as_user, deviation, loaded_runtime):
    task = open_task(loaded_runtime, deviation, "triage_deviation")
    c = as_user("quinn")
    resp = c.post(f"/tasks/{task.id}", data={"classification": "minor", "investigator": "ivan",
                                             "rationale": "Short excursion"})
    assert resp.status_code == 302 and resp.headers["Location"] == f"/records/{deviation.number}"
    assert "Completed: QA triage" in c.get(resp.headers["Location"]).get_data(as_text=True)
    assert open_task(loaded_runtime, deviation, "investigate_deviation").assignee == "ivan"
    # The completed task now shows who completed it, not the form.
    html = c.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert "By Quinn QA" in html and '<select id="f-classification"' not in html


@pytest.mark.urs("URS-PLT-02")
@pytest.mark.urs("URS-SEC-02")
def test_a_user_without_the_role_sees_why_instead_of_the_form(as_user, deviation, loaded_runtime):
    task = open_task(loaded_runtime, deviation, "triage_deviation")
    resp = as_user("ivan").get(f"/tasks/{task.id}")
    assert resp.status_code == 403
    html = resp.get_data(as_text=True)
    assert "You cannot complete this task" in html and "for the role &#39;QA&#39;" in html
    assert "not_in_role" in html and '<select id="f-classification"' not in html
    # Posting anyway changes nothing.
    resp = as_user("ivan").post(f"/tasks/{task.id}", data={"classification": "minor", "investigator": "ivan",
                                                            "rationale": "x"})
    assert resp.status_code == 403
    assert open_task(loaded_runtime, deviation, "triage_deviation").status == TaskStatus.OPEN


@pytest.mark.urs("URS-SEC-03")
def test_segregation_of_duties_is_explained(as_user, loaded_runtime, cast):
    record = raise_deviation(loaded_runtime, cast["max"])  # max holds Initiator and QA
    triage(loaded_runtime, record, cast["quinn"])
    investigate(loaded_runtime, record, cast["ivan"])
    task = open_task(loaded_runtime, record, "approve_investigation")
    resp = as_user("max").get(f"/tasks/{task.id}")
    assert resp.status_code == 403
    html = resp.get_data(as_text=True)
    assert "segregation of duties" in html and "raised it" in html


@pytest.mark.urs("URS-PLT-02")
def test_a_task_assigned_to_someone_else_is_explained(as_user, deviation, loaded_runtime, cast):
    triage(loaded_runtime, deviation, cast["quinn"], investigator="ivan")
    task = open_task(loaded_runtime, deviation, "investigate_deviation")
    resp = as_user("iris").get(f"/tasks/{task.id}")
    assert resp.status_code == 403 and "assigned to ivan" in resp.get_data(as_text=True)


@pytest.mark.urs("URS-SIG-01")
def test_the_signing_step_states_what_is_signed_and_its_meaning(as_user, to_approve, loaded_runtime):
    task = open_task(loaded_runtime, to_approve, "approve_investigation")
    c = as_user("quentin")
    html = c.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert "Continue to signature" in html and "This step is signed (approved)" in html
    resp = c.post(f"/tasks/{task.id}", data={"_action": "review", "decision": "approve", "comment": "Fine"})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "You are about to sign" in html and "QA approval" in html and to_approve.number in html
    assert '<strong class="sig-meaning">Approved</strong>' in html
    assert "Printed name on the signature: <strong>Quentin QA</strong>" in html
    assert "<dt>Decision</dt><dd>Approve</dd>" in html and "<dd>Fine</dd>" in html  # the data being signed
    assert '<input id="signature_password" name="signature_password" type="password"' in html
    assert '<input type="hidden" name="decision" value="approve">' in html
    assert open_task(loaded_runtime, to_approve, "approve_investigation").status == TaskStatus.OPEN
    # "Back to the form" keeps the values.
    back = c.post(f"/tasks/{task.id}", data={"_action": "edit", "decision": "approve", "comment": "Fine"})
    assert '<option value="approve" selected>Approve</option>' in back.get_data(as_text=True)


@pytest.mark.urs("URS-SIG-01")
def test_form_errors_are_shown_before_the_signing_step(as_user, to_approve, loaded_runtime):
    task = open_task(loaded_runtime, to_approve, "approve_investigation")
    resp = as_user("quentin").post(f"/tasks/{task.id}", data={"_action": "review", "decision": "reject",
                                                                "comment": ""})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert "You are about to sign" not in html
    assert "This field is required." in field_block(html, "comment")


@pytest.mark.urs("URS-SIG-01")
@pytest.mark.urs("URS-SIG-02")
@pytest.mark.urs("URS-DEV-03")
@pytest.mark.urs("URS-OPS-03")
def test_signing_shows_printed_name_local_date_time_and_meaning(as_user, to_approve, loaded_runtime):
    with loaded_runtime.db.unit_of_work(None) as s:
        s.get(User, s.scalar(select(User.id).where(User.username == "quentin"))).timezone = "America/New_York"
    task = open_task(loaded_runtime, to_approve, "approve_investigation")
    c = as_user("quentin")
    resp = c.post(f"/tasks/{task.id}", data={"_action": "sign", "decision": "approve", "comment": "Fine",
                                             "signature_password": PASSWORD})
    assert resp.status_code == 302 and resp.headers["Location"] == f"/tasks/{task.id}"
    html = c.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Signed (approved) and completed" in html
    assert "Electronic signature" in html and '<strong class="sig-name">Quentin QA</strong>' in html
    assert '<span class="sig-meaning">Approved</span>' in html and '<span class="badge valid">Valid</span>' in html
    with loaded_runtime.db.sessionmaker() as s:
        sig = s.scalar(select(Signature).where(Signature.task_id == task.id))
        assert sig.signer_name == "Quentin QA" and sig.meaning == "approved"
        local = sig.signed_at.astimezone(ZoneInfo("America/New_York"))
        assert local.strftime("%Y-%m-%d %H:%M:%S %Z") in html  # the user's zone (EST/EDT) ...
        assert sig.signed_at.strftime("%H:%M:%S") + " UTC" in html  # ... and UTC
        assert s.scalar(select(Record.status).where(Record.id == to_approve.id)).value == "closed"


@pytest.mark.urs("URS-SIG-01")
def test_a_wrong_signing_password_is_refused_and_nothing_changes(as_user, to_approve, loaded_runtime):
    rt = loaded_runtime
    task = open_task(rt, to_approve, "approve_investigation")
    with rt.db.sessionmaker() as s:
        before = s.get(Record, to_approve.id)
        version, data = before.version, dict(before.data)
    c = as_user("quentin")
    resp = c.post(f"/tasks/{task.id}", data={"_action": "sign", "decision": "approve", "comment": "Fine",
                                             "signature_password": "not-my-password"})
    assert resp.status_code == 401
    html = resp.get_data(as_text=True)
    assert "The password is not correct; nothing was signed or saved." in html
    assert "You are about to sign" in html  # still on the signing step, values carried
    assert '<input type="hidden" name="comment" value="Fine">' in html
    with rt.db.sessionmaker() as s:
        record = s.get(Record, to_approve.id)
        assert record.version == version and record.data == data
        assert s.get(Task, task.id).status == TaskStatus.OPEN
        assert s.scalar(select(func.count()).select_from(Signature)) == 0
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "signature_failed", AuditEntry.username == "quentin")) == 1


@pytest.mark.urs("URS-SIG-01")
def test_signing_without_a_password_asks_for_it(as_user, to_approve, loaded_runtime):
    task = open_task(loaded_runtime, to_approve, "approve_investigation")
    resp = as_user("quentin").post(f"/tasks/{task.id}", data={"_action": "sign", "decision": "approve",
                                                               "signature_password": ""})
    assert resp.status_code == 400 and "enter your password" in resp.get_data(as_text=True)


@pytest.mark.urs("URS-SEC-04")
def test_repeated_wrong_signing_passwords_lock_the_account_and_log_out(as_user, to_approve, loaded_runtime):
    task = open_task(loaded_runtime, to_approve, "approve_investigation")
    c = as_user("quentin")
    for _ in range(loaded_runtime.settings.max_failed_logins - 1):
        c.post(f"/tasks/{task.id}", data={"_action": "sign", "decision": "approve", "signature_password": "x"})
    resp = c.post(f"/tasks/{task.id}", data={"_action": "sign", "decision": "approve", "signature_password": "x"})
    assert resp.status_code == 423 and "locked" in resp.get_data(as_text=True)
    assert c.get("/").status_code == 302


@pytest.mark.urs("URS-PLT-02")
def test_someone_else_completing_first_gives_a_409_page_with_a_link_to_the_record(as_user, deviation,
                                                                                   loaded_runtime, cast):
    task = open_task(loaded_runtime, deviation, "triage_deviation")
    quentin = as_user("quentin")
    assert quentin.get(f"/tasks/{task.id}").status_code == 200  # both have the form open
    triage(loaded_runtime, deviation, cast["quinn"])  # quinn is quicker
    resp = quentin.post(f"/tasks/{task.id}", data={"classification": "major", "investigator": "ivan",
                                                   "rationale": "Mine"})
    assert resp.status_code == 409
    html = resp.get_data(as_text=True)
    assert "Someone else completed this task a moment ago" in html
    assert f'href="/records/{deviation.number}"' in html and "Traceback" not in html


@pytest.mark.urs("URS-SEC-02")
def test_unknown_task_is_a_friendly_404(as_user):
    resp = as_user("quinn").get("/tasks/00000000-0000-0000-0000-000000000000")
    assert resp.status_code == 404 and "Not found" in resp.get_data(as_text=True)
