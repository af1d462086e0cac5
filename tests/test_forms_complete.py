"""Every diagram under processes/ runs on the engine (URS-PLT-01) and every user task and start
event in it names a form under forms/ that exists and is a valid JSON Schema 2020-12 describing an
object (URS-PLT-03). A missing or broken form would otherwise only show when someone reaches the task."""
from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from engine.parser import parse_diagram, properties
from engine.settings import REPO_ROOT

PROCESSES = REPO_ROOT / "processes"
FORMS = REPO_ROOT / "forms"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
DIAGRAMS = sorted(PROCESSES.glob("*.bpmn"))


def _form_steps():
    """(diagram, task id, properties) for every start event and user task of every diagram."""
    steps = []
    for path in DIAGRAMS:
        parsed = parse_diagram(path.read_bytes(), filename=path.name, expected_process_id=path.stem)
        for task in [parsed.start_event, *parsed.user_tasks]:
            if task is not None:
                steps.append(pytest.param(path.stem, task.name, properties(task), id=f"{path.stem}:{task.name}"))
    return steps


STEPS = _form_steps()


def _load(relative: str) -> dict:
    path = (FORMS / relative).resolve()
    assert FORMS.resolve() in path.parents, f"form '{relative}' lies outside forms/"
    assert path.is_file(), f"form '{relative}' does not exist under forms/"
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.urs("URS-PLT-01")
def test_there_are_diagrams_and_each_is_executable_by_the_engine():
    assert DIAGRAMS, "processes/ holds no diagram"
    for path in DIAGRAMS:
        parsed = parse_diagram(path.read_bytes(), filename=path.name, expected_process_id=path.stem)
        assert parsed.process_id == path.stem
        assert parsed.user_tasks, f"{path.name} has no user task"


@pytest.mark.urs("URS-PLT-03")
@pytest.mark.parametrize(("process_id", "task_id", "props"), STEPS)
def test_each_user_task_and_start_event_names_an_existing_valid_2020_12_form(process_id, task_id, props):
    name = props.get("formJsonSchemaFilename")
    if task_id == "start" and not name:
        pytest.skip(f"{process_id} starts without a form")
    assert name, f"{process_id}:{task_id} names no form (spiffworkflow:property formJsonSchemaFilename)"
    assert name.endswith(".schema.json")
    schema = _load(name)
    assert schema.get("$schema") == DRAFT_2020_12, f"{name} must declare JSON Schema 2020-12"
    Draft202012Validator.check_schema(schema)
    assert schema.get("type") == "object", f"{name} must describe an object"
    assert schema.get("title"), f"{name} needs a title the form can show"
    fields = schema.get("properties", {})
    assert fields, f"{name} has no fields"
    if schema.get("additionalProperties") is False:
        missing = set(schema.get("required", [])) - set(fields)
        assert not missing, f"{name} requires fields it does not define, so no submission can pass: {missing}"
    assert not [f for f in fields if f.startswith("_")], f"{name}: field names may not start with '_'"
    ui_name = props.get("formUiSchemaFilename")
    if ui_name:
        ui = _load(ui_name)
        assert isinstance(ui, dict)
        unknown = {k for k in ui if not k.startswith("ui:")} - set(fields)
        assert not unknown, f"{ui_name} lays out fields that {name} does not have: {unknown}"
