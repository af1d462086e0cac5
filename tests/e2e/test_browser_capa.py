"""Browser end-to-end for the CAPA: Debian's chromium drives the real app on a live server.

A deviation whose investigation says a CAPA is required raises it (the link shows on both records);
QA plans the actions and approves the plan with a signature; each action owner completes and signs
their own action; QA approves the closure with a signature; the 90-day effectiveness timer falls
due and the worker's call fires it; an action owner is refused the effectiveness check
(segregation of duties) and another QA person does it. Refusals are shown in the page and change
nothing. Screenshots go to test-output/screenshots/capa-*.png.

No mocks: the runtime, its database (SQLite or PostgreSQL) and its timers are the real ones. The
effectiveness timer is made due the way tests/integration/test_capa_linking.py does it: the closure
is signed with the runtime's clock set 90 days (less a few seconds) in the past, so the engine
schedules the check a few seconds from now by the real clock, which SpiffWorkflow's timers use.
"""
from __future__ import annotations

import datetime as dt
import re
import time

import pytest
from sqlalchemy import func, select

from models import AuditEntry, Record, RecordStatus, Task, TaskStatus, TimerJob
from tests.conftest import PASSWORD
from tests.e2e.conftest import (
    approve,
    continue_and_sign,
    log_in,
    log_out,
    no_console_errors,
    open_rows,
    open_task,
    raise_deviation,
    record_by_number,
    refusal_of,
    screenshot,
    signature_count,
    the_open_task,
    triage,
)
from tests.fixtures.cast import add_users

pytestmark = pytest.mark.browser

OWNERS = {
    "anna": ("Anna Owner", ["Action Owner"]),
    "otto": ("Otto Owner", ["Action Owner", "QA"]),  # an action owner who also holds QA
}
ACTIONS = [
    ("Add an expiry check to the reagent issue step of SOP-QC-031.", "anna", "2027-01-31"),
    ("Configure expiry alerts in the reagent inventory.", "otto", "2027-02-28"),
]
SIGN_LEAD = dt.timedelta(seconds=8)  # how far ahead of the real clock the effectiveness check falls due


@pytest.fixture
def owners(loaded_runtime, cast):
    """Two action owners besides the deviation cast; otto also holds QA."""
    return add_users(loaded_runtime, OWNERS)


# ----------------------------------------------------------------------------- helpers



def signatures_of(rt, record_id: str) -> list[tuple[str, str, bool]]:
    """(meaning, signer, still valid) of each signature of the record, in signing order."""
    with rt.db.sessionmaker() as s:
        return [(sig.meaning, sig.signer.username, valid) for sig, valid in rt.signatures(s, s.get(Record, record_id))]


def assert_manifest(manifest: str, name: str, meaning: str):
    """The signature manifestation: printed name, meaning (shown in capitals by the style sheet), valid."""
    assert name in manifest and meaning.upper() in manifest.upper() and "Valid" in manifest, manifest
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", manifest), manifest


def fill_plan(page, actions, rationale: str):
    """Fill the plan form: one row per action (the form opens with one row; 'Add action' adds more)."""
    for i, (description, owner, due) in enumerate(actions):
        if i > 0:
            page.click("button[value='add:actions']")
            page.wait_for_selector(f"#f-actions-{i}-description")
        page.fill(f"#f-actions-{i}-description", description)
        page.fill(f"#f-actions-{i}-owner", owner)
        page.fill(f"#f-actions-{i}-due_date", due)
    page.fill("#f-plan_rationale", rationale)


def investigated_in_the_browser(page, base, rt, cast) -> tuple[Record, Record]:
    """A major deviation triaged by QA (runtime); ivan investigates in the browser and ticks 'CAPA required'."""
    deviation = raise_deviation(rt, cast["olivia"], title="Viability assay run with expired reagent",
                                area="QC laboratory")
    triage(rt, deviation, cast["quinn"], investigator="ivan", classification="major")
    log_in(page, base, "ivan")
    page.click("#inbox-table >> text=Investigation")
    page.fill("#f-root_cause", "The reagent inventory does not flag lots that expire during an open campaign.")
    page.fill("#f-product_impact", "Repeat assay within specification; no effect on the batch.")
    page.fill("#f-patient_impact", "None; release was not delayed.")
    page.check("#f-capa_required")
    page.click("text=Complete task")
    page.wait_for_url(base + f"/records/{deviation.number}")
    deviation = record_by_number(rt, deviation.number)
    capa = record_by_number(rt, deviation.data["capa"]["number"])
    return deviation, capa


# ----------------------------------------------------------------------------- the journey

@pytest.mark.urs("URS-DEV-04")
@pytest.mark.urs("URS-PLT-07")
@pytest.mark.urs("URS-CAPA-01")
@pytest.mark.urs("URS-CAPA-02")
@pytest.mark.urs("URS-CAPA-03")
@pytest.mark.urs("URS-SEC-03")
@pytest.mark.urs("URS-SIG-01")
@pytest.mark.urs("URS-SIG-02")
@pytest.mark.urs("URS-PLT-05")
def test_a_deviation_raises_a_capa_that_is_planned_acted_on_closed_and_checked_for_effectiveness_in_the_browser(
        live_server, browser_context, loaded_runtime, cast, owners):
    rt = loaded_runtime
    base = live_server.url
    page = browser_context.new_page()

    # URS-DEV-04: the investigator ticks "CAPA required"; the CAPA is raised at once and linked both ways.
    deviation, capa = investigated_in_the_browser(page, base, rt, cast)
    assert re.fullmatch(r"CAPA-\d{4}-\d{4}", capa.number)
    links = page.inner_text("#links-h + ul")
    assert f"raises: {capa.number}" in links and "Open" in links
    assert f"CAPA for {deviation.number}: Viability assay run with expired reagent" in links
    screenshot(page, "capa-deviation-linked")
    page.click(f"#links-h + ul >> text={capa.number}")
    page.wait_for_url(base + f"/records/{capa.number}")
    assert f"raises: {deviation.number}" in page.inner_text("#links-h + ul")
    raised = page.inner_text("#data-h + article")  # the CAPA's start data, filled in from the deviation
    assert "Deviation" in raised and deviation.number in raised
    assert "reagent inventory does not flag lots" in raised
    assert "Ivan Investigator" in page.inner_text(".record-head")
    screenshot(page, "capa-record-raised")
    log_out(page)
    assert [t.bpmn_id for t in open_rows(rt, capa.id)] == ["plan_capa"]
    # Only now, with its CAPA raised, can the deviation be approved; it closes and the CAPA goes on.
    assert [t.bpmn_id for t in open_rows(rt, deviation.id)] == ["approve_investigation"]
    approve(rt, deviation, cast["quentin"])
    assert record_by_number(rt, deviation.number).status == RecordStatus.CLOSED

    # URS-CAPA-01, -02: QA plans two actions for two owners and approves the plan with a signature.
    log_in(page, base, "quinn")
    inbox = page.inner_text("#inbox-table")
    assert capa.number in inbox and "Plan and approve the CAPA" in inbox
    page.click("#inbox-table >> text=Plan and approve the CAPA")
    page.wait_for_selector("#f-actions-0-description")
    fill_plan(page, ACTIONS, "The check stops expired lots at issue; the alert removes them before use.")
    screenshot(page, "capa-plan-form")
    page.click("text=Continue to signature")
    page.wait_for_selector("#signature_password")
    signing = page.inner_text(".signing")
    assert "APPROVED" in signing.upper() and capa.number in signing
    assert ACTIONS[0][0] in signing and ACTIONS[1][0] in signing  # what is signed is shown before signing
    screenshot(page, "capa-plan-signing")
    page.fill("#signature_password", PASSWORD)
    page.click("button[value=sign]")
    page.wait_for_selector(".signature")
    manifest = page.inner_text(".signature")
    assert_manifest(manifest, "Quinn QA", "approved")
    log_out(page)
    anna_task = the_open_task(rt, capa.id, "complete_action", "anna")
    otto_task = the_open_task(rt, capa.id, "complete_action", "otto")
    assert anna_task.due_at == dt.datetime(2027, 1, 31, 23, 59, 59, tzinfo=dt.timezone.utc)

    # Each owner sees only their own action; another owner's action is refused (not assigned).
    log_in(page, base, "anna")
    assert page.locator("#inbox-count").inner_text() == "1"
    assert "Complete CAPA action" in page.inner_text("#inbox-table")
    refusal_of(page, base, otto_task.id, "not_assigned")
    screenshot(page, "capa-action-of-another-owner-refused")

    # URS-CAPA-02: anna completes her action and signs it (authored).
    page.goto(base + "/")
    page.click("#inbox-table >> text=Complete CAPA action")
    page.wait_for_selector("#f-completion_evidence")
    assert "assigned to anna" in page.inner_text(".meta")
    page.fill("#f-completion_evidence", "SOP-QC-031 version 5 effective on 2026-12-20; issuers trained.")
    page.fill("#f-completed_on", "2026-12-20")
    screenshot(page, "capa-action-form")
    manifest = continue_and_sign(page, "authored")
    assert_manifest(manifest, "Anna Owner", "authored")
    screenshot(page, "capa-action-signed")
    log_out(page)
    assert [t.bpmn_id for t in open_rows(rt, capa.id)] == ["complete_action"]  # closure waits for otto

    # Otto's action through the runtime (the browser adds nothing a second time).
    rt.complete_task(otto_task.id, owners["otto"], {
        "completion_evidence": "Expiry alerts configured (VR-2026-044).", "completed_on": "2026-12-10"},
        signature={"password": PASSWORD, "meaning": "authored"})
    closure = the_open_task(rt, capa.id, "approve_closure")

    # URS-SEC-03: otto holds QA but owned an action: he may not approve the closure.
    log_in(page, base, "otto")
    assert "QA approval of closure" not in page.inner_text("main")
    refusal_of(page, base, closure.id, "segregation_of_duties")
    screenshot(page, "capa-closure-refused-to-owner")
    log_out(page)

    # URS-CAPA-02: quinn approves the closure with a signature. The closure is signed with the
    # runtime's clock 90 days (less SIGN_LEAD) in the past, so the 90-day check falls due shortly.
    log_in(page, base, "quinn")
    page.click("#inbox-table >> text=QA approval of closure")
    page.wait_for_selector("#f-closure_summary")
    context = page.inner_text(".task-context")
    assert "SOP-QC-031 version 5 effective" in context and "VR-2026-044" in context  # the evidence to review
    page.fill("#f-closure_summary", "Both actions done; evidence reviewed (SOP-QC-031 v5, VR-2026-044).")
    page.click("text=Continue to signature")
    page.fill("#signature_password", PASSWORD)
    rt.clock.offset = -dt.timedelta(days=90) + SIGN_LEAD
    try:
        page.click("button[value=sign]")
        page.wait_for_selector(".signature")
    finally:
        rt.clock.offset = dt.timedelta(0)
    # URS-CAPA-03, URS-PLT-05: the effectiveness check waits for its timer; nobody has it yet.
    with rt.db.sessionmaker() as s:
        (job,) = s.scalars(select(TimerJob).where(TimerJob.record_id == capa.id, TimerJob.fired_at.is_(None))).all()
        data = s.get(Record, capa.id).data
    assert job.due_at - dt.datetime.now(dt.timezone.utc) > dt.timedelta(seconds=1), "the sign step took too long"
    assert rt.fire_due_timers() == 0, "the check is not due yet"
    assert open_rows(rt, capa.id) == []
    assert job.event_name == "Effectiveness check due"
    assert job.due_at == dt.datetime.fromisoformat(data["effectiveness_check_due"])
    assert data["effectiveness_days"] == 90
    manifest = page.inner_text(".signature")
    assert_manifest(manifest, "Quinn QA", "approved")
    screenshot(page, "capa-closure-signed")
    log_out(page)

    # When it falls due, the worker's call fires it and the check opens.
    time.sleep(max(0.0, (job.due_at - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 0.2)
    assert rt.fire_due_timers() == 1  # what the worker does
    check = the_open_task(rt, capa.id, "check_effectiveness")

    # URS-CAPA-03: an action owner (who holds QA) is refused the check, with the reason on the page.
    log_in(page, base, "otto")
    assert "Effectiveness check" not in page.inner_text("main")
    refusal = refusal_of(page, base, check.id, "segregation_of_duties")
    assert "because you completed 'Complete CAPA action' on this record" in refusal
    screenshot(page, "capa-effectiveness-refused-to-owner")
    log_out(page)

    # Another QA person does the check and signs it (verified): the CAPA closes, effective.
    log_in(page, base, "quentin")
    page.click("#inbox-table >> text=Effectiveness check")
    page.wait_for_selector("#f-effectiveness_evidence")
    page.check("#f-effective")
    page.fill("#f-effectiveness_evidence", "No expired lot issued in the 90 days since closure (issue log reviewed).")
    screenshot(page, "capa-effectiveness-form")
    manifest = continue_and_sign(page, "verified")
    assert_manifest(manifest, "Quentin QA", "verified")

    # The CAPA record page: closed, every signature with its name and meaning, the links, the audit trail.
    page.goto(base + f"/records/{capa.number}")
    page.wait_for_selector("#diagram[data-rendered=true]")
    assert "Closed" in page.inner_text(".record-head")
    sigs = page.inner_text("#signatures")
    for name in ("Quinn QA", "Anna Owner", "Otto Owner", "Quentin QA"):
        assert name in sigs, name
    assert page.locator("#signatures .signature").count() == 5
    assert page.locator("#signatures .badge.valid").count() == 5, sigs
    assert f"raises: {deviation.number}" in page.inner_text("#links-h + ul")
    assert "(Closed)" in page.inner_text("#links-h + ul")
    audit = page.inner_text("#audit-table")
    for action in ("record_linked", "task_completed", "timer_fired", "signature"):
        assert action in audit, action
    for task_id in ("plan_capa", "complete_action", "approve_closure", "check_effectiveness"):
        classes = page.get_attribute(f"#diagram g.djs-element[data-element-id={task_id}]", "class")
        assert "cq-completed" in classes, (task_id, classes)
    screenshot(page, "capa-record-closed")

    # What was stored.
    capa = record_by_number(rt, capa.number)
    assert capa.status == RecordStatus.CLOSED and capa.data["effective"] is True
    assert [(r["owner"], r["completed_on"]) for r in capa.data["action_results"]] == [
        ("anna", "2026-12-20"), ("otto", "2026-12-10")]
    assert signatures_of(rt, capa.id) == [("approved", "quinn", True), ("authored", "anna", True),
                                          ("authored", "otto", True), ("approved", "quinn", True),
                                          ("verified", "quentin", True)]
    no_console_errors(browser_context)


# ----------------------------------------------------------------------------- refusals

@pytest.mark.urs("URS-CAPA-01")
@pytest.mark.urs("URS-PLT-03")
@pytest.mark.urs("URS-SEC-02")
def test_a_plan_whose_owner_lacks_the_action_owner_role_is_refused_in_the_page_and_nothing_is_saved(
        live_server, browser_context, loaded_runtime, cast, owners):
    rt = loaded_runtime
    base = live_server.url
    capa = rt.start_record(cast["olivia"], "capa", {
        "title": "Expired reagents used in release testing", "source": "audit_finding",
        "source_reference": "AUD-2026-07 finding 3", "problem_statement": "Two expired lots issued in Q3."})
    plan = open_task(rt, capa, "plan_capa")
    page = browser_context.new_page()

    # An Action Owner without QA cannot plan the CAPA: the reason instead of the form.
    log_in(page, base, "anna")
    assert "Plan and approve the CAPA" not in page.inner_text("main")
    assert "for the role 'QA'" in refusal_of(page, base, plan.id, "not_in_role")
    log_out(page)

    # QA leaves the rationale empty: the error is shown next to the field, what was typed stays.
    log_in(page, base, "quinn")
    page.goto(base + f"/tasks/{plan.id}")
    fill_plan(page, [("Retrain the issuers on SOP-QC-031.", "ivan", "2027-01-31")], "")
    page.click("text=Continue to signature")
    page.wait_for_selector("#error-summary")
    assert "Rationale" in page.inner_text("#error-summary")
    assert page.locator(".field.has-error #f-plan_rationale").count() == 1
    assert page.input_value("#f-actions-0-owner") == "ivan"
    screenshot(page, "capa-plan-field-error")

    # The owner named (ivan) does not hold the Action Owner role: refused before the signature is
    # asked for (the step is tried and rolled back), the reason listed once in the form; nothing saved.
    page.fill("#f-plan_rationale", "Retraining removes the cause.")
    page.click("text=Continue to signature")
    page.wait_for_selector("#error-summary")
    assert page.locator("#signature_password").count() == 0
    summary = page.inner_text("#error-summary")
    assert "ivan" in summary and "Action Owner" in summary, summary
    page.click("#error-summary a")  # the summary's link leads to the form's own list of problems
    assert page.inner_text("#f-form-errors").count("is not an active user") == 1
    assert page.input_value("#f-actions-0-owner") == "ivan"  # the form is shown again as typed
    screenshot(page, "capa-plan-owner-refused")
    with rt.db.sessionmaker() as s:
        assert s.get(Task, plan.id).status == TaskStatus.OPEN
        assert "actions" not in s.get(Record, capa.id).data
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.record_id == capa.id, AuditEntry.action == "task_completed")) == 0
    assert signature_count(rt) == 0
    page.goto(base + "/")
    assert "Plan and approve the CAPA" in page.inner_text("main")  # still waiting in the inbox
    no_console_errors(browser_context)
