"""Document control: the controlled-document library (URS-DOC-01..05).

No web framework here: the pages, the CLI and the diagrams' service operations all call
these functions, so the rules live in one place:

- a document has a number, title, type, owner and review interval; its versions carry the
  file, its SHA-256 (taken at upload, checked again at every download) and a status
  draft → in review → approved → effective → superseded (or obsolete);
- who sees what (URS-DOC-03): ``Document Control`` and ``QA`` see every document and
  version; everyone else sees only current effective versions (plus the drafts they
  uploaded or are reviewing/approving in a document approval they work on);
- downloads are controlled copies: a PDF gets a header and footer on every page, any other
  file a generated PDF cover page stating the same and the file's SHA-256 (EU GMP Chapter 4
  §4.3/4.4: a printout must show which version it is and that it is controlled). Only
  Document Control gets the original file as it is;
- nothing is deleted: a document is made obsolete with a reason and archived; a replaced
  draft becomes obsolete (URS-AUD-04);
- every change is audited by the model mechanism, plus explicit entries carrying the
  reason a person gave, the approval record, or "legacy migration" (URS-AUD-01, DOC-05).

The diagrams ``document_approval`` and ``periodic_review`` move versions through the
service operations registered at the end of this module.
"""
from __future__ import annotations

import base64
import binascii
import calendar
import csv
import datetime as dt
import hashlib
import io
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models import (
    AuditEntry,
    Document,
    DocumentStatus,
    DocumentVersion,
    DocumentVersionStatus,
    ProcessDefinition,
    ProcessVersion,
    Record,
    RecordLink,
    RecordStatus,
    Task,
    TaskStatus,
    User,
    VersionStatus,
    audit_event,
    utcnow,
)

from . import attachments as files
from .actors import is_person, person_row, require_role
from .db import contains
from .exceptions import CellqmsError, Conflict, Forbidden, NotFound, ValidationFailed
from .permissions import can_see_record
from .services import StepContext, operation

CONTROL_ROLE = "Document Control"
# Roles that see the whole library: drafts, versions in review, superseded and obsolete ones.
LIBRARY_ROLES = frozenset({CONTROL_ROLE, "QA"})
APPROVAL_PROCESS = "document_approval"
REVIEW_PROCESS = "periodic_review"
DOCUMENT_TYPES = ("SOP", "Batch record template", "Specification", "Test method", "Form", "Policy",
                  "Work instruction", "Other")
NUMBER_RE = re.compile(r"^[A-Z0-9][A-Z0-9._-]{1,63}$")
VERSION_RE = re.compile(r"^(\d{1,4})\.(\d{1,4})$")
# Drafts given inline (base64 in the start or task data) end up in the record's data and its
# audit trail, so only small files come that way (API clients, scenario tests); real files are
# uploaded on the pages.
INLINE_DRAFT_MAX_BYTES = 256 * 1024
STATUS_LABELS = {
    "draft": "Draft", "in_review": "In review", "approved": "Approved", "effective": "Effective",
    "superseded": "Superseded", "obsolete": "Obsolete",
}
# Who may move a version to which status from which (the approval diagram's service tasks).
_TRANSITIONS = {
    DocumentVersionStatus.IN_REVIEW: {DocumentVersionStatus.DRAFT},
    DocumentVersionStatus.APPROVED: {DocumentVersionStatus.IN_REVIEW},
    DocumentVersionStatus.DRAFT: {DocumentVersionStatus.IN_REVIEW, DocumentVersionStatus.APPROVED},
}


class DocumentCorrupted(CellqmsError):
    """The stored bytes no longer match the SHA-256 taken at upload (tampering or a storage fault)."""

    status = 500
    code = "integrity_error"


# ============================================================================ small helpers
def status_label(status) -> str:
    """'in_review' -> 'In review'."""
    return STATUS_LABELS.get(str(status), str(status))


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """The same day `months` later (the last day of the month when that day does not exist)."""
    year, month0 = divmod(moment.month - 1 + months, 12)
    year += moment.year
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day)


def parse_version(label: str) -> tuple[int, int]:
    """'2.1' -> (2, 1); anything else is refused."""
    match = VERSION_RE.match(str(label or "").strip())
    if not match:
        raise ValidationFailed([{"path": "version", "message": f"'{label}' is not a version such as 1.0 or 2.3."}])
    return int(match.group(1)), int(match.group(2))


def midnight_utc(day) -> dt.datetime:
    """A date (or YYYY-MM-DD text) as midnight UTC of that day."""
    if isinstance(day, dt.datetime):
        day = day.date()
    if not isinstance(day, dt.date):
        day = dt.date.fromisoformat(str(day)[:10])
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


def sees_everything(user) -> bool:
    """Document Control and QA see the whole library (URS-DOC-03)."""
    return bool(getattr(user, "role_names", set()) & LIBRARY_ROLES)


def _require_control(session: Session, actor, what: str) -> None:
    """People need the Document Control role; the command line (an administrator on the server) may."""
    require_role(session, actor, {CONTROL_ROLE}, what)


def _document(session: Session, number: str, *, lock: bool = False) -> Document:
    stmt = select(Document).where(Document.number == str(number or "").strip())
    if lock:
        stmt = stmt.with_for_update(of=Document)
    doc = session.scalar(stmt)
    if doc is None:
        raise NotFound(f"There is no document '{number}'.")
    return doc


def _version(session: Session, version_id, *, lock: bool = False) -> DocumentVersion:
    try:
        ident = int(version_id)
    except (TypeError, ValueError):
        ident = None
    version = session.get(DocumentVersion, ident, with_for_update={"of": DocumentVersion} if lock else None) \
        if ident is not None else None
    if version is None:
        raise NotFound(f"There is no document version '{version_id}'.")
    return version


def _find_version(document: Document, label: str | None) -> DocumentVersion | None:
    if not label:
        return current_version(document)
    major, minor = parse_version(label)
    return next((v for v in document.versions if (v.major, v.minor) == (major, minor)), None)


def current_version(document: Document) -> DocumentVersion | None:
    """The effective version of a document, if it has one."""
    return next((v for v in document.versions if v.status == DocumentVersionStatus.EFFECTIVE), None)


def next_version_number(document: Document, change: str = "major") -> tuple[int, int]:
    """The number of a new version: the next major (N+1.0) or the next minor (N.m+1)."""
    if not document.versions:
        return (1, 0)
    major, minor = max((v.major, v.minor) for v in document.versions)
    return (major, minor + 1) if change == "minor" else (major + 1, 0)


def _check_upload(filename: str, content: bytes, limit: int | None = None) -> tuple[str, str]:
    """A safe file name and the content type we store, or the attachments' refusal (type, size)."""
    name = files.safe_filename(filename)
    if not name:
        raise ValidationFailed([{"path": "file", "message": "Choose a file."}])
    return name, files.check_file(name, content, limit)


# ============================================================================ the library (writes)
def create_document(runtime, actor, number: str, title: str, doc_type: str, owner: str,
                    review_interval_months: int = 24) -> Document:
    """Create a controlled document (no version yet); Document Control only (URS-DOC-01)."""
    with runtime.db.unit_of_work(actor) as session:
        _require_control(session, actor, "Creating a document")
        doc = _new_document(session, number, title, doc_type, owner, review_interval_months)
        session.flush()
        audit_event(session, "document_created", entity="documents", entity_id=doc.id,
                    new={"number": doc.number, "title": doc.title, "type": doc.doc_type, "owner": owner})
        _ = doc.owner, doc.versions
    return doc


def _new_document(session: Session, number: str, title: str, doc_type: str, owner: str,
                  review_interval_months) -> Document:
    errors = document_problems(session, number, title, doc_type, owner, review_interval_months)
    if errors:
        raise ValidationFailed(errors)
    number = number.strip()
    if session.scalar(select(Document.id).where(Document.number == number)) is not None:
        raise Conflict(f"The document number {number} exists already (numbers are never reused).")
    user = session.scalar(select(User).where(User.username == owner.strip()))
    doc = Document(number=number, title=title.strip(), doc_type=doc_type.strip(), owner_id=user.id,
                   review_interval_months=int(review_interval_months))
    session.add(doc)
    session.flush()
    return doc


def document_problems(session: Session, number, title, doc_type, owner, review_interval_months) -> list[dict]:
    """Every problem with the fields of a new document, as {path, message}."""
    errors = []
    if not NUMBER_RE.match(str(number or "").strip()):
        errors.append({"path": "number", "message": "Use 2-64 capital letters, digits, dots, dashes or "
                                                    "underscores, e.g. SOP-QA-001."})
    if not str(title or "").strip() or len(str(title)) > 300:
        errors.append({"path": "title", "message": "Give a title of at most 300 characters."})
    if not str(doc_type or "").strip() or len(str(doc_type)) > 64:
        errors.append({"path": "type", "message": "Give a document type (e.g. SOP) of at most 64 characters."})
    try:
        months = int(review_interval_months)
        if not 1 <= months <= 120:
            raise ValueError
    except (TypeError, ValueError):
        errors.append({"path": "review_interval_months", "message": "Give a whole number of months from 1 to 120."})
    user = session.scalar(select(User).where(User.username == str(owner or "").strip()))
    if user is None or not user.active:
        errors.append({"path": "owner", "message": f"'{owner}' is not an active user."})
    return errors


def _add_version(session: Session, document: Document, author: User | None, filename: str, content: bytes, *,
                 version: tuple[int, int] | None = None, change: str = "major", change_summary: str = "",
                 limit: int | None = None, status: DocumentVersionStatus = DocumentVersionStatus.DRAFT,
                 change_record_id: str | None = None) -> DocumentVersion:
    """Store one version's file with its SHA-256 (the caller checks who may)."""
    if document.status == DocumentStatus.OBSOLETE:
        raise Conflict(f"{document.number} is obsolete; no new versions can be added.")
    name, content_type = _check_upload(filename, content, limit)
    major, minor = version or next_version_number(document, change)
    if any((v.major, v.minor) == (major, minor) for v in document.versions):
        raise Conflict(f"{document.number} already has a version {major}.{minor}.")
    row = DocumentVersion(document_id=document.id, major=major, minor=minor, status=status, filename=name,
                          content_type=content_type, size=len(content), sha256=hashlib.sha256(content).hexdigest(),
                          content=content, change_summary=(change_summary or "").strip()[:10000],
                          created_by_id=author.id if author is not None else None,
                          change_record_id=change_record_id)
    session.add(row)
    session.flush()
    session.expire(document, ["versions"])
    audit_event(session, "document_version_added", entity="document_versions", entity_id=row.id,
                new={"document": document.number, "version": row.label, "filename": name, "size": len(content),
                     "sha256": row.sha256, "status": str(status)})
    return row


def add_draft_version(runtime, actor, number: str, filename: str, content: bytes, *, change: str = "major",
                      version: str | None = None, change_summary: str = "") -> DocumentVersion:
    """Upload a new draft version of a document; Document Control only (URS-DOC-01)."""
    with runtime.db.unit_of_work(actor) as session:
        _require_control(session, actor, "Uploading a draft")
        doc = _document(session, number, lock=True)
        row = _add_version(session, doc, person_row(session, actor), filename, content, change=change,
                           version=parse_version(version) if version else None, change_summary=change_summary)
        _ = row.document
    return row


def add_revision_draft(runtime, user, task_id: str, filename: str, content: bytes, *, change: str = "auto",
                       change_summary: str = "") -> DocumentVersion:
    """The author of a document approval's "prepare the revision" task uploads the new file.

    The person must be allowed to complete that task (role, assignee, segregation); the draft
    is stored at once and the page then completes the task with its ``version_id``.
    """

    from .permissions import why_not

    with runtime.db.unit_of_work(user) as session:
        person = session.get(User, user.id)
        task = session.get(Task, str(task_id))
        if task is None or not runtime.may_see_record(session, person, task.record):
            raise NotFound(f"There is no task '{task_id}' you may see.")
        if task.bpmn_id != "prepare_revision" or task.status != TaskStatus.OPEN:
            raise Conflict("This task is not an open 'prepare the revision' task of a document approval.")
        refusal = why_not(session, person, task)
        if refusal is not None:
            raise Forbidden(refusal.message, code=refusal.code)
        doc = _document(session, (task.record.data or {}).get("document_number"), lock=True)
        current = ((task.record.data or {}).get("draft") or {}).get("version_id")
        if change == "auto":
            change = _change_kind(session, current)
        row = _add_version(session, doc, person, filename, content, change=change, change_summary=change_summary,
                           change_record_id=_change_record_of(session, task.record))
        _ = row.document
    return row


def obsolete_document(runtime, actor, number: str, reason: str) -> Document:
    """Withdraw a document from use, with a reason; it stays archived with all its versions (URS-DOC-03, AUD-04)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed([{"path": "reason", "message": "Give the reason why the document is made obsolete."}])
    with runtime.db.unit_of_work(actor, reason=reason) as session:
        _require_control(session, actor, "Making a document obsolete")
        doc = _document(session, number, lock=True)
        if doc.status == DocumentStatus.OBSOLETE:
            raise Conflict(f"{doc.number} is obsolete already.")
        doc.status = DocumentStatus.OBSOLETE
        doc.obsolete_reason = reason
        withdrawn = []
        for version in doc.versions:
            if version.status in (DocumentVersionStatus.EFFECTIVE, DocumentVersionStatus.APPROVED,
                                  DocumentVersionStatus.DRAFT, DocumentVersionStatus.IN_REVIEW):
                version.status = DocumentVersionStatus.OBSOLETE
                version.next_review_due = None
                withdrawn.append(version.label)
        audit_event(session, "document_obsoleted", entity="documents", entity_id=doc.id, reason=reason,
                    new={"number": doc.number, "versions_withdrawn": withdrawn})
        _ = doc.owner, doc.versions
    return doc


def reassign_owner(runtime, actor, number: str, new_owner: str, reason: str) -> Document:
    """Name a new owner for a document, with a reason (Document Control; URS-DOC-04, AUD-01).

    The owner does the periodic reviews, so a document whose owner left (account deactivated)
    needs a new one: an open periodic review still reserved to the old owner moves to the new
    owner in the same transaction, and the next due review starts for them.
    """
    reason = (reason or "").strip()
    errors = []
    if not reason:
        errors.append({"path": "reason", "message": "Give the reason for the change of owner."})
    with runtime.db.unit_of_work(actor, reason=reason or None) as session:
        _require_control(session, actor, "Changing a document's owner")
        doc = _document(session, number, lock=True)
        user = session.scalar(select(User).where(User.username == str(new_owner or "").strip()))
        if user is None or not user.active:
            errors.append({"path": "owner", "message": f"'{new_owner}' is not an active user."})
        elif user.id == doc.owner_id:
            errors.append({"path": "owner", "message": f"{user.username} owns {doc.number} already."})
        if errors:
            raise ValidationFailed(errors)
        old = doc.owner.username
        doc.owner_id = user.id
        moved = []
        for task, record in session.execute(select(Task, Record).join(Record, Record.id == Task.record_id).where(
                Task.bpmn_id == "review_document", Task.status == TaskStatus.OPEN, Task.assignee == old,
                Record.status == RecordStatus.OPEN)).all():
            if (record.data or {}).get("document_number") == doc.number:
                task.assignee = user.username
                moved.append(record.number)
        audit_event(session, "document_owner_changed", entity="documents", entity_id=doc.id, reason=reason,
                    old={"owner": old}, new={"owner": user.username, "open_reviews_moved": moved})
        session.flush()
        session.refresh(doc)
        _ = doc.owner, doc.versions
    return doc


# ============================================================================ the library (reads)
def may_see_version(session: Session, runtime, user, version: DocumentVersion) -> bool:
    """URS-DOC-03: effective versions for everyone; the rest for Document Control and QA, the person
    who uploaded the draft, and the people working on the version's approval record."""
    if sees_everything(user):
        return True
    if version.status == DocumentVersionStatus.EFFECTIVE and version.document.status == DocumentStatus.ACTIVE:
        return True
    if version.created_by_id is not None and version.created_by_id == getattr(user, "id", None):
        return True
    if version.approval_record_id and version.status in (DocumentVersionStatus.DRAFT,
                                                         DocumentVersionStatus.IN_REVIEW,
                                                         DocumentVersionStatus.APPROVED):
        record = session.get(Record, version.approval_record_id)
        if record is not None and record.status == RecordStatus.OPEN:
            return can_see_record(user, record, runtime.spec_info(record.process_version).roles)
    return False


@dataclass
class LibraryRow:
    """One document as a person may see it: the document and the versions they may see."""

    document: Document
    versions: list[DocumentVersion] = field(default_factory=list)

    @property
    def current(self) -> DocumentVersion | None:
        return current_version(self.document) if self.document.status == DocumentStatus.ACTIVE else None


def library(session: Session, runtime, user, *, q: str | None = None, doc_type: str | None = None,
            status: str | None = None) -> list[LibraryRow]:
    """The documents `user` may see, by number, each with the versions they may see (URS-DOC-03)."""
    stmt = select(Document).order_by(Document.number)
    if q and q.strip():
        stmt = stmt.where(or_(contains(Document.number, q.strip()), contains(Document.title, q.strip())))
    if doc_type:
        stmt = stmt.where(Document.doc_type == doc_type)
    everything = sees_everything(user)
    if status == "obsolete":
        if not everything:
            return []  # the archive is for Document Control and QA
        stmt = stmt.where(Document.status == DocumentStatus.OBSOLETE)
    elif status != "all" or not everything:
        stmt = stmt.where(Document.status == DocumentStatus.ACTIVE)
    rows = []
    for doc in session.scalars(stmt).unique():
        visible = [v for v in doc.versions if may_see_version(session, runtime, user, v)]
        if everything or visible:
            rows.append(LibraryRow(doc, visible))
    return rows


def get_document(session: Session, runtime, user, number: str) -> LibraryRow:
    """One document with the versions the user may see; NotFound when they may see none of it."""
    doc = session.scalar(select(Document).where(Document.number == str(number)))
    if doc is None:
        raise NotFound(f"There is no document '{number}' you may see.")
    visible = [v for v in doc.versions if may_see_version(session, runtime, user, v)]
    if not visible and not sees_everything(user):
        raise NotFound(f"There is no document '{number}' you may see.")
    return LibraryRow(doc, visible)


def open_version(session: Session, runtime, user, number: str, label: str | None = None) -> DocumentVersion:
    """A version the user may see, with its bytes checked against the SHA-256 taken at upload."""
    row = get_document(session, runtime, user, number)
    version = _find_version(row.document, label)
    if version is None or version not in row.versions:
        raise NotFound(f"{number} has no version {label or '(effective)'} you may see.")
    if hashlib.sha256(version.content).hexdigest() != version.sha256:
        raise DocumentCorrupted(f"The stored file of {number} v{version.label} no longer matches its SHA-256 "
                                "taken at upload; it is not served. Tell Document Control and the system "
                                "administrator.")
    return version


def original_file(runtime, user, number: str, label: str | None = None) -> DocumentVersion:
    """The file exactly as uploaded: Document Control only (everyone else gets controlled copies)."""
    with runtime.db.sessionmaker() as session:
        person = session.get(User, user.id)
        if CONTROL_ROLE not in person.role_names:
            raise Forbidden(f"Only {CONTROL_ROLE} may download the original file; download the controlled "
                            "copy instead.", code="not_in_role")
        version = open_version(session, runtime, person, number, label)
        _ = version.content, version.document
        return version


def document_audit(session: Session, document: Document) -> list:
    """The audit entries of a document and its versions, oldest first."""

    ids = [str(v.id) for v in document.versions]
    return list(session.scalars(select(AuditEntry).where(or_(
        (AuditEntry.entity == "documents") & (AuditEntry.entity_id == str(document.id)),
        (AuditEntry.entity == "document_versions") & AuditEntry.entity_id.in_(ids or ["-"]),
    )).order_by(AuditEntry.seq)))


# ============================================================================ controlled copies
@dataclass
class ControlledCopy:
    filename: str
    content: bytes
    stamp: str
    version: DocumentVersion


def stamp_text(number: str, label: str, status, printed_at: dt.datetime, name: str) -> str:
    """The line every controlled copy carries (Part 11 §11.10(b), EU GMP Ch. 4: version, status, print date)."""
    return (f"Controlled copy \u2014 {number} v{label} \u2014 {status_label(status)} \u2014 printed "
            f"{printed_at.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M} UTC by {name}")


def controlled_copy(runtime, user, number: str, label: str | None = None) -> ControlledCopy:
    """A controlled copy of a version the user may see; its issue is audited.

    PDF files get the stamp in a header and a footer on every page. Any other file gets a
    one-page PDF stating the same plus the file's name, size and SHA-256, and nothing else:
    the original is issued by Document Control (:func:`original_file`).
    """
    printed_at = utcnow()
    with runtime.db.unit_of_work(user) as session:
        person = session.get(User, user.id)
        version = open_version(session, runtime, person, number, label)
        doc = version.document
        stamp = stamp_text(doc.number, version.label, version.status, printed_at, person.full_name)
        if version.content_type == "application/pdf":
            try:
                content = stamp_pdf(version.content, stamp)
                kind = "stamped PDF"
            except Exception:  # noqa: BLE001 - a PDF the library cannot rewrite still gets a controlled copy
                content = cover_page(doc, version, stamp, note="The PDF could not be stamped page by page.")
                kind = "cover page"
        else:
            content = cover_page(doc, version, stamp)
            kind = "cover page"
        audit_event(session, "controlled_copy_issued", entity="document_versions", entity_id=version.id,
                    new={"document": doc.number, "version": version.label, "status": str(version.status),
                         "kind": kind, "printed_at": printed_at, "file_sha256": version.sha256,
                         "copy_sha256": hashlib.sha256(content).hexdigest()})
        filename = f"{doc.number}_v{version.label}_controlled_copy.pdf"
        _ = version.document
        return ControlledCopy(filename, content, stamp, version)


def _pdf_text(text: str) -> bytes:
    """Text for a PDF string in WinAnsiEncoding (the standard fonts), with ( ) and \\ escaped."""
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _minimal_pdf(pages: list[tuple[float, float, bytes]]) -> bytes:
    """A small valid PDF: each page (width, height, content stream) with Helvetica and Courier."""
    objects: list[bytes] = [b"", b""]  # 1: catalog, 2: pages (filled below)
    font = len(objects) + 1
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    mono = len(objects) + 1
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>")
    kids = []
    for width, height, stream in pages:
        contents = len(objects) + 1
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        page = len(objects) + 1
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.2f %.2f] /Contents %d 0 R "
                       b"/Resources << /Font << /CQ1 %d 0 R /CQ2 %d 0 R >> >> >>"
                       % (width, height, contents, font, mono))
        kids.append(page)
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def _band(x: float, y: float, width: float, text: str, size: float) -> bytes:
    """A white band with one line of black text on it (legible over the page's own content)."""
    return (b"q 1 1 1 rg %.2f %.2f %.2f %.2f re f Q\n" % (x, y - size * 0.35, width, size * 1.5)
            + b"BT /CQ1 %.2f Tf 0 0 0 rg %.2f %.2f Td (" % (size, x + 4, y) + _pdf_text(text) + b") Tj ET\n")


def stamp_pdf(content: bytes, stamp: str) -> bytes:
    """Put `stamp` in a header and a footer band on every page of a PDF."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(content))
    for page in writer.pages:
        if page.rotation:
            page.transfer_rotation_to_content()  # so "top" is the top the reader sees
        box = page.cropbox
        left, bottom = float(box.left), float(box.bottom)
        width, height = float(box.width), float(box.height)
        # Helvetica averages about half an em per character: shrink long lines to fit the page.
        size = max(4.0, min(8.0, (width - 16) / max(1, len(stamp)) / 0.5))
        band = _band(left + 4, bottom + height - size * 1.6, width - 8, stamp, size)
        band += _band(left + 4, bottom + size * 0.8, width - 8, stamp, size)
        overlay = PdfReader(io.BytesIO(_minimal_pdf([(left + width, bottom + height, band)]))).pages[0]
        page.merge_page(overlay)
    writer.add_metadata({"/Subject": stamp})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def cover_page(document: Document, version: DocumentVersion, stamp: str, note: str | None = None) -> bytes:
    """A one-page A4 PDF standing for a file that cannot be stamped (Word, Excel, images, text)."""
    width, height = 595.28, 841.89
    lines: list[tuple[str, float, str]] = [
        ("CQ1", 9, stamp),
        ("CQ1", 18, f"{document.number} v{version.label}"),
        ("CQ1", 13, document.title[:90]),
        ("CQ1", 10, f"Type: {document.doc_type}    Status: {status_label(version.status)}"),
        ("CQ1", 10, "Effective: " + (f"{version.effective_date:%Y-%m-%d}" if version.effective_date else "-")
         + "    Superseded: " + (f"{version.superseded_at:%Y-%m-%d}" if version.superseded_at else "-")),
        ("CQ1", 10, f"File: {version.filename[:80]} ({version.content_type.split(';')[0]}, {version.size:,} bytes)"),
        ("CQ1", 10, "SHA-256 of the file:"),
        ("CQ2", 9, version.sha256),
        ("CQ1", 10, "This cover page is the controlled copy of the file named above. The file itself is issued"),
        ("CQ1", 10, "by Document Control; compare its SHA-256 with the one printed here before use."),
        ("CQ1", 10, "Check in the document library that this is the current effective version."),
    ]
    if note:
        lines.append(("CQ1", 10, note))
    stream = b""
    y = height - 72
    for font, size, text in lines:
        stream += b"BT /%s %.1f Tf 56 %.2f Td (" % (font.encode(), size, y) + _pdf_text(text) + b") Tj ET\n"
        y -= size * 2.1
    stream += _band(24, 24, width - 48, stamp, 8)
    return _minimal_pdf([(width, height, stream)])


# ============================================================================ effective, superseded
def make_effective(session: Session, runtime, version: DocumentVersion, *, at: dt.datetime | None = None,
                   record: Record | None = None, actor=None) -> dict:
    """The version becomes effective and the previous effective one superseded, at the same moment (URS-DOC-02)."""
    at = at or utcnow()
    doc = version.document
    if version.status == DocumentVersionStatus.EFFECTIVE:
        return {"effective": True, "version": version.label, "already": True}
    if doc.status == DocumentStatus.OBSOLETE:
        return {"effective": False, "version": version.label, "reason": f"{doc.number} was made obsolete"}
    if version.status != DocumentVersionStatus.APPROVED:
        raise Conflict(f"{doc.number} v{version.label} is {status_label(version.status)}, not approved; "
                       "it cannot become effective.")
    superseded = []
    for other in doc.versions:
        if other.id != version.id and other.status == DocumentVersionStatus.EFFECTIVE:
            other.status = DocumentVersionStatus.SUPERSEDED
            other.superseded_at = at
            other.next_review_due = None
            superseded.append(other.label)
    version.status = DocumentVersionStatus.EFFECTIVE
    version.effective_at = at
    if version.effective_date is None:
        version.effective_date = midnight_utc(at)
    # Review cycles count from the planned effective date, so a late timer does not shift them.
    version.next_review_due = add_months(version.effective_date, doc.review_interval_months)
    session.flush()
    assigned = _assign_training(session, runtime, version, actor)
    audit_event(session, "document_effective", record_id=record.id if record is not None else None,
                entity="document_versions", entity_id=version.id,
                new={"document": doc.number, "version": version.label, "effective_at": at,
                     "superseded": superseded, "next_review_due": version.next_review_due,
                     "trainings_assigned": assigned})
    return {"effective": True, "version": version.label, "effective_at": at.isoformat(timespec="seconds"),
            "superseded": superseded, "next_review_due": version.next_review_due.isoformat(timespec="seconds"),
            "trainings_assigned": assigned}


def _assign_training(session: Session, runtime, version: DocumentVersion, actor) -> int:
    """URS-TRN-01: a new effective version assigns its reading to the roles that require it."""
    from . import training

    result = training.assign_for_effective_version(session, runtime, version, actor=actor)
    return len(result) if isinstance(result, (list, tuple, set)) else int(result or 0)


# ============================================================================ periodic review
def start_due_periodic_reviews(runtime) -> list[str]:
    """Start one periodic review per effective version whose review is due and has none open (URS-DOC-04).

    Called by the worker (`cellqms worker` → fire_once). Each document is its own transaction,
    so one failure does not hold up the others; the version row is locked while its review
    starts, so two workers never start two reviews of one document.
    """
    now = runtime.clock.now()
    with runtime.db.sessionmaker() as session:
        process = _released(session, REVIEW_PROCESS)
        if process is None:
            return []
        due = session.execute(
            select(DocumentVersion.id, Document.number).join(Document, Document.id == DocumentVersion.document_id)
            .where(DocumentVersion.status == DocumentVersionStatus.EFFECTIVE,
                   Document.status == DocumentStatus.ACTIVE, DocumentVersion.next_review_due <= now)
            .order_by(DocumentVersion.next_review_due)).all()
        if not due:
            return []
        busy = _open_review_numbers(session)
    lines = []
    for version_id, number in due:
        if number in busy:
            continue
        waiting = _owner_gone(runtime, version_id)
        if waiting is not None:
            lines += waiting
            continue
        try:
            with runtime.db.unit_of_work(None, reason="periodic review due") as session:
                version = _version(session, version_id, lock=True)
                if (version.status != DocumentVersionStatus.EFFECTIVE or version.next_review_due is None
                        or version.next_review_due > now or number in _open_review_numbers(session)):
                    continue
                process = _released(session, REVIEW_PROCESS)
                doc = version.document
                data = {
                    "title": f"Periodic review of {doc.number} v{version.label}: {doc.title}"[:200],
                    "document_number": doc.number, "version_id": version.id, "version_label": version.label,
                    "document_title": doc.title[:300], "owner": doc.owner.username,
                    "review_due": version.next_review_due.isoformat(timespec="seconds"),
                    "review_interval_months": doc.review_interval_months,
                }
                record = runtime.start_record_in(session, None, process, data)
                audit_event(session, "periodic_review_started", record_id=record.id, entity="document_versions",
                            entity_id=version.id, new={"document": doc.number, "version": version.label,
                                                       "review": record.number, "due": version.next_review_due})
                lines.append(f"started {record.number}: periodic review of {doc.number} v{version.label} "
                             f"for {doc.owner.username} (due {version.next_review_due:%Y-%m-%d})")
        except CellqmsError as exc:
            lines.append(f"error: periodic review of {number} not started: {exc.message}")
    return lines


def _owner_gone(runtime, version_id) -> list[str] | None:
    """None when the document's owner can do the review; else the review waits for Document
    Control to name a new owner (reassign_owner). The wait is audited once per owner, and the
    worker reports it once, not on every pass."""
    with runtime.db.sessionmaker() as session:
        version = session.get(DocumentVersion, version_id)
        doc = version.document
        if doc.owner.active:
            return None
        number, owner, doc_id = doc.number, doc.owner.username, doc.id
        noted = session.scalar(select(AuditEntry.seq).where(
            AuditEntry.action == "periodic_review_waiting", AuditEntry.entity == "documents",
            AuditEntry.entity_id == str(doc_id), AuditEntry.new["owner"].as_string() == owner).limit(1))
    if noted is not None:
        return []
    with runtime.db.unit_of_work(None, reason="periodic review due, owner deactivated") as session:
        audit_event(session, "periodic_review_waiting", entity="documents", entity_id=doc_id,
                    new={"document": number, "owner": owner})
    return [f"waiting: periodic review of {number} is due but its owner {owner} is deactivated; "
            f"Document Control must name a new owner (document page, or `cellqms documents reassign`)"]


def _released(session: Session, key: str) -> ProcessVersion | None:
    return session.scalar(select(ProcessVersion).join(ProcessDefinition).where(
        ProcessDefinition.key == key, ProcessVersion.status == VersionStatus.RELEASED))


def _open_review_numbers(session: Session) -> set[str]:
    rows = session.scalars(select(Record).join(ProcessVersion).join(ProcessDefinition).where(
        ProcessDefinition.key == REVIEW_PROCESS, Record.status == RecordStatus.OPEN))
    return {str((r.data or {}).get("document_number")) for r in rows}


def _reschedule(session: Session, version_id, record: Record) -> dict:
    """The next review of a version still effective: now + the document's interval."""
    version = session.get(DocumentVersion, int(version_id)) if str(version_id or "").isdigit() else None
    if version is None or version.status != DocumentVersionStatus.EFFECTIVE:
        # The version was superseded or withdrawn while its review was open: nothing to reschedule.
        state = status_label(version.status) if version is not None else "not in the library"
        return {"rescheduled": False, "reason": f"version {version_id} is {state}"}
    due = add_months(utcnow(), version.document.review_interval_months)
    version.next_review_due = due
    audit_event(session, "periodic_review_done", record_id=record.id, entity="document_versions",
                entity_id=version.id, new={"document": version.document.number, "version": version.label,
                                           "review": record.number, "next_review_due": due})
    return {"rescheduled": True, "next_review_due": due.isoformat(timespec="seconds")}


# ============================================================================ diagram service operations
def _change_record_of(session: Session, record: Record) -> str | None:
    """The change control that started this approval (link kind "revises"), if any."""
    return session.scalar(select(RecordLink.source_id).where(RecordLink.target_id == record.id,
                                                             RecordLink.kind == "revises").limit(1))


def _decode_inline(draft_file, where: str) -> tuple[str, bytes, str, str | None]:
    if not isinstance(draft_file, dict):
        raise ValidationFailed([{"path": where, "message": "Give the draft as {filename, content_base64}."}])
    try:
        content = base64.b64decode(str(draft_file.get("content_base64") or ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed([{"path": f"{where}.content_base64", "message": "Not valid base64."}]) from exc
    return (str(draft_file.get("filename") or ""), content, str(draft_file.get("change_summary") or ""),
            draft_file.get("version"))


def _claim(session: Session, version: DocumentVersion, doc: Document, record: Record) -> None:
    """A draft enters one approval only: a draft claimed by another open approval is refused."""
    if version.document_id != doc.id:
        raise ValidationFailed([{"path": "version_id", "message":
                                 f"Version {version.id} is not a version of {doc.number}."}])
    if version.status != DocumentVersionStatus.DRAFT:
        raise ValidationFailed([{"path": "version_id", "message":
                                 f"{doc.number} v{version.label} is {status_label(version.status)}, not a draft."}])
    if version.approval_record_id and version.approval_record_id != record.id:
        other = session.get(Record, version.approval_record_id)
        if other is not None and other.status == RecordStatus.OPEN:
            raise Conflict(f"{doc.number} v{version.label} is already in approval {other.number}.")
    version.approval_record_id = record.id
    if version.change_record_id is None:
        version.change_record_id = _change_record_of(session, record)


def _change_kind(session: Session, replaces) -> str:
    """A draft that replaces a rejected draft takes the next minor number (1.0 rejected -> 1.1)."""
    old = session.get(DocumentVersion, int(replaces)) if str(replaces or "").isdigit() else None
    return "minor" if old is not None and old.status == DocumentVersionStatus.DRAFT else "major"


def _draft_info(doc: Document, version: DocumentVersion | None, author) -> dict:
    return {
        "document_number": doc.number, "document_title": doc.title,
        "version_id": version.id if version is not None else None,
        "version_label": version.label if version is not None else None,
        "filename": version.filename if version is not None else None,
        "sha256": version.sha256 if version is not None else None,
        "author": getattr(author, "username", None) if version is not None and is_person(author) else None,
    }


@operation("open_document_approval")
def open_document_approval(ctx: StepContext) -> dict:
    """Start of a document approval: find the document (or create it: Document Control only), and take
    the draft named by ``version_id`` or given inline as ``draft_file``; no draft means the author
    prepares one (``prepare_revision``). Reads the start data of the record."""
    session, record = ctx.session, ctx.record
    data = dict(record.data or {})
    number = str(data.get("document_number") or "").strip()
    doc = session.scalar(select(Document).where(Document.number == number).with_for_update(of=Document))
    actor = person_row(session, ctx.actor)
    if doc is None and isinstance(data.get("new_document"), dict):
        if actor is None or CONTROL_ROLE not in actor.role_names:
            raise Forbidden(f"Only {CONTROL_ROLE} may create the new document {number}.", code="not_in_role")
        new = data["new_document"]
        doc = _new_document(session, number, str(new.get("title") or ""), str(new.get("doc_type") or ""),
                            str(new.get("owner") or actor.username), new.get("review_interval_months") or 24)
        audit_event(session, "document_created", record_id=record.id, entity="documents", entity_id=doc.id,
                    new={"number": doc.number, "title": doc.title, "type": doc.doc_type,
                         "owner": doc.owner.username, "approval": record.number})
    if doc is None:
        if data.get("version_id") is not None or data.get("draft_file") is not None:
            raise NotFound(f"There is no document '{number}' to approve a version of.")
        # A change control may name a document Document Control has yet to create: the author's
        # upload waits for it (prepare_revision says so), instead of refusing the change's approval.
        if not record.title:
            record.title = f"{number} (new document)"[:300]
        return {"document_number": number, "document_title": None, "version_id": None, "version_label": None,
                "filename": None, "sha256": None, "author": None}
    if doc.status == DocumentStatus.OBSOLETE:
        raise Conflict(f"{doc.number} is obsolete; it cannot get a new version.")
    version = None
    if data.get("version_id") is not None:
        version = _version(session, data["version_id"], lock=True)
    elif data.get("draft_file") is not None:
        filename, content, summary, label = _decode_inline(data["draft_file"], "draft_file")
        version = _add_version(session, doc, actor, filename, content, change_summary=summary,
                               version=parse_version(label) if label else None, limit=INLINE_DRAFT_MAX_BYTES)
    if version is not None:
        _claim(session, version, doc, record)
    if not record.title:
        record.title = f"{doc.number} {doc.title}"[:300]
    return _draft_info(doc, version, ctx.actor)


@operation("register_revision_draft")
def register_revision_draft(ctx: StepContext, document_number: str, version_id=None, draft_file=None,
                            replaces=None) -> dict:
    """After ``prepare_revision``: take the draft the author uploaded (``version_id``) or gave inline;
    a draft of this approval that it replaces becomes obsolete (archived, never deleted)."""
    session, record = ctx.session, ctx.record
    doc = _document(session, document_number, lock=True)
    actor = person_row(session, ctx.actor)
    if draft_file is not None:
        filename, content, summary, label = _decode_inline(draft_file, "draft_file")
        version = _add_version(session, doc, actor, filename, content, change_summary=summary,
                               version=parse_version(label) if label else None, limit=INLINE_DRAFT_MAX_BYTES,
                               change=_change_kind(session, replaces),
                               change_record_id=_change_record_of(session, record))
    elif version_id is not None:
        version = _version(session, version_id, lock=True)
    else:
        raise ValidationFailed([{"path": "version_id", "message": "Upload the draft (or give its version id)."}])
    _claim(session, version, doc, record)
    if replaces is not None and str(replaces) != str(version.id):
        old = session.get(DocumentVersion, int(replaces))
        if old is not None and old.approval_record_id == record.id and old.status == DocumentVersionStatus.DRAFT:
            old.status = DocumentVersionStatus.OBSOLETE
            audit_event(session, "document_version_replaced", record_id=record.id, entity="document_versions",
                        entity_id=old.id, reason=f"replaced by draft v{version.label} in {record.number}",
                        new={"document": doc.number, "replaced": old.label, "by": version.label})
    return _draft_info(doc, version, ctx.actor)


@operation("document_version_status")
def document_version_status(ctx: StepContext, version_id, status: str, effective_date=None) -> dict:
    """Move a version to `status` (in_review, approved, draft) for the approval record running this step."""
    session, record = ctx.session, ctx.record
    version = _version(session, version_id, lock=True)
    try:
        wanted = DocumentVersionStatus(status)
    except ValueError as exc:
        raise ValidationFailed([{"path": "status", "message": f"'{status}' is not a version status."}]) from exc
    allowed = _TRANSITIONS.get(wanted)
    if allowed is None or (version.status not in allowed and version.status != wanted):
        raise Conflict(f"{version.document.number} v{version.label} cannot go from "
                       f"{status_label(version.status)} to {status_label(wanted)} here.")
    if version.approval_record_id not in (None, record.id):
        raise Conflict(f"{version.document.number} v{version.label} belongs to another approval.")
    old = version.status
    version.status = wanted
    version.approval_record_id = record.id
    if version.change_record_id is None:
        version.change_record_id = _change_record_of(session, record)
    if wanted == DocumentVersionStatus.APPROVED:
        version.effective_date = midnight_utc(effective_date) if effective_date else None
    elif wanted == DocumentVersionStatus.DRAFT:
        version.effective_date = None
    audit_event(session, "document_version_status", record_id=record.id, entity="document_versions",
                entity_id=version.id, old=str(old), new={"document": version.document.number,
                                                          "version": version.label, "status": str(wanted),
                                                          "effective_date": version.effective_date})
    return {"version_id": version.id, "status": str(wanted)}


@operation("make_document_effective")
def make_document_effective(ctx: StepContext, version_id) -> dict:
    """The approved version becomes effective now; the previous effective version is superseded (URS-DOC-02)."""
    version = _version(ctx.session, version_id, lock=True)
    _document(ctx.session, version.document.number, lock=True)
    return make_effective(ctx.session, ctx.runtime, version, record=ctx.record, actor=ctx.actor)


@operation("schedule_next_review")
def schedule_next_review(ctx: StepContext, version_id) -> dict:
    """Periodic review, no change: the next review is due one interval from now (URS-DOC-04)."""
    return _reschedule(ctx.session, version_id, ctx.record)


@operation("request_document_revision")
def request_document_revision(ctx: StepContext, version_id, document_number: str, reason: str) -> dict:
    """Periodic review, revise: start a change control linked "revises" (when change control is in use),
    and schedule the next review of the version still effective meanwhile."""
    from .links import start_linked_record

    session, record = ctx.session, ctx.record
    result = {"next_review": _reschedule(session, version_id, record)}
    if _released(session, "change_control") is None:
        result.update(started=False, reason="change control is not in use here (no released change_control "
                                            "diagram); Document Control arranges the revision")
        return result
    doc = session.scalar(select(Document).where(Document.number == str(document_number)))
    title = doc.title if doc is not None else document_number
    data = {
        "title": f"Revise {document_number}: {title}"[:200],
        "description": str(reason or "")[:10000] or f"Revise {document_number}.",
        "rationale": f"Periodic review {record.number} of {document_number} concluded that it must be revised.",
        "change_type": "document",
        "affected_items": [{"kind": "document", "reference": str(document_number)[:100]}],
        "document_revision_required": True,
        "revises_document": str(document_number)[:100],
    }
    started = start_linked_record(ctx, "change_control", data, link="revises")
    result.update(started=True, **started)
    return result


# ============================================================================ bulk import of legacy documents
IMPORT_COLUMNS = ("number", "title", "type", "owner", "version", "status", "effective_date", "file")
IMPORT_STATUSES = ("draft", "effective", "superseded", "obsolete")


@dataclass
class ImportedFile:
    line: int
    number: str
    version: str
    status: str
    path: str
    size: int
    sha256: str


@dataclass
class ImportReport:
    """What a legacy import did, or every problem that stopped it (nothing imported then)."""

    problems: list[str] = field(default_factory=list)
    documents: int = 0
    versions: int = 0
    files: list[ImportedFile] = field(default_factory=list)
    verified: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def batch_sha256(self) -> str:
        """One hash over every imported file's hash, in manifest order: compare with the source's."""
        return hashlib.sha256("\n".join(f.sha256 for f in self.files).encode()).hexdigest()

    @property
    def by_status(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            out[f.status] = out.get(f.status, 0) + 1
        return out


def import_legacy(runtime, actor, folder: Path, manifest: Path) -> ImportReport:
    """Import legacy documents with their history in one transaction (URS-DOC-05).

    Every row is checked first (columns, number, owner, version, status, dates, the file inside
    FOLDER, its type and size, duplicates in the manifest and in the library, one effective
    version per document); any problem stops the whole batch, listing every problem with its CSV
    line. Otherwise everything is written in one unit of work audited with the reason "legacy
    migration", then each file is read back from the database and its SHA-256 compared.
    """
    folder = Path(folder).resolve()
    report = ImportReport()
    try:
        text = Path(manifest).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        report.problems.append(f"{manifest}: cannot be read ({exc})")
        return report
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in IMPORT_COLUMNS if c not in header]
    if missing:
        report.problems.append(f"line 1: missing column(s) {', '.join(missing)} "
                               f"(expected {', '.join(IMPORT_COLUMNS)})")
        return report
    rows = []
    for line, raw in enumerate(reader, start=2):
        row = {str(k).strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue
        rows.append((line, row))
    if not rows:
        report.problems.append(f"{manifest}: no rows to import")
        return report
    with runtime.db.sessionmaker() as session:
        planned = _check_import(session, folder, rows, report)
    if report.problems:
        return report
    with runtime.db.unit_of_work(actor, reason="legacy migration") as session:
        ids = _write_import(session, planned, report)
    with runtime.db.sessionmaker() as session:
        for (version_id, expected) in ids:
            stored = session.get(DocumentVersion, version_id)
            if hashlib.sha256(stored.content).hexdigest() == expected == stored.sha256:
                report.verified += 1
    return report


@dataclass
class _Planned:
    line: int
    number: str
    title: str
    doc_type: str
    owner: str
    interval: int
    major: int
    minor: int
    status: str
    effective_date: dt.datetime | None
    filename: str
    relpath: str
    content: bytes
    content_type: str


def _check_import(session: Session, folder: Path, rows: list, report: ImportReport) -> list[_Planned]:
    planned: list[_Planned] = []
    seen_versions: dict[tuple[str, int, int], int] = {}
    documents: dict[str, tuple[int, str, str, str]] = {}
    today = utcnow().date()
    for line, row in rows:
        problems = []

        def bad(message: str, _line=line, _problems=problems) -> None:
            _problems.append(f"line {_line}: {message}")

        number = row["number"]
        if not NUMBER_RE.match(number):
            bad(f"number '{number}' is not a document number (capital letters, digits, . - _)")
        elif session.scalar(select(Document.id).where(Document.number == number)) is not None:
            bad(f"duplicate: {number} is already in the library")
        if not row["title"] or len(row["title"]) > 300:
            bad("title is empty or longer than 300 characters")
        if not row["type"] or len(row["type"]) > 64:
            bad("type is empty or longer than 64 characters")
        owner = session.scalar(select(User).where(User.username == row["owner"])) if row["owner"] else None
        if owner is None or not owner.active:
            bad(f"unknown owner '{row['owner']}' (not an active user)")
        interval = 24
        if row.get("review_interval_months"):
            try:
                interval = int(row["review_interval_months"])
                if not 1 <= interval <= 120:
                    raise ValueError
            except ValueError:
                bad(f"review_interval_months '{row['review_interval_months']}' is not 1 to 120")
        major = minor = 0
        match = VERSION_RE.match(row["version"])
        if not match:
            bad(f"version '{row['version']}' is not like 1.0")
        else:
            major, minor = int(match.group(1)), int(match.group(2))
            key = (number, major, minor)
            if key in seen_versions:
                bad(f"duplicate: {number} v{row['version']} is also on line {seen_versions[key]}")
            else:
                seen_versions[key] = line
        status = row["status"].lower()
        if status not in IMPORT_STATUSES:
            bad(f"bad status '{row['status']}' (use {', '.join(IMPORT_STATUSES)})")
        effective = None
        if row["effective_date"]:
            try:
                effective = midnight_utc(dt.date.fromisoformat(row["effective_date"]))
            except ValueError:
                bad(f"effective_date '{row['effective_date']}' is not a date YYYY-MM-DD")
        if status in ("effective", "superseded") and not row["effective_date"]:
            bad(f"a {status} version needs its effective_date")
        if status == "effective" and effective is not None and effective.date() > today:
            bad("effective_date lies in the future; import the version as draft and approve it instead")
        content, content_type, filename = b"", "", ""
        relpath = row["file"]
        path = (folder / relpath).resolve() if relpath else None
        if not relpath:
            bad("file is empty")
        elif folder not in path.parents:
            bad(f"file '{relpath}' lies outside the import folder")
        elif not path.is_file():
            bad(f"missing file '{relpath}'")
        else:
            content = path.read_bytes()
            try:
                filename, content_type = _check_upload(path.name, content)
            except CellqmsError as exc:
                bad(f"file '{relpath}': {exc.message}")
        if number in documents:
            first_line, title, doc_type, owner_name = documents[number]
            if (title, doc_type, owner_name) != (row["title"], row["type"], row["owner"]):
                bad(f"title, type and owner of {number} differ from line {first_line}")
        else:
            documents[number] = (line, row["title"], row["type"], row["owner"])
        report.problems += problems
        if not problems:
            planned.append(_Planned(line, number, row["title"], row["type"], row["owner"], interval, major, minor,
                                    status, effective, filename, relpath, content, content_type))
    by_doc: dict[str, list[_Planned]] = {}
    for p in planned:
        by_doc.setdefault(p.number, []).append(p)
    for number, versions in by_doc.items():
        effective = [p for p in versions if p.status == "effective"]
        if len(effective) > 1:
            report.problems.append(f"lines {', '.join(str(p.line) for p in effective)}: {number} has more than "
                                   "one effective version")
        elif effective:
            newer = [p for p in versions if p.status == "superseded" and (p.major, p.minor) >
                     (effective[0].major, effective[0].minor)]
            for p in newer:
                report.problems.append(f"line {p.line}: {number} v{p.major}.{p.minor} is superseded but newer "
                                       f"than the effective v{effective[0].major}.{effective[0].minor}")
    return planned


def _write_import(session: Session, planned: list[_Planned], report: ImportReport) -> list[tuple[int, str]]:
    docs: dict[str, Document] = {}
    written = []
    for p in planned:
        doc = docs.get(p.number)
        if doc is None:
            doc = docs[p.number] = _new_document(session, p.number, p.title, p.doc_type, p.owner, p.interval)
            audit_event(session, "document_imported", entity="documents", entity_id=doc.id,
                        new={"number": doc.number, "title": doc.title, "type": doc.doc_type, "owner": p.owner})
        status = DocumentVersionStatus(p.status)
        version = _add_version(session, doc, None, p.filename, p.content, version=(p.major, p.minor),
                               status=status, change_summary=f"Legacy migration from {p.relpath}")
        version.effective_date = p.effective_date
        if status in (DocumentVersionStatus.EFFECTIVE, DocumentVersionStatus.SUPERSEDED):
            version.effective_at = p.effective_date
        if status == DocumentVersionStatus.EFFECTIVE:
            version.next_review_due = add_months(p.effective_date, doc.review_interval_months)
        digest = hashlib.sha256(p.content).hexdigest()
        written.append((version, digest))
        report.files.append(ImportedFile(p.line, p.number, f"{p.major}.{p.minor}", p.status, p.relpath,
                                         len(p.content), digest))
    # A superseded version stopped being effective when the next effective version of its document began.
    for doc in docs.values():
        session.flush()
        session.expire(doc, ["versions"])
        dated = sorted((v for v in doc.versions if v.effective_date is not None
                        and v.status in (DocumentVersionStatus.EFFECTIVE, DocumentVersionStatus.SUPERSEDED)),
                       key=lambda v: (v.major, v.minor))
        for older, newer in itertools.pairwise(dated):
            if older.status == DocumentVersionStatus.SUPERSEDED:
                older.superseded_at = newer.effective_date
    session.flush()
    report.documents = len(docs)
    report.versions = len(written)
    return [(v.id, digest) for v, digest in written]
