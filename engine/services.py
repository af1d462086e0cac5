"""Service operations a diagram may call from a service task (spiffworkflow:serviceTaskOperator).

A diagram cannot run arbitrary code; it can only name one of the operations registered
here, with parameters that are restricted expressions. Each operation runs inside the same
unit of work as the step that reached it (the session, the acting person and the record
come from the step context), so "approve the deviation and raise its CAPA" commits together
or not at all.

Register an operation with::

    @operation("start_linked_record")
    def start_linked_record(ctx: StepContext, process: str, data: dict, link: str = "raises") -> dict: ...
"""
from __future__ import annotations

import contextlib
import contextvars
import inspect
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .exceptions import ProcessRejected


@dataclass
class StepContext:
    """What an operation may use: the runtime, the open session, who acts, and on which record."""

    runtime: Any
    session: Any
    actor: Any
    record: Any


_current: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar("cellqms_step", default=None)
OPERATIONS: dict[str, Callable[..., Any]] = {}


def operation(name: str):
    """Register a function as a service operation under `name`."""

    def register(fn):
        OPERATIONS[name] = fn
        return fn

    return register


@contextlib.contextmanager
def step(runtime, session, actor, record) -> Iterator[StepContext]:
    """Make the step's context available to operations called while the engine runs."""
    ctx = StepContext(runtime, session, actor, record)
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def known(name: str) -> bool:
    _load_builtin_operations()
    return name in OPERATIONS


def call(name: str, params: dict) -> str:
    """Run an operation for the engine; the result goes back as JSON (the engine stores it in task data)."""
    _load_builtin_operations()
    ctx = _current.get()
    if ctx is None:
        raise ProcessRejected(f"service operation '{name}' was called outside a process step")
    fn = OPERATIONS.get(name)
    if fn is None:
        raise ProcessRejected(f"unknown service operation '{name}'")
    accepted = inspect.signature(fn).parameters
    unknown = [p for p in params if p not in accepted]
    if unknown:
        raise ProcessRejected(f"service operation '{name}' takes no parameter(s) {', '.join(unknown)}")
    return json.dumps(fn(ctx, **params), default=str)


def _load_builtin_operations() -> None:
    """Import the modules that register the platform's operations (once)."""
    from . import documents, links, training  # noqa: F401 - imported for their @operation registrations
