"""Every error of the API has one shape: {"error": {"code", "message", "details"}} (API.md, Errors).

One handler maps the engine's exceptions (their .status, .code, .message, .details decide);
HTTP-level errors (404, 405, 413, 415, 500) get the same shape, never an HTML page or a
stack trace, also when routing fails before any API view is chosen.
"""
from __future__ import annotations

from flask import Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from engine.exceptions import CellqmsError

from .base import API_PREFIX, api_blueprint, jsonable

# Codes for errors the HTTP layer raises itself (werkzeug's exceptions carry only a status).
HTTP_CODES = {
    400: ("bad_request", "The request could not be understood."),
    401: ("not_authenticated", "Authentication is required."),
    403: ("forbidden", "You may not do this."),
    404: ("not_found", "There is no such resource."),
    405: ("method_not_allowed", "This method is not allowed on this resource."),
    409: ("conflict", "The resource changed; reload it and try again."),
    413: ("too_large", "The request body is too large."),
    415: ("unsupported_media_type", "The request body has a content type this resource does not accept."),
    422: ("process_rejected", "The request was understood but refused."),
    500: ("internal_error", "Something went wrong on the server; the request changed nothing. "
                            "Please report the time of the error to an administrator."),
    501: ("not_implemented", "This part of the API is not implemented yet."),
}


def error_response(status: int, code: str, message: str, details: dict | None = None,
                   headers: dict | None = None) -> Response:
    """The one error body of the API."""
    resp = jsonify({"error": {"code": code, "message": message, "details": jsonable(details or {})}})
    resp.status_code = status
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    code, message = HTTP_CODES.get(status, ("http_error", exc.name))
    details: dict = {}
    headers: dict = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        methods = sorted(m for m in exc.valid_methods if m not in ("HEAD", "OPTIONS"))
        details["allowed_methods"] = methods
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        message = f"{request.method} is not allowed here; use {', '.join(methods)}."
    elif isinstance(exc, NotFound):
        message = f"There is no API resource at {request.path}."
    elif status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        if limit:
            details["limit_bytes"] = limit
            message = f"The request body is larger than the limit of {limit:,} bytes."
    return error_response(status, code, message, details, headers)


@api_blueprint.errorhandler(CellqmsError)
def handle_cellqms_error(exc: CellqmsError) -> Response:
    """Map an engine (or API) error to its status; the engine already decided code and message."""
    headers = {}
    if exc.status == 401 and exc.code == "not_authenticated" and request.endpoint != "api.issue_token":
        headers["WWW-Authenticate"] = 'Bearer realm="cellqms"'
    return error_response(exc.status, exc.code, exc.message, exc.details, headers)


@api_blueprint.errorhandler(HTTPException)
def handle_http_exception(exc: HTTPException) -> Response:
    return _http_error(exc)


@api_blueprint.errorhandler(Exception)
def handle_unexpected(exc: Exception) -> Response:
    """Log the stack trace for the operator; the client gets the error shape and no internals."""
    current_app.logger.exception("Unhandled error in %s %s", request.method, request.path)
    code, message = HTTP_CODES[500]
    return error_response(500, code, message)


@api_blueprint.before_app_request
def json_routing_errors():
    """A URL under /api/ that matches no route (404) or not with this method (405) gets the API's
    JSON error. Blueprint error handlers never see these (no view was chosen), and an app-wide
    handler would fight the web pages' own handlers, so routing errors are answered here."""
    exc = request.routing_exception
    if exc is None or not (request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")):
        return None
    if isinstance(exc, HTTPException) and exc.code in (404, 405):
        return _http_error(exc)
    return None
