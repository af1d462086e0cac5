"""Records: start one, list and search them, and read a record's whole story on one page.

The record page shows the data step by step, the tasks with who and when, the signatures
with their manifestation and validity (URS-SIG-02, -03), the audit trail with old and new
values and reasons (URS-AUD-03), links (URS-PLT-07), attachments, and the diagram with the
completed and open tasks marked.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from urllib.parse import quote
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from engine import attachments as attach
from engine import corrections
from engine.exceptions import Conflict, ValidationFailed
from models import RecordStatus, TaskStatus
from webapp.forms_render import initial_raw, parse_form, raw_from_data, render_data

from . import queries
from .common import call, db, is_htmx, me, rt, user_tz
from .errors import error_page

bp = Blueprint("records", __name__)

PER_PAGE = 25


# ----------------------------------------------------------------------------- start

def _startable(session, user):
    """Released processes a person may start by hand, and whether this user may start each
    (the start lane's role). Processes the system starts (manualStart=false) are not listed."""
    out = []
    for version in rt().released_versions(session):
        info = rt().spec_info(version)
        if info.manual_start:
            out.append((version, info.start_lane, info.start_lane is None or info.start_lane in user.role_names))
    return out


@bp.route("/start")
@login_required
def start_list():
    """The released processes the user may start."""
    session = db()
    choices = [c for c in _startable(session, me()) if c[2]]
    g.page_title = "Start a record"
    return render_template("records/start_list.html", choices=choices)


def _start_form(key: str):
    """The released version and its start form, once the runtime agrees this user may start it."""
    version = rt().released_version(db(), key)
    rt().check_may_start(me(), version)
    props = rt().spec_info(version).start_properties
    form = props.get("formJsonSchemaFilename")
    schema = rt().forms.schema(form) if form else {"type": "object", "properties": {}}
    ui = rt().forms.ui_schema(props.get("formUiSchemaFilename")) if form else {}
    return version, schema, ui


@bp.route("/start/<key>", methods=["GET", "POST"])
@login_required
def start(key: str):
    """The start form of a process; on success the new record's page."""
    version, schema, ui = _start_form(key)
    g.page_title = f"Raise: {version.definition.name}"
    raw, errors, status = initial_raw(schema), [], 200
    if request.method == "POST":
        parsed = parse_form(schema, request.form, user_tz())
        raw = parsed.raw
        if not (parsed.action or "").startswith(("add:", "remove:")):
            try:
                record = call(rt().start_record, current_user, key, parsed.data)
            except ValidationFailed as exc:
                errors, status = exc.errors, 400
                version, schema, ui = _start_form(key)
            else:
                flash(f"{record.number} was raised. It is now with the next step of the process.", "success")
                return redirect(url_for("records.show", number=record.number))
    return render_template("records/start.html", version=version, schema=schema, ui=ui, raw=raw,
                           errors=errors, tz=user_tz()), status


# ----------------------------------------------------------------------------- list and search

def _parse_date(value: str | None, end: bool = False) -> dt.datetime | None:
    """A YYYY-MM-DD from a search form as the start (or the end) of that day in the user's zone, in UTC."""
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return None
    if end:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(user_tz())).astimezone(dt.timezone.utc)


@bp.route("/records")
@login_required
def index():
    """Records the user may see: by number, text, process, status, date raised and person (URS-REP-02)."""
    session = db()
    args = request.args
    f = {k: (args.get(k) or "").strip() for k in ("number", "q", "process", "status", "from", "to", "person")}
    try:
        page = max(1, int(args.get("page") or 1))
    except ValueError:
        page = 1
    status = f["status"] if f["status"] in {s.value for s in RecordStatus} else None
    since, until = _parse_date(f["from"]), _parse_date(f["to"], end=True)
    text = f["q"] or None
    rows, total = rt().search_records(session, current_user, process=f["process"] or None, status=status,
                                      q=text, page=page, per_page=PER_PAGE, number=f["number"] or None,
                                      created_from=since, created_to=until, person=f["person"] or None)
    open_tasks = queries.open_tasks_of(session, [r.id for r in rows])
    pages = max(1, -(-total // PER_PAGE))
    context = dict(rows=rows, total=total, page=page, pages=pages, f=f, open_tasks=open_tasks,
                   processes=queries.process_choices(session),
                   statuses=[s.value for s in RecordStatus], query_args={k: v for k, v in f.items() if v})
    g.page_title = "Records"
    if is_htmx():
        return render_template("records/_results.html", **context)
    return render_template("records/index.html", **context)


# ----------------------------------------------------------------------------- record page

def record_context(session, record, current_task=None) -> dict:
    """Everything the record page and the task page show about a record."""
    runtime = rt()
    tasks = runtime.record_tasks(session, record)
    info = runtime.spec_info(record.process_version)
    start_form = info.start_properties.get("formJsonSchemaFilename")
    sections = []
    shown_keys: set[str] = set()
    tz = user_tz()
    if start_form:
        schema = runtime.forms.schema(start_form)
        ui = runtime.forms.ui_schema(info.start_properties.get("formUiSchemaFilename"))
        keys = list((schema.get("properties") or {}).keys())
        shown_keys |= set(keys)
        data = {k: record.data[k] for k in keys if k in (record.data or {})}
        sections.append({"key": corrections.START_STEP, "title": "Raised", "who": record.created_by.full_name,
                         "when": record.created_at, "html": render_data(schema, ui, data, tz=tz)})
    for task in tasks:
        if task.status != TaskStatus.COMPLETED:
            continue
        if current_task is not None and task.id == current_task.id:
            shown_keys |= set(task.submitted_data or {})  # shown in the task's own panel
            continue
        schema = runtime.forms.schema(task.form) if task.form else {}
        ui = runtime.forms.ui_schema(task.ui_form) if task.form else {}
        shown_keys |= set(task.submitted_data or {})
        sections.append({"key": task.id, "title": task.name, "who": task.completed_by.full_name if
                         task.completed_by else "", "when": task.completed_at,
                         "item": render_data({}, {}, task.item, tz=tz) if task.item else None,
                         "html": render_data(schema, ui, task.submitted_data or {}, tz=tz)})
    other = {k: v for k, v in (record.data or {}).items() if k not in shown_keys}
    return {
        "tasks": tasks,
        "sections": sections,
        "other_data": render_data({}, {}, other, tz=tz) if other else None,
        "attachments": attach.record_attachments(session, record),
        "links": runtime.links(session, record),
        "max_upload": attach.max_bytes(),
        "allowed_types": attach.allowed_types_sentence(),
        "accept": ",".join(attach.ALLOWED_EXTENSIONS),
    }


def _audit_filter() -> queries.AuditFilter:
    a = request.args
    return queries.AuditFilter(action=(a.get("action") or "").strip(), user=(a.get("user") or "").strip(),
                               field=(a.get("field") or "").strip(), since=_parse_date(a.get("since")),
                               until=_parse_date(a.get("until"), end=True))


@bp.route("/records/<number>")
@login_required
def show(number: str):
    """The record's whole story."""
    session = db()
    record = rt().get_record(session, current_user, number)
    context = record_context(session, record)
    user = me()
    signatures = rt().signatures(session, record)
    flt = _audit_filter()
    correctable = corrections.correctable_steps(rt(), session, user, record, context["tasks"])
    completed_ids = sorted({t.bpmn_id for t in context["tasks"] if t.status == TaskStatus.COMPLETED})
    open_ids = sorted({t.bpmn_id for t in context["tasks"] if t.status == TaskStatus.OPEN})
    g.page_title = f"{record.number} {record.title}"
    return render_template(
        "records/show.html", record=record, signatures=signatures, audit=queries.record_audit(session, record, flt),
        audit_actions=queries.record_audit_actions(session, record), flt=request.args, correctable=correctable,
        completed_ids=completed_ids, open_ids=open_ids,
        may_attach_here=attach.may_attach(rt(), session, user, record) is None, **context)


@bp.route("/records/<number>/audit")
@login_required
def audit(number: str):
    """The record's audit trail, filtered (the htmx partial of the record page)."""
    session = db()
    record = rt().get_record(session, current_user, number)
    entries = queries.record_audit(session, record, _audit_filter())
    if not is_htmx():
        return redirect(url_for("records.show", number=record.number, **request.args) + "#audit")
    return render_template("records/_audit.html", record=record, audit=entries,
                           audit_actions=queries.record_audit_actions(session, record), flt=request.args)


@bp.route("/records/<number>/audit.csv")
@login_required
def audit_csv(number: str):
    """The record's audit trail as CSV (URS-AUD-03: export)."""
    session = db()
    record = rt().get_record(session, current_user, number)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["seq", "at_utc", "user", "action", "entity", "field", "old", "new", "reason", "hash"])
    from .common import compact_json

    for e in queries.record_audit(session, record, _audit_filter()):
        writer.writerow([e.seq, e.at.isoformat(), e.username or "", e.action, e.entity or "", e.field or "",
                         _csv_safe(compact_json(e.old)), _csv_safe(compact_json(e.new)), _csv_safe(e.reason or ""),
                         e.hash])
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=audit-{record.number}.csv"})


def _csv_safe(text: str) -> str:
    """Neutralise spreadsheet formulas in exported text (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@bp.route("/records/<number>/diagram.xml")
@login_required
def diagram(number: str):
    """The BPMN XML of the diagram version this record runs on (drawn by bpmn-js on the record page)."""
    session = db()
    record = rt().get_record(session, current_user, number)
    return Response(record.process_version.bpmn, mimetype="application/xml",
                    headers={"Content-Disposition": "inline"})


# ----------------------------------------------------------------------------- attachments

@bp.route("/records/<number>/attachments", methods=["POST"])
@login_required
def upload(number: str):
    """Attach a file to the record, or to one of its tasks (form field task_id)."""
    file = request.files.get("file")
    task_id = request.form.get("task_id") or None
    back = request.form.get("back") or ""
    target = url_for("tasks.show", task_id=task_id) if (task_id and back == "task") else \
        url_for("records.show", number=number) + "#attachments"
    if file is None or not file.filename:
        flash("Choose a file to attach.", "error")
        return redirect(target)
    data = file.read()  # bounded by MAX_CONTENT_LENGTH; the size rule itself is the engine's
    try:
        attachment = call(attach.add_attachment, rt(), current_user, number, file.filename, data, task_id=task_id)
    except (attach.AttachmentTooLarge, attach.AttachmentTypeRefused) as exc:
        return error_page(exc.status, exc.message + " Nothing was stored.", code=exc.code)
    except ValidationFailed as exc:
        flash(" ".join(e["message"] for e in exc.errors), "error")
        return redirect(target)
    flash(f"Attached {attachment.filename} ({attach.human_size(attachment.size)}, SHA-256 "
          f"{attachment.sha256[:12]}…).", "success")
    return redirect(target)


@bp.route("/records/<number>/attachments/<int:attachment_id>")
@login_required
def download(number: str, attachment_id: int):
    """The file exactly as uploaded (its SHA-256 is checked first), always as a download."""
    session = db()
    a = attach.open_attachment(rt(), session, current_user, number, attachment_id)
    ascii_name = a.filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return Response(a.content, content_type=a.content_type, headers={
                        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; "
                                               f"filename*=UTF-8''{quote(a.filename)}",
                        "X-Content-SHA256": a.sha256,
                        "Content-Security-Policy": "default-src 'none'; sandbox"})


# ----------------------------------------------------------------------------- corrections

@bp.route("/records/<number>/correct/<step>", methods=["GET", "POST"])
@login_required
def correct(number: str, step: str):
    """Correct the data of a completed step, with a reason for the change (audited)."""
    session = db()
    record = rt().get_record(session, current_user, number)
    st = corrections.step_of(rt(), session, record, step)
    refusal = corrections.why_not_correct(session, me(), record, st)
    if refusal is not None:
        return error_page(403, refusal.message, record=record, code=refusal.code)
    schema = rt().forms.schema(st.form)
    ui = rt().forms.ui_schema(st.ui_form)
    raw, errors, reason, status = raw_from_data(schema, st.data, user_tz()), [], "", 200
    version = record.version
    if request.method == "POST":
        parsed = parse_form(schema, request.form, user_tz())
        raw, reason = parsed.raw, request.form.get("reason") or ""
        try:
            version = int(request.form.get("version") or record.version)
        except ValueError:
            version = record.version
        if not (parsed.action or "").startswith(("add:", "remove:")):
            try:
                call(corrections.correct, rt(), current_user, number, step, parsed.data, reason,
                     expected_version=version)
            except ValidationFailed as exc:
                errors, status = exc.errors, 400
            except Conflict as exc:
                return error_page(409, exc.message, record=record, code="conflict")
            else:
                flash("The correction was saved with its reason; the audit trail shows old and new values, and "
                      "signatures over the changed data now show as invalidated.", "success")
                return redirect(url_for("records.show", number=number) + "#audit")
            session = db()
            record = rt().get_record(session, current_user, number)
    g.page_title = f"Correct {st.name} · {record.number}"
    return render_template("records/correct.html", record=record, step=st, schema=schema, ui=ui, raw=raw,
                           errors=errors, reason=reason, version=version, tz=user_tz()), status


@bp.app_template_global()
def record_status_label(status) -> str:
    return {"open": "Open", "closed": "Closed", "cancelled": "Cancelled", "error": "Error"}.get(str(status),
                                                                                               str(status))
