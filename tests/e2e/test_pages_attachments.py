"""Attachments: upload with type and size limits, stored with SHA-256, downloaded intact, never deleted."""
from __future__ import annotations

import hashlib
import io
import zipfile

import pytest
from sqlalchemy import select

from models import Attachment, AuditEntry
from tests.e2e.conftest import approve, investigate, open_task, raise_deviation, triage

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n" + bytes(range(256))


def docx_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
    return buf.getvalue()


@pytest.fixture
def deviation(loaded_runtime, cast):
    return raise_deviation(loaded_runtime, cast["olivia"], title="Incubator excursion")


def upload(client, number, name, data, **extra):
    return client.post(f"/records/{number}/attachments", data={"file": (io.BytesIO(data), name), **extra},
                       content_type="multipart/form-data")


@pytest.mark.urs("URS-AUD-04")
def test_upload_and_download_intact_with_sha256(as_user, deviation, loaded_runtime):
    c = as_user("quinn")
    resp = upload(c, deviation.number, "report ü.pdf", PDF)
    assert resp.status_code == 302
    html = c.get(resp.headers["Location"]).get_data(as_text=True)
    digest = hashlib.sha256(PDF).hexdigest()
    assert "Attached report ü.pdf" in html and digest[:12] in html
    with loaded_runtime.db.sessionmaker() as s:
        a = s.scalar(select(Attachment))
        assert a.sha256 == digest and a.size == len(PDF) and a.content_type == "application/pdf"
        assert s.scalar(select(AuditEntry).where(AuditEntry.action == "file_attached")).new["sha256"] == digest
    resp = c.get(f"/records/{deviation.number}/attachments/{a.id}")
    assert resp.status_code == 200 and resp.data == PDF
    assert resp.headers["X-Content-SHA256"] == digest
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''report%20%C3%BC.pdf" in resp.headers["Content-Disposition"]
    assert "sandbox" in resp.headers["Content-Security-Policy"]


@pytest.mark.urs("URS-AUD-04")
def test_office_and_text_files_are_accepted(as_user, deviation):
    c = as_user("quinn")
    for name, data in (("plan.docx", docx_bytes()), ("counts.csv", b"cell,count\nA,12\n"),
                       ("note.txt", "naïve text".encode()), ("photo.png", b"\x89PNG\r\n\x1a\n" + b"0" * 20),
                       ("scan.jpg", b"\xff\xd8\xff\xe0" + b"0" * 20)):
        assert upload(c, deviation.number, name, data).status_code == 302, name
    html = c.get(f"/records/{deviation.number}").get_data(as_text=True)
    for name in ("plan.docx", "counts.csv", "note.txt", "photo.png", "scan.jpg"):
        assert name in html


@pytest.mark.urs("URS-AUD-04")
def test_disallowed_types_are_refused_with_a_clear_message(as_user, deviation, loaded_runtime):
    c = as_user("quinn")
    resp = upload(c, deviation.number, "tool.exe", b"MZ\x90\x00")
    assert resp.status_code == 415
    assert "Files of this type are not accepted. Allowed: PDF, PNG, JPG" in resp.get_data(as_text=True)
    resp = upload(c, deviation.number, "invoice.pdf", b"MZ\x90\x00 not a pdf")  # renamed executable
    assert resp.status_code == 415 and "is not a PDF" in resp.get_data(as_text=True)
    resp = upload(c, deviation.number, "fake.docx", PDF)
    assert resp.status_code == 415
    with loaded_runtime.db.sessionmaker() as s:
        assert s.scalar(select(Attachment.id)) is None


@pytest.mark.urs("URS-AUD-04")
def test_oversize_files_are_refused_with_a_clear_message(as_user, deviation, loaded_runtime, monkeypatch, app):
    monkeypatch.setenv("CELLQMS_MAX_ATTACHMENT_BYTES", "1024")
    c = as_user("quinn")
    resp = upload(c, deviation.number, "big.pdf", PDF + b"0" * 2000)
    assert resp.status_code == 413
    html = resp.get_data(as_text=True)
    assert "The file is too large" in html and "the limit is 1.0 kB" in html and "Nothing was stored" in html
    # Beyond what the server accepts at all for one request (MAX_CONTENT_LENGTH): also a clear 413 page.
    app.config["MAX_CONTENT_LENGTH"] = 4096
    resp = upload(c, deviation.number, "huge.pdf", PDF + b"0" * 10000)
    assert resp.status_code == 413 and "larger than this site accepts" in resp.get_data(as_text=True)
    with loaded_runtime.db.sessionmaker() as s:
        assert s.scalar(select(Attachment.id)) is None


@pytest.mark.urs("URS-SEC-02")
def test_who_may_attach(as_user, deviation, loaded_runtime, cast, auditor):
    assert upload(as_user("aude"), deviation.number, "a.pdf", PDF).status_code == 403  # auditors read only
    html = as_user("aude").get(f"/records/{deviation.number}").get_data(as_text=True)
    assert "Attach a file" not in html
    assert upload(as_user("olivia"), deviation.number, "a.pdf", PDF).status_code == 302  # the creator
    task = open_task(loaded_runtime, deviation, "triage_deviation")
    resp = upload(as_user("ivan"), deviation.number, "b.pdf", PDF, task_id=task.id, back="task")
    assert resp.status_code == 403 and "role &#39;QA&#39;" in resp.get_data(as_text=True)
    resp = upload(as_user("quinn"), deviation.number, "c.pdf", PDF, task_id=task.id, back="task")
    assert resp.status_code == 302 and resp.headers["Location"] == f"/tasks/{task.id}"
    assert "c.pdf" in as_user("quinn").get(f"/tasks/{task.id}").get_data(as_text=True)


@pytest.mark.urs("URS-AUD-04")
def test_closed_records_take_no_more_files_and_attachments_are_never_deleted(as_user, deviation, loaded_runtime,
                                                                             cast):
    rt = loaded_runtime
    assert upload(as_user("quinn"), deviation.number, "a.pdf", PDF).status_code == 302
    triage(rt, deviation, cast["quinn"])
    investigate(rt, deviation, cast["ivan"])
    approve(rt, deviation, cast["quentin"])
    resp = upload(as_user("quinn"), deviation.number, "late.pdf", PDF)
    assert resp.status_code == 403 and "closed" in resp.get_data(as_text=True)
    with pytest.raises(PermissionError):
        with rt.db.unit_of_work(None) as s:
            s.delete(s.scalar(select(Attachment)))


@pytest.mark.urs("URS-SEC-02")
def test_attachments_of_invisible_records_are_not_served(as_user, deviation, loaded_runtime):
    c = as_user("quinn")
    upload(c, deviation.number, "a.pdf", PDF)
    with loaded_runtime.db.sessionmaker() as s:
        a_id = s.scalar(select(Attachment.id))
    loaded_runtime.add_user(None, "tom", "Tom Trainer", "Correct-horse-9", ["Trainer"])
    assert as_user("tom").get(f"/records/{deviation.number}/attachments/{a_id}").status_code == 404
    assert c.get(f"/records/{deviation.number}/attachments/999999").status_code == 404
