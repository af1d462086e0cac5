"""Electronic signatures (21 CFR Part 11 §11.50, §11.70)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow
from .users import User


class Signature(Base):
    """Who signed, the printed name at that moment, the meaning, when, and the hash of what was signed."""

    __tablename__ = "signatures"
    __audited__ = ("record_id", "task_id", "signer_id", "meaning", "content_sha256")

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id"), index=True)
    task_id: Mapped[str | None] = mapped_column(ForeignKey("tasks.id"), default=None)
    signer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    signer_name: Mapped[str] = mapped_column(String(200))
    meaning: Mapped[str] = mapped_column(String(32))
    signed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    content: Mapped[dict] = mapped_column(JSON)
    content_sha256: Mapped[str] = mapped_column(String(64))

    signer: Mapped[User] = relationship(lazy="joined")

    def audit_label(self) -> str:
        return f"signature ({self.meaning})"
