"""The blueprint and the few helpers every API route shares: the runtime, the caller, request parsing.

Routes stay thin (CONVENTIONS: parse the request, call one engine function, map its exception);
what they share lives here so each route reads as those three steps.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, g, request
from jsonschema import Draft202012Validator

from engine.exceptions import CellqmsError, Forbidden, ValidationFailed
from forms import humanise
from models import User

API_PREFIX = "/api/v1"

api_blueprint = Blueprint("api", __name__, url_prefix=API_PREFIX)

# Roles that may read the system-wide audit trail (URS-AUD-03; same readers as engine.permissions).
AUDIT_READER_ROLES = frozenset({"QA", "QA Head", "Auditor", "Admin"})
# Roles that see draft and in-validation diagram versions besides the released ones (URS-VAL-01).
PROCESS_ADMIN_ROLES = frozenset({"Process Owner", "Admin"})
PROCESS_OWNER_ROLE = "Process Owner"
XML_MIMETYPES = frozenset({"application/xml", "text/xml", "application/bpmn+xml"})


class ApiError(CellqmsError):
    """An error decided by the HTTP layer itself (content type, query parameters, not implemented)."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None):
        super().__init__(message, code=code, details=details)
        self.status = status


def runtime():
    """The Runtime behind this app (one per process)."""
    from webapp import get_runtime

    return get_runtime()


def current_user() -> User:
    """The user named by the request's bearer token (set by the blueprint's before_request)."""
    return g.user


def require_role(allowed: Iterable[str], what: str) -> None:
    """403 `not_in_role` unless the caller holds one of `allowed` (URS-SEC-02)."""
    allowed = sorted(allowed)
    if not (current_user().role_names & set(allowed)):
        raise Forbidden(f"{what} needs one of the roles: {', '.join(allowed)}.", code="not_in_role",
                        details={"required_roles": allowed})


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def json_body(schema: dict | None = None) -> dict:
    """The request body as a JSON object: 415 if not sent as JSON, 400 `bad_json` if malformed,
    400 `validation_failed` (details.errors with paths) if it does not match `schema`."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type",
                       "Send the request body as JSON with 'Content-Type: application/json'.",
                       {"content_type": request.content_type or ""})
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise ApiError(400, "bad_json", "The request body is not UTF-8 text.", {"reason": str(exc)}) from exc
    except ValueError as exc:
        raise ApiError(400, "bad_json", "The request body is not valid JSON.", {"reason": str(exc)}) from exc
    except RecursionError as exc:  # nesting deeper than the parser's stack: hostile, not a server fault
        raise ApiError(400, "bad_json", "The request body is nested too deeply.") from exc
    if not isinstance(body, dict):
        raise ValidationFailed([{"path": "", "message": "The request body must be a JSON object."}])
    if schema is not None:
        errors = [humanise(e) for e in Draft202012Validator(schema).iter_errors(body)]
        if errors:
            unique = {(e["path"], e["message"]): e for e in errors}
            raise ValidationFailed(sorted(unique.values(), key=lambda e: e["path"]))
    return body


def int_arg(name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    """An integer query parameter within bounds, or 400 `validation_failed` naming it."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum}" + (f" to {maximum}" if maximum is not None else "")
        raise ValidationFailed([{"path": name, "message": f"Must be a whole number {bounds}."}])
    return value


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC (Annex 11 §9: unambiguous time stamps), or None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat()


def jsonable(value: Any) -> Any:
    """A copy of `value` that the JSON encoder writes without guessing (datetimes as ISO 8601 UTC)."""
    if isinstance(value, dt.datetime):
        return iso(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, (str, int, float, bool)):  # enums
        return value.value
    return value


def public(view):
    """Mark a view as callable without a bearer token (token issue, API description)."""
    view.public = True
    return view
