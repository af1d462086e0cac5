"""Browser end-to-end for document control: Debian's chromium drives the real app on a live server.

Document Control creates a document in the library pages, uploads its first draft and starts
its approval; the author submits it for review with a signature, two reviewers review in
parallel, the author is refused the approval (segregation of duties, shown on the task page)
and the approver signs `approved` with today's date: v1.0 is effective. A second version is
approved for tomorrow and becomes effective when its timer fires (the worker's
fire_due_timers), superseding v1.0, as the library page shows. A manufacturing user sees only
the effective version and downloads a stamped controlled copy. Screenshots go to
test-output/screenshots/documents-*.png.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from engine import documents as library
from models import (
    AuditEntry,
    Document,
    DocumentVersion,
    DocumentVersionStatus,
    Record,
    RecordStatus,
    Task,
    TaskStatus,
)
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in, log_out, no_console_errors, refusal_of, screenshot
from tests.fixtures.cast import DEVIATION_CAST, add_users
from tests.fixtures.timers import make_waiting_timers_due

pytestmark = pytest.mark.browser

NUMBER = "SOP-QA-001"
PEOPLE = {
    # Dora holds Document Control and Author (to start approvals) and Approver: the segregation
    # of duties, not a missing role, is what keeps her from approving her own document.
    "dora": ("Dora Document-Control", ["Document Control", "Author", "Approver"]),
    "rita": ("Rita Reviewer", ["Reviewer"]),
    "rob": ("Rob Reviewer", ["Reviewer"]),
    "alex": ("Alex Approver", ["Approver"]),
    "mia": ("Mia Manufacturing", ["Initiator"]),
}


@pytest.fixture
def cast(loaded_runtime):
    """The deviation cast plus the document people (one argon2 hash for all: tests/fixtures/cast.py)."""
    return add_users(loaded_runtime, {**DEVIATION_CAST, **PEOPLE})


def pdf(text: str) -> bytes:
    """A small real PDF (the library's own writer), one page with `text`."""
    return library._minimal_pdf([(595.0, 842.0, b"BT /CQ1 12 Tf 72 700 Td (" + library._pdf_text(text) + b") Tj ET")])


def sign(meaning: str) -> dict:
    return {"password": PASSWORD, "meaning": meaning}


def open_tasks(rt, record_number: str, bpmn_id: str) -> list[Task]:
    with rt.db.sessionmaker() as s:
        return list(s.scalars(select(Task).join(Record, Record.id == Task.record_id).where(
            Record.number == record_number, Task.bpmn_id == bpmn_id, Task.status == TaskStatus.OPEN)
            .order_by(Task.created_at)))


def versions(rt, number: str = NUMBER) -> dict[str, DocumentVersion]:
    with rt.db.sessionmaker() as s:
        doc = s.scalar(select(Document).where(Document.number == number))
        return {v.label: v for v in doc.versions}


def library_row(page, number: str = NUMBER) -> str:
    return page.inner_text(f"#library tbody tr:has(a[href='/documents/{number}'])")


def version_row(page, label: str) -> str:
    return page.inner_text(f"#versions tbody tr:has(td:text-is('v{label}'))")


def sign_step(page, password: str = PASSWORD):
    """On a task form with a signature: go to the signing step and sign."""
    page.click("button[value=review]")
    page.wait_for_selector("#signature_password")
    page.fill("#signature_password", password)
    page.click("button[value=sign]")
    page.wait_for_selector(".signature")


@pytest.mark.urs("URS-DOC-01")
@pytest.mark.urs("URS-DOC-02")
@pytest.mark.urs("URS-DOC-03")
@pytest.mark.urs("URS-SEC-03")
@pytest.mark.urs("URS-SIG-01")
def test_a_document_is_created_approved_in_the_browser_and_supersedes_its_previous_version(
        live_server, browser_context, loaded_runtime, cast):
    rt = loaded_runtime
    base = live_server.url
    page = browser_context.new_page()
    today = dt.datetime.now(dt.timezone.utc).date()  # the effective date is a UTC date

    # Document Control creates the document; a bad number is refused next to the field.
    log_in(page, base, "dora")
    page.click("nav a[href='/documents']")
    page.wait_for_url(base + "/documents")
    page.click("text=New document")
    page.wait_for_url(base + "/documents/new")
    page.fill("#number", "sop qa 1")
    page.fill("#title", "Gowning for grade B")
    page.fill("#type", "SOP")
    page.fill("#owner", "dora")
    page.fill("#review_interval_months", "12")
    page.click("text=Create the document")
    page.wait_for_selector(".error-summary")
    assert "The document was not created" in page.inner_text(".error-summary")
    assert "capital letters" in page.inner_text(".field.has-error")
    assert page.input_value("#title") == "Gowning for grade B"  # what she typed stays
    screenshot(page, "documents-new-refused")
    with rt.db.sessionmaker() as s:
        assert s.scalar(select(Document)) is None
    page.fill("#number", NUMBER)
    page.click("text=Create the document")
    page.wait_for_url(base + f"/documents/{NUMBER}")
    assert f"Document {NUMBER} created" in page.inner_text("main")
    assert "No version yet." in page.inner_text("main")

    # She uploads the first draft; the page shows its status, name and SHA-256.
    v1_bytes = pdf("Gowning for grade B, version 1")
    page.set_input_files("#file", files=[{"name": "gowning-v1.pdf", "mimeType": "application/pdf",
                                          "buffer": v1_bytes}])
    page.fill("#change_summary", "First issue.")
    page.click("text=Upload the draft")
    page.wait_for_url(base + f"/documents/{NUMBER}")
    assert "Draft v1.0 uploaded" in page.inner_text("main")
    row = version_row(page, "1.0")
    assert "Draft" in row and "gowning-v1.pdf" in row and "First issue." in row
    v1 = versions(rt)["1.0"]
    assert v1.status == DocumentVersionStatus.DRAFT and v1.sha256 == hashlib.sha256(v1_bytes).hexdigest()
    assert v1.sha256[:16] in row
    screenshot(page, "documents-draft-uploaded")

    # ... and starts its approval from the document page.
    page.click("#versions button:has-text('Start approval')")
    page.wait_for_url(re.compile(r".*/records/DOC-\d{4}-\d{4}$"))
    approval = page.url.rsplit("/", 1)[1]
    assert f"{approval} started: the approval of {NUMBER} v1.0" in page.inner_text("main")
    screenshot(page, "documents-approval-started")

    # The author submits it for review, naming two reviewers, and signs (authored).
    page.goto(base + "/")
    page.click("#inbox-table a:has-text('Submit for review')")
    page.fill("#f-change_summary", "New document: gowning for grade B rooms.")
    page.fill("input#f-reviewers-0", "rita")  # (the row fieldset has the same id)
    page.click("button:has-text('Add reviewer')")
    page.wait_for_selector("input#f-reviewers-1")
    assert page.input_value("input#f-reviewers-0") == "rita"
    assert page.input_value("#f-change_summary") == "New document: gowning for grade B rooms."
    page.fill("input#f-reviewers-1", "rob")
    screenshot(page, "documents-submit-form")
    sign_step(page)
    assert "AUTHORED" in page.inner_text(".signature").upper()
    assert versions(rt)["1.0"].status == DocumentVersionStatus.IN_REVIEW
    log_out(page)

    # Both reviewers have their own review task at the same time, and each comments and signs.
    assert sorted(t.assignee for t in open_tasks(rt, approval, "review_document")) == ["rita", "rob"]
    for reviewer, comment in (("rob", "Clear; add a picture of the goggles later."),
                              ("rita", "Steps match the gowning qualification.")):
        log_in(page, base, reviewer)
        assert page.locator("#inbox-count").inner_text() == "1"
        page.click("#inbox-table a:has-text('Review the document')")
        page.check("input[name=recommendation][value=approve]")
        page.fill("#f-review_comments", comment)
        sign_step(page)
        manifest = page.inner_text(".signature")
        assert PEOPLE[reviewer][0] in manifest and "REVIEWED" in manifest.upper()
        screenshot(page, f"documents-reviewed-{reviewer}")
        log_out(page)

    # The author is refused the approval: the task page says why, and offers no form.
    (approve_task,) = open_tasks(rt, approval, "approve_document")
    log_in(page, base, "dora")
    assert "Approve the document" not in page.inner_text("main")  # not offered in her inbox
    refusal = refusal_of(page, base, approve_task.id, "segregation_of_duties")
    assert "segregation of duties" in refusal
    screenshot(page, "documents-author-refused")
    log_out(page)

    # The approver approves with today's date and signs: the version is effective at once.
    log_in(page, base, "alex")
    page.click("#inbox-table a:has-text('Approve the document')")
    page.select_option("#f-decision", "approve")
    page.fill("#f-effective_date", today.isoformat())
    screenshot(page, "documents-approve-form")
    page.click("button[value=review]")
    page.wait_for_selector("#signature_password")
    assert "APPROVED" in page.inner_text(".signing").upper()
    page.fill("#signature_password", PASSWORD)
    page.click("button[value=sign]")
    page.wait_for_selector(".signature")
    assert "Alex Approver" in page.inner_text(".signature") and "Valid" in page.inner_text(".signature")
    log_out(page)
    vs = versions(rt)
    assert vs["1.0"].status == DocumentVersionStatus.EFFECTIVE
    assert vs["1.0"].effective_date == library.midnight_utc(today)
    with rt.db.sessionmaker() as s:
        record = s.scalar(select(Record).where(Record.number == approval))
        assert record.status == RecordStatus.CLOSED
        assert [(sig.meaning, sig.signer.username, ok) for sig, ok in rt.signatures(s, record)] == [
            ("authored", "dora", True), ("reviewed", "rob", True), ("reviewed", "rita", True),
            ("approved", "alex", True)]

    log_in(page, base, "dora")
    page.goto(base + "/documents")
    row = library_row(page)
    assert "v1.0" in row and today.isoformat() in row
    screenshot(page, "documents-library-v1-effective")

    # A second version: uploaded in the browser, approved for tomorrow.
    page.goto(base + f"/documents/{NUMBER}")
    page.set_input_files("#file", files=[{"name": "gowning-v2.pdf", "mimeType": "application/pdf",
                                          "buffer": pdf("Gowning for grade B, version 2: goggles first")}])
    page.fill("#change_summary", "Goggles before gloves.")
    page.click("text=Upload the draft")
    page.wait_for_url(base + f"/documents/{NUMBER}")
    assert "Draft v2.0 uploaded" in page.inner_text("main")
    page.click("#versions button:has-text('Start approval of v2.0')")
    page.wait_for_url(re.compile(r".*/records/DOC-\d{4}-\d{4}$"))
    second = page.url.rsplit("/", 1)[1]
    assert second != approval
    log_out(page)
    # The author's and the reviewer's steps were shown above; here they go through the runtime.
    (submit,) = open_tasks(rt, second, "submit_for_review")
    rt.complete_task(submit.id, cast["dora"], {"change_summary": "Goggles before gloves.", "reviewers": ["rita"]},
                     signature=sign("authored"))
    (review,) = open_tasks(rt, second, "review_document")
    rt.complete_task(review.id, cast["rita"], {"recommendation": "approve", "review_comments": "Fine."},
                     signature=sign("reviewed"))

    tomorrow = today + dt.timedelta(days=1)
    log_in(page, base, "alex")
    page.click("#inbox-table a:has-text('Approve the document')")
    page.select_option("#f-decision", "approve")
    page.fill("#f-effective_date", tomorrow.isoformat())
    sign_step(page)
    log_out(page)
    vs = versions(rt)
    assert vs["2.0"].status == DocumentVersionStatus.APPROVED and vs["1.0"].status == DocumentVersionStatus.EFFECTIVE
    assert rt.fire_due_timers() == 0  # nothing is due before the effective date

    log_in(page, base, "dora")
    page.goto(base + "/documents")
    row = library_row(page)
    assert "v1.0" in row and "v2.0 approved" in row
    page.goto(base + f"/documents/{NUMBER}")
    assert "Approved" in version_row(page, "2.0") and tomorrow.isoformat() in version_row(page, "2.0")
    assert "Effective" in version_row(page, "1.0")
    screenshot(page, "documents-v2-approved-waiting")

    # The night passes: the worker fires the timer; v2.0 is effective, v1.0 superseded at the same moment.
    make_waiting_timers_due(rt, second)  # the effective date comes
    assert rt.fire_due_timers() == 1
    vs = versions(rt)
    assert vs["2.0"].status == DocumentVersionStatus.EFFECTIVE
    assert vs["1.0"].status == DocumentVersionStatus.SUPERSEDED
    assert vs["1.0"].superseded_at == vs["2.0"].effective_at
    page.goto(base + "/documents")
    row = library_row(page)
    assert "v2.0" in row and "v1.0 superseded" in row
    screenshot(page, "documents-library-v2-effective")
    page.goto(base + f"/documents/{NUMBER}")
    assert "Effective" in version_row(page, "2.0")
    assert "Superseded" in version_row(page, "1.0")
    audit = page.inner_text("main section:has(#audit-h)")
    assert "document_effective" in audit
    screenshot(page, "documents-document-page")
    log_out(page)
    no_console_errors(browser_context)


@pytest.fixture
def effective_v2(loaded_runtime, cast):
    """SOP-QA-001 with v1.0 superseded, v2.0 effective and a v3.0 draft (through the approval diagram)."""
    rt = loaded_runtime
    library.create_document(rt, cast["dora"], NUMBER, "Gowning for grade B", "SOP", "dora", 12)
    for text in ("Gowning version 1", "Gowning version 2"):
        draft = library.add_draft_version(rt, cast["dora"], NUMBER, "gowning.pdf", pdf(text))
        record = rt.start_record(cast["dora"], "document_approval", {"document_number": NUMBER,
                                                                      "version_id": draft.id})
        (submit,) = open_tasks(rt, record.number, "submit_for_review")
        rt.complete_task(submit.id, cast["dora"], {"change_summary": text, "reviewers": ["rita"]},
                         signature=sign("authored"))
        (review,) = open_tasks(rt, record.number, "review_document")
        rt.complete_task(review.id, cast["rita"], {"recommendation": "approve", "review_comments": "ok"},
                         signature=sign("reviewed"))
        (approve,) = open_tasks(rt, record.number, "approve_document")
        today = dt.datetime.now(dt.timezone.utc).date().isoformat()
        rt.complete_task(approve.id, cast["alex"], {"decision": "approve", "effective_date": today},
                         signature=sign("approved"))
    library.add_draft_version(rt, cast["dora"], NUMBER, "gowning-v3.pdf", pdf("Gowning version 3 draft"))
    vs = versions(rt)
    assert [vs[x].status for x in ("1.0", "2.0", "3.0")] == [
        DocumentVersionStatus.SUPERSEDED, DocumentVersionStatus.EFFECTIVE, DocumentVersionStatus.DRAFT]
    return vs["2.0"]


@pytest.mark.urs("URS-DOC-03")
@pytest.mark.urs("URS-DOC-01")
def test_a_manufacturing_user_sees_only_the_effective_version_and_downloads_a_controlled_copy(
        live_server, browser_context, loaded_runtime, cast, effective_v2):
    rt = loaded_runtime
    base = live_server.url
    page = browser_context.new_page()
    log_in(page, base, "mia")
    page.goto(base + "/documents")
    assert "You see the documents in force: only their current effective version." in page.inner_text("main")
    assert "Other versions" not in page.inner_text("#library thead")
    assert "New document" not in page.inner_text("main")
    row = library_row(page)
    assert "v2.0" in row and "v1.0" not in row and "v3.0" not in row
    screenshot(page, "documents-library-manufacturing")

    page.click(f"#library a[href='/documents/{NUMBER}']")
    page.wait_for_url(base + f"/documents/{NUMBER}")
    table = page.inner_text("#versions")
    assert "v2.0" in table and "v1.0" not in table and "v3.0" not in table
    assert page.locator("#upload-h").count() == 0 and page.locator("text=Original file").count() == 0
    assert page.locator("#audit-h").count() == 0
    screenshot(page, "documents-page-manufacturing")

    # The download is a controlled copy: the PDF carries the stamp with number, version, status, reader.
    with page.expect_download() as download_info:
        page.click("#versions a:has-text('Controlled copy')")
    download = download_info.value
    assert download.suggested_filename.endswith(".pdf")
    content = Path(download.path()).read_bytes()
    assert content.startswith(b"%PDF-")
    text = PdfReader(io.BytesIO(content)).pages[0].extract_text()
    assert f"Controlled copy \u2014 {NUMBER} v2.0 \u2014 Effective \u2014 printed " in text
    assert "by Mia Manufacturing" in text and "Gowning version 2" in text
    with rt.db.sessionmaker() as s:
        issued = s.scalars(select(AuditEntry).where(AuditEntry.action == "controlled_copy_issued")).all()
        assert len(issued) == 1 and issued[0].username == "mia"

    # Refusals: a superseded or draft version is not there for her, nor the original, nor new documents.
    for label in ("1.0", "3.0"):
        response = page.goto(base + f"/documents/{NUMBER}/v{label}/copy.pdf")
        assert response.status == 404
    response = page.goto(base + f"/documents/{NUMBER}/v2.0/original")
    assert response.status == 403
    response = page.goto(base + "/documents/new")
    assert response.status == 403 and "Document Control" in page.inner_text("main")
    screenshot(page, "documents-new-forbidden")
    # The two deliberate 404s above are logged by the browser; nothing else may be.
    not_found = [e for e in browser_context.console_errors if "status of 404" in e]
    assert len(not_found) == 2, browser_context.console_errors
    browser_context.console_errors[:] = [e for e in browser_context.console_errors if e not in not_found]
    no_console_errors(browser_context)


@pytest.mark.urs("URS-DOC-03")
def test_the_document_page_offers_a_manufacturing_user_only_links_she_may_open(
        live_server, browser_context, loaded_runtime, cast, effective_v2):
    base = live_server.url
    page = browser_context.new_page()
    log_in(page, base, "mia")
    page.goto(base + f"/documents/{NUMBER}")
    hrefs = [a.get_attribute("href") for a in page.locator("main a").all()]
    no_console_errors(browser_context)
    broken = [h for h in hrefs if not h.endswith(".pdf") and page.request.get(base + h).status != 200]
    assert broken == []
    assert "approval DOC-" in page.inner_text("main")  # the number is still named, as text


@pytest.mark.urs("URS-DOC-02")
def test_each_reviewer_field_of_the_submit_form_has_its_own_label(live_server, browser_context, loaded_runtime,
                                                                    cast):
    rt = loaded_runtime
    library.create_document(rt, cast["dora"], NUMBER, "Gowning for grade B", "SOP", "dora", 12)
    draft = library.add_draft_version(rt, cast["dora"], NUMBER, "gowning.pdf", pdf("Gowning version 1"))
    record = rt.start_record(cast["dora"], "document_approval", {"document_number": NUMBER, "version_id": draft.id})
    (submit,) = open_tasks(rt, record.number, "submit_for_review")
    page = browser_context.new_page()
    log_in(page, live_server.url, "dora")
    page.goto(live_server.url + f"/tasks/{submit.id}")
    no_console_errors(browser_context)
    page.get_by_label("Reviewer (username) 1").fill("rita", timeout=2000)
    assert page.locator("[id='f-reviewers-0']").count() == 1  # one element per id
