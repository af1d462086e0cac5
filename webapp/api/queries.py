"""Read-only queries the API needs and engine.Runtime does not offer yet.

They decide no rule beyond "which rows": visibility of records is still asked of the runtime
(`get_record`) before a record's audit trail is read. They belong in the engine (so the web
pages and the CLI share them) and should move there when it grows `process_versions`,
`record_audit` and `audit_entries` methods.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from engine.exceptions import NotFound
from models import AuditEntry, ProcessDefinition, ProcessVersion, Record, User, VersionStatus

from .base import PROCESS_ADMIN_ROLES

# Versions that are or were in use; everyone may read them, since records stay on the version
# they started with (URS-PLT-06) and a reader must be able to see that version's diagram.
PUBLIC_STATUSES = (VersionStatus.RELEASED, VersionStatus.RETIRED)


def visible_statuses(user: User) -> tuple[VersionStatus, ...] | None:
    """None means every status (process owners and administrators also see drafts)."""
    return None if user.role_names & PROCESS_ADMIN_ROLES else PUBLIC_STATUSES


def process_versions(session: Session, user: User) -> list[ProcessVersion]:
    """Every diagram version the user may see, by process key and version."""
    stmt = (select(ProcessVersion).join(ProcessDefinition)
            .options(defer(ProcessVersion.bpmn), defer(ProcessVersion.spec_json))
            .order_by(ProcessDefinition.key, ProcessVersion.version))
    statuses = visible_statuses(user)
    if statuses is not None:
        stmt = stmt.where(ProcessVersion.status.in_(statuses))
    return list(session.scalars(stmt))


def process_version(session: Session, user: User, key: str, version: int) -> ProcessVersion:
    """One version the user may see, or NotFound (an invisible draft looks like a missing one)."""
    row = session.scalar(select(ProcessVersion).join(ProcessDefinition).where(
        ProcessDefinition.key == key, ProcessVersion.version == version))
    statuses = visible_statuses(user)
    if row is None or (statuses is not None and row.status not in statuses):
        raise NotFound(f"There is no version {version} of process '{key}' you may see.")
    return row


def record_audit(session: Session, record: Record) -> list[AuditEntry]:
    """The record's audit entries, oldest first (the caller has already checked visibility)."""
    return list(session.scalars(select(AuditEntry).where(AuditEntry.record_id == record.id)
                                .order_by(AuditEntry.seq)))


def audit_entries(session: Session, since_seq: int, limit: int) -> list[AuditEntry]:
    """System-wide entries after `since_seq`, in chain order (URS-AUD-03)."""
    return list(session.scalars(select(AuditEntry).where(AuditEntry.seq > since_seq)
                                .order_by(AuditEntry.seq).limit(limit)))
