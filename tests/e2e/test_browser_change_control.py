"""Browser end-to-end for change control: Debian's chromium drives the real app on a live server.

A requester raises a change request on the start page (affected items, a controlled document to
revise); QA scores the risk and sees the risk class the diagram computed; two impacted functions
assess the impact in parallel, each signing "reviewed"; QA approves before implementation (signed),
which starts the document revision as a linked record; the implementers complete their tasks
(signed "authored"); QA reviews after implementation (signed) and the change closes. The record page
shows the signatures, the audit trail and the linked records. Refusals (the requester who holds QA
may not approve their own change; a form error is shown next to its field) change nothing.
Screenshots go to test-output/screenshots/cc-*.png.

No mocks: the real runtime and database (SQLite or PostgreSQL, see tests/conftest.py).
"""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from engine import documents
from models import AuditEntry, Record, RecordLink, RecordStatus, Task, TaskStatus
from tests.conftest import PASSWORD
from tests.e2e.conftest import (
    continue_and_sign,
    log_in,
    log_out,
    no_console_errors,
    open_rows,
    record_by_number,
    refusal_of,
    screenshot,
    signature_count,
    the_open_task,
)
from tests.fixtures.cast import add_users

pytestmark = pytest.mark.browser

# The deviation cast (tests/conftest.py `users`) gives max (Initiator and QA), quinn and quentin (QA).
CC_CAST = {
    "cleo": ("Cleo QC", ["Impact Assessor"]),
    "vera": ("Vera Validation", ["Impact Assessor"]),
    "ed": ("Ed Engineer", ["Implementer"]),
    "fay": ("Fay Facilities", ["Implementer"]),
}
TITLE = "Replace controlled-rate freezer CRF-01 with CRF-03"


@pytest.fixture
def cc_cast(loaded_runtime, cast):
    """Assessors and implementers besides the deviation cast, and SOP-MFG-012 in the document library."""
    people = add_users(loaded_runtime, CC_CAST)
    documents.create_document(loaded_runtime, None, "SOP-MFG-012", "Cryopreservation of the final product", "SOP",
                              "quinn")
    return people


# ----------------------------------------------------------------------------- helpers



def assert_manifest(manifest: str, name: str, meaning: str):
    """The signature manifestation: printed name, meaning (shown in capitals by the style sheet), valid."""
    assert name in manifest and meaning.upper() in manifest.upper() and "Valid" in manifest, manifest
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", manifest), manifest


def fill_rows(page, array: str, rows: list[dict]):
    """Fill a repeating group row by row ('Add ...' adds a row; the form opens with one)."""
    for i, row in enumerate(rows):
        if i > 0:
            page.click(f"button[value='add:{array}']")
            page.wait_for_selector(f"#f-{array}-{i}-{next(iter(row))}")
        for name, value in row.items():
            selector = f"#f-{array}-{i}-{name}"
            if page.locator(f"select{selector}").count():
                page.select_option(selector, value)
            else:
                page.fill(selector, value)


def fill_request(page, *, revise: bool = True):
    page.fill("#f-title", TITLE)
    page.select_option("#f-change_type", "equipment")
    page.fill("#f-description", "CRF-01 is replaced by CRF-03 for cryopreservation of the final product.")
    page.fill("#f-rationale", "CRF-01 is out of vendor support from 2027.")
    fill_rows(page, "affected_items", [
        {"kind": "equipment", "reference": "CRF-01"},
        {"kind": "document", "reference": "SOP-MFG-012", "note": "Freezing profile of CRF-03."},
    ])
    if revise:
        page.check("#f-document_revision_required")


# ----------------------------------------------------------------------------- the journey

@pytest.mark.urs("URS-CC-01")
@pytest.mark.urs("URS-CC-02")
@pytest.mark.urs("URS-CC-03")
@pytest.mark.urs("URS-PLT-07")
@pytest.mark.urs("URS-SEC-03")
@pytest.mark.urs("URS-SIG-01")
@pytest.mark.urs("URS-SIG-02")
@pytest.mark.urs("URS-AUD-03")
def test_a_change_is_requested_assessed_approved_implemented_reviewed_and_closed_in_the_browser(
        live_server, browser_context, loaded_runtime, cast, cc_cast):
    rt = loaded_runtime
    base = live_server.url
    page = browser_context.new_page()

    # URS-CC-01: max (Initiator, also QA) raises the change request on the start page.
    log_in(page, base, "max")
    page.click("text=Start a record")
    page.click("a[href='/start/change_control']")
    fill_request(page)
    page.fill("#f-revises_document", "SOP-MFG-012")
    screenshot(page, "cc-start-form")
    page.click("text=Raise change control")
    page.wait_for_url(re.compile(r".*/records/CC-\d{4}-\d{4}$"))
    number = page.url.rsplit("/", 1)[1]
    assert f"{number} was raised" in page.content()
    raised = page.inner_text("#data-h + article")
    for text in ("CRF-01", "SOP-MFG-012", "Freezing profile of CRF-03.", "out of vendor support"):
        assert text in raised, text
    screenshot(page, "cc-record-raised")
    log_out(page)
    change = record_by_number(rt, number)
    assert change.data["affected_items"][1] == {"kind": "document", "reference": "SOP-MFG-012",
                                                "note": "Freezing profile of CRF-03."}
    assert [t.bpmn_id for t in open_rows(rt, change.id)] == ["assess_risk"]

    # URS-CC-01: QA scores the risk and names two impacted functions; the risk class is computed.
    log_in(page, base, "quinn")
    page.click("#inbox-table >> text=Risk assessment")
    page.wait_for_selector("#f-severity")
    page.fill("#f-severity", "3")
    page.fill("#f-probability", "4")
    page.fill("#f-detectability", "5")
    page.fill("#f-risk_notes", "Wrong freezing profile could reduce viability; detected only by release testing.")
    fill_rows(page, "impacted_functions", [{"function": "QC", "assessor": "cleo"},
                                           {"function": "Validation", "assessor": "vera"}])
    screenshot(page, "cc-risk-form")
    page.click("text=Complete task")
    page.wait_for_url(base + f"/records/{number}")
    process_set = page.inner_text("#data-h ~ article:has(h3:text('Set by the process'))")
    assert re.search(r"Risk class\s+high", process_set), process_set
    assert re.search(r"Rpn\s+60", process_set), process_set
    screenshot(page, "cc-record-risk-class")
    log_out(page)

    # URS-CC-02: both assessments are open at once, each reserved for its assessor.
    assessments = {t.assignee: t for t in open_rows(rt, change.id) if t.bpmn_id == "assess_impact"}
    assert sorted(assessments) == ["cleo", "vera"]
    for assessor, summary, conditions in (
            ("vera", "CRF-03 needs IQ/OQ/PQ before use.", "Requalify CRF-03 before the first GMP run."),
            ("cleo", "Release testing unchanged; one comparability run.", "Comparability run on 3 lots.")):
        log_in(page, base, assessor)
        assert page.locator("#inbox-count").inner_text() == "1"
        if assessor == "vera":  # cleo's assessment, still open, is not vera's to do
            refusal_of(page, base, assessments["cleo"].id, "not_assigned")
            page.goto(base + "/")
        page.click("#inbox-table >> text=Impact assessment")
        page.wait_for_selector("#f-impact_summary")
        assert "high" in page.inner_text(".task-context")  # the risk class beside the form
        page.fill("#f-impact_summary", summary)
        page.check("#f-acceptable")
        page.fill("#f-conditions", conditions)
        assert_manifest(continue_and_sign(page, "reviewed"), CC_CAST[assessor][0], "reviewed")
        screenshot(page, f"cc-impact-signed-{assessor}")
        log_out(page)
    assert [t.bpmn_id for t in open_rows(rt, change.id)] == ["approve_implementation"]
    approval = the_open_task(rt, change.id, "approve_implementation")

    # URS-SEC-03: max holds QA but requested the change: he may not approve it.
    log_in(page, base, "max")
    assert "QA approval before implementation" not in page.inner_text("main")
    refusal_of(page, base, approval.id, "segregation_of_duties")
    screenshot(page, "cc-approval-refused-to-requester")
    log_out(page)

    # URS-CC-02, -03: quentin approves before implementation with two tasks, signed.
    log_in(page, base, "quentin")
    page.click("#inbox-table >> text=QA approval before implementation")
    page.wait_for_selector("#f-decision")
    context = page.inner_text(".task-context")
    assert "Requalify CRF-03 before the first GMP run." in context and "Comparability run on 3 lots." in context
    page.select_option("#f-decision", "approve")
    page.fill("#f-comment", "Conditions of both assessments are covered by the tasks.")
    fill_rows(page, "implementation_tasks", [
        {"description": "Requalify CRF-03 (IQ/OQ/PQ).", "owner": "ed", "due_date": "2027-03-31"},
        {"description": "Install CRF-03 and connect it to the monitoring system.", "owner": "fay",
         "due_date": "2027-02-28"},
    ])
    screenshot(page, "cc-approval-form")
    assert_manifest(continue_and_sign(page, "approved"), "Quentin QA", "approved")
    log_out(page)

    # URS-PLT-07: the approval started the revision of SOP-MFG-012 as its own record, linked "revises".
    change = record_by_number(rt, number)
    revision = record_by_number(rt, change.data["document_revision"]["number"])
    assert revision.data["document_number"] == "SOP-MFG-012"
    tasks = {t.assignee: t for t in open_rows(rt, change.id) if t.bpmn_id == "implement_change"}
    assert sorted(tasks) == ["ed", "fay"]

    # URS-CC-03: ed completes his task in the browser; fay's through the runtime.
    log_in(page, base, "ed")
    page.click("#inbox-table >> text=Implementation task")
    page.wait_for_selector("#f-evidence")
    assert "assigned to ed" in page.inner_text(".meta")
    page.fill("#f-evidence", "IQ/OQ/PQ report VR-2027-011 approved.")
    page.fill("#f-completed_on", "2027-03-20")
    assert_manifest(continue_and_sign(page, "authored"), "Ed Engineer", "authored")
    screenshot(page, "cc-implementation-signed")
    log_out(page)
    assert [t.bpmn_id for t in open_rows(rt, change.id)] == ["implement_change"]  # the review waits for fay
    rt.complete_task(tasks["fay"].id, cc_cast["fay"], {"evidence": "Installed; work order WO-2027-118.",
                                                        "completed_on": "2027-02-20"},
                     signature={"password": PASSWORD, "meaning": "authored"})

    # URS-CC-02: QA reviews after implementation, signed; the change closes.
    log_in(page, base, "quinn")
    page.click("#inbox-table >> text=QA post-implementation review")
    page.wait_for_selector("#f-review_summary")
    context = page.inner_text(".task-context")
    assert "VR-2027-011" in context and "WO-2027-118" in context  # the evidence to review
    page.fill("#f-review_summary", "Both tasks done with evidence; CRF-03 qualified and in use.")
    page.check("#f-effective")
    assert_manifest(continue_and_sign(page, "approved"), "Quinn QA", "approved")

    # The record page: closed, the six signatures, the linked revision record, the audit trail.
    page.goto(base + f"/records/{number}")
    page.wait_for_selector("#diagram[data-rendered=true]")
    assert "Closed" in page.inner_text(".record-head")
    sigs = page.inner_text("#signatures")
    for name in ("Cleo QC", "Vera Validation", "Quentin QA", "Ed Engineer", "Fay Facilities", "Quinn QA"):
        assert name in sigs, name
    assert page.locator("#signatures .signature").count() == 6
    assert page.locator("#signatures .badge.valid").count() == 6, sigs
    links = page.inner_text("#links-h + ul")
    assert f"revises: {revision.number}" in links, links
    audit = page.inner_text("#audit-table")
    for action in ("create", "task_completed", "signature", "record_linked"):
        assert action in audit, action
    for task_id in ("assess_risk", "assess_impact", "approve_implementation", "implement_change",
                    "approve_effectiveness"):
        classes = page.get_attribute(f"#diagram g.djs-element[data-element-id={task_id}]", "class")
        assert "cq-completed" in classes, (task_id, classes)
    screenshot(page, "cc-record-closed")
    page.click(f"#links-h + ul >> text={revision.number}")
    page.wait_for_url(base + f"/records/{revision.number}")
    assert f"revises: {number}" in page.inner_text("#links-h + ul")
    screenshot(page, "cc-revision-record")

    # What was stored.
    change = record_by_number(rt, number)
    assert change.status == RecordStatus.CLOSED
    assert (change.data["rpn"], change.data["risk_class"]) == (60, "high")
    assert sorted(a["function"] for a in change.data["impact_assessments"]) == ["QC", "Validation"]
    assert sorted(r["owner"] for r in change.data["implementation_results"]) == ["ed", "fay"]
    with rt.db.sessionmaker() as s:
        signed = sorted((sig.meaning, sig.signer.username, valid)
                        for sig, valid in rt.signatures(s, s.get(Record, change.id)))
        assert s.scalar(select(func.count()).select_from(RecordLink).where(
            RecordLink.source_id == change.id, RecordLink.kind == "revises")) == 1
    assert signed == sorted([("reviewed", "vera", True), ("reviewed", "cleo", True), ("approved", "quentin", True),
                             ("authored", "ed", True), ("authored", "fay", True), ("approved", "quinn", True)])
    no_console_errors(browser_context)


# ----------------------------------------------------------------------------- refusals

@pytest.mark.urs("URS-CC-01")
@pytest.mark.urs("URS-PLT-03")
def test_form_errors_are_shown_next_to_their_fields_and_nothing_is_saved(live_server, browser_context,
                                                                         loaded_runtime, cast, cc_cast):
    rt = loaded_runtime
    base = live_server.url
    page = browser_context.new_page()

    # The box "revises a controlled document" is ticked but no document is named: refused, nothing raised.
    log_in(page, base, "max")
    page.goto(base + "/start/change_control")
    fill_request(page, revise=True)
    page.click("text=Raise change control")
    page.wait_for_selector("#error-summary")
    assert page.url == base + "/start/change_control"
    assert "Document to revise" in page.inner_text("#error-summary")
    assert page.locator(".field.has-error #f-revises_document").count() == 1
    assert page.input_value("#f-affected_items-1-reference") == "SOP-MFG-012"  # what was typed stays
    assert page.is_checked("#f-document_revision_required")
    screenshot(page, "cc-start-missing-document")
    with rt.db.sessionmaker() as s:
        assert s.scalar(select(func.count()).select_from(Record).where(Record.number.like("CC-%"))) == 0

    # Without the box the request is raised.
    page.uncheck("#f-document_revision_required")
    page.click("text=Raise change control")
    page.wait_for_url(re.compile(r".*/records/CC-\d{4}-\d{4}$"))
    number = page.url.rsplit("/", 1)[1]
    log_out(page)
    change = record_by_number(rt, number)
    risk = the_open_task(rt, change.id, "assess_risk")

    # An assessor outside QA cannot do the risk assessment.
    log_in(page, base, "cleo")
    assert "for the role 'QA'" in refusal_of(page, base, risk.id, "not_in_role")
    log_out(page)

    # A severity of 6 and an assessor without the Impact Assessor role: shown next to the fields.
    log_in(page, base, "quinn")
    page.goto(base + f"/tasks/{risk.id}")
    page.fill("#f-severity", "6")
    page.fill("#f-probability", "2")
    page.fill("#f-detectability", "2")
    page.fill("#f-risk_notes", "Scored by QA.")
    fill_rows(page, "impacted_functions", [{"function": "Manufacturing", "assessor": "ed"}])
    page.click("text=Complete task")
    page.wait_for_selector("#error-summary")
    assert "Severity" in page.inner_text("#error-summary")
    assert page.locator(".field.has-error #f-severity").count() == 1
    assert page.input_value("#f-severity") == "6"
    screenshot(page, "cc-risk-severity-error")
    page.fill("#f-severity", "2")
    page.click("text=Complete task")
    page.wait_for_selector("#error-summary")
    summary = page.inner_text("#error-summary")
    assert "ed" in summary and "Impact Assessor" in summary, summary
    screenshot(page, "cc-risk-assessor-refused")
    with rt.db.sessionmaker() as s:
        assert s.get(Task, risk.id).status == TaskStatus.OPEN
        data = s.get(Record, change.id).data
        assert "severity" not in data and "risk_class" not in data
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.record_id == change.id, AuditEntry.action == "task_completed")) == 0
    assert signature_count(rt) == 0
    no_console_errors(browser_context)
