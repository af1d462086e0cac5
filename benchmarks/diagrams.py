"""Generated diagrams and forms for the benchmarks.

Three processes, each in one lane (the lane name is the role that completes the tasks):

- ``bench_two_step``: start -> two user tasks -> end (figure a);
- ``bench_seq_<n>``: start -> ``n`` user tasks in a row -> end (figure b);
- ``bench_mi_<n>``: start -> one parallel multi-instance user task over ``items``
  (``loopDataInputRef items``, ``inputDataItem item``, results gathered into ``results``)
  -> end (figure c). ``n`` only names the diagram; the item count comes from the start data.

Each file is written as ``<process id>.bpmn`` because the platform requires the file stem to
equal the process id. The forms are JSON Schemas under ``forms/bench/``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

ROLE = "Bench"
SEQ_FORM = "bench/answer.schema.json"
MI_FORM = "bench/item.schema.json"

# One form serves every step of the sequence: each step answers its own field
# (``answer_<i>``), so a record's data grows by one field per step as a real record's would.
SEQ_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Benchmark step",
    "type": "object",
    "patternProperties": {"^answer_[0-9]+$": {"type": "string", "maxLength": 200}},
    "additionalProperties": False,
    "minProperties": 1,
}
MI_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Benchmark item review",
    "type": "object",
    "properties": {
        "result": {"type": "string", "enum": ["pass", "fail"]},
        "comment": {"type": "string", "maxLength": 200},
    },
    "required": ["result"],
    "additionalProperties": False,
}

_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
                  id="{pid}_definitions" targetNamespace="https://cellqms.org/bpmn/benchmarks"
                  exporter="cellqms benchmarks (generated)" exporterVersion="1">
  <bpmn:collaboration id="{pid}_collaboration">
    <bpmn:participant id="{pid}_participant" name={name} processRef="{pid}" />
  </bpmn:collaboration>
  <bpmn:process id="{pid}" name={name} isExecutable="true">
"""
_TAIL = """  </bpmn:process>
</bpmn:definitions>
"""


def _lane(pid: str, node_ids: list[str]) -> str:
    refs = "".join(f"        <bpmn:flowNodeRef>{n}</bpmn:flowNodeRef>\n" for n in node_ids)
    return (f'    <bpmn:laneSet id="{pid}_lanes">\n'
            f'      <bpmn:lane id="{pid}_lane" name="{ROLE}">\n{refs}      </bpmn:lane>\n'
            f'    </bpmn:laneSet>\n')


def _start(pid: str, out_flow: str) -> str:
    return (f'    <bpmn:startEvent id="start" name="Start">\n'
            f'      <bpmn:extensionElements><spiffworkflow:properties>'
            f'<spiffworkflow:property name="recordPrefix" value="BEN" />'
            f'</spiffworkflow:properties></bpmn:extensionElements>\n'
            f'      <bpmn:outgoing>{out_flow}</bpmn:outgoing>\n'
            f'    </bpmn:startEvent>\n')


def _end(in_flow: str) -> str:
    return (f'    <bpmn:endEvent id="end" name="End">\n'
            f'      <bpmn:incoming>{in_flow}</bpmn:incoming>\n'
            f'    </bpmn:endEvent>\n')


def _flow(fid: str, source: str, target: str) -> str:
    return f'    <bpmn:sequenceFlow id="{fid}" sourceRef="{source}" targetRef="{target}" />\n'


def _user_task(tid: str, name: str, form: str, incoming: str, outgoing: str, extra: str = "") -> str:
    return (f'    <bpmn:userTask id="{tid}" name={quoteattr(name)}>\n'
            f'      <bpmn:extensionElements><spiffworkflow:properties>'
            f'<spiffworkflow:property name="formJsonSchemaFilename" value="{form}" />'
            f'</spiffworkflow:properties></bpmn:extensionElements>\n'
            f'      <bpmn:incoming>{incoming}</bpmn:incoming>\n'
            f'      <bpmn:outgoing>{outgoing}</bpmn:outgoing>\n'
            f'{extra}'
            f'    </bpmn:userTask>\n')


def sequence_bpmn(pid: str, n: int) -> str:
    """``n`` user tasks one after the other."""
    tasks = [f"step_{i:04d}" for i in range(1, n + 1)]
    nodes = ["start", *tasks, "end"]
    parts = [_HEAD.format(pid=pid, name=quoteattr(f"Benchmark: {n} steps in a row")), _lane(pid, nodes)]
    parts.append(_start(pid, "flow_0000"))
    for i, tid in enumerate(tasks, start=1):
        parts.append(_user_task(tid, f"Step {i}", SEQ_FORM, f"flow_{i - 1:04d}", f"flow_{i:04d}"))
    parts.append(_end(f"flow_{n:04d}"))
    for i in range(n + 1):
        parts.append(_flow(f"flow_{i:04d}", nodes[i], nodes[i + 1]))
    parts.append(_TAIL)
    return "".join(parts)


def multi_instance_bpmn(pid: str) -> str:
    """One parallel multi-instance user task: one instance per element of ``items``."""
    loop = ('      <bpmn:multiInstanceLoopCharacteristics isSequential="false">\n'
            '        <bpmn:loopDataInputRef>items</bpmn:loopDataInputRef>\n'
            '        <bpmn:loopDataOutputRef>results</bpmn:loopDataOutputRef>\n'
            '        <bpmn:inputDataItem id="item" name="item" />\n'
            '        <bpmn:outputDataItem id="result" name="result" />\n'
            '      </bpmn:multiInstanceLoopCharacteristics>\n')
    nodes = ["start", "review_item", "end"]
    return "".join([
        _HEAD.format(pid=pid, name=quoteattr("Benchmark: parallel multi-instance review")),
        _lane(pid, nodes),
        _start(pid, "flow_start"),
        _user_task("review_item", "Review item", MI_FORM, "flow_start", "flow_end", extra=loop),
        _end("flow_end"),
        _flow("flow_start", "start", "review_item"),
        _flow("flow_end", "review_item", "end"),
        _TAIL,
    ])


@dataclass
class DiagramSet:
    root: Path
    processes_dir: Path
    forms_dir: Path
    two_step: str
    sequence: str
    multi: str
    seq_steps: int

    def path(self, pid: str) -> Path:
        return self.processes_dir / f"{pid}.bpmn"


def write_diagrams(root: Path, seq_steps: int, mi_items: int) -> DiagramSet:
    """Write the three diagrams and the two forms below ``root``."""
    processes = root / "processes"
    forms = root / "forms"
    (forms / "bench").mkdir(parents=True, exist_ok=True)
    processes.mkdir(parents=True, exist_ok=True)
    (forms / SEQ_FORM).write_text(json.dumps(SEQ_SCHEMA, indent=2), encoding="utf-8")
    (forms / MI_FORM).write_text(json.dumps(MI_SCHEMA, indent=2), encoding="utf-8")
    ds = DiagramSet(root, processes, forms, "bench_two_step", f"bench_seq_{seq_steps}", f"bench_mi_{mi_items}",
                    seq_steps)
    ds.path(ds.two_step).write_text(sequence_bpmn(ds.two_step, 2), encoding="utf-8")
    ds.path(ds.sequence).write_text(sequence_bpmn(ds.sequence, seq_steps), encoding="utf-8")
    ds.path(ds.multi).write_text(multi_instance_bpmn(ds.multi), encoding="utf-8")
    return ds


def step_answer(i: int) -> dict:
    """What step ``i`` of a sequence submits (about 60 bytes, a new field per step)."""
    return {f"answer_{i}": f"Checked at step {i}; within limits, no remarks."}


def item_answer(i: int) -> dict:
    return {"result": "pass" if i % 10 else "fail", "comment": f"Item {i} inspected."}


def mi_items(n: int) -> list[dict]:
    return [{"id": i, "label": f"Vial {i:04d}"} for i in range(1, n + 1)]
