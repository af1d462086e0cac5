"""What every page shares: the runtime, one read session per request, the signed-in user,
time shown in the user's zone, security headers and the navigation's inbox count.

Pages read through this request's session and write only through engine functions (each its
own unit of work). Before a write, the read session is closed (:func:`call`): on SQLite every
transaction takes the write lock, so a read left open would make the write wait for itself.
"""
from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import Flask, current_app, g, request, url_for
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy.orm import Session

from engine.attachments import human_size
from models import User, utcnow
from webapp.forms_render import error_summary, format_datetime, hidden_fields, render_data, render_form

DUE_SOON = dt.timedelta(days=2)


def rt():
    """The Runtime of this app."""
    from webapp import get_runtime

    return get_runtime()


def db() -> Session:
    """This request's read session (opened on first use, closed at the end of the request)."""
    session = g.get("_cq_session")
    if session is None:
        session = g._cq_session = rt().db.sessionmaker()
    return session


def release_db() -> None:
    """Close this request's read session (its loaded objects stay readable)."""
    session = g.pop("_cq_session", None)
    if session is not None:
        session.close()


def call(fn, *args, **kwargs):
    """Call an engine function that writes, with no read transaction of ours left open."""
    release_db()
    return fn(*args, **kwargs)


def me() -> User:
    """The signed-in user as a row of this request's session (for the engine's permission questions)."""
    user = db().get(User, current_user.id)
    _ = user.roles
    return user


def user_tz() -> str:
    if current_user and current_user.is_authenticated:
        return current_user.timezone or "UTC"
    return "UTC"


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def safe_next(target: str | None) -> str | None:
    """A redirect target only if it is a path on this site (no open redirect)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


# ----------------------------------------------------------------------------- template helpers

def localtime(value, seconds: bool = False) -> Markup:
    """A UTC date-time as <time> in the user's zone, with the UTC value in its title (URS-OPS-03)."""
    if value is None:
        return Markup('<span class="empty">—</span>')
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return Markup("{}").format(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    utc = value.astimezone(dt.timezone.utc)
    return Markup('<time datetime="{}" title="{} UTC">{}</time>').format(
        utc.isoformat(timespec="seconds"), utc.strftime("%Y-%m-%d %H:%M:%S"),
        format_datetime(value, user_tz(), seconds=seconds))


def age(value) -> str:
    """How long ago: '3 d', '5 h', '12 min'."""
    if value is None:
        return ""
    seconds = max(0, int((utcnow() - value).total_seconds()))
    if seconds >= 86400:
        return f"{seconds // 86400} d"
    if seconds >= 3600:
        return f"{seconds // 3600} h"
    return f"{max(1, seconds // 60)} min"


def due_state(value) -> str | None:
    """'overdue', 'due-soon' or None for a due date."""
    if value is None:
        return None
    now = utcnow()
    if value < now:
        return "overdue"
    if value - now < DUE_SOON:
        return "due-soon"
    return None


def compact_json(value) -> str:
    """An audit value as short readable text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def init_app(app: Flask) -> None:
    """Filters, globals, the per-request session's end and the security headers."""
    app.jinja_env.filters.update(localtime=localtime, age=age, due_state=due_state, compact_json=compact_json,
                                 human_size=human_size)
    app.jinja_env.globals.update(inbox_count=_inbox_count, user_tz=user_tz,
                                 now_utc=lambda: utcnow().strftime("%Y-%m-%d %H:%M:%S"),
                                 render_form=render_form, render_data=render_data, error_summary=error_summary,
                                 hidden_fields=hidden_fields, now=utcnow)
    app.jinja_env.autoescape = True

    @app.teardown_request
    def _close_session(_exc=None):
        release_db()

    @app.after_request
    def _security_headers(response):
        h = response.headers
        h.setdefault("Content-Security-Policy", current_app.config["CONTENT_SECURITY_POLICY"])
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        h.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
        if request.is_secure:
            h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.endpoint != "static":
            # GxP data must not linger in shared browser caches.
            h.setdefault("Cache-Control", "no-store")
        if request.headers.get("HX-Request"):
            h.add("Vary", "HX-Request")
        return response

    @app.context_processor
    def _nav():
        return {"nav_active": (request.blueprint or ""), "zone_names": zone_names}


def _inbox_count() -> int:
    """The number of open tasks the signed-in user may complete (shown in the navigation)."""
    if not (current_user and current_user.is_authenticated):
        return 0
    cached = g.get("_cq_inbox_count")
    if cached is None:
        cached = g._cq_inbox_count = len(rt().open_tasks(db(), current_user))
    return cached


def record_url(record) -> str:
    return url_for("records.show", number=record.number)


def zone_names() -> list[str]:
    import zoneinfo

    return sorted(zoneinfo.available_timezones())


def valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
        return True
    except Exception:  # noqa: BLE001
        return False
