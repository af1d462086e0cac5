"""Demo data for a first look at the product: one user per role and two deviations in progress.

Idempotent: users and records that exist already are left as they are. The password is
published (README, docs) and is for demonstration only; never run this on a GxP system.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from engine.exceptions import NotFound
from engine.runtime import Runtime
from models import Record, Task, TaskStatus

DEMO_PASSWORD = "Demo-password-1"

# username -> (full name, roles). One account per role; two QA accounts so that one can
# approve what the other triaged or raised (segregation of duties).
DEMO_USERS: dict[str, tuple[str, list[str]]] = {
    "operator": ("Olivia Operator", ["Initiator", "Action Owner", "Implementer"]),
    "qa": ("Quinn QA", ["QA", "Reviewer"]),
    "qa2": ("Quentin QA", ["QA", "Approver"]),
    "investigator": ("Ivan Investigator", ["Investigator", "Impact Assessor", "Action Owner"]),
    "qahead": ("Hannah Head", ["QA Head", "Approver"]),
    "doccontrol": ("Dora Document-Control", ["Document Control", "Author", "Training Coordinator"]),
    "processowner": ("Paula Process-Owner", ["Process Owner"]),
    "auditor": ("Arthur Auditor", ["Auditor"]),
    "admin": ("Ada Admin", ["Admin"]),
}

_INVESTIGATION_TITLE = "Demo: incubator temperature excursion"
_APPROVAL_TITLE = "Demo: chain-of-identity label mismatch at formulation"


@dataclass
class DemoSummary:
    users_created: list[str] = field(default_factory=list)
    users_existing: list[str] = field(default_factory=list)
    records_created: list[str] = field(default_factory=list)
    records_existing: list[str] = field(default_factory=list)


def run_demo(runtime: Runtime, actor, echo: Callable[[str], None] = print) -> DemoSummary:
    """Create the demo users, load the diagrams and start the demo deviations (each only once)."""
    summary = DemoSummary()
    for username, (full_name, roles) in DEMO_USERS.items():
        try:
            runtime.user_by_username(username)
        except NotFound:
            runtime.add_user(actor, username, full_name, DEMO_PASSWORD, roles)
            summary.users_created.append(username)
        else:
            summary.users_existing.append(username)
    for result in runtime.load_processes(actor):
        echo(f"diagram {result.key} v{result.version} {'loaded' if result.created else 'unchanged'}")
    with runtime.db.sessionmaker() as session:
        existing = {r.title: r.number for r in session.scalars(
            select(Record).where(Record.title.in_([_INVESTIGATION_TITLE, _APPROVAL_TITLE])))}
    for title, builder in ((_INVESTIGATION_TITLE, _deviation_under_investigation),
                           (_APPROVAL_TITLE, _critical_deviation_awaiting_approval)):
        if title in existing:
            summary.records_existing.append(existing[title])
        else:
            summary.records_created.append(builder(runtime))
    return summary


def _user(runtime: Runtime, username: str):
    return runtime.user_by_username(username)


def _complete(runtime: Runtime, record_id: str, bpmn_id: str, username: str, data: dict,
              meaning: str | None = None) -> None:
    with runtime.db.sessionmaker() as session:
        task_id = session.scalar(select(Task.id).where(Task.record_id == record_id, Task.bpmn_id == bpmn_id,
                                                       Task.status == TaskStatus.OPEN))
    signature = {"password": DEMO_PASSWORD, "meaning": meaning} if meaning else None
    runtime.complete_task(task_id, _user(runtime, username), data, signature=signature)


def _deviation_under_investigation(runtime: Runtime) -> str:
    """A major deviation triaged by QA, waiting for the investigator."""
    record = runtime.start_record(_user(runtime, "operator"), "deviation", {
        "title": _INVESTIGATION_TITLE,
        "description": "Incubator INC-04 read 38.9 C for 40 minutes during expansion of COI-2026-0042 "
                       "(limit 37.0 +/- 1.0 C, SOP-CP-021).",
        "area": "Cell processing",
        "occurred_at": "2026-11-20T08:30:00+00:00",
        "batch_ref": "COI-2026-0042",
        "immediate_actions": "Culture moved to INC-05; engineering informed; batch on hold.",
    })
    _complete(runtime, record.id, "triage_deviation", "qa", {
        "classification": "major", "investigator": "investigator",
        "rationale": "Expansion outside the validated temperature range; possible effect on viability.",
    })
    return record.number


def _critical_deviation_awaiting_approval(runtime: Runtime) -> str:
    """A critical deviation: investigated, waiting for QA approval and for the QA head's review."""
    record = runtime.start_record(_user(runtime, "operator"), "deviation", {
        "title": _APPROVAL_TITLE,
        "description": "The bag label at formulation showed COI-2026-0051 while the batch record is for "
                       "COI-2026-0050.",
        "area": "Cell processing",
        "occurred_at": "2026-11-21T14:05:00+00:00",
        "batch_ref": "COI-2026-0050",
        "immediate_actions": "Both batches on hold; line cleared; QA head called.",
    })
    _complete(runtime, record.id, "triage_deviation", "qa", {
        "classification": "critical", "investigator": "investigator",
        "rationale": "Possible mix-up of patient material: product identity at risk.",
    })
    _complete(runtime, record.id, "investigate_deviation", "investigator", {
        "root_cause": "Labels for two patients were printed in one run and placed in the wrong tray.",
        "product_impact": "Identity of both batches confirmed by HLA typing; no mix-up of material.",
        "patient_impact": "Infusion of both patients delayed by two days.",
        "capa_required": True,
    })
    return record.number
