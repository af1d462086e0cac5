"""The document library through the REST API (extension of API.md): what each role sees, controlled
copies and originals, new documents, draft uploads with the attachment rules, obsolescence with a
reason, and the audit trail of each write (URS-DOC-01, URS-DOC-03, URS-AUD-01, URS-AUD-04, URS-INT-01).

Real runtime, real database (SQLite or CELLQMS_TEST_DATABASE), real HTTP through Flask's test client.
"""
# ruff: noqa: F811  (pytest fixtures imported from test_api_support are parameters of the tests)
from __future__ import annotations

import hashlib
import io

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from test_api_support import API, api, app, assert_error  # noqa: F401  fixtures

from conftest import PASSWORD
from engine import documents as library
from models import AuditEntry, DocumentVersion
from tests.conftest import Dba

PEOPLE = {
    "dora": ("Dora Document-Control", ["Document Control"]),
    "mia": ("Mia Manufacturing", ["Manufacturing"]),
}


def pdf(text: str) -> bytes:
    """A small real PDF with one line of text."""
    return library._minimal_pdf([(595.0, 842.0, b"BT /CQ1 12 Tf 72 700 Td (" + library._pdf_text(text)
                                  + b") Tj ET")])


V1 = pdf("Gowning 1.0")
V2 = pdf("Gowning 2.0 draft")


@pytest.fixture
def people(loaded_runtime, users):
    return {u: loaded_runtime.add_user(None, u, n, PASSWORD, r) for u, (n, r) in PEOPLE.items()}


@pytest.fixture
def sop(loaded_runtime, people, tmp_path):
    """SOP-QA-001 (v1.0 effective by legacy import, v2.0 a draft) and WI-001 (only a draft)."""
    rt = loaded_runtime
    (tmp_path / "v1.pdf").write_bytes(V1)
    (tmp_path / "m.csv").write_text("number,title,type,owner,version,status,effective_date,file\n"
                                    "SOP-QA-001,Gowning,SOP,dora,1.0,effective,2025-01-01,v1.pdf\n")
    assert library.import_legacy(rt, None, tmp_path, tmp_path / "m.csv").ok
    library.add_draft_version(rt, people["dora"], "SOP-QA-001", "v2.pdf", V2)
    library.create_document(rt, people["dora"], "WI-001", "Label printing", "Work instruction", "dora", 12)
    library.add_draft_version(rt, people["dora"], "WI-001", "wi.txt", b"Print the labels.")
    return "SOP-QA-001"


@pytest.fixture
def dora(api, people):
    return api.login("dora")


@pytest.fixture
def mia(api, people):
    return api.login("mia")


def multipart(caller, path: str, fields: dict):
    return caller.client.post(API + path, data=fields, content_type="multipart/form-data", headers=caller.headers)


def audit_actions(rt, action: str) -> list[AuditEntry]:
    with rt.db.sessionmaker() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)))


def version_count(rt) -> int:
    with rt.db.sessionmaker() as s:
        return s.scalar(select(func.count()).select_from(DocumentVersion))


# ----------------------------------------------------------------------------- who sees what

@pytest.mark.urs("URS-DOC-03")
@pytest.mark.urs("URS-INT-01")
def test_manufacturing_lists_only_documents_in_force_with_only_their_effective_version(sop, mia):
    resp = mia.get("/documents")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["total"] == 1 and body["page"] == 1
    (item,) = body["items"]
    assert item["number"] == "SOP-QA-001" and item["current_version"] == "1.0"
    assert item["versions"] == [{"label": "1.0", "status": "effective"}]
    assert item["owner"] == "dora" and item["type"] == "SOP" and item["status"] == "active"
    assert item["effective_date"].startswith("2025-01-01T00:00:00")
    assert item["next_review_due"].startswith("2027-01-01")
    # Asked for the archive, a caller who may not see it gets none of it.
    assert mia.get("/documents?status=obsolete").get_json()["items"] == []
    assert [i["number"] for i in mia.get("/documents?status=all").get_json()["items"]] == ["SOP-QA-001"]


@pytest.mark.urs("URS-DOC-03")
def test_document_control_and_qa_see_every_document_and_version(sop, dora, api):
    for caller in (dora, api.login("quinn")):
        items = {i["number"]: i for i in caller.get("/documents").get_json()["items"]}
        assert set(items) == {"SOP-QA-001", "WI-001"}
        assert items["SOP-QA-001"]["versions"] == [{"label": "1.0", "status": "effective"},
                                                   {"label": "2.0", "status": "draft"}]
        assert items["WI-001"]["current_version"] is None
        doc = caller.get("/documents/SOP-QA-001").get_json()
        assert [(v["label"], v["status"]) for v in doc["versions"]] == [("1.0", "effective"), ("2.0", "draft")]
        v1, v2 = doc["versions"]
        assert v1["sha256"] == hashlib.sha256(V1).hexdigest() and v1["filename"] == "v1.pdf"
        assert v1["created_by"] is None and v1["superseded_at"] is None
        assert v2["created_by"] == "dora" and v2["content_type"] == "application/pdf" and v2["size"] == len(V2)
        assert v2["controlled_copy_url"] == f"{API}/documents/SOP-QA-001/versions/2.0/file"


@pytest.mark.urs("URS-DOC-03")
def test_a_document_or_version_the_caller_may_not_see_is_not_found(sop, mia):
    doc = mia.get("/documents/SOP-QA-001").get_json()
    assert [v["label"] for v in doc["versions"]] == ["1.0"]
    assert doc["review_interval_months"] == 24 and doc["next_review_due"].startswith("2027-01-01")
    assert_error(mia.get("/documents/WI-001"), 404, "not_found")  # only a draft: invisible
    assert_error(mia.get("/documents/NO-SUCH-DOC"), 404, "not_found")
    assert_error(mia.get("/documents/SOP-QA-001/versions/2.0/file"), 404, "not_found")
    assert_error(mia.get("/documents/WI-001/versions/1.0/file"), 404, "not_found")


@pytest.mark.urs("URS-DOC-03")
def test_the_list_searches_filters_and_pages(sop, dora):
    assert [i["number"] for i in dora.get("/documents?q=gown").get_json()["items"]] == ["SOP-QA-001"]
    assert [i["number"] for i in dora.get("/documents?q=wi-0").get_json()["items"]] == ["WI-001"]
    assert [i["number"] for i in dora.get("/documents?type=Work%20instruction").get_json()["items"]] == ["WI-001"]
    assert dora.get("/documents?type=Policy").get_json()["total"] == 0
    page2 = dora.get("/documents?per_page=1&page=2").get_json()
    assert page2["total"] == 2 and page2["per_page"] == 1 and [i["number"] for i in page2["items"]] == ["WI-001"]
    assert dora.get("/documents?page=9").get_json()["items"] == []
    err = assert_error(dora.get("/documents?status=draft"), 400, "validation_failed")
    assert err["details"]["errors"][0]["path"] == "status"
    assert_error(dora.get("/documents?page=0"), 400, "validation_failed")
    assert_error(dora.get("/documents?per_page=201"), 400, "validation_failed")


# ----------------------------------------------------------------------------- files

@pytest.mark.urs("URS-DOC-01")
@pytest.mark.urs("URS-AUD-01")
def test_the_file_is_a_stamped_controlled_copy_and_its_issue_is_audited(sop, mia, loaded_runtime):
    resp = mia.get("/documents/SOP-QA-001/versions/1.0/file")
    assert resp.status_code == 200 and resp.content_type == "application/pdf"
    assert resp.headers["Content-Disposition"] == (
        'attachment; filename="SOP-QA-001_v1.0_controlled_copy.pdf"; '
        "filename*=UTF-8''SOP-QA-001_v1.0_controlled_copy.pdf")
    assert resp.headers["X-Controlled-Copy"].startswith("Controlled copy ? SOP-QA-001 v1.0 ? Effective ? printed")
    assert resp.headers["X-Content-SHA256"] == hashlib.sha256(V1).hexdigest()
    text = PdfReader(io.BytesIO(resp.data)).pages[0].extract_text()
    assert "Controlled copy \u2014 SOP-QA-001 v1.0 \u2014 Effective \u2014 printed" in text
    assert "by Mia Manufacturing" in text and "Gowning 1.0" in text
    (issued,) = audit_actions(loaded_runtime, "controlled_copy_issued")
    assert issued.username == "mia" and issued.new["version"] == "1.0" and issued.new["kind"] == "stamped PDF"
    assert issued.new["copy_sha256"] == hashlib.sha256(resp.data).hexdigest()


@pytest.mark.urs("URS-DOC-01")
def test_a_non_pdf_version_gets_a_cover_page_as_its_controlled_copy(sop, dora):
    resp = dora.get("/documents/WI-001/versions/1.0/file")
    assert resp.status_code == 200 and resp.content_type == "application/pdf"
    text = PdfReader(io.BytesIO(resp.data)).pages[0].extract_text()
    assert "WI-001 v1.0" in text and hashlib.sha256(b"Print the labels.").hexdigest() in text


@pytest.mark.urs("URS-DOC-03")
def test_only_document_control_gets_the_original_file(sop, dora, mia, api):
    err = assert_error(mia.get("/documents/SOP-QA-001/versions/1.0/file?original=1"), 403, "not_in_role")
    assert "controlled copy" in err["message"]
    assert_error(api.login("quinn").get("/documents/SOP-QA-001/versions/2.0/file?original=1"), 403, "not_in_role")
    resp = dora.get("/documents/SOP-QA-001/versions/2.0/file?original=1")
    assert resp.status_code == 200 and resp.data == V2 and resp.content_type == "application/pdf"
    assert resp.headers["X-Content-SHA256"] == hashlib.sha256(V2).hexdigest()
    assert resp.headers["Content-Disposition"] == "attachment; filename=\"v2.pdf\"; filename*=UTF-8''v2.pdf"
    text = dora.get("/documents/WI-001/versions/1.0/file?original=true")
    assert text.data == b"Print the labels." and text.content_type == "text/plain; charset=utf-8"
    assert dora.get("/documents/SOP-QA-001/versions/1.0/file?original=0").content_type == "application/pdf"
    assert_error(dora.get("/documents/SOP-QA-001/versions/1.0/file?original=maybe"), 400, "validation_failed")
    assert_error(dora.get("/documents/SOP-QA-001/versions/9.0/file?original=1"), 404, "not_found")


def test_a_label_that_is_not_a_version_is_not_found(sop, dora):
    assert_error(dora.get("/documents/SOP-QA-001/versions/v1/file"), 404, "not_found")
    assert_error(dora.get("/documents/SOP-QA-001/versions/latest/file?original=1"), 404, "not_found")


# ----------------------------------------------------------------------------- new documents

@pytest.mark.urs("URS-DOC-01")
@pytest.mark.urs("URS-AUD-01")
def test_document_control_creates_a_document(people, dora, loaded_runtime):
    resp = dora.post("/documents", {"number": "SOP-QC-010", "title": "Mycoplasma testing", "type": "Test method",
                                    "owner": "dora", "review_interval_months": 12})
    assert resp.status_code == 201, resp.get_json()
    assert resp.headers["Location"].endswith(f"{API}/documents/SOP-QC-010")
    doc = resp.get_json()
    assert (doc["number"], doc["title"], doc["type"], doc["owner"]) == ("SOP-QC-010", "Mycoplasma testing",
                                                                      "Test method", "dora")
    assert doc["review_interval_months"] == 12 and doc["versions"] == [] and doc["status"] == "active"
    assert dora.get("/documents/SOP-QC-010").get_json()["title"] == "Mycoplasma testing"
    trail = dora.get("/documents/SOP-QC-010/audit").get_json()
    created = [e for e in trail if e["action"] == "document_created"]
    assert len(created) == 1 and created[0]["user"] == "dora" and created[0]["new"]["number"] == "SOP-QC-010"
    default = dora.post("/documents", {"number": "SOP-QC-011", "title": "Sterility", "type": "SOP", "owner": "mia"})
    assert default.status_code == 201 and default.get_json()["review_interval_months"] == 24
    assert_error(dora.post("/documents", {"number": "SOP-QC-010", "title": "Again", "type": "SOP",
                                          "owner": "dora"}), 409, "conflict")


@pytest.mark.urs("URS-DOC-01")
def test_a_new_document_with_bad_fields_is_refused_with_every_problem(people, dora, loaded_runtime):
    err = assert_error(dora.post("/documents", {"number": "bad number", "title": " ", "type": "SOP",
                                                "owner": "nobody", "review_interval_months": 500}),
                       400, "validation_failed")
    paths = {e["path"]: e["message"] for e in err["details"]["errors"]}
    assert set(paths) == {"number", "title", "owner", "review_interval_months"}
    assert "capital letters" in paths["number"] and "'nobody' is not an active user" in paths["owner"]
    err = assert_error(dora.post("/documents", {"number": "SOP-1", "title": "T", "type": "SOP", "owner": "dora",
                                                "colour": "red"}), 400, "validation_failed")
    assert err["details"]["errors"] == [{"path": "", "message": "Unknown field(s): colour."}]
    err = assert_error(dora.post("/documents", {"number": "SOP-1", "title": "T", "type": "SOP"}),
                       400, "validation_failed")
    assert err["details"]["errors"] == [{"path": "owner", "message": "This field is required."}]
    err = assert_error(dora.post("/documents", {"number": "SOP-1", "title": "T", "type": "SOP", "owner": "dora",
                                                "review_interval_months": "12"}), 400, "validation_failed")
    assert err["details"]["errors"] == [{"path": "review_interval_months", "message": "Must be a whole number."}]
    assert_error(dora.post_raw("/documents", b"number=SOP-1", "application/x-www-form-urlencoded"),
                 415, "unsupported_media_type")
    assert_error(dora.post_raw("/documents", b"{not json", "application/json"), 400, "bad_json")
    assert audit_actions(loaded_runtime, "document_created") == []


@pytest.mark.urs("URS-DOC-01")
@pytest.mark.urs("URS-SEC-02")
def test_only_document_control_creates_documents(people, mia, api, loaded_runtime):
    body = {"number": "SOP-QC-012", "title": "Endotoxin", "type": "SOP", "owner": "mia"}
    err = assert_error(mia.post("/documents", body), 403, "not_in_role")
    assert err["details"]["required_roles"] == ["Document Control"]
    assert_error(mia.post("/documents", {"bad": 1}), 403, "not_in_role")  # the role first, then the body
    assert_error(api.login("quinn").post("/documents", body), 403, "not_in_role")
    assert_error(api.anonymous.post(f"{API}/documents", json=body), 401, "not_authenticated")
    assert audit_actions(loaded_runtime, "document_created") == []


# ----------------------------------------------------------------------------- draft uploads

@pytest.mark.urs("URS-DOC-01")
@pytest.mark.urs("URS-AUD-01")
def test_document_control_uploads_drafts_with_their_hash(sop, dora, loaded_runtime):
    content = b"Revised label printing, with the new printer."
    resp = multipart(dora, "/documents/WI-001/versions", {"file": (io.BytesIO(content), "wi-2.txt"),
                                                           "change_summary": "New printer."})
    assert resp.status_code == 201, resp.get_json()
    version = resp.get_json()
    assert (version["document"], version["label"], version["status"]) == ("WI-001", "2.0", "draft")
    assert version["sha256"] == hashlib.sha256(content).hexdigest() and version["size"] == len(content)
    assert version["filename"] == "wi-2.txt" and version["change_summary"] == "New printer."
    assert version["created_by"] == "dora" and version["effective_date"] is None
    assert resp.headers["Location"].endswith(f"{API}/documents/WI-001/versions/2.0/file")
    minor = multipart(dora, "/documents/WI-001/versions", {"file": (io.BytesIO(b"typo fixed"), "wi-2.1.txt"),
                                                            "change": "minor"})
    assert minor.status_code == 201 and minor.get_json()["label"] == "2.1"
    assert dora.get("/documents/WI-001/versions/2.1/file?original=1").data == b"typo fixed"
    added = audit_actions(loaded_runtime, "document_version_added")
    assert [(e.username, e.new["document"], e.new["version"]) for e in added[-2:]] == [
        ("dora", "WI-001", "2.0"), ("dora", "WI-001", "2.1")]
    assert added[-2].new["sha256"] == hashlib.sha256(content).hexdigest()


@pytest.mark.urs("URS-DOC-01")
def test_refused_uploads_store_nothing(sop, dora, mia, loaded_runtime):
    before = version_count(loaded_runtime)
    url = "/documents/WI-001/versions"
    err = assert_error(multipart(dora, url, {"file": (io.BytesIO(b"MZ\x90\x00"), "tool.exe")}), 415,
                       "unsupported_type")
    assert ".pdf" in err["details"]["allowed_extensions"] and "Nothing was stored" in err["message"]
    assert_error(multipart(dora, url, {"file": (io.BytesIO(b"MZ\x90\x00"), "tool.pdf")}), 415, "unsupported_type")
    assert_error(dora.post(url, {"file": "x"}), 415, "unsupported_media_type")
    err = assert_error(multipart(dora, url, {"change": "major"}), 400, "validation_failed")
    assert err["details"]["errors"][0]["path"] == "file"
    err = assert_error(multipart(dora, url, {"file": (io.BytesIO(b""), "empty.txt")}), 400, "validation_failed")
    assert err["details"]["errors"][0]["path"] == "file"
    err = assert_error(multipart(dora, url, {"file": (io.BytesIO(b"x"), "x.txt"), "change": "huge"}),
                       400, "validation_failed")
    assert err["details"]["errors"][0]["path"] == "change"
    assert_error(multipart(dora, "/documents/NO-SUCH/versions", {"file": (io.BytesIO(b"x"), "x.txt")}),
                 404, "not_found")
    err = assert_error(multipart(mia, url, {"file": (io.BytesIO(b"x"), "x.txt")}), 403, "not_in_role")
    assert err["details"]["required_roles"] == ["Document Control"]
    assert version_count(loaded_runtime) == before


@pytest.mark.urs("URS-DOC-01")
def test_an_upload_over_the_attachment_limit_is_413(sop, dora, loaded_runtime, monkeypatch):
    monkeypatch.setenv("CELLQMS_MAX_ATTACHMENT_BYTES", "1000")  # the engine's own limit, read at each upload
    before = version_count(loaded_runtime)
    err = assert_error(multipart(dora, "/documents/WI-001/versions", {"file": (io.BytesIO(b"a" * 1001), "big.txt")}),
                       413, "too_large")
    assert err["details"]["limit_bytes"] == 1000 and "Nothing was stored" in err["message"]
    assert version_count(loaded_runtime) == before


@pytest.mark.urs("URS-DOC-01")
def test_a_request_over_the_http_body_limit_is_413(sop, dora, app, loaded_runtime):
    app.config["MAX_CONTENT_LENGTH"] = 2048
    before = version_count(loaded_runtime)
    err = assert_error(multipart(dora, "/documents/WI-001/versions", {"file": (io.BytesIO(b"a" * 4096), "big.txt")}),
                       413, "too_large")
    assert err["details"]["limit_bytes"] == 2048
    assert version_count(loaded_runtime) == before


# ----------------------------------------------------------------------------- obsolescence

@pytest.mark.urs("URS-DOC-03")
@pytest.mark.urs("URS-AUD-04")
@pytest.mark.urs("URS-AUD-01")
def test_obsolete_needs_a_reason_and_archives_the_document(sop, dora, mia, loaded_runtime):
    err = assert_error(dora.post("/documents/SOP-QA-001/obsolete", {"reason": "   "}), 400, "validation_failed")
    assert err["details"]["errors"] == [{"path": "reason",
                                         "message": "Give the reason why the document is made obsolete."}]
    assert_error(dora.post("/documents/SOP-QA-001/obsolete", {}), 400, "validation_failed")
    assert_error(dora.post("/documents/SOP-QA-001/obsolete", {"reason": "x", "why": "y"}), 400, "validation_failed")
    assert_error(mia.post("/documents/SOP-QA-001/obsolete", {"reason": "Not mine to decide"}), 403, "not_in_role")
    assert_error(dora.post("/documents/NO-SUCH/obsolete", {"reason": "Replaced"}), 404, "not_found")
    assert audit_actions(loaded_runtime, "document_obsoleted") == []

    resp = dora.post("/documents/SOP-QA-001/obsolete", {"reason": "Replaced by SOP-QA-010"})
    assert resp.status_code == 200, resp.get_json()
    doc = resp.get_json()
    assert doc["status"] == "obsolete" and doc["obsolete_reason"] == "Replaced by SOP-QA-010"
    assert [(v["label"], v["status"]) for v in doc["versions"]] == [("1.0", "obsolete"), ("2.0", "obsolete")]
    assert doc["current_version"] is None
    (entry,) = audit_actions(loaded_runtime, "document_obsoleted")
    assert entry.username == "dora" and entry.reason == "Replaced by SOP-QA-010"
    assert entry.new["versions_withdrawn"] == ["1.0", "2.0"]
    assert_error(dora.post("/documents/SOP-QA-001/obsolete", {"reason": "Again"}), 409, "conflict")

    # Archived, never lost: gone for Manufacturing, kept for Document Control with its files.
    assert_error(mia.get("/documents/SOP-QA-001"), 404, "not_found")
    assert mia.get("/documents").get_json()["items"] == []
    assert [i["number"] for i in dora.get("/documents?status=obsolete").get_json()["items"]] == ["SOP-QA-001"]
    assert "SOP-QA-001" not in [i["number"] for i in dora.get("/documents").get_json()["items"]]
    assert dora.get("/documents/SOP-QA-001/versions/1.0/file?original=1").data == V1
    assert_error(multipart(dora, "/documents/SOP-QA-001/versions", {"file": (io.BytesIO(b"x"), "x.txt")}),
                 409, "conflict")


# ----------------------------------------------------------------------------- audit trail, authentication

@pytest.mark.urs("URS-AUD-01")
def test_the_document_audit_trail_is_for_document_control_and_qa(sop, dora, mia, api):
    trail = dora.get("/documents/SOP-QA-001/audit").get_json()
    actions = [e["action"] for e in trail]
    assert "document_imported" in actions and actions.count("document_version_added") == 2
    assert [e["seq"] for e in trail] == sorted(e["seq"] for e in trail)
    assert api.login("quinn").get("/documents/SOP-QA-001/audit").status_code == 200
    assert_error(mia.get("/documents/SOP-QA-001/audit"), 403, "not_in_role")
    assert_error(mia.get("/documents/WI-001/audit"), 404, "not_found")
    assert_error(dora.get("/documents/NO-SUCH/audit"), 404, "not_found")


@pytest.mark.urs("URS-INT-01")
@pytest.mark.parametrize("method,path", [
    ("get", "/documents"), ("get", "/documents/SOP-QA-001"), ("get", "/documents/SOP-QA-001/versions/1.0/file"),
    ("get", "/documents/SOP-QA-001/audit"), ("post", "/documents"), ("post", "/documents/SOP-QA-001/versions"),
    ("post", "/documents/SOP-QA-001/obsolete"),
])
def test_every_document_route_needs_a_token(sop, api, method, path, loaded_runtime):
    resp = getattr(api.anonymous, method)(API + path)
    assert_error(resp, 401, "not_authenticated")
    assert audit_actions(loaded_runtime, "controlled_copy_issued") == []


@pytest.mark.urs("URS-DOC-03")
@pytest.mark.urs("URS-DOC-02")
def test_an_uploaded_draft_goes_into_approval_and_its_workers_see_it(sop, dora, mia, api, loaded_runtime):
    version = multipart(dora, "/documents/WI-001/versions",
                        {"file": (io.BytesIO(b"Label printing v2"), "wi-2.txt")}).get_json()
    loaded_runtime.add_user(None, "ann", "Ann Author", PASSWORD, ["Author"])
    ann = api.login("ann")
    assert_error(ann.get("/documents/WI-001"), 404, "not_found")  # drafts only: nothing for her yet
    resp = ann.post("/records", {"process": "document_approval",
                                 "data": {"document_number": "WI-001", "version_id": version["id"]}})
    assert resp.status_code == 201, resp.get_json()
    seen = ann.get("/documents/WI-001").get_json()
    assert [(v["label"], v["status"]) for v in seen["versions"]] == [("2.0", "draft")]
    assert seen["versions"][0]["approval_record"]["number"] == resp.get_json()["number"]
    assert ann.get("/documents/WI-001/versions/2.0/file").status_code == 200
    assert_error(ann.get("/documents/WI-001/versions/1.0/file"), 404, "not_found")
    assert_error(mia.get("/documents/WI-001"), 404, "not_found")


@pytest.mark.urs("URS-DOC-01")
def test_a_stored_file_that_no_longer_matches_its_hash_is_not_served(sop, dora, mia, loaded_runtime, db_url):
    # The database refuses a change of the stored file (migration 0005) ...
    with pytest.raises(DBAPIError, match="never change"):
        with loaded_runtime.db.sessionmaker() as s:
            row = s.scalars(select(DocumentVersion).where(DocumentVersion.filename == "v1.pdf")).one()
            row.content = pdf("Gowning 1.0, edited in the database")
            s.commit()
    # ... so only someone past the triggers can do it: the download still refuses the file.
    with Dba(db_url) as conn:
        conn.execute(text("UPDATE document_versions SET content = :c WHERE filename = 'v1.pdf'"),
                     {"c": pdf("Gowning 1.0, edited in the database")})
    err = assert_error(mia.get("/documents/SOP-QA-001/versions/1.0/file"), 500, "integrity_error")
    assert "SHA-256" in err["message"]
    assert_error(dora.get("/documents/SOP-QA-001/versions/1.0/file?original=1"), 500, "integrity_error")
    assert audit_actions(loaded_runtime, "controlled_copy_issued") == []
