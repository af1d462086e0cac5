"""The document library (extension of API.md; URS-DOC-01, URS-DOC-03): list and search, one document
with its versions, controlled copies (and originals for Document Control), new documents, draft
uploads, obsolescence with a reason, a document's audit trail.

Another door to engine.documents, like the library pages (webapp/pages/documents.py): who sees
which document and version is the engine's answer (`library`, `get_document`, `open_version`),
who may write is the engine's check (`_require_control` inside each write), and every write and
every controlled copy is audited there. The role check at the top of the write routes only puts
403 before body parsing (a Manufacturing caller learns "not allowed", not "bad field"); the engine
checks again.
"""
from __future__ import annotations

from urllib.parse import quote

from flask import Response, jsonify, request, url_for
from sqlalchemy.orm import Session

from engine import attachments as attach
from engine import documents as library
from engine.exceptions import NotFound, ValidationFailed
from models import DocumentVersion, Record, User

from .base import ApiError, api_blueprint, current_user, int_arg, iso, json_body, require_role, runtime
from .schemas import REQUEST_SCHEMAS
from .views import audit_view

MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 50
# `status` of GET /documents: documents in use (default), the archive, or both.
LIST_STATUSES = ("active", "obsolete", "all")
CHANGE_KINDS = ("major", "minor")
MULTIPART = "multipart/form-data"
_TRUE = {"1", "true", "yes"}
_FALSE = {"", "0", "false", "no"}


# ----------------------------------------------------------------------------- wire shapes
def _username(session: Session, user_id: int | None) -> str | None:
    user = session.get(User, user_id) if user_id is not None else None
    return user.username if user is not None else None


def _record_ref(session: Session, record_id: str | None) -> dict | None:
    record = session.get(Record, record_id) if record_id else None
    if record is None:
        return None
    return {"id": record.id, "number": record.number, "status": str(record.status)}


def version_view(session: Session, number: str, version: DocumentVersion) -> dict:
    """One version as a configuration item: file, SHA-256 taken at upload, status and dates."""
    return {
        "id": version.id,
        "document": number,
        "label": version.label,
        "major": version.major,
        "minor": version.minor,
        "status": str(version.status),
        "filename": version.filename,
        "content_type": version.content_type,
        "size": version.size,
        "sha256": version.sha256,
        "change_summary": version.change_summary or "",
        "effective_date": iso(version.effective_date),
        "effective_at": iso(version.effective_at),
        "superseded_at": iso(version.superseded_at),
        "next_review_due": iso(version.next_review_due),
        "created_by": _username(session, version.created_by_id),
        "created_at": iso(version.created_at),
        "approval_record": _record_ref(session, version.approval_record_id),
        "change_record": _record_ref(session, version.change_record_id),
        "controlled_copy_url": url_for("api.get_document_file", number=number, label=version.label),
    }


def _document_fields(row: library.LibraryRow) -> dict:
    doc, current = row.document, row.current
    return {
        "number": doc.number,
        "title": doc.title,
        "type": doc.doc_type,
        "owner": doc.owner.username,
        "owner_name": doc.owner.full_name,
        "status": str(doc.status),
        "obsolete_reason": doc.obsolete_reason,
        "review_interval_months": doc.review_interval_months,
        "current_version": current.label if current is not None else None,
        "effective_date": iso(current.effective_date) if current is not None else None,
        "next_review_due": iso(current.next_review_due) if current is not None else None,
        "created_at": iso(doc.created_at),
    }


def library_item(row: library.LibraryRow) -> dict:
    """A row of GET /documents: the document, its effective version and the versions the caller sees."""
    return {**_document_fields(row),
            "versions": [{"label": v.label, "status": str(v.status)} for v in row.versions]}


def document_detail(session: Session, row: library.LibraryRow) -> dict:
    """GET /documents/{number}: the document with every version the caller may see, oldest first."""
    number = row.document.number
    return {**_document_fields(row), "versions": [version_view(session, number, v) for v in row.versions]}


def _detail_of(number: str) -> dict:
    rt = runtime()
    with rt.db.sessionmaker() as session:
        return document_detail(session, library.get_document(session, rt, current_user(), number))


# ----------------------------------------------------------------------------- reads
@api_blueprint.get("/documents")
def list_documents():
    """The library rows the caller may see (URS-DOC-03), by number, filtered like the library page."""
    status = request.args.get("status") or "active"
    if status not in LIST_STATUSES:
        raise ValidationFailed([{"path": "status", "message": "Choose one of: " + ", ".join(LIST_STATUSES) + "."}])
    page = int_arg("page", 1, 1)
    per_page = int_arg("per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    q = (request.args.get("q") or "").strip() or None
    doc_type = (request.args.get("type") or "").strip() or None
    rt = runtime()
    with rt.db.sessionmaker() as session:
        # The engine answers the archive (obsolete) and "all" only to those who may see the archive.
        rows = library.library(session, rt, current_user(), q=q, doc_type=doc_type,
                               status=None if status == "active" else status)
        start = (page - 1) * per_page
        return jsonify({"items": [library_item(r) for r in rows[start:start + per_page]], "page": page,
                        "per_page": per_page, "total": len(rows)})


@api_blueprint.get("/documents/<number>")
def get_document(number: str):
    """One document with the versions the caller may see; 404 when unknown or invisible."""
    return jsonify(_detail_of(number))


def _label(label: str) -> str:
    """A version label such as 2.0; anything else names no version (404, as on the pages)."""
    try:
        library.parse_version(label)
    except ValidationFailed as exc:
        raise NotFound(f"There is no version '{label}' of a document you may see.") from exc
    return label


def _disposition(filename: str) -> str:
    """attachment, with an ASCII fallback and the UTF-8 name (RFC 6266), exactly as the pages send it."""
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


def _want_original() -> bool:
    raw = (request.args.get("original") or "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValidationFailed([{"path": "original", "message": "Use original=1 for the original file, or leave it out."}])


@api_blueprint.get("/documents/<number>/versions/<label>/file")
def get_document_file(number: str, label: str):
    """The controlled copy of a version (stamped PDF or cover page; its issue is audited), or with
    ?original=1 the file as uploaded, its SHA-256 checked first (Document Control only)."""
    label = _label(label)
    security = "default-src 'none'; sandbox"
    if _want_original():
        version = library.original_file(runtime(), current_user(), number, label)
        return Response(version.content, content_type=version.content_type, headers={
            "Content-Disposition": _disposition(version.filename),
            "X-Content-SHA256": version.sha256,
            "Content-Security-Policy": security})
    copy = library.controlled_copy(runtime(), current_user(), number, label)
    return Response(copy.content, content_type="application/pdf", headers={
        "Content-Disposition": _disposition(copy.filename),
        "X-Controlled-Copy": copy.stamp.encode("ascii", "replace").decode(),
        "X-Content-SHA256": copy.version.sha256,
        "Content-Security-Policy": security})


@api_blueprint.get("/documents/<number>/audit")
def get_document_audit(number: str):
    """The audit entries of the document and its versions, oldest first (Document Control and QA,
    who see the whole library; the page shows the trail to them only)."""
    rt = runtime()
    with rt.db.sessionmaker() as session:
        row = library.get_document(session, rt, current_user(), number)
        require_role(library.LIBRARY_ROLES, "Reading a document's audit trail")
        return jsonify([audit_view(e) for e in library.document_audit(session, row.document)])


# ----------------------------------------------------------------------------- writes
@api_blueprint.post("/documents")
def create_document():
    """Create a controlled document without a version yet (Document Control; URS-DOC-01)."""
    require_role({library.CONTROL_ROLE}, "Creating a document")
    body = json_body(REQUEST_SCHEMAS["CreateDocumentRequest"])
    doc = library.create_document(runtime(), current_user(), body["number"], body["title"], body["type"],
                                  body["owner"], body.get("review_interval_months", 24))
    resp = jsonify(_detail_of(doc.number))
    resp.status_code = 201
    resp.headers["Location"] = url_for("api.get_document", number=doc.number)
    return resp


@api_blueprint.post("/documents/<number>/versions")
def upload_draft_version(number: str):
    """Upload a new draft version as multipart form data (Document Control; URS-DOC-01): the file is
    checked by the attachment rules (type by name and content, size) and stored with its SHA-256."""
    require_role({library.CONTROL_ROLE}, "Uploading a draft")
    if request.mimetype != MULTIPART:
        raise ApiError(415, "unsupported_media_type",
                       "Send the draft as 'multipart/form-data' with the file in the part 'file'.",
                       {"content_type": request.content_type or "", "accepted": [MULTIPART]})
    file = request.files.get("file")  # werkzeug answers 413 here above MAX_CONTENT_LENGTH
    if file is None or not file.filename:
        raise ValidationFailed([{"path": "file", "message": "Send the file in the form part 'file'."}])
    change = request.form.get("change") or "major"
    if change not in CHANGE_KINDS:
        raise ValidationFailed([{"path": "change", "message": "Choose one of: major, minor."}])
    try:
        version = library.add_draft_version(runtime(), current_user(), number, file.filename, file.read(),
                                            change=change, change_summary=request.form.get("change_summary") or "")
    except attach.AttachmentTooLarge as exc:
        raise ApiError(413, exc.code, exc.message + " Nothing was stored.",
                       {"limit_bytes": attach.max_bytes()}) from exc
    except attach.AttachmentTypeRefused as exc:
        raise ApiError(415, exc.code, exc.message + " Nothing was stored.",
                       {"allowed_extensions": list(attach.ALLOWED_EXTENSIONS)}) from exc
    rt = runtime()
    with rt.db.sessionmaker() as session:
        row = library.get_document(session, rt, current_user(), number)
        stored = next(v for v in row.versions if v.id == version.id)
        resp = jsonify(version_view(session, row.document.number, stored))
    resp.status_code = 201
    resp.headers["Location"] = url_for("api.get_document_file", number=row.document.number, label=version.label)
    return resp


@api_blueprint.post("/documents/<number>/obsolete")
def obsolete_document(number: str):
    """Withdraw a document from use with a reason; archived with all its versions, nothing deleted
    (Document Control; URS-DOC-03, URS-AUD-04)."""
    require_role({library.CONTROL_ROLE}, "Making a document obsolete")
    body = json_body(REQUEST_SCHEMAS["ObsoleteDocumentRequest"])
    doc = library.obsolete_document(runtime(), current_user(), number, body["reason"])
    return jsonify(_detail_of(doc.number))
