"""Server-side form validation speaks to people: each error names the field path and says what to do
(URS-PLT-03)."""
from __future__ import annotations

import json

import pytest

from forms import FormError, FormRegistry

pytestmark = pytest.mark.urs("URS-PLT-03")

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 20},
        "area": {"type": "string", "enum": ["Apheresis", "QC laboratory"]},
        "viability": {"type": "number", "minimum": 0, "maximum": 100},
        "cells": {"type": "integer", "exclusiveMinimum": 0},
        "collected_on": {"type": "string", "format": "date"},
        "occurred_at": {"type": "string", "format": "date-time"},
        "approved": {"type": "boolean"},
        "rows": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {"lot": {"type": "string", "minLength": 1}, "qty": {"type": "integer", "minimum": 1}},
                "required": ["lot", "qty"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["title", "area"],
    "additionalProperties": False,
}

VALID = {"title": "Viability low", "area": "Apheresis", "viability": 71.5, "cells": 3,
         "collected_on": "2026-11-20", "occurred_at": "2026-11-20T08:30:00+00:00", "approved": True,
         "rows": [{"lot": "L1", "qty": 1}, {"lot": "L2", "qty": 4}]}


@pytest.fixture
def registry(tmp_path):
    (tmp_path / "qc").mkdir()
    (tmp_path / "qc" / "sample.schema.json").write_text(json.dumps(SCHEMA))
    return FormRegistry(tmp_path)


def errors(registry, **changes):
    data = {**VALID, **changes}
    for key, value in changes.items():
        if value is ...:
            del data[key]
    return registry.errors("qc/sample.schema.json", data)


def test_valid_data_has_no_errors(registry):
    assert registry.errors("qc/sample.schema.json", VALID) == []


def test_a_missing_required_field_is_named_with_its_path(registry):
    assert errors(registry, title=..., area=...) == [
        {"path": "area", "message": "This field is required."},
        {"path": "title", "message": "This field is required."},
    ]


def test_an_empty_required_text_reads_as_required(registry):
    assert errors(registry, title="") == [{"path": "title", "message": "This field is required."}]


def test_a_value_outside_the_choices_lists_the_choices(registry):
    assert errors(registry, area="Kitchen") == [{"path": "area", "message": "Choose one of: Apheresis, QC laboratory."}]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("viability", -1, "Must be at least 0."),
    ("viability", 100.5, "Must be at most 100."),
    ("cells", 0, "Must be greater than 0."),
    ("title", "x" * 21, "Must be at most 20 characters."),
    ("viability", "high", "Must be a number."),
    ("cells", 2.5, "Must be a whole number."),
    ("approved", "yes", "Must be yes or no."),
])
def test_bounds_and_types_are_explained(registry, field, value, message):
    assert errors(registry, **{field: value}) == [{"path": field, "message": message}]


@pytest.mark.parametrize("value", ["20-11-2026", "2026-13-01", "2026-02-30", "yesterday"])
def test_a_bad_date_is_explained(registry, value):
    assert errors(registry, collected_on=value) == [
        {"path": "collected_on", "message": "Must be a date (YYYY-MM-DD)."}]


@pytest.mark.parametrize("value", ["2026-11-20", "2026-11-20T25:00", "20/11/2026 08:30", "now"])
def test_a_bad_date_time_is_explained(registry, value):
    assert errors(registry, occurred_at=value) == [
        {"path": "occurred_at", "message": "Must be a date and time (YYYY-MM-DDTHH:MM, ISO 8601)."}]


@pytest.mark.parametrize("value", ["2026-11-20T08:30", "2026-11-20T08:30:00Z", "2026-11-20T08:30:00.123+02:00"])
def test_iso_date_times_with_or_without_zone_are_accepted(registry, value):
    assert errors(registry, occurred_at=value) == []


def test_errors_inside_an_array_of_objects_carry_the_row_index_and_field(registry):
    rows = [{"lot": "L1", "qty": 1}, {"lot": "L2", "qty": 0}, {"qty": 2}, {"lot": "L4", "qty": 1, "extra": 1}]
    assert errors(registry, rows=rows) == [
        {"path": "rows[1].qty", "message": "Must be at least 1."},
        {"path": "rows[2].lot", "message": "This field is required."},
        {"path": "rows[3]", "message": "Unknown field(s): extra."},
    ]


def test_an_empty_table_asks_for_rows(registry):
    assert errors(registry, rows=[]) == [{"path": "rows", "message": "Add at least 1 row(s)."}]


def test_unknown_top_level_fields_are_named(registry):
    assert errors(registry, sneaky=1, other=2) == [{"path": "", "message": "Unknown field(s): other, sneaky."}]


def test_errors_are_sorted_by_path_and_not_repeated(registry):
    found = errors(registry, title=..., viability=-5, rows=[{"lot": "", "qty": 0}])
    assert [e["path"] for e in found] == ["rows[0].lot", "rows[0].qty", "title", "viability"]
    assert len({(e["path"], e["message"]) for e in found}) == len(found)


def test_a_form_outside_the_forms_folder_is_refused(registry):
    with pytest.raises(FormError, match="outside the forms folder"):
        registry.schema("../../etc/passwd")


def test_a_missing_form_is_reported_by_name(registry):
    with pytest.raises(FormError, match="qc/nothing.schema.json"):
        registry.schema("qc/nothing.schema.json")


def test_a_form_that_is_not_a_valid_schema_is_refused(registry, tmp_path):
    (tmp_path / "qc" / "bad.schema.json").write_text(json.dumps({"type": "object", "properties": {"a": {"type": 7}}}))
    with pytest.raises(FormError, match="not a valid JSON Schema"):
        registry.schema("qc/bad.schema.json")


def test_a_form_that_is_not_json_is_refused(registry, tmp_path):
    (tmp_path / "qc" / "broken.schema.json").write_text("{ not json")
    with pytest.raises(FormError, match="not valid JSON"):
        registry.schema("qc/broken.schema.json")


def test_a_form_must_describe_an_object(registry, tmp_path):
    (tmp_path / "qc" / "list.schema.json").write_text(json.dumps({"type": "array"}))
    with pytest.raises(FormError, match="must describe an object"):
        registry.schema("qc/list.schema.json")


def _not_before_registry(tmp_path, value="today"):
    schema = {"type": "object", "properties": {
        "rows": {"type": "array", "items": {"type": "object", "properties": {
            "due": {"type": "string", "format": "date", "x-notBefore": value}}}}}}
    (tmp_path / "nb.schema.json").write_text(json.dumps(schema))
    return FormRegistry(tmp_path)


@pytest.mark.urs("URS-PLT-03")
def test_a_date_marked_not_before_today_is_judged_on_the_given_day(tmp_path):
    import datetime as dt

    registry = _not_before_registry(tmp_path)
    day = dt.date(2026, 3, 10)
    data = {"rows": [{"due": "2026-03-09"}, {"due": "2026-03-10"}, {"due": "not a date"}]}
    assert registry.errors("nb.schema.json", data, today=day) == [
        {"path": "rows[0].due", "message": "The date may not be in the past: choose today (2026-03-10) or later."},
        {"path": "rows[2].due", "message": "Must be a date (YYYY-MM-DD)."},
    ]
    assert registry.errors("nb.schema.json", {"rows": [{"due": "2026-03-09"}]}, today=dt.date(2026, 3, 9)) == []


def test_a_not_before_other_than_today_is_a_broken_form(tmp_path):
    registry = _not_before_registry(tmp_path, value="yesterday")
    with pytest.raises(FormError, match="x-notBefore understands only \"today\", not 'yesterday'"):
        registry.errors("nb.schema.json", {})
