"""The start event's properties that the parser checks at load: manualStart must say true or false."""
from __future__ import annotations

import pytest

from engine.exceptions import ProcessRejected
from engine.parser import manual_start, parse_diagram, properties
from tests.fixtures import bpmn_builder as bb


def _diagram(manual: str | None) -> bytes:
    xml = bb.diagram("starter", [bb.start_event(), bb.user_task("step"), bb.end_event()],
                     [("start", "step"), ("step", "end")]).decode()
    if manual is not None:
        xml = xml.replace('name="recordPrefix" value="TST" />',
                          f'name="recordPrefix" value="TST" /><spiffworkflow:property name="manualStart" '
                          f'value="{manual}" />', 1)
    return xml.encode()


@pytest.mark.urs("URS-PLT-01")
@pytest.mark.parametrize(("value", "expected"), [(None, True), ("true", True), ("false", False), (" FALSE ", False)])
def test_manual_start_is_read_from_the_start_event(value, expected):
    parsed = parse_diagram(_diagram(value), filename="starter.bpmn")
    assert manual_start(properties(parsed.start_event)) is expected


@pytest.mark.urs("URS-PLT-01")
def test_a_manual_start_that_is_neither_true_nor_false_is_refused_with_the_reason():
    with pytest.raises(ProcessRejected) as refused:
        parse_diagram(_diagram("sometimes"), filename="starter.bpmn")
    assert refused.value.code == "invalid_bpmn"
    assert "manualStart must be 'true' or 'false', not 'sometimes'" in refused.value.message
