"""The document library pages: what each role sees, controlled copies, new documents and drafts,
obsolescence with a reason, and the author's upload for an approval (URS-DOC-01..03)."""
from __future__ import annotations

import hashlib
import io

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from engine import documents as library
from models import Document, DocumentVersion, DocumentVersionStatus, Task, TaskStatus
from tests.conftest import PASSWORD

PEOPLE = {
    "dora": ("Dora Document-Control", ["Document Control"]),
    "ann": ("Ann Author", ["Author"]),
    "mia": ("Mia Manufacturing", ["Manufacturing"]),
    "rita": ("Rita Reviewer", ["Reviewer"]),
}


@pytest.fixture
def people(loaded_runtime, cast):
    return {u: loaded_runtime.add_user(None, u, n, PASSWORD, r) for u, (n, r) in PEOPLE.items()}


def pdf(text: str) -> bytes:
    return library._minimal_pdf([(595.0, 842.0, b"BT /CQ1 12 Tf 72 700 Td (" + library._pdf_text(text) + b") Tj ET")])


@pytest.fixture
def sop(loaded_runtime, people, tmp_path):
    """SOP-QA-001: v1.0 effective (legacy import), v2.0 a draft."""
    rt = loaded_runtime
    (tmp_path / "v1.pdf").write_bytes(pdf("Gowning 1.0"))
    (tmp_path / "m.csv").write_text("number,title,type,owner,version,status,effective_date,file\n"
                                    "SOP-QA-001,Gowning,SOP,dora,1.0,effective,2025-01-01,v1.pdf\n")
    assert library.import_legacy(rt, None, tmp_path, tmp_path / "m.csv").ok
    library.add_draft_version(rt, people["dora"], "SOP-QA-001", "v2.pdf", pdf("Gowning 2.0 draft"))
    return "SOP-QA-001"


def upload(client, url, name, data, **extra):
    return client.post(url, data={"file": (io.BytesIO(data), name), **extra}, content_type="multipart/form-data")


@pytest.mark.urs("URS-DOC-03")
def test_manufacturing_sees_only_the_effective_version_and_document_control_everything(as_user, sop):
    mia = as_user("mia")
    html = mia.get("/documents").get_data(as_text=True)
    assert "SOP-QA-001" in html and "v1.0" in html and "Other versions" not in html
    page = mia.get("/documents/SOP-QA-001").get_data(as_text=True)
    assert "v1.0" in page and "v2.0" not in page and "Upload a new draft" not in page
    assert mia.get("/documents/SOP-QA-001/v2.0/copy.pdf").status_code == 404
    assert mia.get("/documents/SOP-QA-001/v1.0/original").status_code == 403

    dora = as_user("dora")
    page = dora.get("/documents/SOP-QA-001").get_data(as_text=True)
    assert "v2.0" in page and "Draft" in page and "Upload a new draft" in page and "Audit trail" in page
    original = dora.get("/documents/SOP-QA-001/v1.0/original")
    assert original.status_code == 200 and original.data == pdf("Gowning 1.0")
    assert original.headers["X-Content-SHA256"] == hashlib.sha256(pdf("Gowning 1.0")).hexdigest()
    quinn = as_user("quinn")
    assert "v2.0" in quinn.get("/documents/SOP-QA-001").get_data(as_text=True)


@pytest.mark.urs("URS-DOC-01")
def test_the_download_is_a_stamped_controlled_copy(as_user, sop, loaded_runtime):
    resp = as_user("mia").get("/documents/SOP-QA-001/v1.0/copy.pdf")
    assert resp.status_code == 200 and resp.content_type == "application/pdf"
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    text = PdfReader(io.BytesIO(resp.data)).pages[0].extract_text()
    assert "Controlled copy \u2014 SOP-QA-001 v1.0 \u2014 Effective \u2014 printed" in text
    assert "by Mia Manufacturing" in text and "Gowning 1.0" in text


@pytest.mark.urs("URS-DOC-01")
def test_document_control_creates_a_document_and_uploads_a_draft(as_user, people, loaded_runtime):
    dora = as_user("dora")
    assert as_user("mia").get("/documents/new").status_code == 403
    resp = dora.post("/documents/new", data={"number": "bad number", "title": "", "type": "SOP", "owner": "dora"})
    assert resp.status_code == 400 and "capital letters" in resp.get_data(as_text=True)
    resp = dora.post("/documents/new", data={"number": "SOP-QC-010", "title": "Mycoplasma", "type": "Test method",
                                             "owner": "dora", "review_interval_months": "12"})
    assert resp.status_code == 302
    resp = upload(dora, "/documents/SOP-QC-010/versions", "method.txt", b"Mycoplasma method", change="major",
                  change_summary="First issue.")
    assert resp.status_code == 302
    html = dora.get("/documents/SOP-QC-010").get_data(as_text=True)
    assert "Draft v1.0 uploaded" in html and hashlib.sha256(b"Mycoplasma method").hexdigest()[:16] in html
    refused = upload(dora, "/documents/SOP-QC-010/versions", "tool.exe", b"MZ\x90\x00")
    assert refused.status_code == 415
    assert upload(as_user("mia"), "/documents/SOP-QC-010/versions", "m.txt", b"x").status_code == 403


@pytest.mark.urs("URS-DOC-03")
@pytest.mark.urs("URS-AUD-04")
def test_obsolete_needs_a_reason_and_archives_the_document(as_user, sop, loaded_runtime):
    dora = as_user("dora")
    resp = dora.post("/documents/SOP-QA-001/obsolete", data={"reason": ""})
    assert resp.status_code == 302
    assert "Give the reason" in dora.get(resp.headers["Location"]).get_data(as_text=True)
    resp = dora.post("/documents/SOP-QA-001/obsolete", data={"reason": "Replaced by SOP-QA-010"})
    assert resp.status_code == 302
    assert 'href="/documents/SOP-QA-001"' not in as_user("mia").get("/documents").get_data(as_text=True)
    archived = dora.get("/documents?status=obsolete").get_data(as_text=True)
    assert "SOP-QA-001" in archived and "Obsolete" in archived
    assert "Replaced by SOP-QA-010" in dora.get("/documents/SOP-QA-001").get_data(as_text=True)
    with loaded_runtime.db.sessionmaker() as s:
        assert s.scalar(select(Document)).obsolete_reason == "Replaced by SOP-QA-010"


@pytest.mark.urs("URS-DOC-04")
@pytest.mark.urs("URS-SEC-05")
def test_when_the_owner_is_deactivated_the_pages_ask_for_a_new_owner(as_user, sop, people, loaded_runtime, admin):
    resp = as_user("ada").post("/admin/users/dora/deactivate", data={"reason": "Left the company"},
                               follow_redirects=True)
    html = resp.get_data(as_text=True)
    assert "dora still owns SOP-QA-001. Document Control must name a new owner" in html
    loaded_runtime.add_user(None, "rosa", "Rosa Document-Control", PASSWORD, ["Document Control"])
    rosa = as_user("rosa")
    page = rosa.get("/documents/SOP-QA-001").get_data(as_text=True)
    assert 'id="owner-gone"' in page and "The owner's account is deactivated" in page
    resp = rosa.post("/documents/SOP-QA-001/owner", data={"owner": "ann", "reason": ""}, follow_redirects=True)
    assert "Give the reason for the change of owner." in resp.get_data(as_text=True)
    assert as_user("mia").post("/documents/SOP-QA-001/owner",
                               data={"owner": "mia", "reason": "Me"}).status_code == 403
    resp = rosa.post("/documents/SOP-QA-001/owner", data={"owner": "ann", "reason": "Dora left"},
                     follow_redirects=True)
    html = resp.get_data(as_text=True)
    assert "SOP-QA-001 is now owned by Ann Author (ann)" in html and 'id="owner-gone"' not in html
    with loaded_runtime.db.sessionmaker() as s:
        assert s.scalar(select(Document)).owner.username == "ann"


@pytest.mark.urs("URS-DOC-02")
def test_the_author_uploads_the_draft_for_a_change_controlled_revision(as_user, sop, people, loaded_runtime):
    rt = loaded_runtime
    record = rt.start_record(people["ann"], "document_approval", {
        "document_number": "SOP-QA-001", "change_reference": "CC-2026-0003", "reason": "New goggles."})
    with rt.db.sessionmaker() as s:
        task = s.scalar(select(Task).where(Task.record_id == record.id, Task.status == TaskStatus.OPEN))
    assert task.bpmn_id == "prepare_revision"
    ann = as_user("ann")
    page = ann.get("/documents/SOP-QA-001").get_data(as_text=True)
    assert "Upload the draft for this approval" in page
    form = ann.get(f"/documents/tasks/{task.id}/draft")
    assert form.status_code == 200 and "New goggles." in form.get_data(as_text=True)
    assert as_user("mia").get(f"/documents/tasks/{task.id}/draft").status_code in (403, 404)
    resp = upload(ann, f"/documents/tasks/{task.id}/draft", "gowning-v3.pdf", pdf("Gowning 3.0"),
                  change_summary="Goggles.")
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/records/{record.number}")
    with rt.db.sessionmaker() as s:
        version = s.scalar(select(DocumentVersion).where(DocumentVersion.filename == "gowning-v3.pdf"))
        assert version.label == "3.0" and version.status == DocumentVersionStatus.DRAFT
        assert version.approval_record_id == record.id
        (submit,) = s.scalars(select(Task).where(Task.record_id == record.id, Task.status == TaskStatus.OPEN)).all()
        assert submit.bpmn_id == "submit_for_review" and submit.assignee == "ann"


@pytest.mark.urs("URS-DOC-02")
def test_an_author_in_document_control_starts_the_approval_of_a_draft_from_the_document_page(as_user, sop,
                                                                                            loaded_runtime):
    loaded_runtime.add_user(None, "dana", "Dana Author-DC", PASSWORD, ["Document Control", "Author"])
    # Authors without Document Control do not see drafts they did not upload (URS-DOC-03) ...
    assert "v2.0" not in as_user("ann").get("/documents/SOP-QA-001").get_data(as_text=True)
    dana = as_user("dana")
    assert "Start approval" in dana.get("/documents/SOP-QA-001").get_data(as_text=True)
    resp = dana.post("/documents/SOP-QA-001/v2.0/approval")
    assert resp.status_code == 302 and "/records/DOC-" in resp.headers["Location"]
    assert "Start approval" not in dana.get("/documents/SOP-QA-001").get_data(as_text=True)  # claimed by it
    # ... until the draft is in an approval they work on (authors, reviewers, approvers read it there).
    assert "v2.0" in as_user("ann").get("/documents/SOP-QA-001").get_data(as_text=True)
    assert "v2.0" not in as_user("mia").get("/documents/SOP-QA-001").get_data(as_text=True)
    assert "Start approval" not in as_user("dora").get("/documents/SOP-QA-001").get_data(as_text=True)
