"""Task page: the form, the record's context, the signing step (URS-PLT-03, URS-SIG-01, URS-SIG-02).

Whether the user may complete the task is the engine's answer (`why_not`); a user who may
not sees the reason instead of the form. Completing, validating and signing are one call to
`Runtime.complete_task`; a wrong password changes nothing.
"""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, logout_user
from sqlalchemy import select

from engine.attachments import may_attach
from engine.exceptions import AccountLocked, Conflict, Forbidden, ValidationFailed, WrongPassword
from engine.permissions import why_not
from models import Signature, TaskStatus
from webapp.forms_render import initial_raw, parse_form

from .common import call, db, me, rt, user_tz
from .errors import error_page
from .records import record_context

bp = Blueprint("tasks", __name__, url_prefix="/tasks")

EMPTY_FORM = {"type": "object", "properties": {}}


def _load(task_id: str):
    session = db()
    task = rt().get_task(session, current_user, task_id)  # NotFound -> 404 page
    schema = rt().forms.schema(task.form) if task.form else EMPTY_FORM
    ui = rt().forms.ui_schema(task.ui_form) if task.form else {}
    return session, task, schema, ui


def _render(task, schema, ui, *, step="form", raw=None, errors=None, data=None, refusal=None, sign_error=None,
            status=200):
    session = db()
    context = record_context(session, task.record, current_task=task)
    attach_refusal = may_attach(rt(), session, me(), task.record, task) if task.status == TaskStatus.OPEN else True
    signature = None
    if task.status == TaskStatus.COMPLETED and task.signature_meaning:
        signature = session.scalar(select(Signature).where(Signature.task_id == task.id))
    g.page_title = f"{task.name} · {task.record.number}"
    return render_template(
        "tasks/task.html", task=task, record=task.record, schema=schema, ui=ui, step=step,
        raw=raw if raw is not None else initial_raw(schema), errors=errors or [], data=data or {},
        refusal=refusal, sign_error=sign_error, may_attach_here=attach_refusal is None, signature=signature,
        signature_valid=_signature_valid(session, task, signature), tz=user_tz(), **context), status


def _signature_valid(session, task, signature) -> bool | None:
    if signature is None:
        return None
    return next((ok for sig, ok in rt().signatures(session, task.record) if sig.id == signature.id), None)


@bp.route("/<task_id>")
@login_required
def show(task_id: str):
    """The task: its form, or why the user may not complete it, or (when done) who completed it."""
    session, task, schema, ui = _load(task_id)
    if task.status != TaskStatus.OPEN:
        return _render(task, schema, ui, step="done", data=task.submitted_data or {})
    refusal = why_not(session, me(), task)
    if refusal is not None:
        return _render(task, schema, ui, step="refused", refusal=refusal, status=403)
    return _render(task, schema, ui)


@bp.route("/<task_id>", methods=["POST"])
@login_required
def submit(task_id: str):
    """Form actions: add/remove a row, review (signed tasks), sign, or complete."""
    session, task, schema, ui = _load(task_id)
    if task.status != TaskStatus.OPEN:
        return _conflict(task)
    refusal = why_not(session, me(), task)
    if refusal is not None:
        return _render(task, schema, ui, step="refused", refusal=refusal, status=403)
    parsed = parse_form(schema, request.form, user_tz())
    action = parsed.action or "submit"
    if action.startswith(("add:", "remove:")) or action == "edit":
        return _render(task, schema, ui, raw=parsed.raw)
    meaning = task.signature_meaning
    if meaning and action != "sign":
        # Signing step 1: check the form, then show exactly what will be signed and with what meaning.
        # The step is tried (and rolled back) first, so that what only the process can refuse is
        # said now, before the person types their password.
        try:
            call(rt().check_completion, task_id, current_user, parsed.data)
        except (ValidationFailed, Conflict, Forbidden) as exc:
            return _refused(task_id, parsed, exc)
        _, task, schema, ui = _load(task_id)
        return _render(task, schema, ui, step="sign", raw=parsed.raw, data=parsed.data)
    signature = None
    if meaning:
        signature = {"password": request.form.get("signature_password") or "", "meaning": meaning}
    task_name, record_number = task.name, task.record.number
    try:
        call(rt().complete_task, task_id, current_user, parsed.data, signature=signature)
    except WrongPassword as exc:
        return _rerender_sign(task_id, parsed, exc.message, 401)
    except AccountLocked as exc:
        logout_user()
        session_clear()
        return render_template("auth/login.html", error=exc.message, username="", next=None), 423
    except ValidationFailed as exc:
        sign_errors = [e for e in exc.errors if str(e.get("path", "")).startswith("signature.")]
        if meaning and sign_errors and len(sign_errors) == len(exc.errors):
            return _rerender_sign(task_id, parsed, " ".join(e["message"] for e in sign_errors), 400)
        return _refused(task_id, parsed, exc)
    except (Conflict, Forbidden) as exc:
        return _refused(task_id, parsed, exc)
    if meaning:
        flash(f"Signed ({meaning}) and completed: {task_name} of {record_number}.", "success")
        return redirect(url_for("tasks.show", task_id=task_id))
    flash(f"Completed: {task_name} of {record_number}.", "success")
    return redirect(url_for("records.show", number=record_number))


def _refused(task_id, parsed, exc):
    """The page for a refusal of the runtime, read afresh: field errors with the form as typed,
    the conflict page, or the reason the person may not complete the task."""
    _, task, schema, ui = _load(task_id)
    if isinstance(exc, Conflict):
        return _conflict(task)
    if isinstance(exc, Forbidden):
        return _render(task, schema, ui, step="refused", refusal=exc, status=403)
    return _render(task, schema, ui, raw=parsed.raw, errors=exc.errors, status=400)


def _rerender_sign(task_id, parsed, message, status):
    _, task, schema, ui = _load(task_id)
    return _render(task, schema, ui, step="sign", raw=parsed.raw, data=parsed.data, sign_error=message,
                   status=status)


def _conflict(task):
    return error_page(409, "Someone else completed this task a moment ago, or it is no longer open. "
                           "Nothing you entered was saved.", record=task.record, code="conflict")


def session_clear():
    session.clear()
