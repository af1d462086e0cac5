"""Controlled documents and their versions (URS-DOC-01..05). Nothing here is ever deleted."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, StrEnum, enum_column, utcnow
from .users import User


class DocumentStatus(StrEnum):
    ACTIVE = "active"
    OBSOLETE = "obsolete"


class DocumentVersionStatus(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    EFFECTIVE = "effective"
    SUPERSEDED = "superseded"
    OBSOLETE = "obsolete"


class Document(Base):
    """A controlled document: number, title, type, owner; its versions carry the files."""

    __tablename__ = "documents"
    __audited__ = ("title", "doc_type", "owner_id", "status", "review_interval_months", "obsolete_reason")

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    doc_type: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[DocumentStatus] = mapped_column(enum_column(DocumentStatus), default=DocumentStatus.ACTIVE)
    review_interval_months: Mapped[int] = mapped_column(Integer, default=24)
    obsolete_reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    owner: Mapped[User] = relationship(lazy="joined")
    versions: Mapped[list[DocumentVersion]] = relationship(
        back_populates="document", order_by="(DocumentVersion.major, DocumentVersion.minor)")

    def audit_label(self) -> str:
        return f"document {self.number}"


class DocumentVersion(Base):
    """One version of a document with its file and SHA-256, moving draft → ... → effective → superseded."""

    __tablename__ = "document_versions"
    __audited__ = ("status", "effective_date", "next_review_due", "sha256", "approval_record_id")
    __table_args__ = (UniqueConstraint("document_id", "major", "minor", name="uq_document_versions_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), index=True)
    major: Mapped[int] = mapped_column(Integer)
    minor: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[DocumentVersionStatus] = mapped_column(enum_column(DocumentVersionStatus),
                                                          default=DocumentVersionStatus.DRAFT, index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    change_summary: Mapped[str] = mapped_column(Text, default="")
    effective_date: Mapped[dt.datetime | None] = mapped_column(default=None)
    effective_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    superseded_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    next_review_due: Mapped[dt.datetime | None] = mapped_column(default=None)
    # The document approval record that moved this version (and the change control that asked for it).
    approval_record_id: Mapped[str | None] = mapped_column(ForeignKey("records.id"), default=None)
    change_record_id: Mapped[str | None] = mapped_column(ForeignKey("records.id"), default=None)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    document: Mapped[Document] = relationship(back_populates="versions", lazy="joined")

    @property
    def label(self) -> str:
        return f"{self.major}.{self.minor}"

    def audit_label(self) -> str:
        return f"document version {self.label}"
