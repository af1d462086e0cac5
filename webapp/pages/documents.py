"""The document library: list and search, a document's versions, controlled copies, new documents,
draft uploads, obsolescence, and the author's upload for a document approval (URS-DOC-01..04).

Thin like every page: parse the request, call one engine.documents function, show the
result. Who sees what (URS-DOC-03) is the engine's answer (`library`, `get_document`).
"""
from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from engine import attachments as attach
from engine import documents as library
from engine.exceptions import Conflict, Forbidden, NotFound, ValidationFailed
from models import Record, RecordStatus, Task, TaskStatus

from .common import call, db, me, rt
from .errors import error_page

bp = Blueprint("documents", __name__, url_prefix="/documents")


def _is_control(user) -> bool:
    return library.CONTROL_ROLE in user.role_names


@bp.app_template_global()
def document_status_label(status) -> str:
    return library.status_label(status)


@bp.route("")
@login_required
def index():
    """The library: documents the user may see, searchable by number or title, type and status."""
    session = db()
    user = me()
    q = (request.args.get("q") or "").strip()
    doc_type = (request.args.get("type") or "").strip()
    status = (request.args.get("status") or "").strip()
    rows = library.library(session, rt(), user, q=q or None, doc_type=doc_type or None, status=status or None)
    types = sorted(set(library.DOCUMENT_TYPES) | {r.document.doc_type for r in rows})
    g.page_title = "Documents"
    return render_template("documents/index.html", rows=rows, q=q, doc_type=doc_type, status=status, types=types,
                           everything=library.sees_everything(user), is_control=_is_control(user))


def _approval_tasks(session, number: str, user) -> list[tuple[Task, Record]]:
    """Open 'prepare the revision' tasks of this document's approvals that the user may complete."""
    from engine.permissions import why_not

    rows = session.execute(select(Task, Record).join(Record, Record.id == Task.record_id).where(
        Task.bpmn_id == "prepare_revision", Task.status == TaskStatus.OPEN, Record.status == RecordStatus.OPEN)).all()
    return [(t, r) for t, r in rows if (r.data or {}).get("document_number") == number
            and why_not(session, user, t) is None]


@bp.route("/<number>")
@login_required
def show(number: str):
    """A document: its versions with status, hash, dates and linked records; downloads; actions."""
    session = db()
    user = me()
    row = library.get_document(session, rt(), user, number)
    records = {}
    for v in row.versions:
        for rid in (v.approval_record_id, v.change_record_id):
            if rid and rid not in records:
                records[rid] = session.get(Record, rid)
    # A record is linked only for those who may open it; the others read its number.
    openable = {rid for rid, r in records.items() if r is not None and rt().may_see_record(session, user, r)}
    g.page_title = f"{row.document.number} {row.document.title}"
    is_control = _is_control(user)
    return render_template(
        "documents/show.html", row=row, doc=row.document, records=records, openable=openable, is_control=is_control,
        everything=library.sees_everything(user), may_start=("Author" in user.role_names),
        approval_tasks=_approval_tasks(session, row.document.number, user),
        audit=library.document_audit(session, row.document) if library.sees_everything(user) else [],
        accept=",".join(attach.ALLOWED_EXTENSIONS), allowed_types=attach.allowed_types_sentence(),
        max_upload=attach.max_bytes())


def _label(label: str) -> str:
    try:
        library.parse_version(label)
    except ValidationFailed:
        abort(404)
    return label


@bp.route("/<number>/v<label>/copy.pdf")
@login_required
def controlled_copy(number: str, label: str):
    """The controlled copy: a stamped PDF, or a cover page for other file types (issue audited)."""
    copy = call(library.controlled_copy, rt(), current_user, number, _label(label))
    return Response(copy.content, content_type="application/pdf", headers={
        "Content-Disposition": f"attachment; filename=\"{copy.filename}\"; filename*=UTF-8''{quote(copy.filename)}",
        "X-Controlled-Copy": copy.stamp.encode("ascii", "replace").decode(),
        "Content-Security-Policy": "default-src 'none'; sandbox"})


@bp.route("/<number>/v<label>/original")
@login_required
def original(number: str, label: str):
    """The file exactly as stored (its SHA-256 checked first): Document Control only."""
    version = library.original_file(rt(), current_user, number, _label(label))
    ascii_name = version.filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return Response(version.content, content_type=version.content_type, headers={
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(version.filename)}",
        "X-Content-SHA256": version.sha256,
        "Content-Security-Policy": "default-src 'none'; sandbox"})


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new():
    """Create a document (Document Control)."""
    user = me()
    if not _is_control(user):
        return error_page(403, f"Creating a document needs the role '{library.CONTROL_ROLE}'.", code="not_in_role")
    form = {k: (request.form.get(k) or "").strip() for k in ("number", "title", "type", "owner",
                                                           "review_interval_months")}
    form["review_interval_months"] = form["review_interval_months"] or "24"
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        try:
            doc = call(library.create_document, rt(), current_user, form["number"], form["title"], form["type"],
                       form["owner"], form["review_interval_months"])
        except ValidationFailed as exc:
            errors, status = {e["path"]: e["message"] for e in exc.errors}, 400
        except Conflict as exc:
            errors, status = {"number": exc.message}, 409
        else:
            flash(f"Document {doc.number} created. Upload its first draft below.", "success")
            return redirect(url_for("documents.show", number=doc.number))
    g.page_title = "New document"
    return render_template("documents/new.html", form=form, errors=errors, types=library.DOCUMENT_TYPES), status


def _file():
    file = request.files.get("file")
    if file is None or not file.filename:
        return None, None
    return file.filename, file.read()  # bounded by MAX_CONTENT_LENGTH; the size rule is the engine's


@bp.route("/<number>/versions", methods=["POST"])
@login_required
def upload(number: str):
    """Upload a new draft version (Document Control)."""
    filename, content = _file()
    if filename is None:
        flash("Choose a file to upload.", "error")
        return redirect(url_for("documents.show", number=number))
    change = "minor" if request.form.get("change") == "minor" else "major"
    try:
        version = call(library.add_draft_version, rt(), current_user, number, filename, content, change=change,
                       change_summary=request.form.get("change_summary") or "")
    except (attach.AttachmentTooLarge, attach.AttachmentTypeRefused) as exc:
        return error_page(exc.status, exc.message + " Nothing was stored.", code=exc.code)
    except ValidationFailed as exc:
        flash(" ".join(e["message"] for e in exc.errors), "error")
        return redirect(url_for("documents.show", number=number))
    flash(f"Draft v{version.label} uploaded ({attach.human_size(version.size)}, SHA-256 {version.sha256[:12]}…).",
          "success")
    return redirect(url_for("documents.show", number=number))


@bp.route("/<number>/v<label>/approval", methods=["POST"])
@login_required
def start_approval(number: str, label: str):
    """Start the document approval of a draft (the Author role, like the diagram's start)."""
    session = db()
    row = library.get_document(session, rt(), me(), number)
    version = next((v for v in row.versions if v.label == _label(label)), None)
    if version is None:
        raise NotFound(f"{number} has no version {label} you may see.")
    record = call(rt().start_record, current_user, library.APPROVAL_PROCESS,
                  {"document_number": number, "version_id": version.id})
    flash(f"{record.number} started: the approval of {number} v{label}.", "success")
    return redirect(url_for("records.show", number=record.number))


@bp.route("/<number>/obsolete", methods=["POST"])
@login_required
def obsolete(number: str):
    """Make a document obsolete with a reason (Document Control); it is archived, never deleted."""
    reason = (request.form.get("reason") or "").strip()
    try:
        call(library.obsolete_document, rt(), current_user, number, reason)
    except ValidationFailed as exc:
        flash(" ".join(e["message"] for e in exc.errors), "error")
        return redirect(url_for("documents.show", number=number) + "#obsolete")
    flash(f"{number} is obsolete and archived; the reason is in the audit trail.", "success")
    return redirect(url_for("documents.show", number=number))


@bp.route("/<number>/owner", methods=["POST"])
@login_required
def change_owner(number: str):
    """Name a new owner with a reason (Document Control); an open periodic review moves with it."""
    try:
        doc = call(library.reassign_owner, rt(), current_user, number, request.form.get("owner") or "",
                   request.form.get("reason") or "")
    except ValidationFailed as exc:
        flash(" ".join(e["message"] for e in exc.errors), "error")
        return redirect(url_for("documents.show", number=number) + "#owner")
    flash(f"{doc.number} is now owned by {doc.owner.full_name} ({doc.owner.username}); "
          "the reason is in the audit trail.", "success")
    return redirect(url_for("documents.show", number=number))


@bp.route("/tasks/<task_id>/draft", methods=["GET", "POST"])
@login_required
def revision_draft(task_id: str):
    """The author's page for 'prepare the revision': upload the new file; it is stored as a draft
    and the task is completed with its version id (one click for the author)."""
    session = db()
    task = rt().get_task(session, current_user, task_id)
    if task.bpmn_id != "prepare_revision":
        raise NotFound(f"Task {task_id} is not a 'prepare the revision' task.")
    number = (task.record.data or {}).get("document_number")
    if task.status != TaskStatus.OPEN:
        return redirect(url_for("tasks.show", task_id=task_id))
    from engine.permissions import why_not

    refusal = why_not(session, me(), task)
    if refusal is not None:
        return error_page(403, refusal.message, record=task.record, code=refusal.code)
    if request.method == "POST":
        filename, content = _file()
        if filename is None:
            flash("Choose the file of the new version.", "error")
            return redirect(url_for("documents.revision_draft", task_id=task_id))
        change = request.form.get("change") if request.form.get("change") in ("major", "minor") else "auto"
        record_number = task.record.number
        try:
            version = call(library.add_revision_draft, rt(), current_user, task_id, filename, content,
                           change=change, change_summary=request.form.get("change_summary") or "")
            call(rt().complete_task, task_id, current_user, {"version_id": version.id})
        except (attach.AttachmentTooLarge, attach.AttachmentTypeRefused) as exc:
            return error_page(exc.status, exc.message + " Nothing was stored.", code=exc.code)
        except ValidationFailed as exc:
            flash(" ".join(e["message"] for e in exc.errors), "error")
            return redirect(url_for("documents.revision_draft", task_id=task_id))
        except (Forbidden, Conflict, NotFound) as exc:
            return error_page(exc.status, exc.message + (" Ask Document Control to create it first."
                                                         if isinstance(exc, NotFound) else ""), code=exc.code)
        flash(f"Draft v{version.label} of {number} uploaded (SHA-256 {version.sha256[:12]}…); "
              "submit it for review next.", "success")
        return redirect(url_for("records.show", number=record_number))
    g.page_title = f"Upload the draft · {task.record.number}"
    return render_template("documents/revision_draft.html", task=task, record=task.record, number=number,
                           accept=",".join(attach.ALLOWED_EXTENSIONS),
                           allowed_types=attach.allowed_types_sentence(), max_upload=attach.max_bytes())
