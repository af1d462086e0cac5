"""The errors the runtime raises. Each carries a machine code and a sentence for a person;
the web UI, the REST API and the CLI map them to statuses without re-deciding anything."""
from __future__ import annotations


class CellqmsError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}


class ValidationFailed(CellqmsError):
    """Form data that fails its JSON Schema; details.errors lists {path, message}."""

    status = 400
    code = "validation_failed"

    def __init__(self, errors: list[dict], message: str | None = None):
        super().__init__(message or "The form has errors: " + "; ".join(
            f"{e['path'] or '(form)'}: {e['message']}" for e in errors[:5]), details={"errors": errors})
        self.errors = errors


class NotAuthenticated(CellqmsError):
    status = 401
    code = "not_authenticated"


class WrongPassword(NotAuthenticated):
    code = "wrong_password"


class AccountLocked(CellqmsError):
    status = 423
    code = "account_locked"


class Forbidden(CellqmsError):
    status = 403
    code = "forbidden"


class NotFound(CellqmsError):
    status = 404
    code = "not_found"


class Conflict(CellqmsError):
    status = 409
    code = "conflict"


class ProcessRejected(CellqmsError):
    """A well-formed request the process refuses: an invalid or hostile diagram, a failing step."""

    status = 422
    code = "process_rejected"


class UnsafeExpression(ProcessRejected):
    code = "unsafe_expression"
