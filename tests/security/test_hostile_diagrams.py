"""Hostile or broken diagram files are refused with a reason and leave nothing behind (URS-PLT-04).

Each file goes in through the two doors a person can use: a process owner's upload
(Runtime.create_draft_version) and the released diagrams folder (Runtime.load_processes).
"""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.exceptions import ProcessRejected, UnsafeExpression
from engine.parser import parse_diagram
from engine.runtime import Runtime
from engine.settings import Settings
from models import AuditEntry, ProcessDefinition, ProcessVersion, Record, TaskStatus
from tests.fixtures import bpmn_builder as bb
from tests.fixtures.cast import add_users

pytestmark = pytest.mark.urs("URS-PLT-04")

PASSWD_MARKERS = ("root:", "/bin/bash", "/bin/sh", "daemon:")
GOOD = bb.sequence(1, "hostile")
XML_DECL, BODY = GOOD.split(b"\n", 1)


def with_doctype(doctype: bytes, body: bytes = BODY) -> bytes:
    return XML_DECL + b"\n" + doctype + b"\n" + body


def _laughs() -> bytes:
    entities = b'<!ENTITY a0 "lol">' + b"".join(
        b'<!ENTITY a%d "%s">' % (i, b"".join(b"&a%d;" % (i - 1) for _ in range(10))) for i in range(1, 10))
    body = BODY.replace(b'name="step_00">', b'name="step_00"><bpmn:documentation>&a9;</bpmn:documentation>')
    return with_doctype(b"<!DOCTYPE definitions [" + entities + b"]>", body)


HOSTILE_XML = {
    "xxe_in_text": with_doctype(
        b'<!DOCTYPE definitions [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        BODY.replace(b'name="step_00">', b'name="step_00"><bpmn:documentation>&x;</bpmn:documentation>')),
    "xxe_in_attribute": with_doctype(
        b'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>', BODY.replace(b'name="step_00"', b'name="&x;"')),
    "xxe_parameter_entity": with_doctype(
        b'<!DOCTYPE definitions [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'),
    "billion_laughs": _laughs(),
    "external_dtd": with_doctype(b'<!DOCTYPE definitions SYSTEM "http://127.0.0.1:9/evil.dtd">'),
    "external_dtd_file": with_doctype(b'<!DOCTYPE definitions SYSTEM "file:///etc/passwd">'),
    "oversize": GOOD.replace(b"<bpmn:process ", b"<!--" + b"x" * (2 * 1024 * 1024) + b"--><bpmn:process "),
    "not_bpmn": b'<?xml version="1.0"?><html><body><p>Not a diagram</p></body></html>',
    "svg_not_bpmn": b'<svg xmlns="http://www.w3.org/2000/svg"><text>definitions</text></svg>',
    "malformed": GOOD[:-40],
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "json": b'{"definitions": {"process": "deviation"}}',
}

EXPECTED_CODE = {
    "xxe_in_text": {"dtd_refused"}, "xxe_in_attribute": {"invalid_xml", "dtd_refused"},
    "xxe_parameter_entity": {"invalid_xml", "dtd_refused"}, "billion_laughs": {"invalid_xml", "dtd_refused"},
    "external_dtd": {"dtd_refused"}, "external_dtd_file": {"dtd_refused"}, "oversize": {"too_large"},
    "not_bpmn": {"not_bpmn"}, "svg_not_bpmn": {"not_bpmn"}, "malformed": {"invalid_xml"}, "empty": {"invalid_xml"},
    "binary": {"invalid_xml"}, "json": {"invalid_xml"},
}


@pytest.fixture
def rt(db_url, tmp_path):
    runtime = Runtime(Settings(database_url=db_url, processes_dir=tmp_path / "processes", forms_dir=bb.FORMS_DIR))
    yield runtime
    runtime.db.dispose()


def nothing_created(rt) -> bool:
    with rt.db.sessionmaker() as s:
        return (s.scalar(select(func.count()).select_from(ProcessVersion)) == 0
                and s.scalar(select(func.count()).select_from(ProcessDefinition)) == 0
                and s.scalar(select(func.count()).select_from(AuditEntry).where(
                    AuditEntry.action == "diagram_loaded")) == 0)


def assert_clear_refusal(exc: ProcessRejected) -> None:
    assert exc.message and len(exc.message) < 2000
    assert not any(marker in exc.message for marker in PASSWD_MARKERS), exc.message
    assert "Traceback" not in exc.message


@pytest.mark.parametrize("case", sorted(HOSTILE_XML))
def test_a_hostile_or_broken_file_is_refused_by_the_parser_with_a_clear_reason(case):
    with pytest.raises(ProcessRejected) as refused:
        parse_diagram(HOSTILE_XML[case], filename="upload.bpmn")
    assert refused.value.code in EXPECTED_CODE[case], refused.value.message
    assert_clear_refusal(refused.value)


def test_a_hostile_upload_creates_no_diagram_version(rt):
    for case in ("xxe_in_text", "billion_laughs", "external_dtd", "oversize", "not_bpmn", "malformed"):
        with pytest.raises(ProcessRejected) as refused:
            rt.create_draft_version(None, "hostile", HOSTILE_XML[case])
        assert_clear_refusal(refused.value)
        assert nothing_created(rt), case


def test_a_hostile_file_in_the_processes_folder_is_refused_and_nothing_is_released(rt):
    bb.write(rt.settings.processes_dir, "hostile", HOSTILE_XML["xxe_in_text"])
    with pytest.raises(ProcessRejected) as refused:
        rt.load_processes()
    assert_clear_refusal(refused.value)
    assert nothing_created(rt)


def test_an_xinclude_is_never_followed(rt):
    data = GOOD.replace(b"<bpmn:process ", b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
                                           b'href="file:///etc/passwd" parse="text"/><bpmn:process ')
    try:
        version = rt.create_draft_version(None, "hostile", data)
    except ProcessRejected as refused:
        assert_clear_refusal(refused)
        assert nothing_created(rt)
        return
    with rt.db.sessionmaker() as s:
        stored = s.get(ProcessVersion, version.id)
        assert not any(marker in stored.spec_json for marker in PASSWD_MARKERS)
        assert stored.bpmn == data


# --------------------------------------------------------------------------- unsafe expressions at load

def _evil_condition() -> bytes:
    return bb.diagram("hostile", [bb.start_event(), bb.gateway("choose", "exclusiveGateway", default="flow_default"),
                                  bb.user_task("a"), bb.end_event()],
                      [("start", "choose"), ("choose", "a", "__import__('os').system('id') == 0", "flow_evil"),
                       ("choose", "end", None, "flow_default"), ("a", "end")])


def _evil_property(name: str) -> bytes:
    node_id, xml = bb.user_task("a")
    xml = xml.replace("</spiffworkflow:properties>",
                      f'<spiffworkflow:property name="{name}" value="__import__(&quot;os&quot;).getlogin()" />'
                      "</spiffworkflow:properties>")
    return bb.diagram("hostile", [bb.start_event(), (node_id, xml), bb.end_event()], [("start", "a"), ("a", "end")])


def _evil_conditional_event() -> bytes:
    wait = ('<bpmn:intermediateCatchEvent id="wait_for_it"><bpmn:conditionalEventDefinition id="wait_condition">'
            "<bpmn:condition>__import__('os').system('id') == 0</bpmn:condition>"
            "</bpmn:conditionalEventDefinition></bpmn:intermediateCatchEvent>")
    return bb.diagram("hostile", [bb.start_event(), ("wait_for_it", wait), bb.end_event()],
                      [("start", "wait_for_it"), ("wait_for_it", "end")])


UNSAFE = {
    "script_imports_os": (bb.diagram("hostile", [bb.start_event(), bb.script_task("bad_script", "import os\nx = 1"),
                                                 bb.end_event()], [("start", "bad_script"), ("bad_script", "end")]),
                          "bad_script"),
    "script_escapes_through_subclasses": (
        bb.diagram("hostile", [bb.start_event(), bb.script_task(
            "sneaky", "x = [c for c in ().__class__.__bases__[0].__subclasses__()]"), bb.end_event()],
            [("start", "sneaky"), ("sneaky", "end")]), "sneaky"),
    "gateway_condition_imports": (_evil_condition(), "flow_evil"),
    "timer_expression_imports": (bb.boundary_timer("hostile").replace(b'"PT1S"', b"__import__('os').getcwd()"),
                                 "late_timer"),
    "assignee_imports": (_evil_property("assignee"), "'a'"),
    "due_date_imports": (_evil_property("dueAt"), "'a'"),
    "conditional_event_imports": (_evil_conditional_event(), "wait_condition"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_a_diagram_with_an_unsafe_expression_is_refused_by_the_parser_naming_the_element(case):
    data, element = UNSAFE[case]
    with pytest.raises(UnsafeExpression) as refused:
        parse_diagram(data, filename="hostile.bpmn", expected_process_id="hostile")
    assert element.strip("'") in refused.value.message
    assert refused.value.details.get("element") == element.strip("'")


def test_a_diagram_with_an_unsafe_expression_is_refused_at_load_and_nothing_is_created(rt):
    for case, (data, element) in sorted(UNSAFE.items()):
        with pytest.raises(UnsafeExpression) as refused:
            rt.create_draft_version(None, "hostile", data)
        assert element.strip("'") in refused.value.message, case
        assert nothing_created(rt), case
        bb.write(rt.settings.processes_dir, "hostile", data)
        with pytest.raises(UnsafeExpression):
            rt.load_processes()
        assert nothing_created(rt), case


# --------------------------------------------------------------------------- failures at run time

def _divide() -> bytes:
    nodes = [bb.start_event(), bb.user_task("enter"), bb.script_task("compute", "ratio = 100 / divisor"),
             bb.user_task("after"), bb.end_event()]
    return bb.diagram("divide", nodes, [("start", "enter"), ("enter", "compute"), ("compute", "after"),
                                        ("after", "end")])


def test_a_script_failing_at_run_time_refuses_the_step_and_leaves_record_and_task_unchanged(rt):
    bb.write(rt.settings.processes_dir, "divide", _divide())
    rt.load_processes()
    tess = add_users(rt, {"tess": ("Tess Tester", [bb.ROLE])})["tess"]
    record = rt.start_record(tess, "divide", {"note": "try"})

    def state():
        with rt.db.sessionmaker() as s:
            r = s.get(Record, record.id)
            tasks = rt.record_tasks(s, r)
            return (r.version, r.status, dict(r.data),
                    sorted((t.bpmn_id, t.status) for t in tasks),
                    s.scalar(select(func.count()).select_from(AuditEntry)))

    before = state()
    (enter,) = [t for t in before[3] if t[0] == "enter"]
    assert enter[1] == TaskStatus.OPEN
    with rt.db.sessionmaker() as s:
        (task,) = rt.open_tasks(s, tess)
    for _ in range(2):  # twice: the failed attempt must not leave a half-run workflow in the cache either
        with pytest.raises(ProcessRejected) as refused:
            rt.complete_task(task.id, tess, {"divisor": 0})
        assert "division by zero" in refused.value.message
        assert refused.value.code == "engine_error"
        assert state() == before

    done = rt.complete_task(task.id, tess, {"divisor": 4})
    assert done.data["ratio"] == 25
    with rt.db.sessionmaker() as s:
        assert [t.bpmn_id for t in rt.open_tasks(s, tess)] == ["after"]
