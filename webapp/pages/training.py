"""Training: the matrix per role and per person, its CSV export, and each person's own training page
(URS-TRN-01, URS-TRN-02).

Everybody's status is for QA, auditors, administrators and training coordinators
(``engine.training.MATRIX_ROLES``); everyone else sees their own page, with links to their
open "read and understood" tasks. The statuses are the engine's (``training_matrix``), the
same answer the gating of tasks gives.
"""
from __future__ import annotations

import csv
import io
from collections import Counter

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from engine import training as trn
from engine.exceptions import Conflict, NotFound, ValidationFailed
from models import Document, DocumentStatus, Role, User, utcnow

from .common import call, db, is_htmx, me, rt
from .errors import error_page

bp = Blueprint("training", __name__, url_prefix="/training")

VIEWS = ("role", "user")


def _filters() -> dict:
    """The matrix filters from the query string, cleaned."""
    role = (request.args.get("role") or "").strip()
    status = request.args.get("status") or ""
    view = request.args.get("view") or "role"
    return {
        "role": role,
        "q": (request.args.get("q") or "").strip()[:100],
        "status": status if status in trn.MATRIX_STATUSES else "",
        "view": view if view in VIEWS else "role",
    }


def _cells(session, f: dict) -> list[trn.MatrixCell]:
    cells = trn.training_matrix(session, roles=[f["role"]] if f["role"] else None)
    if f["q"]:
        q = f["q"].lower()
        cells = [c for c in cells if q in c.username.lower() or q in c.full_name.lower()]
    return cells


def _forbidden():
    return error_page(403, "The training matrix is for QA, auditors, administrators and training coordinators; "
                           "your own training is on your training page.", code="not_in_role")


@bp.route("")
@login_required
def index():
    """The matrix (per role or per person, filtered); people without the right see their own page."""
    session = db()
    user = me()
    if not trn.may_read_matrix(user):
        return redirect(url_for("training.mine"))
    f = _filters()
    cells = _cells(session, f)
    counts = Counter(c.status for c in cells)
    if f["status"]:
        # Per person: only the matching trainings; per role: the people with at least one.
        flagged = {c.user_id for c in cells if c.status == f["status"]}
        shown = [c for c in cells if c.status == f["status"]] if f["view"] == "user" else \
            [c for c in cells if c.user_id in flagged]
    else:
        shown = cells
    context = {
        "f": f, "counts": counts, "total": len(cells), "statuses": trn.MATRIX_STATUSES, "labels": trn.STATUS_LABELS,
        "roles": sorted({r.role_name for r in trn.requirements(session)}),
        "by_role": _by_role(session, shown, f), "by_user": _by_user(shown),
        "query_args": {k: v for k, v in f.items() if v and k != "view"},  # the export has no views
        "may_manage": trn.may_manage_requirements(user),
    }
    g.page_title = "Training matrix"
    if is_htmx():
        return render_template("training/_matrix.html", **context)
    return render_template("training/index.html", **context)


def _by_role(session, cells: list[trn.MatrixCell], f: dict) -> list[dict]:
    """One grid per role: its people (rows) × its required trainings (columns)."""
    reqs = trn.requirements(session, f["role"] or None)
    cell_of = {(c.user_id, c.code): c for c in cells}
    out = []
    for role in sorted({r.role_name for r in reqs}):
        columns = [r for r in reqs if r.role_name == role]
        people = {}
        for c in cells:
            if role in c.roles:
                people.setdefault(c.user_id, c)
        rows = [{"person": p, "cells": [cell_of.get((uid, r.code)) for r in columns]} for uid, p in people.items()]
        out.append({"role": role, "columns": columns, "rows": rows})
    return out


def _by_user(cells: list[trn.MatrixCell]) -> list[dict]:
    people: dict[int, dict] = {}
    for c in cells:
        people.setdefault(c.user_id, {"person": c, "cells": []})["cells"].append(c)
    return list(people.values())


@bp.route("/matrix.csv")
@login_required
def matrix_csv():
    """The matrix as CSV (filtered like the page; one line per person and required training)."""
    if not trn.may_read_matrix(me()):
        return _forbidden()
    f = _filters()
    cells = _cells(db(), f)
    if f["status"]:
        cells = [c for c in cells if c.status == f["status"]]
    out = io.StringIO()
    writer = csv.writer(out)
    for row in trn.matrix_table(cells):
        writer.writerow([_csv_safe(v) for v in row])
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=training-matrix-{stamp}.csv"})


def _csv_safe(text: str) -> str:
    """Neutralise spreadsheet formulas in exported text (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@bp.route("/me")
@login_required
def mine():
    """The signed-in person's trainings: what is due (with the task to sign), and the history."""
    return _person_page(me(), own=True)


@bp.route("/users/<username>")
@login_required
def person(username: str):
    """One person's training page (for matrix readers, or the person themselves)."""
    session = db()
    viewer = me()
    if username != viewer.username and not trn.may_read_matrix(viewer):
        return _forbidden()
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        return error_page(404, f"There is no user '{username}'.")
    return _person_page(user, own=user.id == viewer.id)


def _person_page(user: User, own: bool):
    session = db()
    cells = trn.training_matrix(session, users=[user.username])
    assignments = trn.user_assignments(session, user)
    g.page_title = "My training" if own else f"Training of {user.full_name}"
    return render_template("training/person.html", person=user, own=own, cells=cells, assignments=assignments,
                           labels=trn.STATUS_LABELS, may_read_matrix=trn.may_read_matrix(me()))


# ----------------------------------------------------------------------------- requirements (curricula)

@bp.route("/requirements", methods=["GET", "POST"])
@login_required
def requirements():
    """What each role must be trained on: add a requirement (assigned at once to the role's holders)."""
    if not trn.may_manage_requirements(me()):
        return error_page(403, "Training requirements are set by QA and training coordinators.", code="not_in_role")
    form, errors, status = {"kind": "document", "due_days": "14"}, {}, 200
    if request.method == "POST":
        form = {k: (request.form.get(k) or "").strip() for k in ("role", "kind", "code", "title", "due_days")}
        due_days = int(form["due_days"]) if form["due_days"].isdigit() else -1
        try:
            call(trn.require_training, rt(), current_user, form["role"], code=form["code"], kind=form["kind"],
                 title=form["title"], due_days=due_days)
        except ValidationFailed as exc:
            errors, status = {e["path"]: e["message"] for e in exc.errors}, 400
        except Conflict as exc:
            errors, status = {"code": exc.message}, 409
        else:
            flash(f"{form['role']} now requires {form['code']}; the role's current holders have it assigned.",
                  "success")
            return redirect(url_for("training.requirements"))
    return _requirements_page(form, errors, status)


@bp.route("/requirements/withdraw", methods=["POST"])
@login_required
def withdraw_requirement():
    """Withdraw a requirement with a reason; assignments nobody needs any more are cancelled."""
    if not trn.may_manage_requirements(me()):
        return error_page(403, "Training requirements are set by QA and training coordinators.", code="not_in_role")
    role, code = request.form.get("role") or "", request.form.get("code") or ""
    reason = (request.form.get("reason") or "").strip()
    try:
        cancelled = call(trn.withdraw_training, rt(), current_user, role, code, reason)
    except ValidationFailed as exc:
        flash(f"{code} for {role}: " + " ".join(e["message"] for e in exc.errors), "error")
    except NotFound as exc:
        flash(exc.message, "error")
    else:
        flash(f"{role} no longer requires {code}; {cancelled} open assignment(s) cancelled. The reason is in the "
              "audit trail.", "success")
    return redirect(url_for("training.requirements"))


def _requirements_page(form: dict, errors: dict, status: int):
    session = db()
    g.page_title = "Training requirements"
    return render_template(
        "training/requirements.html", rows=trn.requirements(session), form=form, errors=errors,
        roles=session.scalars(select(Role.name).order_by(Role.name)).all(),
        documents=session.execute(select(Document.number, Document.title).where(
            Document.status == DocumentStatus.ACTIVE).order_by(Document.number)).all()), status
