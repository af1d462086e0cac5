"""Records that start and link other records (URS-PLT-07): a deviation raises a CAPA, a CAPA its follow-up."""
from __future__ import annotations

from sqlalchemy import select

from models import ProcessDefinition, ProcessVersion, Record, RecordLink, VersionStatus

from .exceptions import ProcessRejected
from .services import StepContext, operation


def link_records(session, source: Record, target: Record, kind: str) -> RecordLink:
    """Link two records (audited by the audit trail through the link's own entry)."""
    from models import audit_event

    link = RecordLink(source_id=source.id, target_id=target.id, kind=kind)
    session.add(link)
    audit_event(session, "record_linked", record_id=source.id, entity="record_links", field=kind,
                new={"source": source.number, "target": target.number, "kind": kind})
    audit_event(session, "record_linked", record_id=target.id, entity="record_links", field=kind,
                new={"source": source.number, "target": target.number, "kind": kind})
    return link


@operation("start_linked_record")
def start_linked_record(ctx: StepContext, process: str, data: dict | None = None, link: str = "raises",
                        title: str | None = None) -> dict:
    """Start the released version of `process` with `data`, linked from the current record.

    The new record is created by the person whose step reached the service task, in the same
    transaction; its start form validates `data` like any other start.
    """
    session = ctx.session
    version = session.scalar(select(ProcessVersion).join(ProcessDefinition).where(
        ProcessDefinition.key == process, ProcessVersion.status == VersionStatus.RELEASED))
    if version is None:
        # The step cannot go on, through no fault of the request: 422, not 404.
        raise ProcessRejected(f"There is no released process '{process}' to start from {ctx.record.number}.",
                              code="process_not_released")
    if not isinstance(data, dict):
        raise ProcessRejected("start_linked_record needs `data` as a mapping of field names to values")
    payload = dict(data)
    if title and "title" not in payload:
        payload["title"] = title
    target = ctx.runtime.start_record_in(session, ctx.actor, version, payload)
    link_records(session, ctx.record, target, link)
    return {"id": target.id, "number": target.number}
