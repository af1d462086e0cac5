"""Document control on a real database: approval with signatures, effective on the timer, superseded,
who sees what, controlled copies, periodic review, legacy import (URS-DOC-01..05, SEC-03, SIG-01)."""
from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from engine import documents as library
from engine.exceptions import CellqmsError, Forbidden, NotFound, ValidationFailed
from models import (
    AuditEntry,
    Document,
    DocumentVersion,
    DocumentVersionStatus,
    Record,
    RecordLink,
    RecordStatus,
    Task,
    TaskStatus,
    verify_chain,
)
from tests.conftest import PASSWORD
from tests.fixtures.timers import make_waiting_timers_due

CAST = {
    "dora": ("Dora Document-Control", ["Document Control", "Author"]),
    "ann": ("Ann Author", ["Author"]),
    "rita": ("Rita Reviewer", ["Reviewer"]),
    "rob": ("Rob Reviewer", ["Reviewer"]),
    "alex": ("Alex Approver", ["Approver", "Author"]),
    "quinn": ("Quinn QA", ["QA"]),
    "mia": ("Mia Manufacturing", ["Manufacturing"]),
    "owen": ("Owen Owner", ["Manufacturing"]),
}


def sign(meaning: str) -> dict:
    return {"password": PASSWORD, "meaning": meaning}


@pytest.fixture
def cast(loaded_runtime):
    return {u: loaded_runtime.add_user(None, u, name, PASSWORD, roles) for u, (name, roles) in CAST.items()}


def pdf_bytes(*texts: str) -> bytes:
    """A small real PDF with one page per text (made with the same writer as the cover pages)."""
    return library._minimal_pdf([(595.0, 842.0, b"BT /CQ1 12 Tf 72 700 Td (" + library._pdf_text(t) + b") Tj ET")
                                 for t in texts])


def open_tasks(rt, record_id: str) -> list[Task]:
    with rt.db.sessionmaker() as s:
        return list(s.scalars(select(Task).where(Task.record_id == record_id, Task.status == TaskStatus.OPEN)
                              .order_by(Task.created_at)))


def the_task(rt, record_id: str, bpmn_id: str, assignee: str | None = None) -> Task:
    rows = [t for t in open_tasks(rt, record_id)
            if t.bpmn_id == bpmn_id and (assignee is None or t.assignee == assignee)]
    assert rows, f"no open {bpmn_id}: {[t.bpmn_id for t in open_tasks(rt, record_id)]}"
    return rows[0]


def versions(rt, number: str) -> dict[str, DocumentVersion]:
    with rt.db.sessionmaker() as s:
        doc = s.scalar(select(Document).where(Document.number == number))
        return {v.label: v for v in doc.versions}


def approve_through(rt, cast, record, *, author="dora", effective_date=None, clock=None):
    """Submit (authored), one review (reviewed), approval (approved) of an approval record."""
    rt.complete_task(the_task(rt, record.id, "submit_for_review").id, cast[author],
                     {"change_summary": "Revision.", "reviewers": ["rita"]}, signature=sign("authored"))
    rt.complete_task(the_task(rt, record.id, "review_document").id, cast["rita"],
                     {"recommendation": "approve", "review_comments": "Fine."}, signature=sign("reviewed"))
    task = the_task(rt, record.id, "approve_document")
    if clock is not None:
        rt.clock.offset = clock
    try:
        return rt.complete_task(task.id, cast["alex"], {"decision": "approve", "effective_date": effective_date
                                                         or dt.date.today().isoformat()}, signature=sign("approved"))
    finally:
        rt.clock.offset = dt.timedelta(0)


@pytest.fixture
def effective_v1(loaded_runtime, cast):
    """SOP-QA-001 v1.0 effective (created and uploaded by Document Control, approved through the diagram)."""
    rt = loaded_runtime
    library.create_document(rt, cast["dora"], "SOP-QA-001", "Gowning for grade B", "SOP", "owen", 12)
    v1 = library.add_draft_version(rt, cast["dora"], "SOP-QA-001", "gowning.pdf", pdf_bytes("Gowning v1 page 1",
                                                                                             "Gowning v1 page 2"))
    record = rt.start_record(cast["dora"], "document_approval", {"document_number": "SOP-QA-001",
                                                                  "version_id": v1.id})
    approve_through(rt, cast, record)
    assert versions(rt, "SOP-QA-001")["1.0"].status == DocumentVersionStatus.EFFECTIVE
    return v1


# ------------------------------------------------------------------------------------------ approval
@pytest.mark.urs("URS-DOC-02")
@pytest.mark.urs("URS-SIG-01")
@pytest.mark.urs("URS-DOC-01")
def test_a_new_version_is_approved_with_signatures_and_supersedes_the_old_one_on_the_timer(
        loaded_runtime, cast, effective_v1):
    rt = loaded_runtime
    v2 = library.add_draft_version(rt, cast["dora"], "SOP-QA-001", "gowning-v2.pdf", pdf_bytes("Gowning v2"),
                                   change_summary="Goggles before gloves.")
    assert v2.label == "2.0" and v2.sha256 == hashlib.sha256(pdf_bytes("Gowning v2")).hexdigest()
    record = rt.start_record(cast["ann"], "document_approval", {"document_number": "SOP-QA-001",
                                                                 "version_id": v2.id})
    assert [t.bpmn_id for t in open_tasks(rt, record.id)] == ["submit_for_review"]
    assert the_task(rt, record.id, "submit_for_review").assignee == "ann"
    rt.complete_task(the_task(rt, record.id, "submit_for_review").id, cast["ann"],
                     {"change_summary": "Goggles first.", "reviewers": ["rita", "rob"]}, signature=sign("authored"))
    assert versions(rt, "SOP-QA-001")["2.0"].status == DocumentVersionStatus.IN_REVIEW
    assert sorted(t.assignee for t in open_tasks(rt, record.id)) == ["rita", "rob"]
    for who in ("rita", "rob"):
        rt.complete_task(the_task(rt, record.id, "review_document", who).id, cast[who],
                         {"recommendation": "approve", "review_comments": f"{who}: fine."}, signature=sign("reviewed"))

    # Approved for tomorrow: the version waits, approved, with a timer at midnight UTC.
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    rt.complete_task(the_task(rt, record.id, "approve_document").id, cast["alex"],
                     {"decision": "approve", "effective_date": tomorrow.isoformat()}, signature=sign("approved"))
    vs = versions(rt, "SOP-QA-001")
    assert vs["2.0"].status == DocumentVersionStatus.APPROVED and vs["1.0"].status == DocumentVersionStatus.EFFECTIVE
    assert vs["2.0"].effective_date == library.midnight_utc(tomorrow)
    assert open_tasks(rt, record.id) == []
    assert rt.fire_due_timers() == 0

    # The effective date comes (the timer's due time moved to the past, as if the night had passed).
    from models import TimerJob

    with rt.db.unit_of_work(None) as s:
        job = s.scalar(select(TimerJob).where(TimerJob.record_id == record.id, TimerJob.fired_at.is_(None)))
        assert job.due_at == library.midnight_utc(tomorrow)
    rt.cache.clear()
    make_waiting_timers_due(rt, record.number)
    assert rt.fire_due_timers() == 1

    vs = versions(rt, "SOP-QA-001")
    assert vs["2.0"].status == DocumentVersionStatus.EFFECTIVE
    assert vs["1.0"].status == DocumentVersionStatus.SUPERSEDED
    assert vs["1.0"].superseded_at == vs["2.0"].effective_at  # the same moment
    assert vs["2.0"].next_review_due == library.add_months(vs["2.0"].effective_date, 12)
    assert vs["2.0"].approval_record_id == record.id
    with rt.db.sessionmaker() as s:
        done = s.get(Record, record.id)
        assert done.status == RecordStatus.CLOSED
        assert [(sig.meaning, sig.signer.username, ok) for sig, ok in rt.signatures(s, done)] == [
            ("authored", "ann", True), ("reviewed", "rita", True), ("reviewed", "rob", True),
            ("approved", "alex", True)]
        effective = s.scalar(select(AuditEntry).where(AuditEntry.action == "document_effective",
                                                      AuditEntry.record_id == record.id))
        assert effective.new["superseded"] == ["1.0"] and effective.new["version"] == "2.0"
        assert verify_chain(s)["ok"]


def reviewed_new_document(rt, cast, number: str, author: str) -> Record:
    """A new document's v1.0 draft whose approval `author` started and submitted, reviewed by rita:
    the approval record, waiting for the approver."""
    library.create_document(rt, cast["dora"], number, f"Test method {number}", "Test method", "owen")
    draft = library.add_draft_version(rt, cast["dora"], number, "method.txt", f"{number} v1".encode())
    record = rt.start_record(cast[author], "document_approval", {"document_number": number, "version_id": draft.id})
    rt.complete_task(the_task(rt, record.id, "submit_for_review").id, cast[author],
                     {"change_summary": "New.", "reviewers": ["rita"]}, signature=sign("authored"))
    rt.complete_task(the_task(rt, record.id, "review_document").id, cast["rita"],
                     {"recommendation": "approve", "review_comments": "ok"}, signature=sign("reviewed"))
    return record


@pytest.mark.urs("URS-SEC-03")
@pytest.mark.urs("URS-DOC-02")
def test_the_author_cannot_approve_their_own_document(loaded_runtime, cast):
    rt = loaded_runtime
    record = reviewed_new_document(rt, cast, "SOP-QC-002", author="alex")
    task = the_task(rt, record.id, "approve_document")
    with pytest.raises(Forbidden) as refused:
        rt.complete_task(task.id, cast["alex"], {"decision": "approve", "effective_date": dt.date.today().isoformat()},
                         signature=sign("approved"))
    assert refused.value.code == "segregation_of_duties"
    assert versions(rt, "SOP-QC-002")["1.0"].status == DocumentVersionStatus.IN_REVIEW
    with rt.db.sessionmaker() as s:
        assert task.id not in {t.id for t in rt.open_tasks(s, cast["alex"])}  # not even offered to the author


@pytest.mark.urs("URS-DOC-02")
def test_an_effective_date_in_the_past_is_refused_and_nothing_is_saved(loaded_runtime, cast):
    rt = loaded_runtime
    record = reviewed_new_document(rt, cast, "SOP-QC-003", author="dora")
    task = the_task(rt, record.id, "approve_document")
    with pytest.raises(ValidationFailed) as refused:
        rt.complete_task(task.id, cast["alex"], {"decision": "approve", "effective_date": "2020-01-01"},
                         signature=sign("approved"))
    today = rt.clock.now().date().isoformat()
    assert refused.value.errors == [{"path": "effective_date", "message":
                                     f"The date may not be in the past: choose today ({today}) or later."}]
    assert [t.id for t in open_tasks(rt, record.id)] == [task.id]
    assert versions(rt, "SOP-QC-003")["1.0"].status == DocumentVersionStatus.IN_REVIEW


@pytest.mark.urs("URS-DOC-02")
@pytest.mark.urs("URS-PLT-07")
def test_a_change_control_revision_asks_the_author_for_the_draft_uploaded_for_the_task(
        loaded_runtime, cast, effective_v1):
    rt = loaded_runtime
    if "change_control" not in {v.definition.key for v in _released(rt)}:
        pytest.skip("change_control is not loaded")
    record = rt.start_record(cast["dora"], "document_approval", {
        "document_number": "SOP-QA-001", "change_reference": "CC-2026-0001 Goggles", "reason": "New goggles."})
    task = the_task(rt, record.id, "prepare_revision")
    with pytest.raises(Forbidden):
        library.add_revision_draft(rt, cast["rita"], task.id, "x.txt", b"not an author")
    draft = library.add_revision_draft(rt, cast["ann"], task.id, "gowning-v2.txt", b"Gowning v2 text",
                                       change_summary="Goggles.")
    rt.complete_task(task.id, cast["ann"], {"version_id": draft.id})
    assert the_task(rt, record.id, "submit_for_review").assignee == "ann"
    assert versions(rt, "SOP-QA-001")["2.0"].approval_record_id == record.id


def _released(rt):
    with rt.db.sessionmaker() as s:
        return [v for v in rt.released_versions(s) if v.definition is not None]


@pytest.mark.urs("URS-AUD-04")
@pytest.mark.urs("URS-DOC-02")
def test_a_rejected_draft_replaced_by_a_new_upload_is_archived_as_obsolete(loaded_runtime, cast):
    rt = loaded_runtime
    library.create_document(rt, cast["dora"], "WI-MFG-001", "Bag labelling", "Work instruction", "owen")
    draft = library.add_draft_version(rt, cast["dora"], "WI-MFG-001", "labels.txt", b"Labels v1")
    record = rt.start_record(cast["ann"], "document_approval", {"document_number": "WI-MFG-001",
                                                                 "version_id": draft.id})
    rt.complete_task(the_task(rt, record.id, "submit_for_review").id, cast["ann"],
                     {"change_summary": "New.", "reviewers": ["rita"]}, signature=sign("authored"))
    rt.complete_task(the_task(rt, record.id, "review_document").id, cast["rita"],
                     {"recommendation": "revise", "review_comments": "Label size."}, signature=sign("reviewed"))
    rt.complete_task(the_task(rt, record.id, "approve_document").id, cast["alex"],
                     {"decision": "reject", "approval_comments": "Fix the label size."}, signature=sign("approved"))
    assert versions(rt, "WI-MFG-001")["1.0"].status == DocumentVersionStatus.DRAFT
    task = the_task(rt, record.id, "prepare_revision")
    new = library.add_revision_draft(rt, cast["ann"], task.id, "labels.txt", b"Labels v1.1")
    assert new.label == "1.1"
    rt.complete_task(task.id, cast["ann"], {"version_id": new.id})
    vs = versions(rt, "WI-MFG-001")
    assert vs["1.0"].status == DocumentVersionStatus.OBSOLETE and vs["1.1"].status == DocumentVersionStatus.DRAFT
    with rt.db.sessionmaker() as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "document_version_replaced"))
        assert entry.reason == f"replaced by draft v1.1 in {record.number}"


# ------------------------------------------------------------------------------------------ visibility
@pytest.mark.urs("URS-DOC-03")
def test_a_manufacturing_user_sees_only_the_effective_version(loaded_runtime, cast, effective_v1):
    rt = loaded_runtime
    library.add_draft_version(rt, cast["dora"], "SOP-QA-001", "v2.pdf", pdf_bytes("draft 2"))
    library.create_document(rt, cast["dora"], "SOP-QA-009", "Draft only", "SOP", "owen")
    library.add_draft_version(rt, cast["dora"], "SOP-QA-009", "d.txt", b"draft")
    with rt.db.sessionmaker() as s:
        mia = [(r.document.number, [v.label for v in r.versions]) for r in library.library(s, rt, cast["mia"])]
        # A search text is taken literally: "_" and "%" are not wildcards.
        assert [r.document.number for r in library.library(s, rt, cast["quinn"], q="QA-00")] == \
            ["SOP-QA-001", "SOP-QA-009"]
        assert library.library(s, rt, cast["quinn"], q="_") == library.library(s, rt, cast["quinn"], q="%") == []
        qa = [(r.document.number, [v.label for v in r.versions]) for r in library.library(s, rt, cast["quinn"])]
        assert mia == [("SOP-QA-001", ["1.0"])]
        assert qa == [("SOP-QA-001", ["1.0", "2.0"]), ("SOP-QA-009", ["1.0"])]
        with pytest.raises(NotFound):
            library.open_version(s, rt, cast["mia"], "SOP-QA-001", "2.0")
        with pytest.raises(NotFound):
            library.get_document(s, rt, cast["mia"], "SOP-QA-009")
    with pytest.raises(Forbidden):
        library.original_file(rt, cast["mia"], "SOP-QA-001", "1.0")
    assert library.original_file(rt, cast["dora"], "SOP-QA-001", "1.0").content.startswith(b"%PDF-")

    # Obsolete: archived with its reason, gone from everyone's library but Document Control's and QA's.
    with pytest.raises(ValidationFailed):
        library.obsolete_document(rt, cast["dora"], "SOP-QA-001", " ")
    with pytest.raises(Forbidden):
        library.obsolete_document(rt, cast["quinn"], "SOP-QA-001", "Replaced by SOP-QA-010")
    library.obsolete_document(rt, cast["dora"], "SOP-QA-001", "Replaced by SOP-QA-010")
    with rt.db.sessionmaker() as s:
        assert library.library(s, rt, cast["mia"]) == []
        assert library.library(s, rt, cast["mia"], status="obsolete") == []  # the archive is not theirs
        archived = library.library(s, rt, cast["quinn"], status="obsolete")
        assert [(r.document.number, r.document.obsolete_reason) for r in archived] == [
            ("SOP-QA-001", "Replaced by SOP-QA-010")]
        assert {v.label: v.status for v in archived[0].versions} == {"1.0": "obsolete", "2.0": "obsolete"}
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "document_obsoleted"))
        assert entry.reason == "Replaced by SOP-QA-010" and entry.username == "dora"


# ------------------------------------------------------------------------------------------ controlled copies
@pytest.mark.urs("URS-DOC-01")
def test_a_controlled_copy_of_a_pdf_carries_the_stamp_on_every_page(loaded_runtime, cast, effective_v1):
    rt = loaded_runtime
    copy = library.controlled_copy(rt, cast["mia"], "SOP-QA-001")
    reader = PdfReader(io.BytesIO(copy.content))
    assert len(reader.pages) == 2
    assert copy.stamp.startswith("Controlled copy \u2014 SOP-QA-001 v1.0 \u2014 Effective \u2014 printed ")
    assert copy.stamp.endswith(" UTC by Mia Manufacturing")
    for number, page in enumerate(reader.pages, start=1):
        text = page.extract_text()
        assert text.count(copy.stamp) == 2, text  # header and footer
        assert f"Gowning v1 page {number}" in text
    with rt.db.sessionmaker() as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "controlled_copy_issued"))
        assert entry.username == "mia" and entry.new["kind"] == "stamped PDF"


@pytest.mark.urs("URS-DOC-01")
def test_a_controlled_copy_of_another_file_is_a_cover_page_with_its_sha256(loaded_runtime, cast):
    rt = loaded_runtime
    library.create_document(rt, cast["dora"], "FRM-QA-001", "Line clearance form", "Form", "owen")
    content = b"Line clearance checklist\n"
    draft = library.add_draft_version(rt, cast["dora"], "FRM-QA-001", "form.txt", content)
    copy = library.controlled_copy(rt, cast["quinn"], "FRM-QA-001", draft.label)
    reader = PdfReader(io.BytesIO(copy.content))
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    assert "Controlled copy \u2014 FRM-QA-001 v1.0 \u2014 Draft \u2014 printed" in text
    assert hashlib.sha256(content).hexdigest() in text and "Line clearance checklist" not in text


def import_effective(rt, tmp_path, number: str, title: str, *, content: bytes, version: str = "1.0",
                     effective: str = "2020-01-15", filename: str | None = None) -> None:
    """One effective legacy version owned by `owen` (effective long ago, so its review is due)."""
    folder = tmp_path / "legacy"
    folder.mkdir()
    name = filename or f"{number}.txt"
    (folder / name).write_bytes(content)
    write_manifest(tmp_path / "m.csv", [[number, title, "SOP", "owen", version, "effective", effective, name]])
    assert library.import_legacy(rt, None, folder, tmp_path / "m.csv").ok


# ------------------------------------------------------------------------------------------ periodic review
@pytest.mark.urs("URS-DOC-04")
def test_a_periodic_review_comes_due_and_starts_a_review_task_for_the_owner(loaded_runtime, cast, tmp_path):
    rt = loaded_runtime
    import_effective(rt, tmp_path, "SOP-MFG-001", "Cryopreservation", filename="cryo.pdf",
                     content=pdf_bytes("Cryopreservation"))
    # Effective in 2020 with a 24-month interval: the review fell due in 2022.
    assert versions(rt, "SOP-MFG-001")["1.0"].next_review_due == dt.datetime(2022, 1, 15, tzinfo=dt.timezone.utc)

    lines = library.start_due_periodic_reviews(rt)
    assert len(lines) == 1 and lines[0].startswith("started PR-") and "SOP-MFG-001 v1.0 for owen" in lines[0]
    assert library.start_due_periodic_reviews(rt) == []  # one open review per document, not one per tick
    with rt.db.sessionmaker() as s:
        (review,) = s.scalars(select(Record).where(Record.number.like("PR-%"))).all()
        (task,) = [t for t in rt.open_tasks(s, cast["owen"]) if t.record_id == review.id]
        assert task.bpmn_id == "review_document" and task.assignee == "owen"
        assert not [t for t in rt.open_tasks(s, cast["mia"]) if t.record_id == review.id]

    before = dt.datetime.now(dt.timezone.utc)
    rt.complete_task(task.id, cast["owen"], {"outcome": "no_change", "comments": "Still right.",
                                             "revision_needed": ""}, signature=sign("reviewed"))
    due = versions(rt, "SOP-MFG-001")["1.0"].next_review_due
    assert library.add_months(before, 24) - dt.timedelta(minutes=1) < due < library.add_months(before, 24) + \
        dt.timedelta(minutes=1)
    assert library.start_due_periodic_reviews(rt) == []


@pytest.mark.urs("URS-DOC-04")
@pytest.mark.urs("URS-PLT-07")
def test_a_periodic_review_that_asks_for_a_revision_starts_a_linked_change_control(loaded_runtime, cast, tmp_path):
    rt = loaded_runtime
    if "change_control" not in {v.definition.key for v in _released(rt)}:
        pytest.skip("change_control is not loaded")
    import_effective(rt, tmp_path, "SOP-MFG-001", "Cryopreservation", content=b"Cryopreservation")
    library.start_due_periodic_reviews(rt)
    with rt.db.sessionmaker() as s:
        (task,) = [t for t in rt.open_tasks(s, cast["owen"]) if t.bpmn_id == "review_document"]
    record = rt.complete_task(task.id, cast["owen"], {
        "outcome": "revise", "comments": "The new freezer is missing.",
        "revision_needed": "Describe freezer CRF-03."}, signature=sign("reviewed"))
    assert record.data["revision_request"]["started"] is True
    with rt.db.sessionmaker() as s:
        link = s.scalar(select(RecordLink).where(RecordLink.source_id == record.id))
        assert link.kind == "revises" and link.target.number.startswith("CC-")
        assert link.target.data["revises_document"] == "SOP-MFG-001"
    assert versions(rt, "SOP-MFG-001")["1.0"].next_review_due > dt.datetime.now(dt.timezone.utc)


@pytest.mark.urs("URS-DOC-04")
def test_the_worker_starts_due_periodic_reviews(loaded_runtime, cast, tmp_path):
    from cellqms.cli import fire_once

    rt = loaded_runtime
    import_effective(rt, tmp_path, "SOP-A-001", "A", version="3.0", effective="2019-05-01", content=b"A")
    lines = fire_once(rt)
    assert any(line.startswith("started PR-") and "SOP-A-001 v3.0" in line for line in lines)


@pytest.mark.urs("URS-DOC-04")
@pytest.mark.urs("URS-AUD-01")
def test_a_review_whose_owner_left_waits_for_a_new_owner_then_starts_for_them(loaded_runtime, cast, tmp_path):
    """Deactivating the owner is never held up; the review waits (reported and audited once) until
    Document Control names a new owner, with a reason, and then starts for the new owner."""
    rt = loaded_runtime
    import_effective(rt, tmp_path, "SOP-MFG-001", "Cryopreservation", content=b"Cryopreservation")
    assert rt.deactivate_user(None, "owen", "Left the company") == ["SOP-MFG-001"]

    lines = library.start_due_periodic_reviews(rt)
    assert lines == ["waiting: periodic review of SOP-MFG-001 is due but its owner owen is deactivated; "
                     "Document Control must name a new owner (document page, or `cellqms documents reassign`)"]
    assert library.start_due_periodic_reviews(rt) == []  # said once, not on every pass of the worker
    with rt.db.sessionmaker() as s:
        assert s.scalars(select(Record).where(Record.number.like("PR-%"))).all() == []

    for who, owner, reason, path in [(cast["dora"], "owen", "Owen left", "owner"),
                                     (cast["dora"], "nobody", "Owen left", "owner"),
                                     (cast["dora"], "mia", "", "reason")]:
        with pytest.raises(ValidationFailed) as refused:
            library.reassign_owner(rt, who, "SOP-MFG-001", owner, reason)
        assert path in {e["path"] for e in refused.value.errors}
    with pytest.raises(Forbidden):
        library.reassign_owner(rt, cast["mia"], "SOP-MFG-001", "mia", "I will do it")
    with pytest.raises(NotFound):
        library.reassign_owner(rt, cast["dora"], "SOP-NONE-001", "mia", "Owen left")

    doc = library.reassign_owner(rt, cast["dora"], "SOP-MFG-001", "mia", "Owen left; Mia runs cryo now")
    assert doc.owner.username == "mia"
    with rt.db.sessionmaker() as s:
        change = s.scalar(select(AuditEntry).where(AuditEntry.entity == "documents", AuditEntry.field == "owner_id"))
        assert change.reason == "Owen left; Mia runs cryo now" and change.username == "dora"
        event = s.scalar(select(AuditEntry).where(AuditEntry.action == "document_owner_changed"))
        assert event.old == {"owner": "owen"} and event.new["owner"] == "mia"
    (line,) = library.start_due_periodic_reviews(rt)
    assert line.startswith("started PR-") and "for mia" in line
    with rt.db.sessionmaker() as s:
        (task,) = [t for t in rt.open_tasks(s, cast["mia"]) if t.bpmn_id == "review_document"]
    assert task.assignee == "mia"
    with rt.db.sessionmaker() as s:
        assert verify_chain(s)["ok"]


@pytest.mark.urs("URS-DOC-04")
@pytest.mark.urs("URS-AUD-01")
def test_an_open_review_moves_to_the_new_owner(loaded_runtime, cast, tmp_path):
    rt = loaded_runtime
    import_effective(rt, tmp_path, "SOP-A-001", "A", content=b"A")
    library.start_due_periodic_reviews(rt)
    with rt.db.sessionmaker() as s:
        (task,) = [t for t in rt.open_tasks(s, cast["owen"]) if t.bpmn_id == "review_document"]
    rt.deactivate_user(None, "owen", "Left the company")
    library.reassign_owner(rt, cast["dora"], "SOP-A-001", "mia", "Owen left")
    with rt.db.sessionmaker() as s:
        assert s.get(Task, task.id).assignee == "mia"
        moved = s.scalar(select(AuditEntry).where(AuditEntry.entity == "tasks", AuditEntry.field == "assignee"))
        assert (moved.old, moved.new, moved.reason) == ("owen", "mia", "Owen left")
    record = rt.complete_task(task.id, cast["mia"], {"outcome": "no_change", "comments": "Still right.",
                                                     "revision_needed": ""}, signature=sign("reviewed"))
    assert record.status == RecordStatus.CLOSED


# ------------------------------------------------------------------------------------------ legacy import
def write_manifest(path, rows, header=library.IMPORT_COLUMNS):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture
def legacy(tmp_path):
    folder = tmp_path / "legacy"
    (folder / "sops").mkdir(parents=True)
    files = {
        "sops/SOP-QA-001_v1.pdf": pdf_bytes("Gowning 1.0"),
        "sops/SOP-QA-001_v2.pdf": pdf_bytes("Gowning 2.0"),
        "sops/SOP-QC-005.txt": b"Mycoplasma testing\n",
        "sops/FRM-001.csv": b"field,value\nbatch,\n",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    rows = [
        ["SOP-QA-001", "Gowning", "SOP", "owen", "1.0", "superseded", "2019-03-01", "sops/SOP-QA-001_v1.pdf"],
        ["SOP-QA-001", "Gowning", "SOP", "owen", "2.0", "effective", "2023-06-01", "sops/SOP-QA-001_v2.pdf"],
        ["SOP-QC-005", "Mycoplasma testing", "Test method", "mia", "4.1", "effective", "2024-02-10",
         "sops/SOP-QC-005.txt"],
        ["FRM-001", "Batch form", "Form", "owen", "1.0", "obsolete", "", "sops/FRM-001.csv"],
    ]
    return folder, files, rows


@pytest.mark.urs("URS-DOC-05")
def test_a_good_legacy_batch_is_imported_with_counts_and_hashes(loaded_runtime, cast, legacy, tmp_path):
    rt = loaded_runtime
    folder, files, rows = legacy
    write_manifest(tmp_path / "manifest.csv", rows)
    report = library.import_legacy(rt, None, folder, tmp_path / "manifest.csv")
    assert report.ok, report.problems
    assert (report.documents, report.versions, report.verified) == (3, 4, 4)
    assert [f.sha256 for f in report.files] == [hashlib.sha256(files[r[7]]).hexdigest() for r in rows]
    assert report.total_bytes == sum(len(d) for d in files.values())
    vs = versions(rt, "SOP-QA-001")
    assert vs["1.0"].status == DocumentVersionStatus.SUPERSEDED and vs["2.0"].status == DocumentVersionStatus.EFFECTIVE
    assert vs["1.0"].superseded_at == vs["2.0"].effective_date == dt.datetime(2023, 6, 1, tzinfo=dt.timezone.utc)
    with rt.db.sessionmaker() as s:
        reasons = {e.reason for e in s.scalars(select(AuditEntry).where(
            AuditEntry.entity.in_(["documents", "document_versions"])))}
        assert reasons == {"legacy migration"}
        assert verify_chain(s)["ok"]


@pytest.mark.urs("URS-DOC-05")
def test_a_legacy_batch_with_one_bad_row_imports_nothing_and_lists_every_problem(loaded_runtime, cast, legacy,
                                                                                  tmp_path):
    rt = loaded_runtime
    folder, _files, rows = legacy
    bad = rows + [["SOP-QA-002", "Aseptic", "SOP", "nobody", "1.0", "effective", "2024-01-01", "missing.pdf"],
                  ["SOP-QC-005", "Mycoplasma testing", "Test method", "mia", "4.1", "retired", "2024-02-10",
                   "sops/SOP-QC-005.txt"]]
    write_manifest(tmp_path / "bad.csv", bad)
    report = library.import_legacy(rt, None, folder, tmp_path / "bad.csv")
    assert not report.ok
    text = "\n".join(report.problems)
    assert "line 6: unknown owner 'nobody'" in text
    assert "line 6: missing file 'missing.pdf'" in text
    assert "line 7: duplicate: SOP-QC-005 v4.1 is also on line 4" in text
    assert "line 7: bad status 'retired'" in text
    with rt.db.sessionmaker() as s:
        assert s.scalars(select(Document)).all() == []
        assert s.scalars(select(DocumentVersion)).all() == []

    # A document already in the library is a duplicate too.
    write_manifest(tmp_path / "good.csv", rows)
    assert library.import_legacy(rt, None, folder, tmp_path / "good.csv").ok
    again = library.import_legacy(rt, None, folder, tmp_path / "good.csv")
    assert "line 2: duplicate: SOP-QA-001 is already in the library" in again.problems


@pytest.mark.urs("URS-DOC-05")
def test_the_import_command_prints_counts_hashes_and_refuses_a_bad_batch(loaded_runtime, cast, legacy, tmp_path,
                                                                         monkeypatch):
    from click.testing import CliRunner

    from cellqms.cli import main

    folder, files, rows = legacy
    write_manifest(tmp_path / "manifest.csv", rows)
    write_manifest(tmp_path / "bad.csv", rows + [["X-1", "X", "SOP", "owen", "1", "effective", "2024-01-01",
                                                  "../outside.txt"]])
    monkeypatch.setenv("DATABASE_URL", loaded_runtime.settings.database_url)
    runner = CliRunner()
    refused = runner.invoke(main, ["documents", "import", str(folder), "--manifest", str(tmp_path / "bad.csv")])
    assert refused.exit_code == 1
    assert "nothing was imported" in refused.output
    assert "line 6: version '1' is not like 1.0" in refused.output
    assert "line 6: file '../outside.txt' lies outside the import folder" in refused.output
    result = runner.invoke(main, ["documents", "import", str(folder), "--manifest", str(tmp_path / "manifest.csv")])
    assert result.exit_code == 0, result.output
    assert "imported 3 document(s), 4 version(s) (2 effective, 1 obsolete, 1 superseded)" in result.output
    assert "verified 4/4 file(s)" in result.output
    for data in files.values():
        assert hashlib.sha256(data).hexdigest() in result.output
    listing = runner.invoke(main, ["documents", "list"])
    assert listing.exit_code == 0 and "SOP-QA-001" in listing.output and "Superseded" in listing.output


# ------------------------------------------------------------------------------------------ inline drafts
@pytest.mark.urs("URS-DOC-01")
def test_an_inline_draft_is_limited_in_size_and_a_new_document_needs_document_control(loaded_runtime, cast):
    rt = loaded_runtime
    big = base64.b64encode(b"x" * (library.INLINE_DRAFT_MAX_BYTES + 1)).decode()
    with pytest.raises(Forbidden) as refused:
        rt.start_record(cast["ann"], "document_approval", {
            "document_number": "SOP-NEW-001", "new_document": {"title": "New", "doc_type": "SOP"},
            "draft_file": {"filename": "n.txt", "content_base64": base64.b64encode(b"n").decode()}})
    assert refused.value.code == "not_in_role"
    with pytest.raises(CellqmsError) as too_large:
        rt.start_record(cast["dora"], "document_approval", {
            "document_number": "SOP-NEW-001", "new_document": {"title": "New", "doc_type": "SOP"},
            "draft_file": {"filename": "n.txt", "content_base64": big}})
    assert too_large.value.code == "too_large"
    with rt.db.sessionmaker() as s:
        assert s.scalars(select(Document)).all() == []


@pytest.mark.urs("URS-DOC-02")
def test_a_revision_of_a_document_not_yet_in_the_library_waits_for_document_control(loaded_runtime, cast):
    """A change control may name a new document: the approval opens, and the author's upload waits
    until Document Control has created it."""
    rt = loaded_runtime
    record = rt.start_record(cast["ann"], "document_approval", {"document_number": "SOP-NEW-002",
                                                                 "change_reference": "CC-9", "reason": "New SOP."})
    task = the_task(rt, record.id, "prepare_revision")
    with pytest.raises(NotFound):
        library.add_revision_draft(rt, cast["ann"], task.id, "new.txt", b"New SOP")
    library.create_document(rt, cast["dora"], "SOP-NEW-002", "New SOP", "SOP", "ann")
    draft = library.add_revision_draft(rt, cast["ann"], task.id, "new.txt", b"New SOP")
    rt.complete_task(task.id, cast["ann"], {"version_id": draft.id})
    assert the_task(rt, record.id, "submit_for_review").assignee == "ann"
    with pytest.raises(NotFound):
        rt.start_record(cast["ann"], "document_approval", {"document_number": "SOP-NONE-001", "version_id": 1})


@pytest.mark.urs("URS-DOC-01")
@pytest.mark.urs("URS-AUD-04")
def test_the_database_refuses_to_change_a_stored_file_or_delete_a_version(loaded_runtime, cast, effective_v1):
    """Status and dates move with the lifecycle; the file, its hash and its number never change."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    rt = loaded_runtime
    for statement in ("UPDATE document_versions SET sha256 = 'x' WHERE id = :id",
                      "UPDATE document_versions SET content = :blob WHERE id = :id",
                      "UPDATE document_versions SET major = 9 WHERE id = :id",
                      "DELETE FROM document_versions WHERE id = :id",
                      "DELETE FROM documents"):
        with pytest.raises(DBAPIError, match="never"):
            with rt.db.engine.begin() as conn:
                conn.execute(text(statement), {"id": effective_v1.id, "blob": b"other bytes"})
    with rt.db.engine.begin() as conn:  # a lifecycle column may still change (here, back to itself)
        conn.execute(text("UPDATE document_versions SET change_summary = change_summary WHERE id = :id"),
                     {"id": effective_v1.id})
    assert versions(rt, "SOP-QA-001")["1.0"].sha256 == effective_v1.sha256
