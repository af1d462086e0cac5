"""Training management (URS-TRN-01..03): requirements per role, assignments, completion, the matrix,
and the one question the permissions ask (who is qualified for what).

A person is qualified for a training code when they hold a completed training record for
it; for a document the record must be for the version that is effective now, so a new
effective version makes everyone who must read it unqualified until they have.

Assignments are made here and nowhere else:
- a document version becomes effective -> :func:`assign_for_effective_version` (called by the
  document-control service operation, in the same transaction);
- a person gains a role -> :func:`assign_for_role`; a requirement is added to a role ->
  :func:`add_requirement` assigns it to the role's current holders;
- a course -> :func:`assign_course`.
Each assignment is a ``TrainingRecord`` (assigned, due date) plus a ``training_acknowledgement``
record whose signed "read and understood" task completes it through the service operation
``complete_training`` (registered below). Instructor-led courses are completed with
:func:`complete_course` (audited with the instructor as the actor, unsigned).

Functions taking a ``session`` work inside the caller's unit of work; the functions at the end
(:func:`require_training`, :func:`withdraw_training`, :func:`record_course_completion`) open
their own, for the CLI and the pages.
"""
from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from models import (
    Document,
    DocumentVersion,
    DocumentVersionStatus,
    ProcessDefinition,
    ProcessVersion,
    Record,
    RecordStatus,
    Role,
    Signature,
    Task,
    TaskStatus,
    TimerJob,
    TrainingKind,
    TrainingRecord,
    TrainingRequirement,
    TrainingStatus,
    User,
    UserRole,
    VersionStatus,
    audit_event,
    utcnow,
)

from .actors import require_role
from .exceptions import Conflict, Forbidden, NotFound, ProcessRejected, ValidationFailed
from .services import StepContext, operation

TRAINING_PROCESS = "training_acknowledgement"
ACKNOWLEDGE_TASK = "acknowledge_training"
# Who may read everybody's training status (the matrix); everyone sees their own.
MATRIX_ROLES = frozenset({"QA", "QA Head", "Auditor", "Admin", "Training Coordinator"})
# Who decides what each role must be trained on (the curricula): QA and training coordinators.
REQUIREMENT_ROLES = frozenset({"QA", "QA Head", "Training Coordinator"})

QUALIFIED = "qualified"
DUE = "due"
OVERDUE = "overdue"
NOT_ASSIGNED = "not_assigned"
MATRIX_STATUSES = (QUALIFIED, DUE, OVERDUE, NOT_ASSIGNED)
STATUS_LABELS = {QUALIFIED: "Qualified", DUE: "Due", OVERDUE: "Overdue", NOT_ASSIGNED: "Not assigned"}

_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")
_PENDING_SIGNATURES = "cellqms_training_signatures"


# ============================================================================ qualification
def effective_versions(session: Session, numbers: list[str]) -> dict[str, DocumentVersion]:
    """Document number → its effective version, for the numbers that are documents with one."""
    if not numbers:
        return {}
    rows = session.execute(
        select(Document.number, DocumentVersion).join(DocumentVersion, DocumentVersion.document_id == Document.id)
        .where(Document.number.in_(numbers), DocumentVersion.status == DocumentVersionStatus.EFFECTIVE))
    return {number: version for number, version in rows}


def missing_trainings(session: Session, user: User, codes: list[str]) -> list[dict]:
    """The trainings among `codes` the user is not qualified for, each as {code, title, reason}."""
    if not codes:
        return []
    completed = session.execute(
        select(TrainingRecord.code, TrainingRecord.document_version_id).where(
            TrainingRecord.user_id == user.id, TrainingRecord.code.in_(codes),
            TrainingRecord.status == TrainingStatus.COMPLETED)).all()
    done: dict[str, set] = {}
    for code, version_id in completed:
        done.setdefault(code, set()).add(version_id)
    effective = effective_versions(session, codes)
    titles = dict(session.execute(select(TrainingRequirement.code, TrainingRequirement.title)
                                  .where(TrainingRequirement.code.in_(codes))).all())
    missing = []
    for code in codes:
        version = effective.get(code)
        title = titles.get(code) or (version.document.title if version else code)
        if code not in done:
            missing.append({"code": code, "title": title, "reason": "not trained"})
        elif version is not None and version.id not in done[code]:
            missing.append({"code": code, "title": title,
                            "reason": f"not trained on the effective version {version.label}"})
    return missing


def required_codes_for_roles(session: Session, roles: set[str]) -> list[TrainingRequirement]:
    """The training requirements of a set of roles."""
    if not roles:
        return []
    return list(session.scalars(select(TrainingRequirement).where(TrainingRequirement.role_name.in_(roles))
                                .order_by(TrainingRequirement.code)))


# ============================================================================ requirements
def requirements(session: Session, role: str | None = None) -> list[TrainingRequirement]:
    """Every training requirement (or one role's), by role and code."""
    stmt = select(TrainingRequirement).order_by(TrainingRequirement.role_name, TrainingRequirement.code)
    if role:
        stmt = stmt.where(TrainingRequirement.role_name == role)
    return list(session.scalars(stmt))


def _check_requirement(role: str, kind: str, code: str, title: str, due_days: int) -> TrainingKind:
    errors = []
    if not (role or "").strip() or len(role) > 64:
        errors.append({"path": "role", "message": "Name the role (at most 64 characters)."})
    try:
        kind_value = TrainingKind(kind)
    except ValueError:
        kind_value = TrainingKind.DOCUMENT
        errors.append({"path": "kind", "message": "Choose one of: document, course."})
    if not _CODE.fullmatch(code or ""):
        errors.append({"path": "code", "message": "Use 1-64 letters, digits, dots, dashes, slashes or underscores "
                                                  "(e.g. SOP-QA-001)."})
    if not (title or "").strip() or len(title) > 300:
        errors.append({"path": "title", "message": "Give a title (at most 300 characters)."})
    if not isinstance(due_days, int) or isinstance(due_days, bool) or not 1 <= due_days <= 3650:
        errors.append({"path": "due_days", "message": "Must be a whole number of days from 1 to 3650."})
    if errors:
        raise ValidationFailed(errors)
    return kind_value


def add_requirement(session: Session, role: str, kind: str, code: str, title: str, due_days: int = 14, *,
                    runtime=None, actor=None) -> TrainingRequirement:
    """Require a training of every holder of `role` (URS-TRN-01); audited by the audit mechanism.

    With `runtime`, the role's current active holders who are not yet qualified get the training
    assigned at once (a document only once it has an effective version).
    """
    kind_value = _check_requirement(role, kind, code, title, due_days)
    role, code, title = role.strip(), code.strip(), title.strip()
    if session.scalar(select(TrainingRequirement.id).where(TrainingRequirement.role_name == role,
                                                           TrainingRequirement.code == code)) is not None:
        raise Conflict(f"The role '{role}' already requires {code}.")
    other = session.scalar(select(TrainingRequirement).where(TrainingRequirement.code == code,
                                                             TrainingRequirement.kind != kind_value).limit(1))
    if other is not None:
        raise Conflict(f"{code} is already required as a {other.kind.value} (by '{other.role_name}'); "
                       "one code cannot be both a document and a course.")
    requirement = TrainingRequirement(role_name=role, kind=kind_value, code=code, title=title, due_days=due_days)
    session.add(requirement)
    session.flush()
    if runtime is not None:
        for user in _holders(session, {role}):
            _assign_requirement(session, runtime, user, code, actor=actor)
    return requirement


def withdraw_requirement(session: Session, role: str, code: str, reason: str, *, actor=None) -> int:
    """Withdraw a role's requirement (the deletion is audited with `reason`); return how many open
    assignments were cancelled because their holder no longer needs the training."""
    if not (reason or "").strip():
        raise ValidationFailed([{"path": "reason", "message": "Say why the requirement is withdrawn."}])
    requirement = session.scalar(select(TrainingRequirement).where(TrainingRequirement.role_name == role,
                                                                  TrainingRequirement.code == code))
    if requirement is None:
        raise NotFound(f"The role '{role}' does not require {code}.")
    session.delete(requirement)
    audit_event(session, "training_requirement_withdrawn", entity="training_requirements",
                entity_id=requirement.id, old={"role": role, "code": code}, reason=reason)
    session.flush()
    cancelled = 0
    for user in _holders(session, {role}):
        if code not in _required_codes(session, user.role_names):
            cancelled += _cancel_open_assignments(session, user, code, f"no longer required: {reason}")
    return cancelled


# ============================================================================ assignments
def assign_for_effective_version(session: Session, runtime, version: DocumentVersion,
                                 actor=None) -> list[TrainingRecord]:
    """A document version became effective: assign it to every active holder of a role that requires it.

    Called by document control inside the transaction that makes the version effective. Each
    person gets a TrainingRecord (assigned, due in the requirement's days) and a
    training_acknowledgement record with their signed "read and understood" task. A completed
    training on an older version stays as history; an open assignment for an older version is
    cancelled (the person now reads the new one). Idempotent for one version.
    """
    number = version.document.number
    roles = {r.role_name for r in session.scalars(select(TrainingRequirement).where(
        TrainingRequirement.code == number, TrainingRequirement.kind == TrainingKind.DOCUMENT))}
    assigned = []
    for user in _holders(session, roles):
        record = _assign_document(session, runtime, user, version, actor=actor)
        if record is not None:
            assigned.append(record)
    return assigned


def assign_for_role(session: Session, runtime, user: User, role: str, actor=None) -> list[TrainingRecord]:
    """`user` gained `role`: assign every training the role requires that they are not qualified for
    or already assigned (documents only once they have an effective version)."""
    assigned = []
    for requirement in requirements(session, role):
        record = _assign_requirement(session, runtime, user, requirement.code, actor=actor)
        if record is not None:
            assigned.append(record)
    return assigned


def release_for_role(session: Session, user: User, role: str) -> int:
    """`user` lost `role`: cancel their open assignments that none of their remaining roles requires.

    Completed trainings stay. Returns how many assignments were cancelled.
    """
    remaining = _required_codes(session, user.role_names - {role})
    cancelled = 0
    for requirement in requirements(session, role):
        if requirement.code not in remaining:
            cancelled += _cancel_open_assignments(session, user, requirement.code, f"role '{role}' revoked")
    return cancelled


def assign_course(session: Session, user: User, code: str, *, runtime=None, actor=None,
                  title: str | None = None, due_days: int | None = None) -> TrainingRecord:
    """Assign a course to `user` (or return their open or completed assignment of it).

    With `runtime`, a training_acknowledgement record (kind course) is started so the trainee can
    confirm completion with a signature; instructor-led sessions use :func:`complete_course`.
    """
    existing = session.scalar(select(TrainingRecord).where(
        TrainingRecord.user_id == user.id, TrainingRecord.code == code,
        TrainingRecord.status.in_([TrainingStatus.ASSIGNED, TrainingStatus.COMPLETED]))
        .order_by(TrainingRecord.assigned_at.desc()).limit(1))
    if existing is not None:
        return existing
    reqs = _requirements_of(session, user, code)
    if any(r.kind == TrainingKind.DOCUMENT for r in reqs) or _is_document(session, code):
        raise ValidationFailed([{"path": "code", "message": f"{code} is a document, not a course."}])
    title = title or (reqs[0].title if reqs else None)
    if not title:
        raise ValidationFailed([{"path": "title", "message": f"No role requires the course {code}; give its title."}])
    days = due_days or min((r.due_days for r in reqs), default=14)
    now = _now(runtime)
    record = TrainingRecord(user_id=user.id, code=code, kind=TrainingKind.COURSE, title=title,
                            due_at=now + dt.timedelta(days=days), assigned_at=now)
    session.add(record)
    session.flush()
    if runtime is not None:
        _start_acknowledgement(session, runtime, user, record, version_label="", actor=actor)
    return record


def complete_course(session: Session, user: User, code: str, instructor: User, *,
                    completed_at: dt.datetime | None = None, title: str | None = None) -> TrainingRecord:
    """Record that `user` completed the course `code` in a session led by `instructor`.

    The caller's unit of work names the instructor as the actor, so the audit trail shows who
    certified the training. The trainee's open assignment (and its acknowledgement task) is
    completed; without one, a completed training record is created. Unsigned: a signed
    completion goes through the training_acknowledgement record.
    """
    if instructor.id == user.id:
        raise Forbidden("An instructor cannot certify their own training.", code="segregation_of_duties")
    if not instructor.active or not user.active:
        raise ValidationFailed([{"path": "username", "message": "Trainee and instructor must be active users."}])
    reqs = _requirements_of(session, user, code) or requirements_for_code(session, code)
    if any(r.kind == TrainingKind.DOCUMENT for r in reqs) or _is_document(session, code):
        raise ValidationFailed([{"path": "code", "message": f"{code} is a document: the trainee completes it with "
                                                            "a signed read-and-understood."}])
    completed_at = completed_at or utcnow()
    if completed_at.tzinfo is None:
        completed_at = completed_at.replace(tzinfo=dt.timezone.utc)
    if completed_at > utcnow() + dt.timedelta(minutes=5):
        raise ValidationFailed([{"path": "completed_at", "message": "A completion cannot lie in the future."}])
    record = session.scalar(select(TrainingRecord).where(
        TrainingRecord.user_id == user.id, TrainingRecord.code == code,
        TrainingRecord.status == TrainingStatus.ASSIGNED).order_by(TrainingRecord.assigned_at.desc()).limit(1))
    if record is None:
        title = title or (reqs[0].title if reqs else None)
        if not title:
            raise ValidationFailed([{"path": "title", "message": f"No role requires the course {code}; "
                                                                 "give its title."}])
        record = TrainingRecord(user_id=user.id, code=code, kind=TrainingKind.COURSE, title=title)
        session.add(record)
    record.status = TrainingStatus.COMPLETED
    record.completed_at = completed_at
    session.flush()
    audit_event(session, "training_completed", record_id=record.record_id, entity="training_records",
                entity_id=record.id, new={"trainee": user.username, "code": code, "instructor": instructor.username,
                                          "completed_at": completed_at, "signed": False})
    if record.record_id:
        _cancel_record(session, record.record_id, f"course completed in a session led by {instructor.full_name}")
    return record


def requirements_for_code(session: Session, code: str) -> list[TrainingRequirement]:
    return list(session.scalars(select(TrainingRequirement).where(TrainingRequirement.code == code)))


# ---------------------------------------------------------------------------- assignment internals
def _now(runtime) -> dt.datetime:
    return runtime.clock.now() if runtime is not None else utcnow()


def _holders(session: Session, roles: set[str]) -> list[User]:
    """Active users holding any of `roles`, by username."""
    if not roles:
        return []
    ids = select(UserRole.user_id).join(Role, Role.id == UserRole.role_id).where(Role.name.in_(roles))
    return list(session.scalars(select(User).where(User.id.in_(ids), User.active.is_(True))
                                .order_by(User.username)))


def _required_codes(session: Session, roles: set[str]) -> set[str]:
    return {r.code for r in required_codes_for_roles(session, set(roles))}


def _requirements_of(session: Session, user: User, code: str) -> list[TrainingRequirement]:
    """The requirements of `code` among the user's roles."""
    return [r for r in required_codes_for_roles(session, user.role_names) if r.code == code]


def _is_document(session: Session, code: str) -> bool:
    return session.scalar(select(Document.id).where(Document.number == code)) is not None


def _assign_requirement(session: Session, runtime, user: User, code: str, actor=None) -> TrainingRecord | None:
    """Assign one required code to one person if they need it; None when nothing was to do."""
    reqs = requirements_for_code(session, code)
    if not reqs:
        return None
    if reqs[0].kind == TrainingKind.DOCUMENT:
        version = effective_versions(session, [code]).get(code)
        if version is None:
            return None  # nothing to read yet: assigned when a version becomes effective
        return _assign_document(session, runtime, user, version, actor=actor)
    before = session.scalar(select(TrainingRecord.id).where(
        TrainingRecord.user_id == user.id, TrainingRecord.code == code,
        TrainingRecord.status.in_([TrainingStatus.ASSIGNED, TrainingStatus.COMPLETED])).limit(1))
    if before is not None:
        return None
    return assign_course(session, user, code, runtime=runtime, actor=actor)


def _assign_document(session: Session, runtime, user: User, version: DocumentVersion,
                     actor=None) -> TrainingRecord | None:
    number = version.document.number
    records = list(session.scalars(select(TrainingRecord).where(
        TrainingRecord.user_id == user.id, TrainingRecord.code == number,
        TrainingRecord.status.in_([TrainingStatus.ASSIGNED, TrainingStatus.COMPLETED]))))
    if any(r.document_version_id == version.id for r in records):
        return None  # already assigned (or trained) on this version
    for old in records:
        if old.status == TrainingStatus.ASSIGNED:
            _cancel_assignment(session, old, f"superseded: version {version.label} of {number} became effective")
    reqs = _requirements_of(session, user, number)
    days = min((r.due_days for r in reqs), default=14)
    title = version.document.title
    now = _now(runtime)
    record = TrainingRecord(user_id=user.id, code=number, kind=TrainingKind.DOCUMENT, title=title,
                            document_version_id=version.id, due_at=now + dt.timedelta(days=days), assigned_at=now)
    session.add(record)
    session.flush()
    _start_acknowledgement(session, runtime, user, record, version_label=version.label, actor=actor)
    return record


def _acknowledgement_version(session: Session) -> ProcessVersion:
    version = session.scalar(select(ProcessVersion).join(ProcessDefinition).where(
        ProcessDefinition.key == TRAINING_PROCESS, ProcessVersion.status == VersionStatus.RELEASED))
    if version is None:
        raise NotFound(f"There is no released '{TRAINING_PROCESS}' process, so training cannot be assigned "
                       "(load the diagrams: cellqms processes load).")
    return version


def _start_acknowledgement(session: Session, runtime, user: User, record: TrainingRecord, *, version_label: str,
                           actor=None) -> Record:
    """Start the trainee's training_acknowledgement record and link it to the training record."""
    ack_version = _acknowledgement_version(session)
    what = f"{record.code} {version_label}".strip()
    data = {
        "title": f"Read and understood: {what} {record.title} ({user.full_name})"[:200]
        if record.kind == TrainingKind.DOCUMENT else f"Course: {what} {record.title} ({user.full_name})"[:200],
        "trainee": user.username,
        "trainee_name": user.full_name[:200],
        "kind": record.kind.value,
        "code": record.code,
        "version_label": version_label,
        "training_title": record.title[:300],
        "training_record_id": record.id,
        "due_at": record.due_at.astimezone(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    started = runtime.start_record_in(session, actor, ack_version, data)
    record.record_id = started.id
    audit_event(session, "training_assigned", record_id=started.id, entity="training_records", entity_id=record.id,
                new={"trainee": user.username, "code": record.code, "kind": record.kind.value,
                     "version": version_label or None, "due_at": record.due_at})
    return started


def _cancel_open_assignments(session: Session, user: User, code: str, reason: str) -> int:
    open_records = session.scalars(select(TrainingRecord).where(
        TrainingRecord.user_id == user.id, TrainingRecord.code == code,
        TrainingRecord.status == TrainingStatus.ASSIGNED)).all()
    for record in open_records:
        _cancel_assignment(session, record, reason)
    return len(open_records)


def _cancel_assignment(session: Session, record: TrainingRecord, reason: str) -> None:
    record.status = TrainingStatus.CANCELLED
    audit_event(session, "training_cancelled", record_id=record.record_id, entity="training_records",
                entity_id=record.id, new={"code": record.code, "user_id": record.user_id}, reason=reason)
    if record.record_id:
        _cancel_record(session, record.record_id, reason)


def _cancel_record(session: Session, record_id: str, reason: str) -> None:
    """Cancel an open acknowledgement record and its open task (never deleted; URS-AUD-04).

    The runtime has no general "cancel record" yet; this is the narrow case of a record whose
    only purpose (the training assignment) has gone.
    """
    record = session.get(Record, record_id)
    if record is None or record.status != RecordStatus.OPEN:
        return
    record.status = RecordStatus.CANCELLED
    record.closed_at = utcnow()
    for task in session.scalars(select(Task).where(Task.record_id == record_id, Task.status == TaskStatus.OPEN)):
        task.status = TaskStatus.CANCELLED
    for job in session.scalars(select(TimerJob).where(TimerJob.record_id == record_id, TimerJob.fired_at.is_(None))):
        job.fired_at = utcnow()
        job.last_error = "record cancelled"
    audit_event(session, "record_cancelled", record_id=record_id, entity="records", entity_id=record_id,
                reason=reason)


# ============================================================================ completion (service operation)
@operation("complete_training")
def complete_training(ctx: StepContext) -> dict:
    """Mark the training record linked to this acknowledgement record completed (URS-TRN-02).

    Only the training record whose `record_id` is this record counts (the record's data cannot
    redirect the credit to another assignment); only its trainee may complete it; the signature
    of the acknowledgement task is attached (it is written after the engine steps of the
    completion, so it is looked up again just before the transaction commits). A record started
    by hand has no linked training record and credits nothing.
    """
    session = ctx.session
    record = session.scalar(select(TrainingRecord).where(TrainingRecord.record_id == ctx.record.id)
                            .with_for_update(of=TrainingRecord))
    if record is None:
        audit_event(session, "training_not_credited", record_id=ctx.record.id, entity="records",
                    entity_id=ctx.record.id, reason="no training assignment is linked to this record")
        return {"credited": False, "reason": "No training assignment is linked to this record."}
    claimed = (ctx.record.data or {}).get("training_record_id")
    if claimed is not None and str(claimed) != str(record.id):
        raise ProcessRejected(f"{ctx.record.number} belongs to training record {record.id}, not {claimed}.")
    if record.status != TrainingStatus.ASSIGNED:
        raise ProcessRejected(f"The training {record.code} of {ctx.record.number} is {record.status.value}; "
                              "it cannot be completed.")
    actor_id = getattr(ctx.actor, "id", None)
    if actor_id != record.user_id:
        raise ProcessRejected("Only the trainee can complete their training.")
    now = _now(ctx.runtime)
    record.status = TrainingStatus.COMPLETED
    record.completed_at = now
    signature = _acknowledgement_signature(session, ctx.record.id, record.user_id)
    if signature is not None:
        record.signature_id = signature.id
    else:
        session.info.setdefault(_PENDING_SIGNATURES, []).append(record.id)
    return {"credited": True, "training_record_id": record.id, "code": record.code,
            "completed_at": now.isoformat(timespec="seconds")}


def _acknowledgement_signature(session: Session, record_id: str, user_id: int) -> Signature | None:
    return session.scalar(
        select(Signature).join(Task, Task.id == Signature.task_id)
        .where(Signature.record_id == record_id, Task.bpmn_id == ACKNOWLEDGE_TASK, Signature.signer_id == user_id)
        .order_by(Signature.signed_at.desc()).limit(1))


@event.listens_for(Session, "before_commit")
def _attach_acknowledgement_signatures(session: Session) -> None:
    """Attach the acknowledgement's signature to each training completed in this transaction.

    Part 11 / URS-TRN-02: a training completed through the acknowledgement must carry its
    signature; if there is none, the whole completion is refused.
    """
    pending = session.info.pop(_PENDING_SIGNATURES, None)
    for record_id in pending or ():
        record = session.get(TrainingRecord, record_id)
        signature = _acknowledgement_signature(session, record.record_id, record.user_id)
        if signature is None:
            raise ProcessRejected(f"The training {record.code} was not signed; it is not completed.")
        record.signature_id = signature.id
    if pending:
        session.flush()


@event.listens_for(Session, "after_soft_rollback")
def _forget_pending(session: Session, previous_transaction) -> None:
    session.info.pop(_PENDING_SIGNATURES, None)


# ============================================================================ the matrix (URS-TRN-02)
@dataclass(frozen=True)
class MatrixCell:
    """One person × one required training: their status and the dates that explain it."""

    user_id: int
    username: str
    full_name: str
    roles: tuple[str, ...]          # the person's roles that require this training
    code: str
    kind: str
    title: str
    status: str                     # qualified | due | overdue | not_assigned
    version: str | None = None      # the document's effective version
    trained_version: str | None = None  # the version of the latest completed training
    due_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    training_record_id: int | None = None
    record_id: str | None = None


MATRIX_COLUMNS = ("username", "full_name", "roles", "code", "kind", "title", "status", "effective_version",
                  "trained_version", "due_at_utc", "completed_at_utc")


def training_matrix(session: Session, roles: list[str] | None = None, users: list[str] | None = None,
                    now: dt.datetime | None = None) -> list[MatrixCell]:
    """Per active user × required training: qualified / due / overdue / not assigned (URS-TRN-02).

    `roles` limits to the requirements of those roles, `users` to those usernames. Qualified
    means what the gating means (:func:`missing_trainings`): completed, for a document on its
    effective version. Sorted by person, then code.
    """
    now = now or utcnow()
    reqs = requirements(session)
    if roles:
        reqs = [r for r in reqs if r.role_name in set(roles)]
    if not reqs:
        return []
    by_role: dict[str, list[TrainingRequirement]] = defaultdict(list)
    for r in reqs:
        by_role[r.role_name].append(r)
    stmt = (select(User.id, User.username, User.full_name, Role.name)
            .join(UserRole, UserRole.user_id == User.id).join(Role, Role.id == UserRole.role_id)
            .where(Role.name.in_(list(by_role)), User.active.is_(True)))
    if users:
        stmt = stmt.where(User.username.in_(list(users)))
    people: dict[int, dict] = {}
    for uid, username, full_name, role in session.execute(stmt):
        person = people.setdefault(uid, {"username": username, "full_name": full_name, "roles": set()})
        person["roles"].add(role)
    if not people:
        return []
    codes = sorted({r.code for r in reqs})
    records: dict[tuple[int, str], list[TrainingRecord]] = defaultdict(list)
    for rec in session.scalars(select(TrainingRecord).where(
            TrainingRecord.user_id.in_(list(people)), TrainingRecord.code.in_(codes),
            TrainingRecord.status != TrainingStatus.CANCELLED).order_by(TrainingRecord.assigned_at)):
        records[(rec.user_id, rec.code)].append(rec)
    effective = effective_versions(session, [r.code for r in reqs if r.kind == TrainingKind.DOCUMENT])
    version_ids = {rec.document_version_id for recs in records.values() for rec in recs if rec.document_version_id}
    labels = {}
    if version_ids:
        labels = {vid: f"{major}.{minor}" for vid, major, minor in session.execute(
            select(DocumentVersion.id, DocumentVersion.major, DocumentVersion.minor)
            .where(DocumentVersion.id.in_(list(version_ids))))}
    cells = []
    for uid, person in people.items():
        needed: dict[str, list[TrainingRequirement]] = defaultdict(list)
        for role in person["roles"]:
            for r in by_role.get(role, []):
                needed[r.code].append(r)
        for code, code_reqs in needed.items():
            cells.append(_cell(uid, person, code, code_reqs, records.get((uid, code), []), effective.get(code),
                               labels, now))
    cells.sort(key=lambda c: (c.full_name.lower(), c.username, c.code))
    return cells


def _cell(uid: int, person: dict, code: str, reqs: list[TrainingRequirement], recs: list[TrainingRecord],
          effective: DocumentVersion | None, labels: dict, now: dt.datetime) -> MatrixCell:
    kind = reqs[0].kind
    if kind != TrainingKind.DOCUMENT:
        effective = None
    completed = [r for r in recs if r.status == TrainingStatus.COMPLETED]
    latest_done = max(completed, key=lambda r: r.completed_at or r.assigned_at) if completed else None
    qualifying = [r for r in completed if effective is None or r.document_version_id == effective.id]
    common = {
        "user_id": uid, "username": person["username"], "full_name": person["full_name"],
        "roles": tuple(sorted({r.role_name for r in reqs})), "code": code, "kind": kind.value,
        "title": reqs[0].title, "version": effective.label if effective else None,
        "trained_version": labels.get(latest_done.document_version_id) if latest_done else None,
    }
    if qualifying:
        best = max(qualifying, key=lambda r: r.completed_at or r.assigned_at)
        return MatrixCell(**common, status=QUALIFIED, completed_at=best.completed_at, training_record_id=best.id,
                          record_id=best.record_id)
    open_ = [r for r in recs if r.status == TrainingStatus.ASSIGNED]
    if open_:
        current = [r for r in open_ if effective is None or r.document_version_id == effective.id] or open_
        rec = current[-1]
        status = OVERDUE if rec.due_at is not None and rec.due_at < now else DUE
        return MatrixCell(**common, status=status, due_at=rec.due_at, training_record_id=rec.id,
                          record_id=rec.record_id,
                          completed_at=latest_done.completed_at if latest_done else None)
    return MatrixCell(**common, status=NOT_ASSIGNED, completed_at=latest_done.completed_at if latest_done else None)


def matrix_table(cells: list[MatrixCell]) -> list[list[str]]:
    """The matrix as rows of text for export (header first; times in UTC, ISO 8601)."""

    def iso(value):
        return value.astimezone(dt.timezone.utc).isoformat(timespec="seconds") if value else ""

    rows = [list(MATRIX_COLUMNS)]
    for c in cells:
        rows.append([c.username, c.full_name, "; ".join(c.roles), c.code, c.kind, c.title, c.status,
                     c.version or "", c.trained_version or "", iso(c.due_at), iso(c.completed_at)])
    return rows


def may_manage_requirements(user: User) -> bool:
    """Whether a person may add and withdraw training requirements (the curricula per role)."""
    return bool(user.role_names & REQUIREMENT_ROLES)


def may_read_matrix(user: User) -> bool:
    """Everybody's training status is for QA, auditors, administrators and training coordinators."""
    return bool(user.role_names & MATRIX_ROLES)


@dataclass
class Assignment:
    """One of a person's training records, with where to act on it."""

    training: TrainingRecord
    version: str | None
    record_number: str | None
    open_task_id: str | None
    status: str                     # assigned/completed/cancelled, or overdue for an assigned one past due


def user_assignments(session: Session, user: User, now: dt.datetime | None = None) -> list[Assignment]:
    """A person's training records, open ones first (by due date), then the history, newest first."""
    now = now or utcnow()
    rows = session.execute(
        select(TrainingRecord, DocumentVersion.major, DocumentVersion.minor, Record.number)
        .outerjoin(DocumentVersion, DocumentVersion.id == TrainingRecord.document_version_id)
        .outerjoin(Record, Record.id == TrainingRecord.record_id)
        .where(TrainingRecord.user_id == user.id)).all()
    record_ids = [rec.record_id for rec, *_ in rows if rec.record_id and rec.status == TrainingStatus.ASSIGNED]
    open_tasks = {}
    if record_ids:
        open_tasks = dict(session.execute(select(Task.record_id, Task.id).where(
            Task.record_id.in_(record_ids), Task.bpmn_id == ACKNOWLEDGE_TASK, Task.status == TaskStatus.OPEN)).all())
    out = []
    for rec, major, minor, number in rows:
        status = rec.status.value
        if rec.status == TrainingStatus.ASSIGNED and rec.due_at is not None and rec.due_at < now:
            status = OVERDUE
        out.append(Assignment(rec, f"{major}.{minor}" if major is not None else None, number,
                              open_tasks.get(rec.record_id), status))
    far = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
    open_ = sorted((a for a in out if a.training.status == TrainingStatus.ASSIGNED),
                   key=lambda a: (a.training.due_at or far, a.training.code))
    history = sorted((a for a in out if a.training.status != TrainingStatus.ASSIGNED),
                     key=lambda a: a.training.completed_at or a.training.assigned_at, reverse=True)
    return open_ + history


# ============================================================================ one unit of work each (CLI, pages)
def require_training(runtime, actor, role: str, code: str, kind: str, title: str,
                     due_days: int = 14) -> TrainingRequirement:
    """Add a requirement to a role and assign it to the role's current holders, in one transaction."""
    with runtime.db.unit_of_work(actor) as session:
        require_role(session, actor, REQUIREMENT_ROLES, "Changing training requirements")
        requirement = add_requirement(session, role, kind, code, title, due_days, runtime=runtime, actor=actor)
        session.flush()
        return requirement


def withdraw_training(runtime, actor, role: str, code: str, reason: str) -> int:
    """Withdraw a role's requirement, with the reason in the audit trail."""
    with runtime.db.unit_of_work(actor, reason=reason) as session:
        require_role(session, actor, REQUIREMENT_ROLES, "Changing training requirements")
        return withdraw_requirement(session, role, code, reason, actor=actor)


def record_course_completion(runtime, instructor: str, username: str, code: str, *, entered_by: str | None = None,
                             completed_at: dt.datetime | None = None, title: str | None = None) -> TrainingRecord:
    """An instructor-led course: the completion is audited with the instructor as the actor."""
    with runtime.db.sessionmaker() as session:
        teacher = session.scalar(select(User).where(User.username == instructor))
    if teacher is None:
        raise NotFound(f"No user '{instructor}'.")
    reason = f"instructor-led course {code}" + (f"; entered by {entered_by}" if entered_by else "")
    with runtime.db.unit_of_work(teacher, reason=reason) as session:
        trainee = session.scalar(select(User).where(User.username == username))
        if trainee is None:
            raise NotFound(f"No user '{username}'.")
        return complete_course(session, trainee, code, session.get(User, teacher.id),
                               completed_at=completed_at, title=title)


__all__ = [
    "ACKNOWLEDGE_TASK", "MATRIX_COLUMNS", "MATRIX_ROLES", "MATRIX_STATUSES", "REQUIREMENT_ROLES", "TRAINING_PROCESS",
    "Assignment", "MatrixCell", "TrainingKind", "add_requirement", "assign_course", "assign_for_effective_version",
    "assign_for_role", "complete_course", "complete_training", "effective_versions", "matrix_table",
    "may_manage_requirements", "may_read_matrix", "missing_trainings", "record_course_completion", "release_for_role",
    "require_training", "required_codes_for_roles", "requirements", "training_matrix", "user_assignments",
    "withdraw_requirement", "withdraw_training",
]
