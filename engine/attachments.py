"""Attachments: evidence files on a record or on one of its open tasks.

Every door (web page, API, CLI) calls these functions; the rules live here:
- only some file types are accepted, recognised by their name *and* their first bytes
  (a renamed executable is refused), and the content type stored is ours, never the
  browser's;
- a size limit (``CELLQMS_MAX_ATTACHMENT_BYTES``, default 10 MiB);
- the SHA-256 is taken at upload and checked again at every download (ALCOA+: original,
  accurate); the row and its bytes are never changed or deleted (URS-AUD-04);
- who may attach: to a task, the person who may complete it; to a record, the people
  who work on it (its creator, a role of its process, QA); only while the record is open.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import unicodedata
import zipfile
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Attachment, Record, RecordStatus, Task, User, audit_event

from .exceptions import CellqmsError, Forbidden, NotFound, ValidationFailed
from .permissions import GLOBAL_READER_ROLES, why_not

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# Roles that may add evidence to any record they can see; Auditor and Admin only read.
ATTACHING_ROLES = frozenset({"QA", "QA Head"})
_ZIP_MAGIC = b"PK\x03\x04"


class AttachmentTooLarge(CellqmsError):
    status = 413
    code = "too_large"


class AttachmentTypeRefused(CellqmsError):
    status = 415
    code = "unsupported_type"


class AttachmentCorrupted(CellqmsError):
    """The stored bytes no longer match the SHA-256 taken at upload (tampering or storage fault)."""

    status = 500
    code = "integrity_error"


@dataclass(frozen=True)
class FileType:
    extensions: tuple[str, ...]
    content_type: str
    label: str


FILE_TYPES = (
    FileType((".pdf",), "application/pdf", "PDF"),
    FileType((".png",), "image/png", "PNG image"),
    FileType((".jpg", ".jpeg"), "image/jpeg", "JPEG image"),
    FileType((".txt",), "text/plain; charset=utf-8", "text"),
    FileType((".csv",), "text/csv; charset=utf-8", "CSV"),
    FileType((".xlsx",), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "Excel workbook"),
    FileType((".docx",), "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "Word document"),
)
ALLOWED_EXTENSIONS = tuple(e for t in FILE_TYPES for e in t.extensions)


def max_bytes() -> int:
    """The upload limit in bytes (environment CELLQMS_MAX_ATTACHMENT_BYTES)."""
    return int(os.environ.get("CELLQMS_MAX_ATTACHMENT_BYTES") or DEFAULT_MAX_BYTES)


def human_size(n: int) -> str:
    """1536 -> '1.5 kB': sizes as a person reads them."""
    size = float(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"


def allowed_types_sentence() -> str:
    return ", ".join(e.lstrip(".").upper() for t in FILE_TYPES for e in t.extensions[:1])


def safe_filename(name: str) -> str:
    """The file's own name without any folder part, control characters or leading dots."""
    name = unicodedata.normalize("NFC", str(name or ""))
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().lstrip(".")
    if len(name) > 255:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 250 - len(ext)] + dot + ext) if dot else name[:255]
    return name


def check_file(filename: str, data: bytes, limit: int | None = None) -> str:
    """The content type to store for this file, or an exception saying why it is refused."""
    limit = limit or max_bytes()
    if len(data) > limit:
        raise AttachmentTooLarge(f"The file is {human_size(len(data))}; the limit is {human_size(limit)}.")
    if not data:
        raise ValidationFailed([{"path": "file", "message": "The file is empty."}])
    lower = filename.lower()
    ftype = next((t for t in FILE_TYPES if lower.endswith(t.extensions)), None)
    if ftype is None:
        raise AttachmentTypeRefused(
            f"Files of this type are not accepted. Allowed: {allowed_types_sentence()}.")
    if not _content_matches(ftype, data):
        raise AttachmentTypeRefused(
            f"The file's content is not a {ftype.label}, although its name ends in "
            f"{lower[lower.rfind('.'):]}; it was not stored.")
    return ftype.content_type


def _content_matches(ftype: FileType, data: bytes) -> bool:
    ext = ftype.extensions[0]
    if ext == ".pdf":
        return data.startswith(b"%PDF-")
    if ext == ".png":
        return data.startswith(b"\x89PNG\r\n\x1a\n")
    if ext == ".jpg":
        return data.startswith(b"\xff\xd8\xff")
    if ext in (".txt", ".csv"):
        return b"\x00" not in data[:65536]
    if ext in (".xlsx", ".docx"):
        if not data.startswith(_ZIP_MAGIC):
            return False
        try:
            names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        except zipfile.BadZipFile:
            return False
        folder = "xl/" if ext == ".xlsx" else "word/"
        return "[Content_Types].xml" in names and any(n.startswith(folder) for n in names)
    return False


def may_attach(runtime, session: Session, user: User, record: Record, task: Task | None = None):
    """None if the user may attach a file here, else a Refusal-like (code, message) Forbidden error."""
    user = session.get(User, user.id)
    if record.status != RecordStatus.OPEN:
        return Forbidden(f"Record {record.number} is {record.status.value}; files can no longer be attached.",
                         code="record_not_open")
    if task is not None:
        refusal = why_not(session, user, task)
        if refusal is not None:
            return Forbidden(f"You cannot attach files to this task: {refusal.message}", code=refusal.code)
        return None
    process_roles = runtime.spec_info(record.process_version).roles
    roles = user.role_names
    if record.created_by_id == user.id or roles & (process_roles | ATTACHING_ROLES):
        return None
    if roles & GLOBAL_READER_ROLES:
        return Forbidden("Your roles let you read this record but not add files to it.", code="not_in_role")
    return Forbidden("You do not work on this record.", code="not_in_role")


def add_attachment(runtime, user: User, record_ref: str, filename: str, data: bytes,
                   task_id: str | None = None) -> Attachment:
    """Check and store one file with its SHA-256, audited, in one unit of work."""
    name = safe_filename(filename)
    if not name:
        raise ValidationFailed([{"path": "file", "message": "Choose a file to attach."}])
    content_type = check_file(name, data)
    digest = hashlib.sha256(data).hexdigest()
    with runtime.db.unit_of_work(user) as session:
        record = runtime.get_record(session, user, record_ref)
        task = None
        if task_id:
            task = session.get(Task, str(task_id))
            if task is None or task.record_id != record.id:
                raise NotFound(f"Record {record.number} has no task '{task_id}'.")
        refusal = may_attach(runtime, session, user, record, task)
        if refusal is not None:
            raise refusal
        attachment = Attachment(record_id=record.id, task_id=task.id if task else None, filename=name,
                                content_type=content_type, size=len(data), sha256=digest, content=data,
                                uploaded_by_id=user.id)
        session.add(attachment)
        session.flush()
        audit_event(session, "file_attached", record_id=record.id, entity="attachments", entity_id=attachment.id,
                    field=task.bpmn_id if task else None,
                    new={"filename": name, "size": len(data), "sha256": digest})
        _ = attachment.uploaded_by
    return attachment


def record_attachments(session: Session, record: Record) -> list[Attachment]:
    """The record's attachments (task attachments included), oldest first, without their bytes."""
    return list(session.scalars(select(Attachment).where(Attachment.record_id == record.id)
                                .order_by(Attachment.uploaded_at, Attachment.id)))


def open_attachment(runtime, session: Session, user: User, record_ref: str, attachment_id: int) -> Attachment:
    """The attachment with its bytes, after checking the user may see the record and the bytes are intact."""
    record = runtime.get_record(session, user, record_ref)
    try:
        attachment = session.get(Attachment, int(attachment_id))
    except (TypeError, ValueError):
        attachment = None
    if attachment is None or attachment.record_id != record.id:
        raise NotFound(f"Record {record.number} has no attachment '{attachment_id}'.")
    if hashlib.sha256(attachment.content).hexdigest() != attachment.sha256:
        raise AttachmentCorrupted(
            f"The stored file '{attachment.filename}' no longer matches its SHA-256 taken at upload; "
            "it is not served. Tell QA and the system administrator.")
    return attachment
