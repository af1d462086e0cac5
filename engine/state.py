"""Storing a record's engine state so one step costs the same at step 3 as at step 300.

SpiffWorkflow's default serializer writes the whole process spec and every task of an
instance each time (ENGINE_NOTES: 250 kB and ~45 ms per step for a 300-step diagram).
Here:
- the spec is stored once per diagram version (``process_versions.spec_json``) and kept
  parsed in memory;
- each engine task is its own row (``engine_tasks``); a save rewrites only the tasks
  whose state, children or data base changed since the last save, plus a small header;
- a live workflow stays in an in-process cache keyed by record id and validated by the
  record's optimistic ``version``; a miss (another process wrote, or a restart) reloads
  from the rows.
"""
from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer.workflow import VERSION as SERIALIZER_VERSION
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from models import EngineTask, Record

REGISTRY = BpmnWorkflowSerializer.configure(SPIFF_CONFIG)
SERIALIZER = BpmnWorkflowSerializer(REGISTRY)
STATE_FORMAT = f"cellqms-1/spiff-{SERIALIZER_VERSION}"

# Tasks in these states may change their data or internal data without a state change
# (a multi-instance parent gathering results, a waiting timer), so they are always rewritten.
_ALWAYS_SAVE = TaskState.STARTED | TaskState.WAITING


def spec_to_json(spec, subprocess_specs) -> dict:
    return {"spec": REGISTRY.convert(spec),
            "subprocess_specs": {k: REGISTRY.convert(v) for k, v in subprocess_specs.items()}}


def spec_from_json(dct: dict):
    spec = REGISTRY.restore(dct["spec"])
    subs = {k: REGISTRY.restore(v) for k, v in dct.get("subprocess_specs", {}).items()}
    return spec, subs


def _fingerprint(task) -> tuple:
    return (task.state, task.last_state_change, tuple(task._children))


def _override_keys(state: dict) -> frozenset:
    delta = state.get("delta") or {}
    return frozenset(delta.get("updates") or ()) | frozenset(delta.get("deletions") or ())


def _changed_keys(before: dict | None, after: dict) -> set | None:
    """Keys whose value differs; None when there is no snapshot (treat as everything changed)."""
    if before is None:
        return None
    keys = set(before) | set(after)
    return {k for k in keys if k not in before or k not in after or before[k] != after[k]}


def _snapshot(live: "LiveWorkflow") -> None:
    """Remember the data of active parents (a multi-instance task gathering results, a waiting join)."""
    live.data_snapshots = {tid: copy.deepcopy(t.data) for tid, t in live.workflow.tasks.items()
                           if t.state & _ALWAYS_SAVE and t._children}


@dataclass
class LiveWorkflow:
    """A workflow object together with what was last written of it."""

    workflow: BpmnWorkflow
    saved: dict = field(default_factory=dict)      # task UUID -> fingerprint at last save
    positions: dict = field(default_factory=dict)  # task UUID -> position row value
    version: int | None = None                     # record.version this object matches
    # task UUID -> keys its stored data delta sets or deletes explicitly (those keys do not follow the parent)
    overrides: dict = field(default_factory=dict)
    # task UUID -> copy of the data of a STARTED/WAITING task with children, to see which keys changed
    data_snapshots: dict = field(default_factory=dict)


def _header(wf: BpmnWorkflow) -> dict:
    return {
        "data": REGISTRY.convert(REGISTRY.clean(wf.data)),
        "correlations": wf.correlations,
        "last_task": str(wf.last_task.id) if wf.last_task is not None else None,
        "success": wf.success,
        "completed": wf.completed,
        "root": str(wf.task_tree.id),
        "subprocesses": {str(k): REGISTRY.convert(v) for k, v in wf.subprocesses.items()},
        "bpmn_events": REGISTRY.convert(wf.bpmn_events),
    }


def load(session: Session, record: Record, spec, subprocess_specs, script_engine) -> LiveWorkflow:
    """Rebuild a record's workflow from its header and task rows."""
    if record.serializer_version and record.serializer_version != STATE_FORMAT:
        # A state written by another engine format must be migrated explicitly (roadmap: scale and
        # hardening); reading it as if it were current could silently corrupt a GxP record.
        raise RuntimeError(f"record {record.number} holds engine state format {record.serializer_version}; "
                           f"this version reads {STATE_FORMAT}. Run the state migration before use.")
    header = dict(record.engine_state)
    rows = session.execute(
        select(EngineTask.task_id, EngineTask.position, EngineTask.state)
        .where(EngineTask.record_id == record.id).order_by(EngineTask.position)
    ).all()
    wf = BpmnWorkflow(spec, subprocess_specs, script_engine=script_engine, deserializing=True)
    positions, overrides = {}, {}
    for _task_id, position, state in rows:
        task = REGISTRY.restore(state, workflow=wf)
        positions[task.id] = position
        overrides[task.id] = _override_keys(state)
    wf.task_tree = wf.tasks[UUID(header["root"])]
    wf.success = header["success"]
    wf.completed = header.get("completed", False)
    wf.correlations = header.get("correlations", {})
    if header.get("last_task"):
        wf.last_task = wf.tasks.get(UUID(header["last_task"]))
    wf.data = REGISTRY.restore(header.get("data", {}))
    _restore_subprocesses(wf, dict(header.get("subprocesses", {})))
    wf.bpmn_events = REGISTRY.restore(header.get("bpmn_events", []))
    live = LiveWorkflow(wf, {tid: _fingerprint(t) for tid, t in wf.tasks.items()}, positions, record.version,
                        overrides)
    _snapshot(live)
    return live


def _restore_subprocesses(wf: BpmnWorkflow, dct: dict, parent=None) -> None:
    from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask

    parent = parent or wf
    for task in list(parent.tasks.values()):
        if isinstance(task.task_spec, SubWorkflowTask) and str(task.id) in dct:
            sp = REGISTRY.restore(dct.pop(str(task.id)), task=task, top_workflow=wf)
            wf.subprocesses[task.id] = sp
            sp.completed_event.connect(task.task_spec._on_subworkflow_completed, task)
            _restore_subprocesses(wf, dct, sp)


def save(session: Session, record: Record, live: LiveWorkflow) -> int:
    """Write what changed since the last save; return the number of task rows written."""
    wf = live.workflow
    rewrite = set()
    for tid, task in wf.tasks.items():
        if live.saved.get(tid) != _fingerprint(task):
            # State or children changed: the task and, since its data may have changed, every child
            # (a child's stored data is a delta against its parent's data).
            rewrite.add(tid)
            rewrite.update(c for c in task._children if c in wf.tasks)
        elif task.state & _ALWAYS_SAVE:
            # Active without a state change (a multi-instance parent gathering results): rewrite it, and
            # only those children whose delta does not already pin every key that changed.
            rewrite.add(tid)
            keys = _changed_keys(live.data_snapshots.get(tid), task.data) if task._children else set()
            if keys is None:
                rewrite.update(c for c in task._children if c in wf.tasks)
            elif keys:
                rewrite.update(c for c in task._children
                               if c in wf.tasks and not keys <= live.overrides.get(c, frozenset()))
    removed = [tid for tid in live.saved if tid not in wf.tasks]
    inserts, updates = [], []
    next_pos = max(live.positions.values(), default=-1) + 1
    # Iterate in the workflow's own order so new parents get lower positions than new children.
    for tid, task in wf.tasks.items():
        if tid not in rewrite:
            continue
        state = REGISTRY.convert(task)
        live.overrides[tid] = _override_keys(state)
        if tid in live.positions:
            updates.append({"record_id": record.id, "task_id": str(tid), "state": state})
        else:
            live.positions[tid] = next_pos
            inserts.append({"record_id": record.id, "task_id": str(tid), "position": next_pos, "state": state})
            next_pos += 1
    if removed:
        session.execute(delete(EngineTask).where(EngineTask.record_id == record.id,
                                                 EngineTask.task_id.in_([str(t) for t in removed])))
        for tid in removed:
            live.positions.pop(tid, None)
            live.overrides.pop(tid, None)
    if inserts:
        session.execute(insert(EngineTask), inserts)
    if updates:
        session.execute(update(EngineTask), updates)
    record.engine_state = _header(wf)
    record.serializer_version = STATE_FORMAT
    live.saved = {tid: _fingerprint(t) for tid, t in wf.tasks.items()}
    _snapshot(live)
    return len(inserts) + len(updates)


def full_dict(wf: BpmnWorkflow) -> dict:
    """The library's complete serialization without the spec; used by tests to prove save/load is lossless."""
    dct = SERIALIZER.to_dict(wf)
    dct.pop("spec", None)
    dct.pop("subprocess_specs", None)
    return dct


class WorkflowCache:
    """Live workflows by record id. Taking one removes it, so two threads never share an object."""

    def __init__(self, capacity: int = 256):
        self.capacity = capacity
        self._items: OrderedDict[str, LiveWorkflow] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, record_id: str, version: int) -> LiveWorkflow | None:
        with self._lock:
            live = self._items.pop(record_id, None)
        if live is not None and live.version == version:
            return live
        return None

    def put(self, record_id: str, live: LiveWorkflow) -> None:
        with self._lock:
            self._items[record_id] = live
            self._items.move_to_end(record_id)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
