"""Apply and verify electronic signatures."""
from __future__ import annotations

from sqlalchemy.orm import Session

from models import Record, Signature, Task, User, utcnow

from .manifest import content_hash, signed_content

MEANINGS = ("authored", "reviewed", "approved", "verified", "released", "acknowledged", "rejected")


def sign(session: Session, *, signer: User, meaning: str, record: Record, task: Task | None,
         record_data: dict, submitted: dict) -> Signature:
    """Create the signature row for content that the caller has just re-authenticated for."""
    signed_at = utcnow()
    content = signed_content(
        record_id=record.id, record_number=record.number, task_id=task.id if task else None,
        task_bpmn_id=task.bpmn_id if task else None, signer_id=signer.id, signer_name=signer.full_name,
        meaning=meaning, signed_at=signed_at, record_data=record_data, submitted=submitted,
    )
    signature = Signature(
        record_id=record.id, task_id=task.id if task else None, signer_id=signer.id,
        signer_name=signer.full_name, meaning=meaning, signed_at=signed_at, content=content,
        content_sha256=content_hash(content),
    )
    session.add(signature)
    return signature


def verify(signature: Signature, record: Record, task: Task | None, superseded: dict | None = None) -> bool:
    """Recompute the hash from the record and task as they are now (URS-SIG-03).

    Valid only if the hash recomputed from the live data equals the stored one: the content
    names this record, task, signer, meaning and moment, the task's submission is unchanged,
    and each attested field of the record still holds the signed value. A field that a later
    step of the same process legitimately submitted again (a rework round) is compared with
    the signed value only when the record does not hold that later value: a new round of the
    process supersedes a field, it does not falsify the earlier signature; any other change does.
    """
    stored = signature.content or {}
    signed_fields = stored.get("record_data") or {}
    data = record.data or {}
    later = superseded or {}
    current_fields = {}
    for key in signed_fields:
        value = data.get(key)
        if key in later and value == later[key]:
            value = signed_fields[key]
        current_fields[key] = value
    current = signed_content(
        record_id=record.id, record_number=record.number, task_id=signature.task_id,
        task_bpmn_id=task.bpmn_id if task else None, signer_id=signature.signer_id,
        signer_name=signature.signer_name, meaning=signature.meaning, signed_at=signature.signed_at,
        record_data=current_fields,
        submitted=(task.submitted_data if task else {}) or {},
    )
    return content_hash(current) == signature.content_sha256
