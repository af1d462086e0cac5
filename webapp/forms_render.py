"""JSON Schema task forms as plain, accessible HTML, rendered on the server (URS-PLT-03).

Three jobs, all driven by the form's JSON Schema and its ui schema (``ui:order``,
``ui:widget`` textarea/radio, ``ui:labels`` for enum labels, ``ui:help``):

- :func:`render_form` writes the fields: text, textarea, enum as select or radios with
  their labels, boolean checkbox, number/integer with their bounds, date, date-time
  (``datetime-local`` in the user's time zone, stored in UTC), nested objects as
  fieldsets and arrays as repeating rows with add and remove buttons that work without
  JavaScript. Each error from the server shows next to its field, and the values the
  user typed are shown again as typed.
- :func:`parse_form` turns the posted fields back into typed data for the engine (it
  never decides validity: the engine validates against the same schema) and into the
  "raw" tree of what was typed, for showing the form again.
- :func:`render_data` shows submitted data read-only, with the same titles and labels.

Every value is escaped by MarkupSafe; nothing the user typed reaches the page as markup.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from flask import url_for
from markupsafe import Markup, escape

_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")
MAX_ROWS = 200  # a posted row count above this is not believed (hostile input)
ROWS_SUFFIX = ".__rows"
FORM_ERRORS = "form-errors"  # the id suffix of the list of problems that belong to no field


# ----------------------------------------------------------------------------- helpers

def _type(schema: dict) -> str | None:
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), None)
    if t is None and "enum" in schema:
        return "string"
    if t is None and "properties" in schema:
        return "object"
    return t


def _enum(schema: dict) -> list | None:
    if "enum" in schema:
        return list(schema["enum"])
    if "oneOf" in schema and all("const" in s for s in schema["oneOf"]):
        return [s["const"] for s in schema["oneOf"]]
    return None


def _enum_labels(schema: dict, ui: dict) -> dict:
    labels = {}
    for s in schema.get("oneOf") or []:
        if "const" in s and s.get("title"):
            labels[json.dumps(s["const"])] = s["title"]
    for k, v in (ui.get("ui:labels") or {}).items():
        labels[json.dumps(k)] = v
    return labels


def enum_label(value, schema: dict, ui: dict) -> str:
    return _enum_labels(schema, ui).get(json.dumps(value), str(value))


def ordered_properties(schema: dict, ui: dict) -> list[str]:
    """Property names in ``ui:order`` order; '*' or the end takes the rest in schema order."""
    props = list((schema.get("properties") or {}).keys())
    order = [p for p in (ui.get("ui:order") or []) if p == "*" or p in props]
    if not order:
        return props
    rest = [p for p in props if p not in order]
    if "*" in order:
        i = order.index("*")
        return order[:i] + rest + order[i + 1:]
    return order + rest


def field_id(path: str) -> str:
    return "f-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", path).strip("-") or "form")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _title(schema: dict, name: str) -> str:
    return schema.get("title") or name.replace("_", " ").capitalize()


def _attr(name: str, value) -> Markup:
    if value is None or value is False:
        return Markup("")
    if value is True:
        return Markup(" ") + Markup(name)
    return Markup(' {}="{}"').format(Markup(name), value)


def _num(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _tz(tz) -> ZoneInfo:
    if isinstance(tz, ZoneInfo):
        return tz
    try:
        return ZoneInfo(tz or "UTC")
    except Exception:  # noqa: BLE001 - an unknown zone name falls back to UTC rather than failing the page
        return ZoneInfo("UTC")


def utc_to_local_input(value: str, tz) -> str:
    """A stored ISO date-time as the value of a ``datetime-local`` input in the user's zone."""
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(_tz(tz)).strftime("%Y-%m-%dT%H:%M")


def local_input_to_utc(value: str, tz) -> str | None:
    """A ``datetime-local`` value typed in the user's zone as an ISO UTC date-time; None if unreadable."""
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_tz(tz))
    return when.astimezone(dt.timezone.utc).isoformat()


def format_datetime(value, tz, seconds: bool = False) -> str:
    """An ISO string or datetime in the user's zone: '2026-11-20 09:30 CET'."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if not isinstance(value, dt.datetime):
        return str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    local = value.astimezone(_tz(tz))
    return local.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


# ----------------------------------------------------------------------------- parsing

@dataclass
class ParsedForm:
    """What was posted: typed data for the engine, the raw tree as typed, and a row action if any."""

    data: dict
    raw: dict
    action: str | None = None
    errors: list = field(default_factory=list)


def parse_form(schema: dict, form, tz, prefix: str = "") -> ParsedForm:
    """Read a posted form (a werkzeug MultiDict) against the schema; unknown fields are ignored."""
    data, raw = _parse_object(schema, form, prefix, tz)
    action = form.get("_action") or None
    parsed = ParsedForm(data, raw, action)
    if action and action.startswith(("add:", "remove:")):
        apply_row_action(schema, parsed, action, prefix)
    return parsed


def _parse_object(schema: dict, form, path: str, tz) -> tuple[dict, dict]:
    data, raw = {}, {}
    for name, sub in (schema.get("properties") or {}).items():
        p = _join(path, name)
        present, value, raw_value = _parse_value(sub, form, p, tz)
        raw[name] = raw_value
        if present:
            data[name] = value
    return data, raw


def _parse_value(schema: dict, form, path: str, tz) -> tuple[bool, Any, Any]:
    """(include in data?, typed value, raw value as typed)."""
    t = _type(schema)
    enum = _enum(schema)
    if t == "object":
        data, raw = _parse_object(schema, form, path, tz)
        return bool(data), data, raw
    if t == "array":
        items = schema.get("items") or {}
        item_enum = _enum(items)
        if item_enum is not None and _type(items) != "object":
            chosen = form.getlist(path)
            values = [v for v in item_enum if str(v) in chosen]
            return bool(values), values, [str(v) for v in values]
        try:
            count = max(0, min(int(form.get(path + ROWS_SUFFIX, "0")), MAX_ROWS))
        except ValueError:
            count = 0
        values, raws = [], []
        for i in range(count):
            present, value, raw_value = _parse_value(items, form, f"{path}[{i}]", tz)
            values.append(value if present else ({} if _type(items) == "object" else None))
            raws.append(raw_value)
        return bool(values), values, raws
    if t == "boolean":
        value = form.get(path) in ("true", "on", "1", "yes")
        return True, value, value
    text = form.get(path, "")
    text = text.replace("\r\n", "\n") if isinstance(text, str) else ""
    if text.strip() == "":
        return False, None, text
    if enum is not None:
        match = next((v for v in enum if str(v) == text), text)
        return True, match, text
    if t == "integer":
        try:
            return True, int(text.strip()), text
        except ValueError:
            return True, text, text  # the engine's validator says "Must be a whole number."
    if t == "number":
        try:
            number = float(text.strip().replace(",", ".")) if re.fullmatch(r"\s*-?[\d.,]+(e-?\d+)?\s*", text, re.I) \
                else float("nan")
        except ValueError:
            number = float("nan")
        if number != number or number in (float("inf"), float("-inf")):
            return True, text, text
        return True, (int(number) if number.is_integer() and "." not in text and "," not in text else number), text
    if schema.get("format") == "date-time":
        converted = local_input_to_utc(text, tz)
        return True, converted if converted else text, text
    return True, text, text


def apply_row_action(schema: dict, parsed: ParsedForm, action: str, prefix: str = "") -> None:
    """Add or remove a row of a repeating group in the raw tree (the form is then shown again)."""
    kind, _, rest = action.partition(":")
    index = None
    if kind == "remove":
        rest, _, idx = rest.rpartition(":")
        try:
            index = int(idx)
        except ValueError:
            return
    node, sub = _locate(schema, parsed.raw, rest)
    if not isinstance(node, list) or sub is None:
        return
    if kind == "add" and len(node) < MAX_ROWS:
        node.append({} if _type(sub.get("items") or {}) == "object" else "")
    elif kind == "remove" and index is not None and 0 <= index < len(node):
        node.pop(index)


def _locate(schema: dict, raw: dict, path: str):
    """The raw list at a dotted/bracketed path and its schema, or (None, None)."""
    node, sub = raw, schema
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            i = int(part[1:-1])
            if not isinstance(node, list) or i >= len(node):
                return None, None
            node, sub = node[i], sub.get("items") or {}
        else:
            props = sub.get("properties") or {}
            if part not in props or not isinstance(node, dict):
                return None, None
            node = node.setdefault(part, [] if _type(props[part]) == "array" else {})
            sub = props[part]
    return node, sub


def raw_from_data(schema: dict, data: dict | None, tz) -> dict:
    """The raw tree for showing stored data in the form again (date-times in the user's zone)."""
    return _raw_object(schema, data or {}, tz)


def _raw_object(schema: dict, data: dict, tz) -> dict:
    out = {}
    for name, sub in (schema.get("properties") or {}).items():
        if name in data:
            out[name] = _raw_value(sub, data[name], tz)
    return out


def _raw_value(schema: dict, value, tz):
    t = _type(schema)
    if t == "object" and isinstance(value, dict):
        return _raw_object(schema, value, tz)
    if t == "array" and isinstance(value, list):
        items = schema.get("items") or {}
        if _enum(items) is not None and _type(items) != "object":
            return [str(v) for v in value]
        return [_raw_value(items, v, tz) for v in value]
    if t == "boolean":
        return bool(value)
    if value is None:
        return ""
    if schema.get("format") == "date-time":
        return utc_to_local_input(value, tz)
    if isinstance(value, (int, float)):
        return _num(value)
    return str(value)


# ----------------------------------------------------------------------------- rendering

@dataclass
class _Ctx:
    errors: dict
    shown: set
    tz: Any
    tz_name: str
    prefix: str
    disabled: bool = False


def errors_by_path(errors: list | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in errors or []:
        out.setdefault(str(e.get("path") or ""), []).append(str(e.get("message") or ""))
    return out


def render_form(schema: dict, ui: dict | None, raw: dict | None = None, errors: list | None = None, *,
                tz="UTC", prefix: str = "") -> Markup:
    """The form's fields (without the <form> element and buttons), errors next to their fields.

    Errors that belong to no rendered field (the whole form) are listed first.
    """
    ui = ui or {}
    by_path = errors_by_path(errors)
    ctx = _Ctx(by_path, set(), _tz(tz), str(tz or "UTC"), prefix)
    body = _render_object_fields(schema, ui, raw or {}, prefix, ctx)
    leftover = [m for p, msgs in by_path.items() if p not in ctx.shown and not p.startswith("signature.")
                for m in ([f"{p}: {x}" for x in msgs] if p else msgs)]
    top = Markup("")
    if leftover:
        top = Markup('<div class="form-errors" id="{}" role="alert"><p>Please correct the form:</p><ul>{}</ul>'
                     '</div>').format(field_id(_join(prefix, FORM_ERRORS)),
            Markup("").join(Markup("<li>{}</li>").format(m) for m in leftover))
    return top + body


def error_summary(schema: dict, ui: dict | None, errors: list | None, prefix: str = "") -> Markup:
    """A list of every error with a link to its field (shown at the top of the page)."""
    if not errors:
        return Markup("")
    items = []
    for e in errors:
        path = str(e.get("path") or "")
        label = _label_for_path(schema, ui or {}, path) if path else "Form"
        # A path that names no field of the form (e.g. a diagram expression that refused a value)
        # links to the form's own list of such problems.
        placed = path and (path.startswith("signature.") or _field_of(schema, path))
        target = field_id(_join(prefix, path if placed else FORM_ERRORS))
        text = Markup("{}: {}").format(label, e.get("message"))
        items.append(Markup('<li><a href="#{}">{}</a></li>').format(target, text) if target else
                     Markup("<li>{}</li>").format(text))
    return Markup('<div class="error-summary" role="alert" tabindex="-1" id="error-summary">'
                  "<h2>There is a problem</h2><ul>{}</ul></div>").format(Markup("").join(items))


def _field_of(schema: dict, path: str) -> bool:
    """Whether `path` (``rows[2].quantity``) names a field of the schema."""
    sub = schema
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            sub = sub.get("items") or {}
        elif part in (sub.get("properties") or {}):
            sub = sub["properties"][part]
        else:
            return False
    return True


def _label_for_path(schema: dict, ui: dict, path: str) -> str:
    labels, sub = [], schema
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            sub = sub.get("items") or {}
            labels.append(f"row {int(part[1:-1]) + 1}")
        else:
            props = sub.get("properties") or {}
            if part not in props:
                labels.append(part)
                sub = {}
                continue
            sub = props[part]
            labels.append(_title(sub, part))
    return " › ".join(labels) or path


def _render_object_fields(schema: dict, ui: dict, raw: dict, path: str, ctx: _Ctx) -> Markup:
    required = set(schema.get("required") or [])
    parts = []
    for name in ordered_properties(schema, ui):
        sub = (schema.get("properties") or {})[name]
        sub_ui = ui.get(name) or {}
        if sub_ui.get("ui:widget") == "hidden":
            continue
        parts.append(_render_field(sub, sub_ui, (raw or {}).get(name), _join(path, name), name in required, ctx,
                                   _title(sub, name)))
    return Markup("").join(parts)


def _describe(schema: dict, ui: dict, fid: str, messages: list[str], extra_hint: str | None = None):
    """(hint html, error html, aria-describedby ids)."""
    ids = []
    hint_text = " ".join(x for x in (schema.get("description"), ui.get("ui:help"), extra_hint) if x)
    hint = Markup("")
    if hint_text:
        hint = Markup('<p class="hint" id="{}-hint">{}</p>').format(fid, hint_text)
        ids.append(f"{fid}-hint")
    err = Markup("")
    if messages:
        err = Markup('<p class="field-error" id="{}-error"><span class="visually-hidden">Error: </span>{}</p>') \
            .format(fid, " ".join(messages))
        ids.append(f"{fid}-error")
    return hint, err, " ".join(ids) or None


def _label(fid: str, title: str, required: bool) -> Markup:
    req = Markup(' <span class="req">(required)</span>') if required else Markup("")
    return Markup('<label for="{}">{}{}</label>').format(fid, title, req)


def _render_field(schema: dict, ui: dict, raw, path: str, required: bool, ctx: _Ctx, title: str) -> Markup:
    t = _type(schema)
    fid = field_id(path)
    messages = ctx.errors.get(path[len(ctx.prefix) + 1:] if ctx.prefix else path, [])
    key = path[len(ctx.prefix) + 1:] if ctx.prefix else path
    if messages:
        ctx.shown.add(key)
    if t == "object":
        return _render_fieldset(schema, ui, raw if isinstance(raw, dict) else {}, path, required, ctx, title,
                                messages)
    if t == "array":
        return _render_array(schema, ui, raw if isinstance(raw, list) else [], path, required, ctx, title, messages)
    invalid = _attr("aria-invalid", "true" if messages else None)
    enum = _enum(schema)
    if t == "boolean":
        hint, err, described = _describe(schema, ui, fid, messages)
        checked = _attr("checked", raw is True)
        return Markup('<div class="field field-checkbox{}">{}<input type="checkbox" id="{}" name="{}" value="true"{}'
                      '{}{}> <label for="{}">{}</label>{}</div>').format(
            " has-error" if messages else "", err, fid, path, checked, _attr("aria-describedby", described), invalid,
            fid, title, hint)
    value = "" if raw is None or isinstance(raw, (dict, list, bool)) else str(raw)
    if enum is not None:
        labels = _enum_labels(schema, ui)
        hint, err, described = _describe(schema, ui, fid, messages)
        if ui.get("ui:widget") == "radio":
            options = Markup("").join(
                Markup('<div class="radio"><input type="radio" id="{}-{}" name="{}" value="{}"{}{}> '
                       '<label for="{}-{}">{}</label></div>').format(
                    fid, i, path, str(v), _attr("checked", value == str(v)), invalid, fid, i,
                    labels.get(json.dumps(v), str(v)))
                for i, v in enumerate(enum))
            req = Markup(' <span class="req">(required)</span>') if required else Markup("")
            return Markup('<fieldset class="field radios{}" id="{}"{}><legend>{}{}</legend>{}{}{}</fieldset>').format(
                " has-error" if messages else "", fid, _attr("aria-describedby", described), title, req, hint, err,
                options)
        options = [Markup('<option value="">— choose —</option>')]
        options += [Markup('<option value="{}"{}>{}</option>').format(
            str(v), _attr("selected", value == str(v)), labels.get(json.dumps(v), str(v))) for v in enum]
        control = Markup('<select id="{}" name="{}"{}{}{}>{}</select>').format(
            fid, path, _attr("aria-describedby", described), invalid, _attr("aria-required", "true" if required
                                                                             else None), Markup("").join(options))
        return _wrap(fid, title, required, hint, err, control, messages)
    fmt = schema.get("format")
    extra_hint = None
    common = Markup("{}{}{}").format(_attr("aria-invalid", "true" if messages else None),
                                     _attr("aria-required", "true" if required else None), Markup(""))
    if t in ("integer", "number"):
        step = schema.get("multipleOf") or (1 if t == "integer" else "any")
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        hi = schema.get("maximum", schema.get("exclusiveMaximum"))
        bounds = []
        if "minimum" in schema:
            bounds.append(f"at least {_num(schema['minimum'])}")
        if "exclusiveMinimum" in schema:
            bounds.append(f"more than {_num(schema['exclusiveMinimum'])}")
        if "maximum" in schema:
            bounds.append(f"at most {_num(schema['maximum'])}")
        if "exclusiveMaximum" in schema:
            bounds.append(f"less than {_num(schema['exclusiveMaximum'])}")
        extra_hint = ("A whole number" if t == "integer" else "A number") + (
            ", " + " and ".join(bounds) if bounds else "") + "."
        hint, err, described = _describe(schema, ui, fid, messages, extra_hint)
        control = Markup('<input type="number" inputmode="{}" id="{}" name="{}" value="{}" step="{}"{}{}{}{}>').format(
            "numeric" if t == "integer" else "decimal", fid, path, value, _num(step),
            _attr("min", None if lo is None else _num(lo)), _attr("max", None if hi is None else _num(hi)),
            _attr("aria-describedby", described), common)
        return _wrap(fid, title, required, hint, err, control, messages)
    if fmt == "date-time":
        extra_hint = f"Enter the local time in your time zone ({ctx.tz_name}); it is stored in UTC."
        hint, err, described = _describe(schema, ui, fid, messages, extra_hint)
        control = Markup('<input type="datetime-local" id="{}" name="{}" value="{}"{}{}>').format(
            fid, path, value, _attr("aria-describedby", described), common)
        return _wrap(fid, title, required, hint, err, control, messages)
    hint, err, described = _describe(schema, ui, fid, messages)
    maxlength = _attr("maxlength", schema.get("maxLength"))
    placeholder = _attr("placeholder", ui.get("ui:placeholder"))
    if ui.get("ui:widget") == "textarea":
        control = Markup('<textarea id="{}" name="{}" rows="{}"{}{}{}{}>{}</textarea>').format(
            fid, path, (ui.get("ui:options") or {}).get("rows", 5), maxlength, placeholder,
            _attr("aria-describedby", described), common, value)
        return _wrap(fid, title, required, hint, err, control, messages)
    input_type = {"date": "date", "email": "email", "uri": "url", "time": "time"}.get(fmt, "text")
    if ui.get("ui:widget") == "password":
        input_type = "password"
    control = Markup('<input type="{}" id="{}" name="{}" value="{}"{}{}{}{}>').format(
        input_type, fid, path, value, maxlength, placeholder, _attr("aria-describedby", described), common)
    return _wrap(fid, title, required, hint, err, control, messages)


def _wrap(fid: str, title: str, required: bool, hint: Markup, err: Markup, control: Markup,
          messages: list[str]) -> Markup:
    return Markup('<div class="field{}">{}{}{}{}</div>').format(
        " has-error" if messages else "", _label(fid, title, required), hint, err, control)


def _render_fieldset(schema: dict, ui: dict, raw: dict, path: str, required: bool, ctx: _Ctx, title: str,
                     messages: list[str]) -> Markup:
    fid = field_id(path)
    hint, err, described = _describe(schema, ui, fid, messages)
    body = _render_object_fields(schema, ui, raw, path, ctx)
    return Markup('<fieldset class="group{}" id="{}"{}><legend>{}</legend>{}{}{}</fieldset>').format(
        " has-error" if messages else "", fid, _attr("aria-describedby", described), title, hint, err, body)


def _render_array(schema: dict, ui: dict, raw: list, path: str, required: bool, ctx: _Ctx, title: str,
                  messages: list[str]) -> Markup:
    fid = field_id(path)
    items = schema.get("items") or {}
    items_ui = ui.get("items") or {}
    hint, err, described = _describe(schema, ui, fid, messages)
    req = Markup(' <span class="req">(required)</span>') if required else Markup("")
    item_enum = _enum(items)
    if item_enum is not None and _type(items) != "object":  # a multiple choice
        labels = _enum_labels(items, items_ui)
        chosen = {str(v) for v in raw}
        boxes = Markup("").join(
            Markup('<div class="checkbox"><input type="checkbox" id="{}-{}" name="{}" value="{}"{}> '
                   '<label for="{}-{}">{}</label></div>').format(
                fid, i, path, str(v), _attr("checked", str(v) in chosen), fid, i, labels.get(json.dumps(v), str(v)))
            for i, v in enumerate(item_enum))
        return Markup('<fieldset class="field checkboxes{}" id="{}"{}><legend>{}{}</legend>{}{}{}</fieldset>').format(
            " has-error" if messages else "", fid, _attr("aria-describedby", described), title, req, hint, err, boxes)
    item_title = items.get("title") or "Row"
    rows = []
    for i, row_raw in enumerate(raw):
        row_path = f"{path}[{i}]"
        row_key = row_path[len(ctx.prefix) + 1:] if ctx.prefix else row_path
        row_messages = ctx.errors.get(row_key, [])
        if row_messages:
            ctx.shown.add(row_key)
        row_fid = field_id(row_path)
        if _type(items) == "object":
            inner = _render_object_fields(items, items_ui, row_raw if isinstance(row_raw, dict) else {}, row_path,
                                          ctx)
        else:
            inner = _render_field(items, items_ui, row_raw, row_path, True, ctx, f"{item_title} {i + 1}")
        row_err = Markup("")
        if row_messages and _type(items) == "object":
            row_err = Markup('<p class="field-error" id="{}-error">{}</p>').format(row_fid, " ".join(row_messages))
        remove = Markup('<button type="submit" class="secondary small" name="_action" value="remove:{}:{}" '
                        'formnovalidate>Remove {} {}</button>').format(path, i, item_title.lower(), i + 1)
        if _type(items) == "object":
            rows.append(Markup('<fieldset class="row" id="{}"><legend>{} {}</legend>{}{}{}</fieldset>').format(
                row_fid, item_title, i + 1, row_err, inner, remove))
        else:  # one value per row: its own label names it, and the input keeps the row's id
            rows.append(Markup('<div class="row" id="{}-row">{}{}</div>').format(row_fid, inner, remove))
    empty = Markup('<p class="empty">No rows yet.</p>') if not raw else Markup("")
    add = Markup('<button type="submit" class="secondary" name="_action" value="add:{}" formnovalidate>'
                 'Add {}</button>').format(path, item_title.lower())
    count = Markup('<input type="hidden" name="{}{}" value="{}">').format(path, ROWS_SUFFIX, len(raw))
    return Markup('<fieldset class="group repeat{}" id="{}"{}><legend>{}{}</legend>{}{}{}{}{}{}</fieldset>').format(
        " has-error" if messages else "", fid, _attr("aria-describedby", described), title, req, hint, err, count,
        Markup("").join(rows), empty, add)


def initial_raw(schema: dict) -> dict:
    """The raw tree of an empty form: arrays start with as many rows as minItems asks for (at least one)."""
    out = {}
    for name, sub in (schema.get("properties") or {}).items():
        if _type(sub) == "array":
            items = sub.get("items") or {}
            if _enum(items) is not None and _type(items) != "object":
                out[name] = []
            else:
                n = max(int(sub.get("minItems") or 0), 1)
                out[name] = [initial_raw(items) if _type(items) == "object" else "" for _ in range(n)]
        elif _type(sub) == "object":
            out[name] = initial_raw(sub)
        elif "default" in sub:
            out[name] = sub["default"] if _type(sub) == "boolean" else str(sub["default"])
    return out


# ----------------------------------------------------------------------------- read-only display

def render_data(schema: dict | None, ui: dict | None, data: dict | None, *, tz="UTC") -> Markup:
    """Submitted data as a definition list, with the form's titles and enum labels."""
    schema = schema or {}
    ui = ui or {}
    data = data or {}
    if not data:
        return Markup('<p class="empty">No data.</p>')
    props = schema.get("properties") or {}
    names = [n for n in ordered_properties(schema, ui) if n in data] + sorted(k for k in data if k not in props)
    rows = []
    for name in names:
        sub = props.get(name, {})
        shown = _display(sub, ui.get(name) or {}, data[name], tz)
        href = _link(ui.get(name) or {}, data[name], data)
        if href:
            shown = Markup('<a href="{}">{}</a>').format(href, shown)
        rows.append(Markup("<dt>{}</dt><dd>{}</dd>").format(_title(sub, name), shown))  # due_date -> Due date
    return Markup('<dl class="data">{}</dl>').format(Markup("").join(rows))


# ``"ui:link": "document"`` (or ``{"to": "document", "when": {"kind": "document"}}``) on a text field:
# its value is shown as a link to that document's page, or record's page ("record").
_LINK_TARGETS = {"document": "documents.show", "record": "records.show"}


def _link(ui: dict, value, siblings: dict) -> str | None:
    link = ui.get("ui:link")
    if isinstance(link, str):
        link = {"to": link}
    if not isinstance(link, dict) or link.get("to") not in _LINK_TARGETS or not isinstance(value, str) or not value:
        return None
    if any(siblings.get(k) != v for k, v in (link.get("when") or {}).items()):
        return None
    return url_for(_LINK_TARGETS[link["to"]], number=value)


def _display(schema: dict, ui: dict, value, tz) -> Markup:
    t = _type(schema) if schema else None
    if value is None or value == "":
        return Markup('<span class="empty">—</span>')
    if isinstance(value, bool):
        return Markup("Yes") if value else Markup("No")
    if _enum(schema) is not None:
        return escape(enum_label(value, schema, ui))
    if t == "object" or (isinstance(value, dict) and not schema):
        return render_data(schema, ui, value, tz=tz)
    if isinstance(value, list):
        items = schema.get("items") or {}
        if value and all(isinstance(v, dict) for v in value):
            items_ui = ui.get("items") or {}
            cols = ordered_properties(items, items_ui) or sorted({k for v in value for k in v})
            head = Markup("").join(Markup('<th scope="col">{}</th>').format(
                _title((items.get("properties") or {}).get(c, {}), c)) for c in cols)
            body = Markup("").join(Markup("<tr>{}</tr>").format(Markup("").join(
                Markup("<td>{}</td>").format(_display((items.get("properties") or {}).get(c, {}),
                                                      items_ui.get(c) or {}, v.get(c), tz))
                for c in cols)) for v in value)
            return Markup('<table class="rows"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>').format(head, body)
        return Markup(", ").join(_display(items, ui.get("items") or {}, v, tz) for v in value) or Markup("—")
    if schema.get("format") == "date-time" or (not schema and isinstance(value, str) and _ISO_DATETIME.match(value)):
        return Markup('<time datetime="{}">{}</time>').format(str(value), format_datetime(value, tz))
    text = str(value)
    if "\n" in text:
        return Markup('<span class="multiline">{}</span>').format(text)
    return escape(text)


def hidden_fields(schema: dict, raw: dict | None, prefix: str = "") -> Markup:
    """The raw tree as hidden inputs with the form's own field names (carried through the signing step)."""
    pairs = list(_flatten(schema, raw or {}, prefix))
    return Markup("").join(Markup('<input type="hidden" name="{}" value="{}">').format(n, v) for n, v in pairs)


def _flatten(schema: dict, raw, path: str):
    t = _type(schema)
    if t == "object":
        for name, sub in (schema.get("properties") or {}).items():
            if isinstance(raw, dict) and name in raw:
                yield from _flatten(sub, raw[name], _join(path, name))
        return
    if t == "array":
        items = schema.get("items") or {}
        values = raw if isinstance(raw, list) else []
        if _enum(items) is not None and _type(items) != "object":
            for v in values:
                yield path, str(v)
            return
        yield path + ROWS_SUFFIX, str(len(values))
        for i, v in enumerate(values):
            yield from _flatten(items, v, f"{path}[{i}]")
        return
    if t == "boolean":
        if raw is True:
            yield path, "true"
        return
    if raw not in (None, ""):
        yield path, str(raw)
