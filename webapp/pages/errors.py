"""Friendly error pages for people (403, 404, 409, 413, 500 ...); never a stack trace.

The REST API answers its own errors as JSON (webapp/api/errors.py); these handlers leave
requests under /api/ to it.
"""
from __future__ import annotations

from flask import current_app, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from engine.exceptions import CellqmsError

TITLES = {
    400: "The request could not be handled",
    401: "Please log in",
    403: "You may not do this",
    404: "Not found",
    405: "Not allowed here",
    409: "Someone else was quicker",
    413: "The file is too large",
    415: "This type of file is not accepted",
    422: "The process refused this step",
    423: "Account locked",
    500: "Something went wrong",
}


def _is_api() -> bool:
    return request.blueprint == "api" or request.path.startswith("/api/")


def error_page(status: int, message: str | None = None, *, record=None, code: str | None = None):
    """Render the error page for `status` with a sentence for the person."""
    return render_template("errors/error.html", status=status, title=TITLES.get(status, "Error"),
                           message=message, record=record, code=code), status


def init_app(app) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        return error_page(400, "The form could not be accepted because its security token is missing or "
                               "expired (this protects you against forged requests). Go back, reload the "
                               "page and send the form again.", code="csrf")

    @app.errorhandler(CellqmsError)
    def _engine_error(exc: CellqmsError):
        if _is_api():
            raise exc
        return error_page(exc.status if exc.status in TITLES else 400, exc.message, code=exc.code)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if _is_api():
            return exc
        status = exc.code or 500
        message = None
        if status == 413:
            limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
            message = (f"The upload is larger than this site accepts ({limit // (1024 * 1024)} MB per request). "
                       "Nothing was stored.")
        elif status == 404:
            message = "There is no page at this address, or it is not one you may see."
        elif status == 405:
            message = "This page cannot be used that way."
        return error_page(status, message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return _http(exc)
        current_app.logger.exception("Unhandled error in %s %s", request.method, request.path)
        if _is_api():
            from webapp.api.errors import handle_unexpected

            return handle_unexpected(exc)
        return error_page(500, "The server could not complete this request, and nothing was changed by it. "
                               "Please try again; if it happens again, tell the system administrator the time "
                               "shown below.")
