"""Inbox: the open tasks the signed-in user may complete (URS-PLT-02, URS-REP-04)."""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, g, render_template, request
from flask_login import current_user, login_required

from .common import db, is_htmx, rt

bp = Blueprint("inbox", __name__)

_FAR = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
SORT_KEYS = {
    "due": lambda t: (t.due_at is None, t.due_at or _FAR, t.created_at),
    "age": lambda t: t.created_at,
    "number": lambda t: t.record.number,
    "title": lambda t: (t.record.title or "").lower(),
    "task": lambda t: t.name.lower(),
}
COLUMNS = [("number", "Record"), ("title", "Title"), ("task", "Task"), ("age", "Waiting"), ("due", "Due")]


@bp.route("/")
@login_required
def index():
    """Open tasks, sortable by due date (default), age, record number, title or task name."""
    sort = request.args.get("sort", "due")
    if sort not in SORT_KEYS:
        sort = "due"
    direction = "desc" if request.args.get("dir") == "desc" else "asc"
    tasks = rt().open_tasks(db(), current_user)
    g._cq_inbox_count = len(tasks)
    # Oldest first is the useful reading of "age" ascending: longest waiting on top.
    reverse = (direction == "desc") != (sort == "age")
    tasks = sorted(tasks, key=SORT_KEYS[sort], reverse=reverse)
    context = {"tasks": tasks, "sort": sort, "direction": direction, "columns": COLUMNS}
    if is_htmx():
        return render_template("inbox/_table.html", **context)
    return render_template("inbox/index.html", **context)
