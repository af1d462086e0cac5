"""The incremental engine-state store is lossless and writes O(1) task rows per step.

After every step of every path, the workflow kept in memory (the one the runtime will go on
using) must serialize exactly like a workflow rebuilt from the database rows alone; and a step
must rewrite only the few task rows it touched, not the whole instance (ENGINE_NOTES: the
cost of a step must not grow with the instance's history).
"""
from __future__ import annotations

import datetime as dt
import json
import time
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select

import engine.state as engine_state
from engine.runtime import Runtime
from engine.settings import Settings
from models import EngineTask, Record, RecordStatus
from tests.conftest import PASSWORD, deviation_start_data
from tests.fixtures import bpmn_builder as bb
from tests.fixtures.cast import add_users

# --------------------------------------------------------------------------- helpers


class RowWrites:
    """Counts engine_tasks rows inserted and updated through one database engine (cursor rowcount)."""

    def __init__(self, engine):
        self.inserted = self.updated = 0
        self._engine = engine
        event.listen(engine, "after_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany):
        head = statement.lstrip()[:40].upper()
        if head.startswith("INSERT INTO ENGINE_TASKS"):
            self.inserted += max(cursor.rowcount, 0)
        elif head.startswith("UPDATE ENGINE_TASKS"):
            self.updated += max(cursor.rowcount, 0)

    def take(self) -> tuple[int, int]:
        """(rows inserted, existing rows rewritten) since the last call."""
        counts = (self.inserted, self.updated)
        self.inserted = self.updated = 0
        return counts

    def close(self):
        event.remove(self._engine, "after_cursor_execute", self._seen)


def stored_rows(rt: Runtime, record_id: str) -> dict[str, str]:
    with rt.db.sessionmaker() as s:
        return {tid: json.dumps(state, sort_keys=True) for tid, state in s.execute(
            select(EngineTask.task_id, EngineTask.state).where(EngineTask.record_id == record_id))}


def fresh_load(rt: Runtime, session, record: Record) -> engine_state.LiveWorkflow:
    info = rt.spec_info(record.process_version)
    return engine_state.load(session, record, info.spec, info.subprocess_specs, rt.script_engine)


def assert_lossless(rt: Runtime, record_id: str, keep_live: bool = True) -> None:
    """full_dict of the cached live workflow == full_dict of one rebuilt from the rows.

    Nothing is ignored in the comparison: the dicts hold every task (id, parent, children,
    state, last_state_change, triggered, internal_data, data delta), the workflow data,
    correlations, last task, completion flags, sub-processes and pending BPMN events.
    """
    with rt.db.sessionmaker() as s:
        record = s.get(Record, record_id)
        live = rt.cache.take(record.id, record.version)
        assert live is not None, "the runtime should hold the live workflow of the record it just moved"
        expected = engine_state.full_dict(live.workflow)
        rt.cache.clear()
        actual = engine_state.full_dict(fresh_load(rt, s, record).workflow)
    assert actual == expected
    if keep_live:
        rt.cache.put(record_id, live)  # the next step goes on with the same in-memory object


def open_tasks_of(rt: Runtime, user, record_id: str):
    with rt.db.sessionmaker() as s:
        return [t for t in rt.open_tasks(s, user) if t.record_id == record_id]


def engine_data_of(rt: Runtime, record_id: str, task_id: str) -> dict:
    """The engine's data of one task, read from the runtime's live workflow (put back untouched)."""
    with rt.db.sessionmaker() as s:
        record = s.get(Record, record_id)
        live = rt.cache.take(record.id, record.version) or fresh_load(rt, s, record)
    try:
        return dict(live.workflow.get_task_from_id(UUID(task_id)).data)
    finally:
        rt.cache.put(record_id, live)


@pytest.fixture
def generated(db_url, tmp_path):
    """A runtime on the generated diagrams (forms from tests/fixtures/forms) and a user in the lane's role."""
    processes = tmp_path / "processes"
    bb.write(processes, "sequence_50", bb.sequence(50))
    bb.write(processes, "multi_instance", bb.multi_instance())
    bb.write(processes, "parallel_branches", bb.parallel_branches())
    bb.write(processes, "boundary_timer", bb.boundary_timer(duration="PT1S"))
    rt = Runtime(Settings(database_url=db_url, processes_dir=processes, forms_dir=bb.FORMS_DIR))
    rt.load_processes()
    user = add_users(rt, {"tess": ("Tess Tester", [bb.ROLE])})["tess"]
    writes = RowWrites(rt.db.engine)
    yield rt, user, writes
    writes.close()
    rt.db.dispose()


def run_to_end(rt, user, record, writes, answer=lambda task: {"note": "done"}, pick=lambda tasks: tasks[0],
               reload_every: int = 4) -> list[tuple[int, int]]:
    """Complete open tasks one at a time, proving losslessness after each step; rows written per step.

    Mostly the runtime goes on with its live in-memory workflow (many incremental saves pile up);
    every `reload_every` steps the cache is dropped, so the next step starts from the rows alone.
    """
    per_step = []
    assert_lossless(rt, record.id)
    while tasks := open_tasks_of(rt, user, record.id):
        task = pick(tasks)
        writes.take()
        record = rt.complete_task(task.id, user, answer(task))
        per_step.append(writes.take())
        assert_lossless(rt, record.id, keep_live=len(per_step) % reload_every != 0)
    assert record.status == RecordStatus.CLOSED
    return per_step


# --------------------------------------------------------------------------- generated diagrams


@pytest.mark.urs("URS-OPS-01")
def test_a_50_step_sequence_is_lossless_after_every_step_and_each_step_writes_a_constant_few_rows(generated):
    rt, user, writes = generated
    record = rt.start_record(user, "sequence_50", {"note": "go"})
    per_step = run_to_end(rt, user, record, writes, reload_every=10)
    assert len(per_step) == 50
    assert max(i + u for i, u in per_step) <= 5, per_step
    # Step 49 costs what step 1 cost: the work does not grow with the instance's history.
    assert per_step[-2] == per_step[0]
    assert len(stored_rows(rt, record.id)) > 50


def test_parallel_gateway_branches_are_lossless_in_any_interleaving(generated):
    rt, user, writes = generated
    def middle(tasks):
        return sorted(tasks, key=lambda t: t.bpmn_id)[len(tasks) // 2]

    for pick in (lambda ts: ts[0], lambda ts: ts[-1], middle):
        record = rt.start_record(user, "parallel_branches", {})
        assert {t.bpmn_id for t in open_tasks_of(rt, user, record.id)} == {"a1", "b1", "c1"}
        per_step = run_to_end(rt, user, record, writes, pick=pick)
        assert len(per_step) == 7
        assert max(i + u for i, u in per_step) <= 8, per_step


def test_a_multi_instance_task_over_30_items_is_lossless_and_gathers_every_result(generated):
    rt, user, writes = generated
    items = [f"vial-{i:02d}" for i in range(30)]
    record = rt.start_record(user, "multi_instance", {"items": items})
    assert len(open_tasks_of(rt, user, record.id)) == 30

    checked = []

    def answer(task):
        if task.bpmn_id == "summarise":
            return {"note": "all checked"}
        checked.append(engine_data_of(rt, record.id, task.id)["item"])
        return {"result": "checked " + checked[-1]}

    per_step = run_to_end(rt, user, record, writes, answer=answer, pick=lambda ts: ts[len(ts) // 2])
    assert len(per_step) == 31
    assert sorted(checked) == items
    with rt.db.sessionmaker() as s:
        # SpiffWorkflow appends to a separate output list in completion order.
        assert s.get(Record, record.id).data["results"] == [f"checked {i}" for i in checked]


@pytest.mark.urs("URS-OPS-01")
def test_completing_instances_of_a_30_item_multi_instance_task_writes_a_constant_few_rows(generated):
    # The first gathered result adds a key to the multi-instance parent's data, which every waiting
    # instance must then pin in its own stored delta: that one step rewrites them all, once. Every
    # later step writes a constant few rows, so the whole task costs O(n) writes, not O(n^2).
    rt, user, writes = generated
    record = rt.start_record(user, "multi_instance", {"items": [f"vial-{i:02d}" for i in range(30)]})
    per_step = []
    for task in open_tasks_of(rt, user, record.id)[:8]:
        writes.take()
        rt.complete_task(task.id, user, {"result": "ok"})
        per_step.append(writes.take())
    updates = [u for _, u in per_step]
    assert updates[0] <= 30 + 2, per_step
    assert max(updates[1:]) <= 6, per_step


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), size=st.integers(min_value=1, max_value=5))
def test_any_completion_order_of_a_multi_instance_task_is_lossless_and_gathers_each_result_once(
        generated, data, size):
    # The function-scoped runtime is shared by the examples on purpose: each example starts its own
    # record, and records do not share engine state.
    rt, user, writes = generated
    items = [f"bag-{i}" for i in range(size)]
    record = rt.start_record(user, "multi_instance", {"items": items})

    def pick(tasks):
        return data.draw(st.sampled_from(sorted(tasks, key=lambda t: t.id)))

    checked = []

    def answer(task):
        if task.bpmn_id == "summarise":
            return {"note": "ok"}
        checked.append(engine_data_of(rt, record.id, task.id)["item"])
        return {"result": checked[-1].upper()}

    run_to_end(rt, user, record, writes, answer=answer, pick=pick)
    assert sorted(checked) == items
    with rt.db.sessionmaker() as s:
        assert s.get(Record, record.id).data["results"] == [i.upper() for i in checked]


def test_a_waiting_boundary_timer_is_stored_losslessly_and_fires_after_a_reload(generated):
    rt, user, writes = generated
    record = rt.start_record(user, "boundary_timer", {})
    assert_lossless(rt, record.id)  # the timer waits, with its computed due time in internal data
    time.sleep(1.1)
    assert rt.fire_due_timers() == 1
    assert_lossless(rt, record.id)
    assert {t.bpmn_id for t in open_tasks_of(rt, user, record.id)} == {"work", "chase"}
    per_step = run_to_end(rt, user, record, writes, pick=lambda ts: sorted(ts, key=lambda t: t.bpmn_id)[0])
    assert max(i + u for i, u in per_step) <= 8, per_step


# --------------------------------------------------------------------------- the deviation diagram


def _deviation_path(rt, users, classification, rounds_of_rework, overdue, capa):
    """Drive one deviation path, proving losslessness after every step; returns rows written per step."""
    writes = RowWrites(rt.db.engine)
    try:
        per_step = []

        def step(bpmn_id, actor, data, signature=None):
            tasks = [t for t in open_tasks_of(rt, users[actor], record.id) if t.bpmn_id == bpmn_id]
            assert len(tasks) == 1, (bpmn_id, actor)
            writes.take()
            done = rt.complete_task(tasks[0].id, users[actor], data, signature)
            per_step.append(writes.take())
            assert_lossless(rt, record.id)
            return done

        record = rt.start_record(users["olivia"], "deviation", deviation_start_data())
        assert_lossless(rt, record.id)
        if overdue:
            rt.clock.offset = -dt.timedelta(days=31)
        try:
            step("triage_deviation", "quinn", {"classification": classification, "investigator": "ivan",
                                               "rationale": "Temperature above limit for 40 minutes."})
        finally:
            rt.clock.offset = dt.timedelta(0)
        rt.fire_due_timers()
        assert_lossless(rt, record.id)
        if classification == "critical":
            step("qa_head_critical_review", "hannah", {"qa_head_assessment": "Hold batch.",
                                                       "notify_authorities": False},
                 {"password": PASSWORD, "meaning": "reviewed"})
        if overdue:
            step("escalate_overdue_investigation", "hannah", {"escalation_action": "Discussed with Ivan."})
        investigation = {"root_cause": "Door seal worn.", "product_impact": "None: within validated range.",
                         "patient_impact": "None.", "capa_required": capa}
        if not capa:
            investigation["capa_rationale"] = "Seal replaced; isolated event."
        for _ in range(rounds_of_rework):
            step("investigate_deviation", "ivan", investigation)
            step("approve_investigation", "quentin", {"decision": "reject", "comment": "Add the sensor log."},
                 {"password": PASSWORD, "meaning": "approved"})
        step("investigate_deviation", "ivan", investigation)
        record = step("approve_investigation", "quentin", {"decision": "approve"},
                      {"password": PASSWORD, "meaning": "approved"})
        assert record.status == RecordStatus.CLOSED
        return per_step
    finally:
        writes.close()


@pytest.mark.parametrize(("classification", "rework", "overdue", "capa"), [
    ("minor", 0, False, False),
    ("major", 2, False, True),
    ("critical", 1, False, False),
    ("minor", 0, True, True),
])
def test_every_deviation_path_is_lossless_after_every_step(loaded_runtime, classification, rework, overdue, capa):
    per_step = _deviation_path(loaded_runtime, add_users(loaded_runtime), classification, rework, overdue, capa)
    # New rows are the tasks a step creates (a split, a rework loop or a raised CAPA record adds a dozen or
    # two); besides them a step rewrites only the handful of existing rows it touched, never the whole instance.
    assert max(updated for _, updated in per_step) <= 12, per_step
    if rework == 2:
        # Steps: triage, investigate, reject, investigate, reject, investigate, approve. The first
        # investigation also raises the CAPA; after it, each reject and each re-investigation costs
        # exactly what the previous one did: no growth with history.
        reject_1, investigate_2, reject_2, investigate_3 = per_step[2:6]
        assert (reject_2, investigate_3) == (reject_1, investigate_2), per_step
