"""Corrections of data after submission, with a reason for change (Part 11 §11.10(e), Annex 11 §9, ALCOA+).

A completed step's data (a task's submission, or the start form of a record) may be
corrected by the roles the diagram names in the step's ``correctableBy`` property (a
comma-separated list of roles), by QA when the diagram names none. The old and new value
of every changed field and the reason go into the audit trail, in the same unit of work
as the change of the record's data and of the task's submitted data. Signatures over the
changed data then no longer verify and show as invalidated (URS-SIG-03): nothing here
touches a signature.

A correction changes the recorded data; it does not re-run the process. Decisions that the
diagram already took from the old value (a gateway, a computed due date) stay as they
were, which the page says before the user confirms.
"""
from __future__ import annotations

from dataclasses import dataclass

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Record, RecordStatus, Task, TaskStatus, User, audit_event
from models.audit import plain

from . import state as engine_state
from .exceptions import Conflict, Forbidden, NotFound, ValidationFailed
from .parser import properties
from .permissions import Refusal

DEFAULT_CORRECTORS = ("QA",)
START_STEP = "start"
MIN_REASON_LENGTH = 5


@dataclass
class Step:
    """One completed step of a record whose data may be corrected."""

    key: str                 # START_STEP or the task id
    name: str
    form: str | None
    ui_form: str | None
    data: dict               # the data submitted in this step, as it is now
    correctors: tuple[str, ...]
    task: Task | None = None


def _split_roles(value: str | None) -> tuple[str, ...]:
    roles = tuple(r.strip() for r in (value or "").split(",") if r.strip())
    return roles or DEFAULT_CORRECTORS


def step_of(runtime, session: Session, record: Record, step_key: str) -> Step:
    """The start step or a task of the record, with its form, its current data and who may correct it."""
    info = runtime.spec_info(record.process_version)
    if step_key == START_STEP:
        form = info.start_properties.get("formJsonSchemaFilename")
        fields = list((runtime.forms.schema(form).get("properties") or {}).keys()) if form else []
        data = {k: record.data[k] for k in fields if k in (record.data or {})}
        return Step(START_STEP, "Start form", form, info.start_properties.get("formUiSchemaFilename"), data,
                    _split_roles(info.start_properties.get("correctableBy")))
    task = session.get(Task, str(step_key))
    if task is None or task.record_id != record.id:
        raise NotFound(f"Record {record.number} has no step '{step_key}'.")
    spec = info.spec.task_specs.get(task.bpmn_id)
    return Step(task.id, task.name, task.form, task.ui_form, dict(task.submitted_data or {}),
                _split_roles(properties(spec).get("correctableBy")), task)


def why_not_correct(session: Session, user: User, record: Record, step: Step) -> Refusal | None:
    """Why the user may not correct this step, or None if they may."""
    user = session.get(User, user.id)
    if not user.active:
        return Refusal("inactive", "Your account is deactivated.")
    if record.status == RecordStatus.CANCELLED:
        return Refusal("record_cancelled", f"Record {record.number} is cancelled; its data is frozen.")
    if step.task is not None and step.task.status != TaskStatus.COMPLETED:
        return Refusal("not_completed", "Only a completed step can be corrected; this one is "
                                        f"{step.task.status.value}.")
    if not step.form:
        return Refusal("no_form", "This step has no form data to correct.")
    if not (user.role_names & set(step.correctors)):
        return Refusal("not_in_role", "Corrections of this step are for the role(s) "
                                      f"{', '.join(step.correctors)}, which you do not hold.")
    return None


def correctable_steps(runtime, session: Session, user: User, record: Record, tasks: list[Task]) -> set[str]:
    """The keys of the steps of this record that the user may correct (for links on the record page)."""
    out = set()
    info = runtime.spec_info(record.process_version)
    roles = session.get(User, user.id).role_names
    if record.status == RecordStatus.CANCELLED or not user.active:
        return out
    start_form = info.start_properties.get("formJsonSchemaFilename")
    if start_form and roles & set(_split_roles(info.start_properties.get("correctableBy"))):
        out.add(START_STEP)
    for task in tasks:
        if task.status != TaskStatus.COMPLETED or not task.form:
            continue
        spec = info.spec.task_specs.get(task.bpmn_id)
        if roles & set(_split_roles(properties(spec).get("correctableBy"))):
            out.add(task.id)
    return out


def correct(runtime, user: User, record_ref: str, step_key: str, data: dict, reason: str,
            expected_version: int | None = None) -> Record:
    """Replace a completed step's data with `data` (validated against its form), giving `reason`.

    Raises ValidationFailed (bad data, no change, no reason), Forbidden (role), NotFound,
    Conflict (the record changed since `expected_version` was read).
    """
    reason = (reason or "").strip()
    data = dict(data or {})
    if len(reason) < MIN_REASON_LENGTH:
        raise ValidationFailed([{"path": "reason", "message":
                                 "Give the reason for the change (at least a few words)."}])
    with runtime.db.unit_of_work(user, reason=reason) as session:
        record = runtime.get_record(session, user, record_ref)
        session.refresh(record, with_for_update={"of": Record})
        if expected_version is not None and record.version != expected_version:
            raise Conflict("Someone else changed this record a moment ago; reload it and check your correction.")
        step = step_of(runtime, session, record, step_key)
        refusal = why_not_correct(session, user, record, step)
        if refusal is not None:
            raise Forbidden(refusal.message, code=refusal.code)
        # "Not before today" means the day the step was submitted: a correction does not re-judge it.
        submitted = step.task.completed_at if step.task is not None else record.created_at
        errors = runtime.forms.errors(step.form, data, today=submitted.date() if submitted else None)
        if errors:
            raise ValidationFailed(errors)
        changed = sorted(k for k in set(step.data) | set(data) if plain(step.data.get(k)) != plain(data.get(k)))
        if not changed:
            raise ValidationFailed([{"path": "", "message": "Nothing was changed: there is nothing to correct."}])
        label = "start" if step.task is None else step.task.bpmn_id
        for key in changed:
            audit_event(session, "data_corrected", record_id=record.id, entity="tasks" if step.task else "records",
                        entity_id=step.task.id if step.task else record.id, field=f"{label}.{key}",
                        old=step.data.get(key), new=data.get(key), reason=reason)
        if step.task is not None:
            step.task.submitted_data = dict(data)
        current = _keys_from_this_step(session, record, step, changed)
        if current:
            new_data = dict(record.data or {})
            for key in current:
                if key in data:
                    new_data[key] = data[key]
                else:
                    new_data.pop(key, None)
            record.data = new_data
            if "title" in current and step.task is None:
                record.title = str(data.get("title") or "")[:300]
            if record.status == RecordStatus.OPEN:
                _correct_engine_data(runtime, session, record, {k: data.get(k) for k in current},
                                     removed=[k for k in current if k not in data])
        session.flush()
        return record


def _keys_from_this_step(session: Session, record: Record, step: Step, changed: list[str]) -> list[str]:
    """The changed keys whose value in the record's data still comes from this step.

    A later step that submitted the same field (a reworked investigation) owns the current
    value; correcting the earlier submission corrects history, not the current data.
    """
    later = select(Task).where(Task.record_id == record.id, Task.status == TaskStatus.COMPLETED)
    if step.task is not None:
        later = later.where(Task.completed_at > step.task.completed_at, Task.id != step.task.id)
    owned = set(changed)
    for task in session.scalars(later):
        owned -= set(task.submitted_data or {})
    return sorted(owned)


def _correct_engine_data(runtime, session: Session, record: Record, values: dict, removed: list[str]) -> None:
    """Carry the corrected values into the running workflow, so the next step does not bring back the old ones."""
    live = runtime._live(session, record)
    for task in live.workflow.get_tasks(state=TaskState.NOT_FINISHED_MASK):
        touched = False
        for key, value in values.items():
            if key in task.data:
                if key in removed:
                    task.data.pop(key, None)
                else:
                    task.data[key] = value
                touched = True
        if touched:
            live.saved.pop(task.id, None)  # make the incremental store rewrite this task
    engine_state.save(session, record, live)
    runtime._after_commit(session, record, live)
