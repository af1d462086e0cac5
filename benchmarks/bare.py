"""Bare SpiffWorkflow: the same steps as the platform, in memory, with nothing around them.

One step is what a minimal host must do to complete a user task: find a ready user task,
set its data, run it, and let the engine move on (``do_engine_steps``). The "naive host"
variant adds what a host that stores the library's default serialization would do on every
step: deserialize the whole instance (spec included), step, serialize it again (no database
write; that would only add to it).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

from .measure import StepSeries, clock, cpu_clock

SERIALIZER = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))


class BareProcess:
    """A diagram parsed once with the spiff parser, ready to start instances in memory."""

    def __init__(self, path: Path, process_id: str):
        parser = SpiffBpmnParser()
        parser.add_bpmn_file(str(path))
        self.spec = parser.get_spec(process_id)
        self.subprocess_specs = parser.get_subprocess_specs(process_id)

    def start(self, data: dict | None = None) -> BpmnWorkflow:
        """Start an instance the way the platform does: start data on the ready tasks, then run."""
        wf = BpmnWorkflow(self.spec, self.subprocess_specs)
        if data:
            for task in wf.get_tasks(state=TaskState.READY):
                task.data.update(data)
        wf.do_engine_steps()
        return wf


def step(wf: BpmnWorkflow, values: dict) -> None:
    """Complete the first ready user task with ``values`` and run the engine to its next wait."""
    task = wf.get_tasks(state=TaskState.READY, manual=True)[0]
    task.set_data(**values)
    task.run()
    wf.do_engine_steps()


def naive_step(state: str, values: dict) -> tuple[str, BpmnWorkflow]:
    """Deserialize the full state, step, serialize it again with the spec, as a naive host would."""
    wf = SERIALIZER.deserialize_json(state)
    step(wf, values)
    return SERIALIZER.serialize_json(wf), wf


def single(proc: BareProcess, records: int, warmup: int, answer: dict) -> tuple[list[float], list[float], int]:
    """Figure (a): the first task of many fresh instances. Returns bare times, naive times, state size."""
    bare, naive = [], []
    size = 0
    for r in range(warmup + records):
        wf = proc.start()
        t0 = clock()
        step(wf, answer)
        elapsed = clock() - t0
        state = SERIALIZER.serialize_json(proc.start())
        size = len(state)
        t0 = clock()
        naive_step(state, answer)
        naive_elapsed = clock() - t0
        if r >= warmup:
            bare.append(elapsed)
            naive.append(naive_elapsed)
    return bare, naive, size


def series(proc: BareProcess, n: int, answer: Callable[[int], dict], start_data: dict | None = None
           ) -> tuple[StepSeries, float, BpmnWorkflow]:
    """Figures (b)/(c): ``n`` steps of one instance in memory. Returns the steps, the start time, the workflow."""
    t0 = clock()
    wf = proc.start(start_data)
    started = clock() - t0
    out = StepSeries(planned=n)
    for i in range(1, n + 1):
        c0 = cpu_clock()
        t0 = clock()
        step(wf, answer(i))
        out.times.append(clock() - t0)
        out.cpu.append(cpu_clock() - c0)
    return out, started, wf


def naive_series(proc: BareProcess, n: int, answer: Callable[[int], dict], start_data: dict | None = None,
                 only: set[int] | None = None) -> tuple[dict[int, float], dict[int, int]]:
    """The naive host's step time (and state size) at each step, or only at the steps in ``only``.

    Steps outside ``only`` are done in memory untimed: the state at step k is the same whether or
    not it went through the serializer before, so sampling windows is exact and far quicker.
    """
    wf = proc.start(start_data)
    times, sizes = {}, {}
    state = None
    for i in range(1, n + 1):
        if only is not None and i not in only:
            step(wf, answer(i))
            state = None
            continue
        if state is None:
            state = SERIALIZER.serialize_json(wf)
        sizes[i] = len(state)
        t0 = clock()
        state, wf = naive_step(state, answer(i))
        times[i] = clock() - t0
    return times, sizes
