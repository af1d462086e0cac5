"""Run diagram scenario files against the real runtime and measure sequence-flow coverage (URS-VAL-02).

A scenario file (``bpmn_tests/<process_id>/<scenario>.yaml``, format in
``docs/validation/scenarios.md``) names users, starts one record, completes tasks, fires
timers and states what must be open or true after each step. Everything goes through
:class:`engine.runtime.Runtime` (start_record, complete_task, fire_due_timers) on a
freshly migrated database, so a scenario exercises the same permission, form,
signature and audit rules as the web UI and the API.

Coverage: after a scenario the record's workflow is rebuilt from its stored task rows
(``engine.state.load``); a sequence flow ``source -> target`` counts as taken when a
task of ``target`` was reached whose nearest BPMN ancestor is a completed task of
``source``. Only passed scenarios count towards a diagram's coverage.
"""
from __future__ import annotations

import ast
import datetime as dt
import hashlib
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import yaml
from sqlalchemy import select

from engine import state as engine_state
from engine.exceptions import CellqmsError
from engine.parser import BPMN_NS, SPIFF_NS, safe_xml
from engine.runtime import Runtime
from engine.settings import REPO_ROOT, Settings
from models import ProcessDefinition, ProcessVersion, Record, RecordLink, Task, TaskStatus, verify_chain
from models.migrate import upgrade

SCENARIO_DIR = Path(__file__).resolve().parent
DEFAULT_PASSWORD = "Scenario-password-1"
SYSTEM = "system"  # start: {as: system} starts a process the way a sweep or an assignment does
MAX_WAIT_SECONDS = 10.0
SCENARIO_SUFFIXES = (".yaml", ".yml")

_STEP_KINDS = ("complete", "fire_timers", "wait")
_STEP_KEYS = {"complete", "as", "data", "signature", "clock", "expect_error", "expect_open", "fire_timers",
              "expect_fired", "wait", "note"}
_TOP_KEYS = {"name", "description", "urs", "users", "password", "start", "steps", "expect", "process",
             "reload_between_steps", "documents"}
_DURATION = re.compile(
    r"^(?P<sign>[+-])?P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")
_SYSTEM = SimpleNamespace(id=None, username="system:bpmn_tests")


class ScenarioFormatError(ValueError):
    """A scenario file that does not follow the documented format."""


class StepFailed(AssertionError):
    """An expectation of a scenario was not met."""


# ----------------------------------------------------------------------------------- the format
def parse_duration(text: str) -> dt.timedelta:
    """A signed ISO 8601 duration without years or months ("-P31D", "PT3S", "-P29DT23H59M57S")."""
    match = _DURATION.match(str(text).strip())
    if not match or str(text).strip().rstrip("T") in ("P", "-P", "+P"):
        raise ScenarioFormatError(f"'{text}' is not an ISO 8601 duration such as -P31D or PT3S "
                                  "(years and months are not allowed: their length varies)")
    parts = {k: float(v) for k, v in match.groupdict().items() if v and k != "sign"}
    delta = dt.timedelta(weeks=parts.get("w", 0), days=parts.get("d", 0), hours=parts.get("h", 0),
                         minutes=parts.get("m", 0), seconds=parts.get("s", 0))
    return -delta if match.group("sign") == "-" else delta


def _plain(value):
    """YAML turns unquoted timestamps into datetimes; forms expect ISO strings, so convert them back."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass
class Step:
    kind: str                      # complete | fire_timers | wait
    index: int                     # 1-based position in the file (0 = start)
    task: str | None = None
    actor: str | None = None
    data: dict = field(default_factory=dict)
    signature: dict | None = None  # {"meaning": ..., "password": ...}
    clock: dt.timedelta | None = None
    expect_error: str | None = None
    expect_open: list | None = None
    expect_fired: int | None = None
    wait: dt.timedelta | None = None

    def describe(self) -> str:
        if self.kind == "complete":
            return f"step {self.index} (complete {self.task} as {self.actor})"
        if self.kind == "fire_timers":
            return f"step {self.index} (fire timers)"
        return f"step {self.index} (wait {self.wait.total_seconds():g} s)"


@dataclass
class Scenario:
    """One path through one diagram, read from a scenario file."""

    process: str
    slug: str
    path: Path
    name: str
    description: str
    urs: list[str]
    users: dict[str, dict]
    password: str
    start: Step
    steps: list[Step]
    expect: dict
    reload_between_steps: bool = True
    # Controlled documents put in the library before the start: number -> {title, doc_type, owner}.
    documents: dict = field(default_factory=dict)

    @property
    def test_id(self) -> str:
        return f"{self.process}/{self.slug}"


def _users(raw, where: str) -> dict[str, dict]:
    if not isinstance(raw, dict) or not raw:
        raise ScenarioFormatError(f"{where}: 'users' must map each username to its roles")
    users = {}
    for username, spec in raw.items():
        if isinstance(spec, str):
            spec = {"roles": [spec]}
        elif isinstance(spec, list):
            spec = {"roles": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("roles", []), list):
            raise ScenarioFormatError(f"{where}: user '{username}' needs a list of roles")
        users[str(username)] = {"roles": [str(r) for r in spec.get("roles", [])],
                                "name": str(spec.get("name") or str(username).title())}
    return users


def _signature(raw, password: str, where: str) -> dict | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return {"meaning": raw, "password": password}
    if isinstance(raw, dict) and raw.get("meaning"):
        return {"meaning": str(raw["meaning"]), "password": str(raw.get("password", password))}
    raise ScenarioFormatError(f"{where}: 'signature' is a meaning (e.g. approved) or {{meaning, password}}")


def _expect_open(raw, where: str) -> list | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ScenarioFormatError(f"{where}: 'expect_open' is a list of task ids")
    return list(raw)


def _duration(value, where: str) -> dt.timedelta:
    try:
        return parse_duration(value)
    except ScenarioFormatError as exc:
        raise ScenarioFormatError(f"{where}: {exc}") from exc


def _step(raw, index: int, password: str, users: dict, where: str) -> Step:
    if not isinstance(raw, dict):
        raise ScenarioFormatError(f"{where}: each step is a mapping")
    unknown = set(raw) - _STEP_KEYS
    if unknown:
        raise ScenarioFormatError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    kinds = [k for k in _STEP_KINDS if raw.get(k) not in (None, False)]
    if len(kinds) != 1:
        raise ScenarioFormatError(f"{where}: a step has exactly one of {', '.join(_STEP_KINDS)}")
    step = Step(kind=kinds[0], index=index, expect_open=_expect_open(raw.get("expect_open"), where))
    if step.kind == "complete":
        step.task = str(raw["complete"])
        step.actor = raw.get("as")
        if step.actor not in users:
            raise ScenarioFormatError(f"{where}: 'as: {step.actor}' is not one of the scenario's users")
        step.data = _plain(raw.get("data") or {})
        if not isinstance(step.data, dict):
            raise ScenarioFormatError(f"{where}: 'data' must be a mapping")
        step.signature = _signature(raw.get("signature"), password, where)
        step.expect_error = raw.get("expect_error")
        if raw.get("clock") is not None:
            step.clock = _duration(raw["clock"], where)
    elif step.kind == "fire_timers":
        if raw.get("expect_fired") is not None:
            step.expect_fired = int(raw["expect_fired"])
        if raw.get("clock") is not None:
            step.clock = _duration(raw["clock"], where)
    else:
        step.wait = _duration(raw["wait"], where)
        if not dt.timedelta(0) < step.wait <= dt.timedelta(seconds=MAX_WAIT_SECONDS):
            raise ScenarioFormatError(f"{where}: 'wait' must be positive and at most {MAX_WAIT_SECONDS:g} s")
    for key in ("as", "data", "signature", "expect_error"):
        if key in raw and step.kind != "complete":
            raise ScenarioFormatError(f"{where}: '{key}' belongs to a 'complete' step")
    return step


def load_scenario(path: Path, process: str | None = None) -> Scenario:
    """Read and check one scenario file; raise ScenarioFormatError naming the problem."""
    path = Path(path)
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioFormatError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ScenarioFormatError(f"{where}: a scenario file is a mapping")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ScenarioFormatError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    process = str(raw.get("process") or process or path.parent.name)
    password = str(raw.get("password") or DEFAULT_PASSWORD)
    users = _users(raw.get("users"), where)
    start = raw.get("start")
    if not isinstance(start, dict) or (start.get("as") not in users and start.get("as") != SYSTEM):
        raise ScenarioFormatError(f"{where}: 'start' needs 'as' (one of the users, or '{SYSTEM}' for a "
                                  "process the system starts) and 'data'")
    start_step = Step(kind="start", index=0, actor=start["as"], data=_plain(start.get("data") or {}),
                      expect_open=_expect_open(start.get("expect_open"), f"{where}: start"),
                      clock=_duration(start["clock"], f"{where}: start") if start.get("clock") else None)
    steps_raw = raw.get("steps") or []
    if not isinstance(steps_raw, list):
        raise ScenarioFormatError(f"{where}: 'steps' is a list")
    steps = [_step(s, i, password, users, f"{where}: step {i}") for i, s in enumerate(steps_raw, start=1)]
    expect = raw.get("expect") or {}
    if not isinstance(expect, dict) or set(expect) - {"status", "data", "signatures", "links"}:
        raise ScenarioFormatError(f"{where}: 'expect' may hold status, data, signatures and links")
    _check_links_format(expect.get("links"), where)
    urs = raw.get("urs") or []
    if not isinstance(urs, list) or not all(re.fullmatch(r"URS-[A-Z]+-\d+", str(u)) for u in urs):
        raise ScenarioFormatError(f"{where}: 'urs' is a list of IDs such as URS-DEV-01")
    return Scenario(
        process=process, slug=path.stem, path=path, name=str(raw.get("name") or path.stem),
        description=str(raw.get("description") or "").strip(), urs=[str(u) for u in urs], users=users,
        password=password, start=start_step, steps=steps, expect=_plain(expect),
        reload_between_steps=bool(raw.get("reload_between_steps", True)),
        documents=_documents(raw.get("documents"), users, where),
    )


def _documents(raw, users: dict, where: str) -> dict:
    """The `documents:` fixture: number -> {title, doc_type, owner (one of the users)}."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ScenarioFormatError(f"{where}: 'documents' maps document numbers to {{title, doc_type, owner}}")
    out = {}
    for number, spec in raw.items():
        if not isinstance(spec, dict) or set(spec) - {"title", "doc_type", "owner"} or spec.get("owner") not in users:
            raise ScenarioFormatError(f"{where}: document {number} needs title, doc_type and owner (one of the users)")
        out[str(number)] = {"title": str(spec.get("title") or number), "doc_type": str(spec.get("doc_type") or "SOP"),
                            "owner": spec["owner"]}
    return out


def discover(root: Path = SCENARIO_DIR, process: str | None = None) -> dict[str, list[Path]]:
    """Scenario files by process id: ``<root>/<process_id>/*.yaml``, sorted."""
    found: dict[str, list[Path]] = {}
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        if process and folder.name != process:
            continue
        files = sorted(p for p in folder.iterdir() if p.suffix in SCENARIO_SUFFIXES)
        if files:
            found[folder.name] = files
    return found


# ----------------------------------------------------------------------------------- the diagram
@dataclass
class DiagramFlows:
    """The sequence flows of a diagram file, read from its XML."""

    sha256: str
    flows: dict[str, tuple[str, str]]  # flow id -> (source node id, target node id), in file order
    nodes: set[str]                    # every flow node id
    joins: set[str]                    # parallel and inclusive gateways with several incoming flows

    def flows_between(self, source: str, target: str) -> list[str]:
        return [fid for fid, (s, t) in self.flows.items() if s == source and t == target]


def diagram_flows(bpmn_path: Path) -> DiagramFlows:
    """Read a diagram's sequence flows and flow nodes (parsed with the platform's safe XML parser)."""
    data = Path(bpmn_path).read_bytes()
    root = safe_xml(data, max_bytes=Settings().max_bpmn_bytes).getroot()
    ns = {"bpmn": BPMN_NS}
    flows = {}
    for flow in root.iterfind(".//bpmn:sequenceFlow", ns):
        flows[flow.get("id")] = (flow.get("sourceRef"), flow.get("targetRef"))
    skip = {f"{{{BPMN_NS}}}{tag}" for tag in ("sequenceFlow", "laneSet", "lane", "flowNodeRef", "incoming",
                                               "outgoing", "extensionElements", "documentation")}
    nodes = set()
    for process in root.iterfind(".//bpmn:process", ns):
        for element in process.iter():
            if element is not process and element.get("id") and element.tag not in skip \
                    and isinstance(element.tag, str) and element.getparent() is not None:
                nodes.add(element.get("id"))
    nodes |= {s for s, _ in flows.values()} | {t for _, t in flows.values()}
    incoming = Counter(t for _, t in flows.values())
    joins = set()
    for tag in ("parallelGateway", "inclusiveGateway"):
        joins |= {g.get("id") for g in root.iterfind(f".//bpmn:{tag}", ns) if incoming[g.get("id")] > 1}
    return DiagramFlows(sha256=hashlib.sha256(data).hexdigest(), flows=flows, nodes=nodes, joins=joins)


def taken_flows(runtime: Runtime, record_id: str, diagram: DiagramFlows) -> set[str]:
    """The sequence flows a record's workflow has taken, from its stored engine task tree."""
    TaskState = engine_state.TaskState  # noqa: N806 - the engine's enum, imported via engine (PLT rule)
    reached_states = TaskState.WAITING | TaskState.READY | TaskState.STARTED | TaskState.COMPLETED | TaskState.ERROR
    with runtime.db.sessionmaker() as session:
        record = session.get(Record, record_id)
        info = runtime.spec_info(record.process_version)
        live = engine_state.load(session, record, info.spec, info.subprocess_specs, runtime.script_engine)
    wf = live.workflow
    tasks = list(wf.tasks.values())
    for sub in wf.subprocesses.values():
        tasks.extend(sub.tasks.values())
    covered = set()
    for task in tasks:
        name = task.task_spec.name
        if name not in diagram.nodes:
            continue
        # A join gateway cancels the instances of the branches that arrived first; they still arrived.
        reached = task.has_state(reached_states) or (name in diagram.joins and task.has_state(TaskState.CANCELLED))
        if not reached:
            continue
        parent = task.parent
        while parent is not None and parent.task_spec.name not in diagram.nodes:
            parent = parent.parent  # skip the engine's own helper tasks (boundary event split/join...)
        if parent is not None and parent.has_state(TaskState.COMPLETED):
            covered.update(diagram.flows_between(parent.task_spec.name, name))
    return covered


# ----------------------------------------------------------------------------------- results
@dataclass
class ScenarioResult:
    """The outcome of one scenario file."""

    scenario: Scenario | None
    path: Path
    passed: bool
    reason: str | None = None
    covered: set[str] = field(default_factory=set)
    sha256: str | None = None
    record_number: str | None = None
    seconds: float = 0.0

    @property
    def test_id(self) -> str:
        return self.scenario.test_id if self.scenario else f"{self.path.parent.name}/{self.path.stem}"


@dataclass
class DiagramReport:
    """One diagram: its hash, its scenarios' results and the flows they covered."""

    process: str
    bpmn_path: Path | None
    sha256: str | None
    flows: dict[str, tuple[str, str]]
    results: list[ScenarioResult]
    problem: str | None = None

    @property
    def covered(self) -> set[str]:
        return set().union(*(r.covered for r in self.results if r.passed)) & set(self.flows)

    @property
    def uncovered(self) -> list[str]:
        covered = self.covered
        return [f for f in self.flows if f not in covered]

    @property
    def passed(self) -> bool:
        return (self.problem is None and bool(self.results) and all(r.passed for r in self.results)
                and not self.uncovered)


# ----------------------------------------------------------------------------------- running
def _settings(db_url: str, processes_dir: Path, forms_dir: Path) -> Settings:
    return Settings(database_url=db_url, processes_dir=processes_dir, forms_dir=forms_dir)


def run_scenario(scenario: Scenario, db_url: str, *, processes_dir: Path | None = None,
                 forms_dir: Path | None = None, diagram: DiagramFlows | None = None) -> ScenarioResult:
    """Run one scenario on a migrated, empty database at `db_url`; never raises for a failing scenario."""
    processes_dir = Path(processes_dir or REPO_ROOT / "processes")
    forms_dir = Path(forms_dir or REPO_ROOT / "forms")
    bpmn = processes_dir / f"{scenario.process}.bpmn"
    started = time.monotonic()
    result = ScenarioResult(scenario=scenario, path=scenario.path, passed=False)
    if not bpmn.is_file():
        result.reason = f"there is no diagram {bpmn.name} in {processes_dir}"
        return result
    diagram = diagram or diagram_flows(bpmn)
    runtime = Runtime(_settings(db_url, processes_dir, forms_dir))
    record_id = None
    try:
        with tempfile.TemporaryDirectory(prefix="cellqms-diagram-") as tmp:
            # Load only the diagram under test (and the diagrams it starts as linked records),
            # so an unfinished neighbour cannot fail this scenario.
            for path in [bpmn, *linked_diagrams(bpmn, processes_dir)]:
                shutil.copy(path, Path(tmp) / path.name)
            loaded = {r.key: r for r in runtime.load_processes(_SYSTEM, directory=Path(tmp))}
        result.sha256 = loaded[scenario.process].sha256
        if result.sha256 != diagram.sha256:
            raise StepFailed("the diagram file changed while it was being validated; run again")
        for username, spec in scenario.users.items():
            runtime.add_user(_SYSTEM, username, spec["name"], scenario.password, spec["roles"])
        if scenario.documents:
            from engine.documents import create_document

            for number, spec in scenario.documents.items():
                create_document(runtime, _SYSTEM, number, spec["title"], spec["doc_type"], spec["owner"])
        record_id = _run_steps(runtime, scenario, result)
        _check_final(runtime, scenario, record_id)
        with runtime.db.sessionmaker() as session:
            chain = verify_chain(session)
        if not chain["ok"]:
            raise StepFailed(f"the audit trail does not verify: entry {chain['first_bad_seq']}: {chain['problem']}")
        result.passed = True
    except StepFailed as exc:
        result.reason = str(exc)
    except CellqmsError as exc:
        result.reason = f"setup failed: {exc.code}: {exc.message}"
    except Exception as exc:  # noqa: BLE001 - a report must name every failure, not stop at the first
        result.reason = f"unexpected {type(exc).__name__}: {exc}"
    finally:
        try:
            if record_id is not None:
                result.covered = taken_flows(runtime, record_id, diagram)
        except Exception as exc:  # noqa: BLE001
            if result.passed:
                result.passed = False
                result.reason = f"coverage could not be read: {type(exc).__name__}: {exc}"
        runtime.clock.offset = dt.timedelta(0)
        runtime.db.dispose()
        result.seconds = time.monotonic() - started
    return result


def _open_ids(runtime: Runtime, record_id: str) -> list[str]:
    with runtime.db.sessionmaker() as session:
        rows = session.scalars(select(Task.bpmn_id).where(Task.record_id == record_id,
                                                          Task.status == TaskStatus.OPEN)).all()
    return sorted(rows)


def _check_open(runtime: Runtime, record_id: str, step: Step) -> None:
    if step.expect_open is None:
        return
    actual = _open_ids(runtime, record_id)
    if sorted(step.expect_open) != actual:
        where = "after the start" if step.kind == "start" else f"after {step.describe()}"
        raise StepFailed(f"{where}: open tasks are {actual or '[]'}, expected {sorted(step.expect_open) or '[]'}")


def _run_steps(runtime: Runtime, scenario: Scenario, result: ScenarioResult) -> str:
    users = {name: runtime.user_by_username(name) for name in scenario.users}
    start = scenario.start
    runtime.clock.offset = start.clock or dt.timedelta(0)
    try:
        if start.actor == SYSTEM:
            record = runtime.start_record_by_system(scenario.process, start.data)
        else:
            record = runtime.start_record(users[start.actor], scenario.process, start.data)
    except CellqmsError as exc:
        raise StepFailed(f"start as {start.actor} failed: {exc.code}: {exc.message}") from exc
    finally:
        runtime.clock.offset = dt.timedelta(0)
    result.record_number = record.number
    _check_open(runtime, record.id, start)
    for step in scenario.steps:
        if scenario.reload_between_steps:
            # Drop the in-memory workflow so every step restores the instance from the database:
            # proves that what was saved is enough to go on (as after a restart).
            runtime.cache.clear()
        if step.kind == "complete":
            _complete(runtime, record.id, step, users)
        elif step.kind == "fire_timers":
            runtime.clock.offset = step.clock or dt.timedelta(0)
            try:
                fired = runtime.fire_due_timers()
            except CellqmsError as exc:
                raise StepFailed(f"{step.describe()}: {exc.code}: {exc.message}") from exc
            finally:
                runtime.clock.offset = dt.timedelta(0)
            if step.expect_fired is not None and fired != step.expect_fired:
                raise StepFailed(f"{step.describe()}: {fired} timer(s) fired, expected {step.expect_fired}")
        else:
            time.sleep(step.wait.total_seconds())
        _check_open(runtime, record.id, step)
    return record.id


def _complete(runtime: Runtime, record_id: str, step: Step, users: dict) -> None:
    with runtime.db.sessionmaker() as session:
        rows = session.scalars(select(Task).where(Task.record_id == record_id,
                                                  Task.bpmn_id == step.task,
                                                  Task.status == TaskStatus.OPEN)
                               .order_by(Task.created_at)).all()
    task = _pick_instance(rows, step.actor)
    if task is None:
        raise StepFailed(f"{step.describe()}: the task is not open "
                         f"(open: {_open_ids(runtime, record_id) or 'none'})")
    runtime.clock.offset = step.clock or dt.timedelta(0)
    try:
        runtime.complete_task(task.id, users[step.actor], step.data, signature=step.signature)
    except CellqmsError as exc:
        if step.expect_error and exc.code == step.expect_error:
            return
        if step.expect_error:
            raise StepFailed(f"{step.describe()}: expected the error '{step.expect_error}', "
                             f"got {exc.code}: {exc.message}") from exc
        raise StepFailed(f"{step.describe()}: {exc.code}: {exc.message}") from exc
    finally:
        runtime.clock.offset = dt.timedelta(0)
    if step.expect_error:
        raise StepFailed(f"{step.describe()}: expected the error '{step.expect_error}', but the task completed")


def _check_final(runtime: Runtime, scenario: Scenario, record_id: str) -> None:
    expect = scenario.expect
    open_ids = _open_ids(runtime, record_id)  # before the session below: SQLite sessions begin IMMEDIATE
    with runtime.db.sessionmaker() as session:
        record = session.get(Record, record_id)
        if "status" in expect and record.status.value != expect["status"]:
            raise StepFailed(f"at the end: the record is {record.status.value}, expected {expect['status']} "
                             f"(open tasks: {open_ids or 'none'})")
        for key, wanted in (expect.get("data") or {}).items():
            if key not in record.data:
                raise StepFailed(f"at the end: the record data has no '{key}'")
            if record.data[key] != wanted:
                raise StepFailed(f"at the end: data '{key}' is {record.data[key]!r}, expected {wanted!r}")
        if "signatures" in expect:
            actual = []
            for sig, valid in runtime.signatures(session, record):
                task = session.get(Task, sig.task_id) if sig.task_id else None
                actual.append({"task": task.bpmn_id if task else None, "meaning": sig.meaning,
                               "by": sig.signer.username, "valid": valid})
            wanted = [{"valid": True, **w} for w in expect["signatures"] or []]
            if [_sig_key(a) for a in actual] != [_sig_key(w) for w in wanted]:
                raise StepFailed(f"at the end: signatures are {[_sig_text(a) for a in actual]}, "
                                 f"expected {[_sig_text(w) for w in wanted]}")


    if "links" in expect:
        _check_links(runtime, record_id, expect["links"] or [])


def _sig_key(sig: dict) -> tuple:
    return (sig.get("task"), sig.get("meaning"), sig.get("by"), bool(sig.get("valid")))


def _sig_text(sig: dict) -> str:
    return f"{sig.get('task')}:{sig.get('meaning')} by {sig.get('by')}" + ("" if sig.get("valid") else " (INVALID)")


# ----------------------------------------------------------------------------------- linked records
# A diagram may start other records through the `start_linked_record` service operation (a
# deviation raises a CAPA, URS-PLT-07). Those diagrams are loaded with the one under test, and
# `expect: {links: [{kind, process, status}]}` checks the links the scenario's record made.

_LINK_KEYS = {"kind", "process", "status"}


def linked_diagrams(bpmn: Path, processes_dir: Path) -> list[Path]:
    """The diagram files `bpmn` starts as linked records, transitively (not `bpmn` itself)."""
    found: list[Path] = []
    todo = [Path(bpmn)]
    seen = {Path(bpmn).stem}
    while todo:
        root = safe_xml(todo.pop().read_bytes(), max_bytes=Settings().max_bpmn_bytes).getroot()
        for operator in root.iter(f"{{{SPIFF_NS}}}serviceTaskOperator"):
            if operator.get("id") != "start_linked_record":
                continue
            for param in operator.iter(f"{{{SPIFF_NS}}}parameter"):
                if param.get("id") != "process":
                    continue
                try:
                    key = ast.literal_eval(param.get("value") or "")
                except (ValueError, SyntaxError):
                    continue  # a computed process name: nothing to load up front
                path = Path(processes_dir) / f"{key}.bpmn"
                if isinstance(key, str) and key not in seen and path.is_file():
                    seen.add(key)
                    found.append(path)
                    todo.append(path)
    return found


def _check_links_format(raw, where: str) -> None:
    if raw is None:
        return
    if not isinstance(raw, list) or not all(isinstance(x, dict) and x.get("kind") and x.get("process")
                                            and not set(x) - _LINK_KEYS for x in raw):
        raise ScenarioFormatError(f"{where}: 'expect.links' is a list of {{kind, process, status (optional)}}")


def _check_links(runtime: Runtime, record_id: str, wanted: list[dict]) -> None:
    """The links from the record to the records it started are exactly `wanted` (order ignored)."""
    with runtime.db.sessionmaker() as session:
        rows = session.execute(
            select(RecordLink.kind, ProcessDefinition.key, Record.status, Record.number)
            .join(Record, Record.id == RecordLink.target_id)
            .join(ProcessVersion, ProcessVersion.id == Record.process_version_id)
            .join(ProcessDefinition, ProcessDefinition.id == ProcessVersion.definition_id)
            .where(RecordLink.source_id == record_id)).all()
    actual = [{"kind": k, "process": p, "status": s.value, "number": n} for k, p, s, n in rows]
    remaining = list(actual)
    for want in wanted:
        match = next((a for a in remaining if all(str(a[k]) == str(v) for k, v in want.items())), None)
        if match is None:
            raise StepFailed(f"at the end: no link {want}; the record's links are "
                             f"{[_link_text(a) for a in actual] or 'none'}")
        remaining.remove(match)
    if remaining:
        raise StepFailed(f"at the end: unexpected link(s) {[_link_text(a) for a in remaining]}")


def _link_text(link: dict) -> str:
    return f"{link['kind']} -> {link['number']} ({link['process']}, {link['status']})"


# ----------------------------------------------------------------------------------- multi-instance
def _pick_instance(rows: list[Task], actor: str) -> Task | None:
    """Of the open tasks with one BPMN id (oldest first), the one assigned to `actor`, else the oldest.

    The instances of a multi-instance task share their BPMN id; each is assigned to its own
    person, so "complete: complete_action as: anna" means anna's instance.
    """
    return next((t for t in rows if t.assignee == actor), rows[0] if rows else None)


# ----------------------------------------------------------------------------------- whole diagrams
def run_diagram(process: str, paths: Iterable[Path], db_url_factory: Callable[[], str], *,
                processes_dir: Path | None = None, forms_dir: Path | None = None,
                on_result: Callable[[ScenarioResult], None] | None = None) -> DiagramReport:
    """Run every scenario of one diagram, each on a fresh database from `db_url_factory`."""
    processes_dir = Path(processes_dir or REPO_ROOT / "processes")
    bpmn = processes_dir / f"{process}.bpmn"
    if not bpmn.is_file():
        return DiagramReport(process, None, None, {}, [], problem=f"there is no diagram {bpmn}")
    try:
        diagram = diagram_flows(bpmn)
    except CellqmsError as exc:
        return DiagramReport(process, bpmn, None, {}, [], problem=f"the diagram cannot be read: {exc.message}")
    results = []
    for path in paths:
        try:
            scenario = load_scenario(path, process)
        except ScenarioFormatError as exc:
            result = ScenarioResult(scenario=None, path=Path(path), passed=False, reason=str(exc))
        else:
            result = run_scenario(scenario, db_url_factory(), processes_dir=processes_dir, forms_dir=forms_dir,
                                  diagram=diagram)
        results.append(result)
        if on_result:
            on_result(result)
    report = DiagramReport(process, bpmn, diagram.sha256, diagram.flows, results)
    if not results:
        report.problem = "the diagram has no scenarios (URS-VAL-02)"
    stale = {r.sha256 for r in results if r.sha256} - {diagram.sha256}
    if stale:
        report.problem = "the diagram file changed while it was being validated; run again"
    return report


class ScratchDatabases:
    """Migrate one SQLite template in a temporary folder, then hand out a fresh copy per scenario."""

    def __init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="cellqms-validate-")
        self.folder = Path(self._tmp.name)
        self.template = self.folder / "template.sqlite"
        upgrade(f"sqlite:///{self.template}")
        self._count = 0

    def __call__(self) -> str:
        self._count += 1
        path = self.folder / f"scenario-{self._count}.sqlite"
        shutil.copy(self.template, path)
        return f"sqlite:///{path}"

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def validate(process: str | None = None, *, scenario_root: Path = SCENARIO_DIR,
             processes_dir: Path | None = None, forms_dir: Path | None = None,
             on_result: Callable[[ScenarioResult], None] | None = None) -> list[DiagramReport]:
    """Run the scenarios of every diagram (or of one) on scratch SQLite databases."""
    processes_dir = Path(processes_dir or REPO_ROOT / "processes")
    scenarios = discover(scenario_root, process)
    if process:
        processes = [process]
    else:
        processes = sorted({p.stem for p in processes_dir.glob("*.bpmn")} | set(scenarios))
    reports = []
    with ScratchDatabases() as databases:
        for key in processes:
            reports.append(run_diagram(key, scenarios.get(key, []), databases, processes_dir=processes_dir,
                                       forms_dir=forms_dir, on_result=on_result))
    return reports


def format_result(result: ScenarioResult) -> str:
    """One line per scenario: PASS/FAIL, id, time, and the reason of a failure."""
    head = f"  {'PASS' if result.passed else 'FAIL'}  {result.test_id}"
    if result.scenario is not None:
        head += f"  ({result.seconds:.2f} s"
        head += f"; {', '.join(result.scenario.urs)})" if result.scenario.urs else ")"
    if not result.passed:
        head += f"\n        {result.reason}"
    return head


def format_report(report: DiagramReport) -> str:
    """The human-readable block of one diagram (what `cellqms validate` prints)."""
    lines = [f"diagram {report.process}" + (f"  ({report.bpmn_path.name})" if report.bpmn_path else "")]
    lines.append(f"  sha256 {report.sha256 or '-'}")
    if report.problem:
        lines.append(f"  PROBLEM: {report.problem}")
    lines += [format_result(r) for r in report.results]
    total = len(report.flows)
    covered = len(report.covered)
    percent = f" ({100 * covered / total:.0f} %)" if total else ""
    lines.append(f"  sequence flows covered: {covered}/{total}{percent}")
    for flow in report.uncovered:
        source, target = report.flows[flow]
        lines.append(f"    uncovered: {flow} ({source} -> {target})")
    passed = sum(r.passed for r in report.results)
    lines.append(f"  result: {'PASS' if report.passed else 'FAIL'} ({passed}/{len(report.results)} scenarios passed)")
    return "\n".join(lines)
