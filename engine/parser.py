"""Safe BPMN parsing and the checks a diagram must pass before it may run.

Untrusted XML is parsed by us with entity resolution, DTD loading and network access
off, and any DOCTYPE is refused outright (BPMN never needs one; XXE and entity bombs
live there). Only then is the tree handed to SpiffWorkflow's spiff parser, which keeps
the ``spiffworkflow:properties`` extensions (the plain BpmnParser silently drops them)
and validates against the BPMN 2.0 XSD.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from lxml import etree
from SpiffWorkflow.bpmn.specs.defaults import StartEvent
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser

from .exceptions import ProcessRejected, UnsafeExpression
from .expressions import check

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"

# Properties whose values are expressions, checked like any other expression.
EXPRESSION_PROPERTIES = ("assignee", "dueAt")
# Elements whose text is an expression or script.
_EXPRESSION_ELEMENTS = {
    f"{{{BPMN_NS}}}conditionExpression": "eval",
    f"{{{BPMN_NS}}}condition": "eval",  # conditionalEventDefinition
    f"{{{BPMN_NS}}}script": "exec",
    f"{{{BPMN_NS}}}timeDuration": "eval",
    f"{{{BPMN_NS}}}timeDate": "eval",
    f"{{{BPMN_NS}}}timeCycle": "eval",
    f"{{{BPMN_NS}}}loopCardinality": "eval",
    f"{{{BPMN_NS}}}completionCondition": "eval",
    f"{{{BPMN_NS}}}loopCondition": "eval",
    f"{{{SPIFF_NS}}}preScript": "exec",
    f"{{{SPIFF_NS}}}postScript": "exec",
}


@dataclass
class ParsedDiagram:
    """A diagram that passed every check, with what the platform needs to know about it."""

    process_id: str
    name: str
    sha256: str
    spec: object
    subprocess_specs: dict
    record_prefix: str
    user_tasks: list = field(default_factory=list)  # task specs of user tasks
    start_event: object = None


def safe_xml(data: bytes, max_bytes: int) -> etree._ElementTree:
    """Parse untrusted XML with every dangerous feature off; refuse DTDs and oversize input."""
    if len(data) > max_bytes:
        raise ProcessRejected(f"The diagram is {len(data):,} bytes; the limit is {max_bytes:,} bytes.",
                              code="too_large")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             dtd_validation=False, remove_comments=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ProcessRejected(f"The diagram is not well-formed XML: {exc}", code="invalid_xml") from exc
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise ProcessRejected("The diagram contains a DOCTYPE/DTD declaration, which is not allowed "
                              "(it can be used to read files or exhaust memory).", code="dtd_refused")
    for node in root.iter():
        if isinstance(node, etree._Entity):
            raise ProcessRejected("The diagram uses XML entities, which are not allowed.", code="dtd_refused")
    if root.tag != f"{{{BPMN_NS}}}definitions":
        raise ProcessRejected("The file is not a BPMN 2.0 diagram (root element must be bpmn:definitions).",
                              code="not_bpmn")
    return tree


def _check_in(node: etree._Element, source: str, mode: str) -> None:
    """Check one expression; a refusal names the nearest enclosing element with an id."""
    owner = node.getparent()
    while owner is not None and owner.get("id") is None:
        owner = owner.getparent()
    where = owner.get("id") if owner is not None else "?"
    try:
        check(source, mode)
    except UnsafeExpression as exc:
        raise UnsafeExpression(f"Element '{where}': {exc.message}", details={"element": where}) from exc


def check_expressions(root: etree._Element) -> None:
    """Refuse a diagram any of whose expressions falls outside the whitelist (URS-PLT-04)."""
    for node in root.iter():
        mode = _EXPRESSION_ELEMENTS.get(node.tag) if isinstance(node.tag, str) else None
        if mode and (node.text or "").strip():
            _check_in(node, node.text.strip(), mode)
        if node.tag == f"{{{SPIFF_NS}}}property" and node.get("name") in EXPRESSION_PROPERTIES:
            _check_in(node, node.get("value") or "", "eval")
        if node.tag == f"{{{SPIFF_NS}}}parameter":
            _check_in(node, node.get("value") or "", "eval")
        if node.tag == f"{{{SPIFF_NS}}}serviceTaskOperator":
            from .services import known

            if not known(node.get("id") or ""):
                raise ProcessRejected(f"Service task uses the unknown operation '{node.get('id')}'.",
                                      code="invalid_bpmn")


def parse_diagram(data: bytes, *, filename: str = "upload.bpmn", expected_process_id: str | None = None,
                  max_bytes: int = 2 * 1024 * 1024) -> ParsedDiagram:
    """Parse, check and return a diagram, or raise ProcessRejected with a reason a person can act on."""
    tree = safe_xml(data, max_bytes)
    root = tree.getroot()
    check_expressions(root)
    processes = [p for p in root.iter(f"{{{BPMN_NS}}}process") if p.get("isExecutable") in ("true", None)]
    if expected_process_id:
        ids = [p.get("id") for p in processes]
        if expected_process_id not in ids:
            raise ProcessRejected(f"{filename}: the file must contain a process with id '{expected_process_id}' "
                                  f"(found: {', '.join(filter(None, ids)) or 'none'}).")
        process_id = expected_process_id
    else:
        if len(processes) != 1:
            raise ProcessRejected(f"{filename}: expected exactly one executable process, found {len(processes)}.")
        process_id = processes[0].get("id")
    parser = SpiffBpmnParser()
    try:
        parser.add_bpmn_xml(tree, filename=filename)
        spec = parser.get_spec(process_id)
        subprocess_specs = parser.get_subprocess_specs(process_id)
    except Exception as exc:  # the library raises several types; all mean "this diagram is not acceptable"
        raise ProcessRejected(f"{filename}: {exc}", code="invalid_bpmn") from exc
    process_el = next(p for p in processes if p.get("id") == process_id)
    user_tasks = [ts for ts in spec.task_specs.values() if is_user_task(ts)]
    for sub in subprocess_specs.values():
        user_tasks += [ts for ts in sub.task_specs.values() if is_user_task(ts)]
    start_events = [ts for ts in spec.task_specs.values() if isinstance(ts, StartEvent)]
    start_event = start_events[0] if start_events else None
    props = _properties(start_event)
    prefix = props.get("recordPrefix") or process_id[:3].upper()
    if str(props.get("manualStart", "true")).strip().lower() not in ("true", "false"):
        raise ProcessRejected(f"{filename}: the start event's property manualStart must be 'true' or 'false', "
                              f"not '{props.get('manualStart')}'.", code="invalid_bpmn")
    for ts in user_tasks:
        if not _properties(ts).get("formJsonSchemaFilename"):
            raise ProcessRejected(f"{filename}: user task '{ts.name}' names no form "
                                  "(spiffworkflow:property formJsonSchemaFilename).", code="invalid_bpmn")
        if not ts.lane:
            raise ProcessRejected(f"{filename}: user task '{ts.name}' is in no lane, so no role may complete it.",
                                  code="invalid_bpmn")
    return ParsedDiagram(
        process_id=process_id,
        name=process_el.get("name") or process_id,
        sha256=hashlib.sha256(data).hexdigest(),
        spec=spec,
        subprocess_specs=subprocess_specs,
        record_prefix=prefix,
        user_tasks=user_tasks,
        start_event=start_event,
    )


def is_user_task(task_spec) -> bool:
    """User and manual tasks wait for a person; everything else the engine runs itself."""
    return bool(getattr(task_spec, "manual", False))


def _properties(task_spec) -> dict:
    if task_spec is None:
        return {}
    return dict((getattr(task_spec, "extensions", None) or {}).get("properties", {}) or {})


properties = _properties


def manual_start(start_properties: dict) -> bool:
    """Whether a person may start the process by hand (start page, API). A start event with the
    property ``manualStart`` = ``false`` is started only by the system: a linked record, a training
    assignment, a review sweep. The default is true."""
    return str(start_properties.get("manualStart", "true")).strip().lower() != "false"
