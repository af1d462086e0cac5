"""Load task forms from forms/ and validate submitted data against them.

Errors carry the field path (``rows[2].quantity``) and a sentence a QA person
understands, not the validator's internal wording.
"""
from __future__ import annotations

import contextvars
import datetime as dt
import json
import threading
from dataclasses import dataclass
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import SchemaError, ValidationError

FORMAT_CHECKER = FormatChecker()

# The day the submission is checked against ("today" in x-notBefore): the runtime's clock, set by
# FormRegistry.errors for the length of one validation.
_TODAY: contextvars.ContextVar[dt.date | None] = contextvars.ContextVar("cellqms_form_today", default=None)


def _not_before(validator, value, instance, schema):
    """``"x-notBefore": "today"`` on a date field: the date may not lie in the past (e.g. an effective
    date). The only value understood is "today"; check_form refuses any other."""
    if value != "today" or not isinstance(instance, str):
        return
    try:
        day = dt.date.fromisoformat(instance[:10])
    except ValueError:
        return  # the format keyword reports a malformed date
    today = _TODAY.get() or dt.datetime.now(dt.timezone.utc).date()
    if day < today:
        yield ValidationError(f"{instance} is before today", validator="x-notBefore", validator_value=today)


FormValidator = validators.extend(Draft202012Validator, {"x-notBefore": _not_before})


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _is_datetime(value) -> bool:
    if not isinstance(value, str):
        return True
    if "T" not in value and " " not in value:
        raise ValueError("not a date-time")
    dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@dataclass
class FormError(Exception):
    """A form file that is missing or is not a valid JSON Schema."""

    message: str

    def __str__(self) -> str:
        return self.message


def _path(error) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def humanise(error) -> dict:
    """One jsonschema error as {path, message} for a person."""
    v = error.validator
    val = error.validator_value
    path = _path(error)
    if v == "required":
        missing = error.message.split("'")[1] if "'" in error.message else str(val)
        path = f"{path}.{missing}" if path else missing
        return {"path": path, "message": "This field is required."}
    if v == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return {"path": path, "message": f"Unknown field(s): {', '.join(extra)}."}
    messages = {
        "enum": lambda: "Choose one of: " + ", ".join(str(x) for x in val) + ".",
        "const": lambda: "Tick this box to confirm." if val is True else f"Must be {val!r}.",
        "type": lambda: f"Must be {_type_words(val)}.",
        "minLength": lambda: "This field is required." if val == 1 else f"Must be at least {val} characters.",
        "maxLength": lambda: f"Must be at most {val:,} characters.",
        "minimum": lambda: f"Must be at least {val}.",
        "maximum": lambda: f"Must be at most {val}.",
        "exclusiveMinimum": lambda: f"Must be greater than {val}.",
        "exclusiveMaximum": lambda: f"Must be less than {val}.",
        "minItems": lambda: f"Add at least {val} row(s).",
        "maxItems": lambda: f"At most {val} row(s) allowed.",
        "pattern": lambda: "Has the wrong format.",
        "format": lambda: {"date": "Must be a date (YYYY-MM-DD).",
                           "date-time": "Must be a date and time (YYYY-MM-DDTHH:MM, ISO 8601).",
                           "email": "Must be an e-mail address."}.get(val, f"Must be a valid {val}."),
        "multipleOf": lambda: f"Must be a multiple of {val}.",
        "uniqueItems": lambda: "Rows must not repeat.",
        "x-notBefore": lambda: f"The date may not be in the past: choose today ({val.isoformat()}) or later.",
    }
    make = messages.get(v)
    return {"path": path, "message": make() if make else error.message}


def _type_words(val) -> str:
    words = {"string": "text", "number": "a number", "integer": "a whole number", "boolean": "yes or no",
             "array": "a list", "object": "a group of fields", "null": "empty"}
    if isinstance(val, list):
        return " or ".join(words.get(v, v) for v in val)
    return words.get(val, str(val))


class FormRegistry:
    """Reads form files below one folder, caches them, refuses paths outside it."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self._cache: dict[str, tuple[dict, FormValidator]] = {}
        self._lock = threading.Lock()

    def _read(self, relative: str) -> dict:
        path = (self.root / relative).resolve()
        if self.root not in path.parents:
            raise FormError(f"form '{relative}' lies outside the forms folder")
        if not path.is_file():
            raise FormError(f"form '{relative}' does not exist under forms/")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise FormError(f"form '{relative}' is not valid JSON: {exc}") from exc

    def schema(self, relative: str) -> dict:
        return self._entry(relative)[0]

    def ui_schema(self, relative: str | None) -> dict:
        if not relative:
            return {}
        return self._read(relative)

    def _entry(self, relative: str):
        with self._lock:
            if relative not in self._cache:
                schema = self._read(relative)
                try:
                    Draft202012Validator.check_schema(schema)
                except SchemaError as exc:
                    raise FormError(f"form '{relative}' is not a valid JSON Schema: {exc.message}") from exc
                if schema.get("type") != "object":
                    raise FormError(f"form '{relative}' must describe an object (\"type\": \"object\")")
                bad = sorted({str(v) for v in _keyword_values(schema, "x-notBefore")} - {"today"})
                if bad:
                    raise FormError(f"form '{relative}': x-notBefore understands only \"today\", not {bad[0]!r}")
                self._cache[relative] = (schema, FormValidator(schema, format_checker=FORMAT_CHECKER))
            return self._cache[relative]

    def errors(self, relative: str, data, *, today: dt.date | None = None) -> list[dict]:
        """Every problem of `data` against the form, sorted by field path; empty when valid.
        `today` is the runtime clock's date, for x-notBefore (default: the real UTC date)."""
        _schema, validator = self._entry(relative)
        token = _TODAY.set(today)
        try:
            found = [humanise(e) for e in validator.iter_errors(data)]
        finally:
            _TODAY.reset(token)
        unique = {(e["path"], e["message"]): e for e in found}
        return sorted(unique.values(), key=lambda e: e["path"])


def _keyword_values(node, keyword: str):
    """Every value of `keyword` anywhere in a schema (nested properties, items, allOf ...)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == keyword:
                yield value
            else:
                yield from _keyword_values(value, keyword)
    elif isinstance(node, list):
        for item in node:
            yield from _keyword_values(item, keyword)
