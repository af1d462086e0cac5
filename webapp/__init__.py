"""The Flask application: web pages and the REST API, both thin doors onto engine.Runtime."""
from __future__ import annotations

import os

from flask import Flask

from engine.runtime import Runtime
from engine.settings import Settings

# Content Security Policy: scripts only from this site (no inline script, no eval), styles only
# from our own files, images and fonts from here or data: URLs (bpmn-js draws its icons so).
CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])


def create_app(config: dict | None = None, runtime: Runtime | None = None) -> Flask:
    """Application factory: one Runtime per app; blueprints registered here."""
    app = Flask(__name__, instance_relative_config=False)
    app.config.update(
        SECRET_KEY=os.environ.get("CELLQMS_SECRET_KEY") or os.urandom(32),
        MAX_CONTENT_LENGTH=int(os.environ.get("CELLQMS_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)),
        SESSION_COOKIE_NAME="cellqms_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=os.environ.get("CELLQMS_INSECURE_COOKIES") != "1",
        SESSION_PERMANENT=False,  # the browser forgets the session when it closes; the idle timeout does the rest
        REMEMBER_COOKIE_DURATION=0,
        JSON_SORT_KEYS=False,
        # Annex 11 §12 / URS-SEC-04: an idle session ends after this many minutes.
        IDLE_MINUTES=float(os.environ.get("CELLQMS_IDLE_MINUTES") or 15),
        WTF_CSRF_TIME_LIMIT=None,  # a form stays valid as long as the session (the idle timeout ends both)
        WTF_CSRF_SSL_STRICT=True,
        CONTENT_SECURITY_POLICY=CSP,
    )
    if config:
        app.config.update(config)
    if runtime is None:
        settings = Settings()
        if app.config.get("DATABASE_URL"):
            settings.database_url = app.config["DATABASE_URL"]
        runtime = Runtime(settings)
    app.extensions["cellqms_runtime"] = runtime

    from .api import api_blueprint

    app.register_blueprint(api_blueprint)
    _init_ui(app, api_blueprint)
    return app


def _init_ui(app: Flask, api_blueprint) -> None:
    """The web pages: log-in, CSRF, security headers, error pages, and the page blueprints."""
    from flask_wtf.csrf import CSRFProtect

    from . import auth
    from .pages import admin, common, documents, errors, inbox, records, tasks, training

    csrf = CSRFProtect(app)
    csrf.exempt(api_blueprint)  # the API authenticates every call with a bearer token, not a cookie
    auth.init_login(app)
    for blueprint in (auth.bp, inbox.bp, records.bp, tasks.bp, admin.bp, training.bp, documents.bp):
        app.register_blueprint(blueprint)
    common.init_app(app)
    errors.init_app(app)


def get_runtime(app: Flask | None = None) -> Runtime:
    from flask import current_app

    return (app or current_app).extensions["cellqms_runtime"]
