"""Who may see and complete what: asked by pages, the API, the CLI and tests alike (URS-SEC-02, -03)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Record, Task, TaskStatus, User

from .training import missing_trainings

# Roles that may read every record (inspection readiness: QA and auditors see everything).
GLOBAL_READER_ROLES = frozenset({"QA", "QA Head", "Auditor", "Admin"})
CREATOR = "@creator"


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str
    details: dict | None = None


def why_not(session: Session, user: User, task: Task, done_by_user: set | None = None) -> Refusal | None:
    """The reason `user` may not complete `task`, or None if they may.

    `done_by_user` (optional) is the set of (record_id, bpmn_id) the user completed, when the
    caller checks many tasks at once (the inbox) and has fetched it in one query.
    """
    if task.status != TaskStatus.OPEN:
        return Refusal("conflict", f"This task is already {task.status.value}.")
    if not user.active:
        return Refusal("inactive", "Your account is deactivated.")
    if task.role and task.role not in user.role_names:
        return Refusal("not_in_role", f"This task is for the role '{task.role}', which you do not hold.")
    if task.assignee and task.assignee != user.username:
        return Refusal("not_assigned", f"This task is assigned to {task.assignee}.")
    conflicting = segregation_conflict(session, user, task, done_by_user)
    if conflicting:
        return Refusal("segregation_of_duties",
                       f"You cannot complete this task because you {conflicting} on this record "
                       "(segregation of duties).")
    if task.requires_training:
        missing = missing_trainings(session, user, list(task.requires_training))
        if missing:
            names = ", ".join(f"{m['code']} ({m['title']}: {m['reason']})" for m in missing)
            return Refusal("not_qualified", f"You are not qualified for this task; missing training: {names}.",
                           {"missing": missing})
    return None


def can_complete(session: Session, user: User, task: Task) -> bool:
    return why_not(session, user, task) is None


def segregation_conflict(session: Session, user: User, task: Task, done_by_user: set | None = None) -> str | None:
    """What the user did earlier that bars them from this task, as words, or None."""
    ids = [i for i in (task.segregate_from or []) if i != CREATOR]
    if CREATOR in (task.segregate_from or []) and task.record.created_by_id == user.id:
        return "raised it"
    if not ids:
        return None
    if done_by_user is not None:
        hit = next((i for i in ids if (task.record_id, i) in done_by_user), None)
        return f"completed '{hit}'" if hit else None
    done = session.execute(
        select(Task.name).where(Task.record_id == task.record_id, Task.bpmn_id.in_(ids),
                                Task.status == TaskStatus.COMPLETED, Task.completed_by_id == user.id).limit(1)
    ).scalar()
    return f"completed '{done}'" if done else None


def completed_by(session: Session, user: User, record_ids: list[str]) -> set[tuple[str, str]]:
    """(record_id, bpmn_id) of every task the user completed on these records, in one query."""
    if not record_ids:
        return set()
    rows = session.execute(select(Task.record_id, Task.bpmn_id).where(
        Task.record_id.in_(record_ids), Task.completed_by_id == user.id, Task.status == TaskStatus.COMPLETED))
    return {(r, b) for r, b in rows}


def can_see_record(user: User, record: Record, process_roles: set[str]) -> bool:
    """Readers: global reader roles, any role working in the process, and the record's creator."""
    roles = user.role_names
    return bool(roles & GLOBAL_READER_ROLES) or bool(roles & process_roles) or record.created_by_id == user.id
