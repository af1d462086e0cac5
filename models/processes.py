"""Process definitions and their versions: each diagram version is a configuration item (URS-VAL-01)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, StrEnum, enum_column, utcnow


class VersionStatus(StrEnum):
    DRAFT = "draft"
    IN_VALIDATION = "in_validation"
    RELEASED = "released"
    RETIRED = "retired"


class ProcessDefinition(Base):
    __tablename__ = "process_definitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    record_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    versions: Mapped[list["ProcessVersion"]] = relationship(
        back_populates="definition", order_by="ProcessVersion.version"
    )


class ProcessVersion(Base):
    """One immutable diagram version. The parsed engine spec is stored once here, never per record."""

    __tablename__ = "process_versions"
    __audited__ = ("status",)
    __table_args__ = (UniqueConstraint("definition_id", "version", name="uq_process_versions_def_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definitions.id"))
    version: Mapped[int] = mapped_column(Integer)
    bpmn: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[VersionStatus] = mapped_column(enum_column(VersionStatus), default=VersionStatus.DRAFT)
    source_path: Mapped[str | None] = mapped_column(String(500), default=None)
    # The engine spec as JSON (SpiffWorkflow serializer format); parsed once, shared by all records.
    spec_json: Mapped[str] = mapped_column(Text, deferred=True)
    serializer_version: Mapped[str] = mapped_column(String(40))
    loaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    loaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    definition: Mapped[ProcessDefinition] = relationship(back_populates="versions", lazy="joined")

    @property
    def key(self) -> str:
        return self.definition.key

    def audit_label(self) -> str:
        return f"process {self.definition.key} v{self.version}"
