"""The Flask application: web pages and the REST API, both thin doors onto engine.Runtime."""
from __future__ import annotations

import os

from flask import Flask

from engine.runtime import Runtime
from engine.settings import Settings


def create_app(config: dict | None = None, runtime: Runtime | None = None) -> Flask:
    """Application factory: one Runtime per app; blueprints registered here."""
    app = Flask(__name__, instance_relative_config=False)
    app.config.update(
        SECRET_KEY=os.environ.get("CELLQMS_SECRET_KEY") or os.urandom(32),
        MAX_CONTENT_LENGTH=int(os.environ.get("CELLQMS_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=os.environ.get("CELLQMS_INSECURE_COOKIES") != "1",
        JSON_SORT_KEYS=False,
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
    return app


def get_runtime(app: Flask | None = None) -> Runtime:
    from flask import current_app

    return (app or current_app).extensions["cellqms_runtime"]
