"""Administration (role Admin): users and roles, and a read-only view of the diagram versions.

Accounts are deactivated, never deleted, and user names are never reused (URS-SEC-05); the
engine enforces that and audits every change. A password set or reset here is temporary:
the user must choose their own at the next log-in.
"""
from __future__ import annotations

from functools import wraps

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from engine import runtime as engine_runtime
from engine.exceptions import Conflict, NotFound, ValidationFailed

from . import queries
from .common import call, db, rt
from .errors import error_page

bp = Blueprint("admin", __name__, url_prefix="/admin")

ADMIN_ROLE = engine_runtime.ADMIN_ROLE
# Roles offered on the user form besides those already in the database and the diagrams' lanes.
BASE_ROLES = ("Admin", "Auditor", "Initiator", "Investigator", "Process Owner", "QA", "QA Head")


def admin_required(view):
    """Only holders of the Admin role reach these pages (URS-SEC-02, URS-SEC-05)."""

    @wraps(view)
    @login_required
    def wrapper(*args, **kwargs):
        if ADMIN_ROLE not in current_user.role_names:
            return error_page(403, "Administration is for the role 'Admin', which you do not hold.",
                              code="not_in_role")
        return view(*args, **kwargs)

    return wrapper


def base_role() -> str | None:
    """The role the engine gives every account (shown checked and fixed on the forms)."""
    return getattr(engine_runtime, "BASE_ROLE", None)


bp.add_app_template_global(base_role, "base_role")


def _known_roles() -> list[str]:
    session = db()
    names = set(BASE_ROLES) | set(queries.role_names(session)) | ({base_role()} - {None})
    for version in rt().released_versions(session):
        names |= rt().spec_info(version).roles
    return sorted(names)


@bp.route("/")
@admin_required
def home():
    return redirect(url_for("admin.users"))


@bp.route("/users")
@admin_required
def users():
    g.page_title = "Users"
    return render_template("admin/users.html", users=queries.all_users(db()))


@bp.route("/users/new", methods=["GET", "POST"])
@admin_required
def new_user():
    """Create an account with a temporary password and roles."""
    errors: dict[str, str] = {}
    form = request.form
    status = 200
    if request.method == "POST":
        username = (form.get("username") or "").strip()
        full_name = (form.get("full_name") or "").strip()
        roles = form.getlist("roles")
        if not full_name:
            errors["full_name"] = "Enter the person's full name (it is printed with their signatures)."
        else:
            try:
                call(rt().add_user, current_user, username, full_name, form.get("password") or "", roles,
                     email=(form.get("email") or "").strip() or None)
                # The password was chosen by the administrator: the person must replace it at first log-in.
                call(rt().set_password, current_user, username, form.get("password") or "", must_change=True)
            except ValidationFailed as exc:
                for e in exc.errors:
                    errors[e["path"]] = e["message"]
            except Conflict as exc:
                errors["username"] = exc.message
            else:
                flash(f"User {username} was created; they must change the password at their first log-in.",
                      "success")
                return redirect(url_for("admin.user", username=username))
        status = 400
    g.page_title = "New user"
    return render_template("admin/new_user.html", errors=errors, form=form, roles=_known_roles()), status


def _user_or_404(username: str):
    user = queries.user_by_name(db(), username)
    if user is None:
        raise NotFound(f"There is no user '{username}'.")
    return user


@bp.route("/users/<username>")
@admin_required
def user(username: str):
    g.page_title = f"User {username}"
    return render_template("admin/user.html", user=_user_or_404(username), roles=_known_roles(), errors={})


@bp.route("/users/<username>/roles", methods=["POST"])
@admin_required
def set_roles(username: str):
    _user_or_404(username)
    roles = request.form.getlist("roles")
    call(rt().set_roles, current_user, username, roles)
    flash(f"Roles of {username}: {', '.join(sorted(roles)) or 'none'}.", "success")
    return redirect(url_for("admin.user", username=username))


@bp.route("/users/<username>/timezone", methods=["POST"])
@admin_required
def set_timezone(username: str):
    _user_or_404(username)
    try:
        call(rt().set_timezone, current_user, username, request.form.get("timezone") or "")
    except ValidationFailed as exc:
        return _user_page_error(username, {"timezone": " ".join(e["message"] for e in exc.errors)})
    flash(f"Times are now shown to {username} in {request.form.get('timezone', '').strip()}.", "success")
    return redirect(url_for("admin.user", username=username))


@bp.route("/users/<username>/deactivate", methods=["POST"])
@admin_required
def deactivate(username: str):
    _user_or_404(username)
    reason = (request.form.get("reason") or "").strip()
    if not reason:
        return _user_page_error(username, {"reason": "Give the reason for deactivating the account."})
    owned = call(rt().deactivate_user, current_user, username, reason)
    flash(f"{username} was deactivated. The account and its history are kept.", "success")
    if owned:
        flash(f"{username} still owns {', '.join(owned)}. Document Control must name a new owner on each "
              "document's page; until then their periodic reviews wait.", "warning")
    return redirect(url_for("admin.user", username=username))


@bp.route("/users/<username>/password", methods=["POST"])
@admin_required
def reset_password(username: str):
    _user_or_404(username)
    password = request.form.get("password") or ""
    try:
        call(rt().set_password, current_user, username, password, must_change=True)
    except ValidationFailed as exc:
        return _user_page_error(username, {"password": " ".join(e["message"] for e in exc.errors)})
    flash(f"The password of {username} was reset; they must change it at their next log-in.", "success")
    return redirect(url_for("admin.user", username=username))


def _user_page_error(username: str, errors: dict):
    g.page_title = f"User {username}"
    return render_template("admin/user.html", user=_user_or_404(username), roles=_known_roles(),
                           errors=errors), 400


@bp.route("/processes")
@admin_required
def processes():
    """Every diagram version with its SHA-256 and status (read-only; releases go through change control)."""
    g.page_title = "Process versions"
    return render_template("admin/processes.html", versions=queries.all_versions(db()))
