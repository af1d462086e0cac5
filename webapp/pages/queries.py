"""Read-only queries the pages need and engine.Runtime does not offer yet.

They decide no rule beyond "which rows": visibility is always asked of the runtime first
(`get_record`, `search_records`). They belong in the engine (shared with the API's
webapp/api/queries.py and the CLI) and should move there when the runtime grows audit,
search-by-date/person and administration read methods.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from engine.db import contains
from models import AuditEntry, ProcessDefinition, ProcessVersion, Record, Role, Task, TaskStatus, User

# When a search uses filters the runtime cannot apply yet (dates, person, number), the pages
# scan at most this many of the newest visible matches and filter them here.


@dataclass
class AuditFilter:
    action: str = ""
    user: str = ""
    field: str = ""
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def record_audit(session: Session, record: Record, flt: AuditFilter | None = None) -> list[AuditEntry]:
    """The record's audit entries, oldest first, filtered (the caller has checked visibility)."""
    stmt = select(AuditEntry).where(AuditEntry.record_id == record.id)
    if flt:
        if flt.action:
            stmt = stmt.where(AuditEntry.action == flt.action)
        if flt.user:
            stmt = stmt.where(contains(AuditEntry.username, flt.user))
        if flt.field:
            stmt = stmt.where(contains(AuditEntry.field, flt.field))
        if flt.since:
            stmt = stmt.where(AuditEntry.at >= flt.since)
        if flt.until:
            stmt = stmt.where(AuditEntry.at < flt.until)
    return list(session.scalars(stmt.order_by(AuditEntry.seq)))


def record_audit_actions(session: Session, record: Record) -> list[str]:
    return list(session.scalars(select(AuditEntry.action).where(AuditEntry.record_id == record.id)
                                .distinct().order_by(AuditEntry.action)))


def open_tasks_of(session: Session, record_ids: list[str]) -> dict[str, list[Task]]:
    """Open tasks per record for a page of records, in one query (no N+1 on the records list)."""
    out: dict[str, list[Task]] = {rid: [] for rid in record_ids}
    if not record_ids:
        return out
    for task in session.scalars(select(Task).where(Task.record_id.in_(record_ids), Task.status == TaskStatus.OPEN)
                                .order_by(Task.created_at)):
        out[task.record_id].append(task)
    return out


def process_choices(session: Session) -> list[tuple[str, str]]:
    """(key, name) of every process definition, for the search form."""
    return [(d.key, d.name) for d in session.scalars(select(ProcessDefinition).order_by(ProcessDefinition.name))]


def all_versions(session: Session) -> list[ProcessVersion]:
    """Every diagram version (administration, read-only), without the heavy columns."""
    return list(session.scalars(select(ProcessVersion).join(ProcessDefinition)
                                .options(defer(ProcessVersion.bpmn), defer(ProcessVersion.spec_json))
                                .order_by(ProcessDefinition.key, ProcessVersion.version.desc())))


def all_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def user_by_name(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def role_names(session: Session) -> list[str]:
    return list(session.scalars(select(Role.name).order_by(Role.name)))
