"""Records (process instances): start, list and search, read, read the audit trail."""
from __future__ import annotations

from flask import jsonify, request, url_for

from engine.exceptions import ValidationFailed
from models import RecordStatus

from . import queries
from .base import api_blueprint, current_user, int_arg, json_body, runtime
from .schemas import REQUEST_SCHEMAS
from .views import audit_view, record_detail, record_summary

MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 50


@api_blueprint.post("/records")
def start_record():
    """Start the released version of a process with the start form's data (URS-DEV-01, URS-INT-01)."""
    body = json_body(REQUEST_SCHEMAS["StartRecordRequest"])
    rt = runtime()
    record = rt.start_record(current_user(), body["process"], body.get("data") or {}, title=body.get("title"))
    with rt.db.sessionmaker() as session:
        record = rt.get_record(session, current_user(), record.id)
        resp = jsonify(record_summary(record))
    resp.status_code = 201
    resp.headers["Location"] = url_for("api.get_record", record_id=record.id)
    return resp


@api_blueprint.get("/records")
def list_records():
    """Records the caller may see, newest first, filtered by process, status and text (URS-REP-02)."""
    status = request.args.get("status") or None
    if status is not None and status not in {s.value for s in RecordStatus}:
        raise ValidationFailed([{"path": "status", "message": "Choose one of: "
                                 + ", ".join(s.value for s in RecordStatus) + "."}])
    page = int_arg("page", 1, 1)
    per_page = int_arg("per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    rt = runtime()
    with rt.db.sessionmaker() as session:
        rows, total = rt.search_records(session, current_user(), process=request.args.get("process") or None,
                                        status=status, q=request.args.get("q") or None, page=page,
                                        per_page=per_page)
        return jsonify({"items": [record_summary(r) for r in rows], "page": page, "per_page": per_page,
                        "total": total})


@api_blueprint.get("/records/<record_id>")
def get_record(record_id: str):
    """The record with data, status, open tasks, signatures, links and task history (id or number)."""
    rt = runtime()
    with rt.db.sessionmaker() as session:
        record = rt.get_record(session, current_user(), record_id)
        return jsonify(record_detail(rt, session, record))


@api_blueprint.get("/records/<record_id>/audit")
def get_record_audit(record_id: str):
    """The record's audit entries, oldest first (URS-AUD-01, URS-AUD-03)."""
    rt = runtime()
    with rt.db.sessionmaker() as session:
        record = rt.get_record(session, current_user(), record_id)
        return jsonify([audit_view(e) for e in queries.record_audit(session, record)])
