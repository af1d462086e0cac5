"""Log-in, log-out, idle timeout and the forced password change (URS-SEC-01, URS-SEC-04; Part 11 §11.300).

The checks themselves (password, lock-out, counting and auditing failures) are the
engine's; this module keeps the browser session: who is signed in, since when idle, and
whether they must change their password before anything else.
"""
from __future__ import annotations

import hashlib
import time

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user

from engine.exceptions import AccountLocked, NotAuthenticated, ValidationFailed
from models import User

from .pages.common import call, is_htmx, rt, safe_next

bp = Blueprint("auth", __name__)

# Endpoints a user who must change their password may still reach.
_PASSWORD_CHANGE_ALLOWED = {"auth.change_password", "auth.logout", "auth.expired", "auth.login", "static"}


class WebUser(UserMixin):
    """The signed-in person, as the pages and the engine's functions need them (a detached snapshot)."""

    def __init__(self, user: User):
        self.id = user.id
        self.username = user.username
        self.full_name = user.full_name
        self.timezone = user.timezone or "UTC"
        self.must_change_password = bool(user.must_change_password)
        self.active = bool(user.active)
        self.role_names = frozenset(r.name for r in user.roles)
        self._stamp = session_stamp(user)

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        return f"{self.id}:{self._stamp}"

    @property
    def is_admin(self) -> bool:
        return "Admin" in self.role_names


def session_stamp(user: User) -> str:
    """Changes whenever the password changes, so a reset ends every session of the account."""
    return hashlib.sha256(f"{user.password_hash}|{user.id}".encode()).hexdigest()[:20]


def _load_user(user_id: str) -> WebUser | None:
    try:
        ident, stamp = user_id.split(":", 1)
        ident = int(ident)
    except ValueError:
        return None
    with rt().db.sessionmaker() as s:
        user = s.get(User, ident)
        if user is None or not user.active or session_stamp(user) != stamp:
            return None
        return WebUser(user)


def init_login(app) -> None:
    manager = LoginManager(app)
    manager.session_protection = "strong"
    manager.login_view = "auth.login"
    manager.login_message = "Please log in to see this page."
    manager.login_message_category = "info"
    manager.user_loader(_load_user)

    @manager.unauthorized_handler
    def _unauthorized():
        target = url_for("auth.login", next=request.full_path if request.method == "GET" else None)
        if is_htmx():
            resp = current_app.response_class(status=401)
            resp.headers["HX-Redirect"] = target
            return resp
        return redirect(target)

    app.before_request(_idle_and_password_check)


def _idle_and_password_check():
    """End idle sessions (URS-SEC-04) and send users with a temporary password to change it."""
    if request.endpoint == "static" or request.blueprint == "api":
        return None
    if not current_user.is_authenticated:
        return None
    now = time.time()
    last = session.get("last_seen")
    idle = current_app.config["IDLE_MINUTES"] * 60
    if last is not None and now - float(last) > idle:
        logout_user()
        session.clear()
        target = url_for("auth.expired")
        if is_htmx():
            resp = current_app.response_class(status=401)
            resp.headers["HX-Redirect"] = target
            return resp
        return redirect(target)
    session["last_seen"] = now
    if current_user.must_change_password and request.endpoint not in _PASSWORD_CHANGE_ALLOWED:
        return redirect(url_for("auth.change_password"))
    return None


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log-in page; failures say nothing about whether the username exists."""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("inbox.index"))
    error = None
    status = 200
    username = ""
    if request.method == "POST":
        username = (request.form.get("username") or "").strip()
        password = request.form.get("password") or ""
        try:
            user = call(rt().authenticate, username, password, "login")
        except AccountLocked as exc:
            error, status = exc.message, 423
        except NotAuthenticated:
            error, status = "The username or password is not correct.", 401
        else:
            session.clear()
            login_user(_fresh(user.id))
            session["last_seen"] = time.time()
            if user.must_change_password:
                flash("Your password was set by an administrator: choose your own password now.", "info")
                return redirect(url_for("auth.change_password"))
            return redirect(safe_next(request.args.get("next")) or url_for("inbox.index"))
    return render_template("auth/login.html", error=error, username=username,
                           next=safe_next(request.args.get("next"))), status


def _fresh(user_id: int) -> WebUser:
    with rt().db.sessionmaker() as s:
        return WebUser(s.get(User, user_id))


@bp.route("/logout", methods=["POST"])
def logout():
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/session-expired")
def expired():
    """Shown after the idle timeout ended the session."""
    return render_template("auth/expired.html", minutes=current_app.config["IDLE_MINUTES"]), 401


@bp.route("/timezone", methods=["POST"])
@login_required
def set_own_timezone():
    """Choose the time zone one's pages show times in (stored times stay UTC)."""
    zone = request.form.get("timezone") or ""
    try:
        call(rt().set_timezone, current_user, current_user.username, zone)
    except ValidationFailed as exc:
        flash(" ".join(e["message"] for e in exc.errors), "error")
        return redirect(url_for("auth.change_password")), 303
    flash(f"Times are now shown in {zone.strip()}.", "success")
    return redirect(url_for("auth.change_password")), 303


@bp.route("/password", methods=["GET", "POST"])
@login_required
def change_password():
    """Change one's own password; forced after an administrator set or reset it."""
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        current = request.form.get("current_password") or ""
        new = request.form.get("new_password") or ""
        confirm = request.form.get("confirm_password") or ""
        if new != confirm:
            errors["confirm_password"] = "The two new passwords are not the same."
        else:
            try:
                call(rt().authenticate, current_user.username, current, "password_change")
            except AccountLocked as exc:
                logout_user()
                session.clear()
                return render_template("auth/login.html", error=exc.message, username="", next=None), 423
            except NotAuthenticated:
                errors["current_password"] = "The current password is not correct."
            else:
                try:
                    call(rt().set_password, current_user, current_user.username, new, must_change=False)
                except ValidationFailed as exc:
                    errors["new_password"] = " ".join(e["message"] for e in exc.errors)
                else:
                    login_user(_fresh(current_user.id))  # the session stamp changed with the password
                    session["last_seen"] = time.time()
                    flash("Your password was changed.", "success")
                    return redirect(url_for("inbox.index"))
        status = 400
    g.page_title = "Change your password"
    return render_template("auth/password.html", errors=errors), status
