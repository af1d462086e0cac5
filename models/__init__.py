"""SQLAlchemy 2.x models. Imports nothing of ours: every other package builds on these tables."""
from .attachments import Attachment
from .audit import AuditEntry, AuditHead, audit_event, canonical_json, set_actor, verify_chain
from .base import Base, utcnow
from .documents import Document, DocumentStatus, DocumentVersion, DocumentVersionStatus
from .processes import ProcessDefinition, ProcessVersion, VersionStatus
from .records import EngineTask, Record, RecordCounter, RecordLink, RecordStatus, Task, TaskStatus, TimerJob
from .signatures import Signature
from .training import TrainingKind, TrainingRecord, TrainingRequirement, TrainingStatus
from .users import ApiToken, Role, User, UserRole

__all__ = [
    "ApiToken", "Attachment", "AuditEntry", "AuditHead", "Base", "Document", "DocumentStatus", "DocumentVersion",
    "DocumentVersionStatus", "EngineTask", "ProcessDefinition", "ProcessVersion", "Record", "RecordCounter",
    "RecordLink", "RecordStatus", "Role", "Signature", "Task", "TaskStatus", "TimerJob", "TrainingKind",
    "TrainingRecord", "TrainingRequirement", "TrainingStatus", "User", "UserRole", "VersionStatus",
    "audit_event", "canonical_json", "set_actor", "utcnow", "verify_chain",
]
