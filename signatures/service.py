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


def verify(signature: Signature, record: Record, task: Task | None) -> bool:
    """Recompute the hash from the record and task as they are now (URS-SIG-03).

    Valid only if the stored content still hashes to the stored value, names this
    record and task and signer, and the record's data and the task's submission still
    hold the values that were signed.
    """
    stored = signature.content or {}
    current = signed_content(
        record_id=record.id, record_number=record.number, task_id=signature.task_id,
        task_bpmn_id=task.bpmn_id if task else None, signer_id=signature.signer_id,
        signer_name=signature.signer_name, meaning=signature.meaning, signed_at=signature.signed_at,
        record_data={k: (record.data or {}).get(k) for k in (stored.get("record_data") or {})},
        submitted=(task.submitted_data if task else {}) or {},
    )
    return content_hash(current) == signature.content_sha256
