"""Files attached to a record or to one of its tasks: evidence kept with the GxP record (URS-AUD-04).

The bytes live in the database next to the record, so a backup of the database is a backup
of the evidence, and the SHA-256 taken at upload proves on download that nothing changed.
Attachments are never deleted (the audit hook refuses it: ``__audited__`` without
``__deletable__``).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow
from .users import User


class Attachment(Base):
    __tablename__ = "attachments"
    __audited__ = ("filename", "content_type", "size", "sha256", "task_id")

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id"), index=True)
    task_id: Mapped[str | None] = mapped_column(ForeignKey("tasks.id"), default=None, index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    # Loaded only when a file is downloaded: lists of attachments never read the bytes.
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    uploaded_by: Mapped[User] = relationship(lazy="joined")

    def audit_label(self) -> str:
        return f"attachment {self.filename}"
