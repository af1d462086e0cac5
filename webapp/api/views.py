"""How runtime objects look on the wire: plain dicts, timestamps in ISO 8601 UTC.

Each function reads only what the runtime already loaded or offers (signatures, links,
tasks); none decides a rule.
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from models import AuditEntry, ProcessVersion, Record, Task, TaskStatus, User

from .base import iso, jsonable


def version_view(version: ProcessVersion) -> dict:
    """A diagram version as a configuration item (URS-VAL-01)."""
    return {
        "key": version.definition.key,
        "name": version.definition.name,
        "version": version.version,
        "sha256": version.sha256,
        "status": str(version.status),
        "loaded_at": iso(version.loaded_at),
    }


def record_summary(record: Record) -> dict:
    """The fields of POST /records' answer, also used for list items."""
    return {
        "id": record.id,
        "number": record.number,
        "title": record.title,
        "process": record.process_version.definition.key,
        "process_version": record.process_version.version,
        "status": str(record.status),
        "created_by": record.created_by.username,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
        "closed_at": iso(record.closed_at),
    }


def _user_name(user: User | None) -> str | None:
    return user.username if user is not None else None


def open_task_view(task: Task) -> dict:
    return {
        "id": task.id,
        "task": task.bpmn_id,
        "name": task.name,
        "role": task.role,
        "assignee": task.assignee,
        "due_at": iso(task.due_at),
        "signature_required": bool(task.signature_meaning),
    }


def task_history_view(task: Task) -> dict:
    return {
        "id": task.id,
        "task": task.bpmn_id,
        "name": task.name,
        "role": task.role,
        "assignee": task.assignee,
        "status": str(task.status),
        "created_at": iso(task.created_at),
        "due_at": iso(task.due_at),
        "completed_by": _user_name(task.completed_by),
        "completed_at": iso(task.completed_at),
    }


def record_detail(rt, session: Session, record: Record) -> dict:
    """GET /records/{id}: the record with data, open tasks, signatures (Part 11 §11.50 manifestation:
    printed name, date and time, meaning), links and the history of its tasks."""
    tasks = rt.record_tasks(session, record)
    by_id = {t.id: t for t in tasks}
    signatures = []
    for sig, valid in rt.signatures(session, record):
        task = by_id.get(sig.task_id)
        signatures.append({
            "signer": sig.signer.username,
            "signer_name": sig.signer_name,
            "meaning": sig.meaning,
            "signed_at": iso(sig.signed_at),
            "task": task.bpmn_id if task is not None else None,
            "task_id": sig.task_id,
            "content_sha256": sig.content_sha256,
            "valid": bool(valid),
        })
    links = []
    for link in rt.links(session, record):
        outgoing = link.source_id == record.id
        other = link.target if outgoing else link.source
        links.append({
            "kind": link.kind,
            "direction": "outgoing" if outgoing else "incoming",
            "record": {"id": other.id, "number": other.number, "process": other.process_version.definition.key},
            "created_at": iso(link.created_at),
        })
    return {
        **record_summary(record),
        "revision": record.version,
        "data": jsonable(record.data or {}),
        "open_tasks": [open_task_view(t) for t in tasks if t.status == TaskStatus.OPEN],
        "signatures": signatures,
        "links": links,
        "tasks": [task_history_view(t) for t in tasks],
    }


def inbox_task_view(task: Task) -> dict:
    """An entry of GET /tasks."""
    return {
        **open_task_view(task),
        "record": {"id": task.record.id, "number": task.record.number, "title": task.record.title},
        "created_at": iso(task.created_at),
    }


def task_detail(rt, task: Task, refusal) -> dict:
    """GET /tasks/{id}: the task with its form and whether (and why not) the caller may complete it."""
    return {
        "id": task.id,
        "task": task.bpmn_id,
        "name": task.name,
        "status": str(task.status),
        "role": task.role,
        "assignee": task.assignee,
        "due_at": iso(task.due_at),
        "created_at": iso(task.created_at),
        "instructions": task.instructions or "",
        "record": {"id": task.record.id, "number": task.record.number, "title": task.record.title},
        "form": {
            "schema": rt.forms.schema(task.form) if task.form else {},
            "ui_schema": rt.forms.ui_schema(task.ui_form),
        },
        "signature_required": bool(task.signature_meaning),
        "signature_meaning": task.signature_meaning,
        "can_complete": refusal is None,
        "why_not": None if refusal is None else {"code": refusal.code, "message": refusal.message,
                                                 "details": refusal.details or {}},
    }


def audit_view(entry: AuditEntry) -> dict:
    """One audit entry (URS-AUD-01): who, when (UTC), what, old and new value, reason."""
    return {
        "seq": entry.seq,
        "at": iso(entry.at),
        "user": entry.username,
        "action": entry.action,
        "entity": entry.entity,
        "entity_id": entry.entity_id,
        "record_id": entry.record_id,
        "field": entry.field,
        "old": entry.old,
        "new": entry.new,
        "reason": entry.reason,
    }
