"""Tasks: the caller's inbox, one task with its form, and completing it (signed where required)."""
from __future__ import annotations

from flask import jsonify

from engine.exceptions import NotFound
from engine.permissions import why_not
from models import User

from .base import api_blueprint, current_user, json_body, runtime
from .schemas import REQUEST_SCHEMAS
from .views import inbox_task_view, record_detail, task_detail


@api_blueprint.get("/tasks")
def list_tasks():
    """The open tasks the caller may complete now (by role, assignment and segregation of duties)."""
    rt = runtime()
    with rt.db.sessionmaker() as session:
        return jsonify([inbox_task_view(t) for t in rt.open_tasks(session, current_user())])


@api_blueprint.get("/tasks/<task_id>")
def get_task(task_id: str):
    """The task with its form; 404 when it does not exist or its record is not visible to the caller."""
    rt = runtime()
    with rt.db.sessionmaker() as session:
        task = rt.get_task(session, current_user(), task_id)
        refusal = why_not(session, session.get(User, current_user().id), task)
        return jsonify(task_detail(rt, task, refusal))


@api_blueprint.post("/tasks/<task_id>/complete")
def complete_task(task_id: str):
    """Validate, sign, complete and move the engine on in one transaction; a failed call changes
    nothing (a wrong signing password is only counted and audited, Part 11 §11.300)."""
    body = json_body(REQUEST_SCHEMAS["CompleteTaskRequest"])
    rt = runtime()
    record = rt.complete_task(task_id, current_user(), body.get("data") or {}, body.get("signature"))
    with rt.db.sessionmaker() as session:
        try:
            fresh = rt.get_record(session, current_user(), record.id)
        except NotFound:  # completed, but the record is no longer visible to this caller
            return jsonify({"id": record.id, "number": record.number, "status": str(record.status)})
        return jsonify(record_detail(rt, session, fresh))
