"""Records (process instances), their user tasks, links, attachments and the engine's own state rows."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, StrEnum, enum_column, new_id, utcnow
from .processes import ProcessVersion
from .users import User


class RecordStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    ERROR = "error"


class TaskStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Record(Base):
    """A GxP record: one run of a diagram version. Every change of an audited column is audited."""

    __tablename__ = "records"
    __audited__ = ("status", "title", "data")

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    process_version_id: Mapped[int] = mapped_column(ForeignKey("process_versions.id"), index=True)
    status: Mapped[RecordStatus] = mapped_column(enum_column(RecordStatus), default=RecordStatus.OPEN, index=True)
    title: Mapped[str] = mapped_column(String(300), default="")
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    # Engine state without the spec and without the task tree (tasks live in engine_tasks).
    engine_state: Mapped[dict] = mapped_column(JSON, default=dict, deferred=True)
    serializer_version: Mapped[str] = mapped_column(String(40), default="")
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    process_version: Mapped[ProcessVersion] = relationship(lazy="joined")
    created_by: Mapped[User] = relationship(lazy="joined")

    # Optimistic locking: the second of two concurrent writers fails with StaleDataError.
    __mapper_args__ = {"version_id_col": version}

    def audit_label(self) -> str:
        return f"record {self.number}"


class Task(Base):
    """One user task that became ready. Its id is the engine's task id."""

    __tablename__ = "tasks"
    __audited__ = ("status", "assignee", "item", "completed_by_id", "due_at")
    __table_args__ = (
        Index("ix_tasks_status_role", "status", "role"),
        Index("ix_tasks_record_bpmn", "record_id", "bpmn_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id"), index=True)
    bpmn_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    lane: Mapped[str | None] = mapped_column(String(100), default=None)
    role: Mapped[str | None] = mapped_column(String(100), default=None)
    assignee: Mapped[str | None] = mapped_column(String(64), default=None)
    form: Mapped[str | None] = mapped_column(String(300), default=None)
    ui_form: Mapped[str | None] = mapped_column(String(300), default=None)
    signature_meaning: Mapped[str | None] = mapped_column(String(32), default=None)
    segregate_from: Mapped[list] = mapped_column(JSON, default=list)
    # Training codes (document numbers or course codes) a person must be qualified for (URS-TRN-03).
    requires_training: Mapped[list] = mapped_column(JSON, default=list)
    instructions: Mapped[str] = mapped_column(Text, default="")
    # One instance of a multi-instance task: the item it is for ({input item name: value}, e.g. the
    # CAPA action it completes), fixed when the task is created; None for other tasks.
    item: Mapped[dict | None] = mapped_column(JSON, default=None)
    due_at: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)
    status: Mapped[TaskStatus] = mapped_column(enum_column(TaskStatus), default=TaskStatus.OPEN)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    completed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    submitted_data: Mapped[dict | None] = mapped_column(JSON, default=None)

    record: Mapped[Record] = relationship(lazy="joined")
    completed_by: Mapped[User | None] = relationship(lazy="joined")

    def audit_label(self) -> str:
        return f"task {self.bpmn_id}"


class EngineTask(Base):
    """One engine task of a record, stored on its own so a step rewrites only what changed.

    `position` keeps the engine's creation order (parents before children), which
    restoring the task tree needs.
    """

    __tablename__ = "engine_tasks"
    __table_args__ = (Index("ix_engine_tasks_record_position", "record_id", "position"),)

    record_id: Mapped[str] = mapped_column(ForeignKey("records.id"), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    state: Mapped[dict] = mapped_column(JSON)


class TimerJob(Base):
    """A due engine timer of a record, claimed by one worker at a time (SKIP LOCKED on PostgreSQL)."""

    __tablename__ = "timer_jobs"
    __table_args__ = (Index("ix_timer_jobs_due", "fired_at", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id"), index=True)
    event_name: Mapped[str] = mapped_column(String(200))
    due_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    fired_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class RecordCounter(Base):
    """Per prefix and year, the last record number handed out (locked while incremented)."""

    __tablename__ = "record_counters"
    __table_args__ = (UniqueConstraint("prefix", "year", name="uq_record_counters_prefix_year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16))
    year: Mapped[int] = mapped_column(Integer)
    last: Mapped[int] = mapped_column(Integer, default=0)


class RecordLink(Base):
    """A typed link between two records (e.g. deviation raises CAPA), shown on both (URS-PLT-07)."""

    __tablename__ = "record_links"
    __table_args__ = (UniqueConstraint("source_id", "target_id", "kind", name="uq_record_links_pair"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("records.id"), index=True)
    target_id: Mapped[str] = mapped_column(ForeignKey("records.id"), index=True)
    kind: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    source: Mapped[Record] = relationship(foreign_keys=[source_id], lazy="joined")
    target: Mapped[Record] = relationship(foreign_keys=[target_id], lazy="joined")
