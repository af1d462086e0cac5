"""The server-side form renderer on every JSON Schema type, alone and through a real process:
repeating rows with add and remove, bounds, dates, date-times in the user's zone, booleans,
radios and multiple choices; errors next to their fields and typed values kept."""
from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from engine.runtime import Runtime
from engine.settings import Settings
from models import Record
from tests.conftest import PASSWORD
from webapp import create_app
from webapp.forms_render import hidden_fields, parse_form, raw_from_data, render_data, render_form

SCHEMA = {
    "type": "object",
    "title": "Cell counts",
    "properties": {
        "batch": {"type": "string", "title": "Batch", "minLength": 1, "maxLength": 40},
        "method": {"type": "string", "title": "Method", "enum": ["manual", "automated"]},
        "checks": {"type": "array", "title": "Checks done", "uniqueItems": True,
                   "items": {"type": "string", "enum": ["label", "seal", "temperature"]}},
        "started": {"type": "string", "format": "date-time", "title": "Started"},
        "rows": {
            "type": "array", "title": "Counts", "minItems": 1,
            "items": {
                "type": "object", "title": "Sample",
                "properties": {
                    "sample": {"type": "string", "title": "Sample ID", "minLength": 1},
                    "count": {"type": "integer", "title": "Cells (x10^6)", "minimum": 0, "maximum": 5000},
                    "viability": {"type": "number", "title": "Viability %", "minimum": 0, "maximum": 100},
                    "measured_on": {"type": "string", "format": "date", "title": "Measured on"},
                    "passed": {"type": "boolean", "title": "Within specification"},
                },
                "required": ["sample", "count", "viability"],
            },
        },
    },
    "required": ["batch", "method", "rows"],
    "additionalProperties": False,
}
UI = {"ui:order": ["batch", "method", "started", "checks", "rows"], "method": {
    "ui:widget": "radio", "ui:labels": {"manual": "Manual count", "automated": "Automated counter"}},
    "checks": {"items": {"ui:labels": {"seal": "Seal intact"}}}}


@pytest.mark.urs("URS-PLT-03")
def test_every_type_is_rendered_with_labels_and_bounds():
    raw = {"rows": [{}, {}]}
    html = str(render_form(SCHEMA, UI, raw, [], tz="Europe/Paris"))
    assert '<input type="text" id="f-batch" name="batch" value="" maxlength="40" aria-required="true">' in html
    assert '<input type="radio" id="f-method-0" name="method" value="manual"> <label for="f-method-0">' \
           'Manual count</label>' in html
    assert '<legend>Method <span class="req">(required)</span></legend>' in html
    assert 'type="checkbox" id="f-checks-1" name="checks" value="seal"' in html and "Seal intact" in html
    assert 'type="datetime-local" id="f-started" name="started"' in html and "(Europe/Paris)" in html
    assert html.count('<fieldset class="row"') == 2 and "<legend>Sample 2</legend>" in html
    assert 'name="rows.__rows" value="2"' in html
    assert ('<input type="number" inputmode="numeric" id="f-rows-0-count" name="rows[0].count" value="" step="1" '
            'min="0" max="5000"') in html
    assert "A whole number, at least 0 and at most 5000." in html
    assert 'name="rows[1].viability" value="" step="any" min="0" max="100"' in html
    assert 'type="date" id="f-rows-1-measured_on"' in html
    assert 'type="checkbox" id="f-rows-0-passed" name="rows[0].passed" value="true"' in html
    assert 'value="remove:rows:1"' in html and 'value="add:rows"' in html
    order = [html.index(f'id="f-{n}"') for n in ("batch", "method", "started", "checks", "rows")]
    assert order == sorted(order)


@pytest.mark.urs("URS-PLT-03")
def test_posted_values_are_typed_for_the_engine_and_kept_as_typed():
    form = MultiDict([("batch", "B-1"), ("method", "automated"), ("checks", "temperature"), ("checks", "label"),
                      ("started", "2026-03-29T03:30"), ("rows.__rows", "2"),
                      ("rows[0].sample", "S1"), ("rows[0].count", "12"), ("rows[0].viability", "94.5"),
                      ("rows[0].measured_on", "2026-03-01"), ("rows[0].passed", "true"),
                      ("rows[1].sample", "S2"), ("rows[1].count", "twelve"), ("rows[1].viability", "88"),
                      ("unknown", "ignored")])
    parsed = parse_form(SCHEMA, form, "Europe/Paris")
    assert parsed.data == {
        "batch": "B-1", "method": "automated", "checks": ["label", "temperature"],
        "started": "2026-03-29T01:30:00+00:00",  # 03:30 CEST (summer time began that night) is 01:30 UTC
        "rows": [{"sample": "S1", "count": 12, "viability": 94.5, "measured_on": "2026-03-01", "passed": True},
                 {"sample": "S2", "count": "twelve", "viability": 88, "passed": False}],
    }
    assert parsed.raw["rows"][1]["count"] == "twelve"  # shown again exactly as typed
    html = str(render_form(SCHEMA, UI, parsed.raw, [{"path": "rows[1].count", "message": "Must be a whole number."}],
                           tz="Europe/Paris"))
    block = re.search(r'<div class="field has-error"><label for="f-rows-1-count">.*?</div>', html, re.S).group(0)
    assert "Must be a whole number." in block and 'value="twelve"' in block
    assert 'value="2026-03-29T03:30"' in html and 'value="temperature" checked' in html
    assert "Must be a whole number." not in html.split('id="f-rows-1-count"')[0].split("f-rows-1-sample")[0]


@pytest.mark.urs("URS-PLT-03")
def test_rows_are_added_and_removed_without_losing_other_rows():
    form = MultiDict([("batch", "B-1"), ("rows.__rows", "3"), ("rows[0].sample", "S1"), ("rows[1].sample", "S2"),
                      ("rows[2].sample", "S3"), ("_action", "remove:rows:1")])
    parsed = parse_form(SCHEMA, form, "UTC")
    assert [r.get("sample") for r in parsed.raw["rows"]] == ["S1", "S3"]
    parsed = parse_form(SCHEMA, MultiDict([("rows.__rows", "1"), ("rows[0].sample", "S1"), ("_action", "add:rows")]),
                        "UTC")
    assert len(parsed.raw["rows"]) == 2
    hostile = parse_form(SCHEMA, MultiDict([("rows.__rows", "999999999")]), "UTC")
    assert len(hostile.raw["rows"]) <= 200


@pytest.mark.urs("URS-PLT-03")
def test_stored_data_round_trips_through_hidden_fields_and_read_only_display():
    data = {"batch": "B-<1>", "method": "manual", "checks": ["seal"], "started": "2026-01-10T08:00:00+00:00",
            "rows": [{"sample": "S1", "count": 3, "viability": 90.0, "passed": False}]}
    raw = raw_from_data(SCHEMA, data, "Asia/Tokyo")
    assert raw["started"] == "2026-01-10T17:00"
    posted = MultiDict(re.findall(r'name="([^"]+)" value="([^"]*)"', str(hidden_fields(SCHEMA, raw))))
    posted = MultiDict([(k, v.replace("&lt;", "<").replace("&gt;", ">")) for k, v in posted.items(multi=True)])
    assert parse_form(SCHEMA, posted, "Asia/Tokyo").data == {**data, "rows": [
        {"sample": "S1", "count": 3, "viability": 90, "passed": False}]}
    shown = str(render_data(SCHEMA, UI, data, tz="Asia/Tokyo"))
    assert "<dt>Method</dt><dd>Manual count</dd>" in shown and "B-&lt;1&gt;" in shown
    assert "2026-01-10 17:00 JST" in shown and "<td>No</td>" in shown and "Seal intact" in shown


# ----------------------------------------------------------------------------- through a real process

SAMPLE_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="t">
  <bpmn:process id="counts" name="Cell counts" isExecutable="true">
    <bpmn:laneSet id="ls"><bpmn:lane id="l1" name="Initiator">
      <bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>review</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>done</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="start"><bpmn:extensionElements><spiffworkflow:properties>
      <spiffworkflow:property name="recordPrefix" value="CNT" />
      <spiffworkflow:property name="formJsonSchemaFilename" value="counts/start.schema.json" />
      <spiffworkflow:property name="formUiSchemaFilename" value="counts/start.ui.json" />
    </spiffworkflow:properties></bpmn:extensionElements><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="review" name="Review"><bpmn:extensionElements><spiffworkflow:properties>
      <spiffworkflow:property name="formJsonSchemaFilename" value="counts/start.schema.json" />
    </spiffworkflow:properties></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="done"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review" />
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="done" />
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def counts_app(db_url, tmp_path):
    (tmp_path / "processes").mkdir()
    (tmp_path / "processes" / "counts.bpmn").write_text(SAMPLE_BPMN)
    (tmp_path / "forms" / "counts").mkdir(parents=True)
    (tmp_path / "forms" / "counts" / "start.schema.json").write_text(json.dumps(SCHEMA))
    (tmp_path / "forms" / "counts" / "start.ui.json").write_text(json.dumps(UI))
    rt = Runtime(Settings(database_url=db_url, processes_dir=tmp_path / "processes", forms_dir=tmp_path / "forms"))
    rt.load_processes()
    rt.add_user(None, "olivia", "Olivia Operator", PASSWORD, ["Initiator"])
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "SESSION_COOKIE_SECURE": False,
                      "SECRET_KEY": "t"}, runtime=rt)
    yield app, rt
    rt.db.dispose()


@pytest.mark.urs("URS-PLT-03")
def test_repeating_rows_through_the_start_page(counts_app):
    app, rt = counts_app
    c = app.test_client()
    c.post("/login", data={"username": "olivia", "password": PASSWORD})
    html = c.get("/start/counts").get_data(as_text=True)
    assert html.count('<fieldset class="row"') == 1  # minItems: one row to start with
    base = [("batch", "B-7"), ("method", "manual"), ("rows.__rows", "1"), ("rows[0].sample", "S1"),
            ("rows[0].count", "10"), ("rows[0].viability", "95")]
    added = c.post("/start/counts", data=MultiDict(base + [("_action", "add:rows")]))
    assert added.status_code == 200
    html = added.get_data(as_text=True)
    assert html.count('<fieldset class="row"') == 2 and 'value="S1"' in html  # nothing lost
    posted = MultiDict([(k, v) for k, v in base if k != "rows.__rows"] + [
        ("rows.__rows", "2"), ("rows[1].sample", "S2"), ("rows[1].count", "-4"), ("rows[1].viability", "101")])
    resp = c.post("/start/counts", data=posted)
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    count_block = re.search(r'<div class="field has-error"><label for="f-rows-1-count">.*?</div>', html, re.S)
    assert count_block and "Must be at least 0." in count_block.group(0) and 'value="-4"' in count_block.group(0)
    assert "Must be at most 100." in html and 'href="#f-rows-1-viability"' in html
    posted.setlist("rows[1].count", ["4"])
    posted.setlist("rows[1].viability", ["80.5"])
    resp = c.post("/start/counts", data=posted)
    assert resp.status_code == 302
    with rt.db.sessionmaker() as s:
        record = s.scalar(select(Record))
        assert record.number.startswith("CNT-")
        assert record.data["rows"] == [{"sample": "S1", "count": 10, "viability": 95, "passed": False},
                                       {"sample": "S2", "count": 4, "viability": 80.5, "passed": False}]
    page = c.get(resp.headers["Location"]).get_data(as_text=True)
    assert '<table class="rows">' in page and "<td>80.5</td>" in page


@pytest.mark.urs("URS-PLT-03")
def test_each_value_of_a_list_has_one_element_with_its_id_and_its_own_label():
    schema = {"type": "object", "properties": {"reviewers": {
        "type": "array", "title": "Reviewers", "items": {"type": "string", "title": "Reviewer"}}}}
    html = str(render_form(schema, {}, {"reviewers": ["rita", "rob"]}))
    for i in (0, 1):
        assert html.count(f'id="f-reviewers-{i}"') == 1
        assert f'<label for="f-reviewers-{i}">Reviewer {i + 1}' in html


@pytest.mark.urs("URS-PLT-03")
def test_a_problem_that_names_no_field_is_listed_once_in_the_form_and_the_summary_links_to_it():
    from webapp.forms_render import error_summary

    schema = {"type": "object", "properties": {"owner": {"type": "string", "title": "Owner"}}}
    errors = [{"path": 'action["owner"]', "message": "'ivan' is not an active user holding the role 'Action Owner'."},
              {"path": "owner", "message": "This field is required."}]
    summary = str(error_summary(schema, {}, errors))
    assert '<a href="#f-form-errors">' in summary and "is not an active user" in summary
    assert '<a href="#f-owner">Owner: This field is required.</a>' in summary
    form = str(render_form(schema, {}, {}, errors))
    assert 'id="f-form-errors"' in form and form.count("is not an active user") == 1


@pytest.mark.urs("URS-PLT-03")
def test_a_table_of_rows_shows_the_labels_of_its_choices():
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {
        "type": "object", "properties": {"kind": {"type": "string", "title": "Kind", "enum": ["equipment", "document"]},
                                         "reference": {"type": "string", "title": "Reference"}}}}}}
    ui = {"items": {"items": {"kind": {"ui:labels": {"equipment": "Equipment", "document": "Document"}}}}}
    html = str(render_data(schema, ui, {"items": [{"kind": "equipment", "reference": "CRF-03"}]}))
    assert "<td>Equipment</td>" in html and "<td>equipment</td>" not in html
