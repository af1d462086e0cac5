"""Training requirements per role and each person's training records (URS-TRN-01..03)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, StrEnum, enum_column, utcnow
from .users import User


class TrainingKind(StrEnum):
    DOCUMENT = "document"  # read and understood: code is the document number
    COURSE = "course"      # a course: code is the course code


class TrainingStatus(StrEnum):
    ASSIGNED = "assigned"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class TrainingRequirement(Base):
    """A role requires this training (a document to read and understand, or a course)."""

    __tablename__ = "training_requirements"
    __audited__ = ("role_name", "kind", "code", "title", "due_days")
    __deletable__ = True  # a requirement can be withdrawn; the audit entry keeps it
    __table_args__ = (UniqueConstraint("role_name", "code", name="uq_training_requirements_role_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    role_name: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[TrainingKind] = mapped_column(enum_column(TrainingKind))
    code: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str] = mapped_column(String(300))
    due_days: Mapped[int] = mapped_column(default=14)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TrainingRecord(Base):
    """One assignment of a training to a person, for one document version when it is a document."""

    __tablename__ = "training_records"
    __audited__ = ("status", "completed_at", "due_at", "signature_id")

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[TrainingKind] = mapped_column(enum_column(TrainingKind))
    title: Mapped[str] = mapped_column(String(300))
    document_version_id: Mapped[int | None] = mapped_column(ForeignKey("document_versions.id"), default=None)
    status: Mapped[TrainingStatus] = mapped_column(enum_column(TrainingStatus), default=TrainingStatus.ASSIGNED)
    assigned_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    due_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    completed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    signature_id: Mapped[int | None] = mapped_column(ForeignKey("signatures.id"), default=None)
    # The record (process instance) that carries the signed "read and understood" task, if any.
    record_id: Mapped[str | None] = mapped_column(ForeignKey("records.id"), default=None)

    user: Mapped[User] = relationship(lazy="joined")

    def audit_label(self) -> str:
        return f"training {self.code}"
