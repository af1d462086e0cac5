"""The audit trail: append-only, hash-chained, written by one mechanism (URS-AUD-01, URS-AUD-02).

Every model that declares ``__audited__`` (a tuple of column names) is watched by a
``before_flush`` hook: creations, changes of those columns (old and new value, per
key for JSON data) and deletions become audit entries in the same flush, so no
feature can change a GxP record and forget the trail. Events that are not a column
change (log-in, failed signature, diagram load) are added with :func:`audit_event`.

Each entry carries the SHA-256 of its own canonical content and of the previous
entry; the chain head lives in ``audit_head`` and is locked while entries are
appended, so concurrent writers (several processes on PostgreSQL) form one chain.
"""
from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import itertools
import json
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String, Text, event, inspect, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from .base import Base, utcnow

GENESIS_HASH = "0" * 64
_order = itertools.count()


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    user_id: Mapped[int | None] = mapped_column(Integer, default=None)
    username: Mapped[str | None] = mapped_column(String(64), default=None)
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str | None] = mapped_column(String(64), default=None)
    entity_id: Mapped[str | None] = mapped_column(String(64), default=None)
    record_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    field: Mapped[str | None] = mapped_column(String(200), default=None)
    old: Mapped[Any] = mapped_column(JSON, nullable=True, default=None)
    new: Mapped[Any] = mapped_column(JSON, nullable=True, default=None)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    def __init__(self, **kw):
        super().__init__(**kw)
        self._order = next(_order)

    def content(self) -> dict:
        """The canonical content the hash covers."""
        return {
            "seq": self.seq,
            "at": _iso(self.at),
            "user_id": self.user_id,
            "username": self.username,
            "action": self.action,
            "entity": self.entity,
            "entity_id": self.entity_id,
            "record_id": self.record_id,
            "field": self.field,
            "old": self.old,
            "new": self.new,
            "reason": self.reason,
            "prev_hash": self.prev_hash,
        }

    def compute_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.content()).encode()).hexdigest()


class AuditHead(Base):
    """The single row that holds the chain's last sequence number and hash."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def _json_default(value):
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if hasattr(value, "value"):  # enums
        return value.value
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8: the same content always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def plain(value: Any) -> Any:
    """A JSON-safe copy of a value for the old/new columns."""
    return json.loads(canonical_json(value))


# --- who is acting ----------------------------------------------------------------------------

def set_actor(session: Session, user_id: int | None, username: str | None, reason: str | None = None) -> None:
    """Name the person (or system component) responsible for the changes of this unit of work."""
    session.info["audit_actor"] = (user_id, username)
    session.info["audit_reason"] = reason


def audit_event(
    session: Session,
    action: str,
    *,
    record_id: str | None = None,
    entity: str | None = None,
    entity_id: Any = None,
    field: str | None = None,
    old: Any = None,
    new: Any = None,
    reason: str | None = None,
    user_id: int | None = None,
    username: str | None = None,
) -> AuditEntry:
    """Add an explicit audit entry to the session; it is chained and written with the next flush."""
    actor_id, actor_name = session.info.get("audit_actor", (None, None))
    entry = AuditEntry(
        at=utcnow(),
        user_id=user_id if user_id is not None else actor_id,
        username=username if username is not None else actor_name,
        action=action,
        entity=entity,
        entity_id=None if entity_id is None else str(entity_id),
        record_id=record_id,
        field=field,
        old=plain(old),
        new=plain(new),
        reason=reason if reason is not None else session.info.get("audit_reason"),
    )
    session.add(entry)
    return entry


# --- the mechanism ----------------------------------------------------------------------------

def _record_id_of(obj) -> str | None:
    if obj.__tablename__ == "records":
        return obj.id
    return getattr(obj, "record_id", None)


def _entity_id(obj) -> str | None:
    ident = inspect(obj).identity
    if ident:
        return "/".join(str(i) for i in ident)
    pk = [getattr(obj, c.key) for c in inspect(type(obj)).primary_key]
    return "/".join(str(v) for v in pk) if all(v is not None for v in pk) else None


def _changes(obj) -> list[tuple[str, Any, Any]]:
    """(field, old, new) for each audited column changed on a persistent object."""
    state = inspect(obj)
    out = []
    for name in obj.__audited__:
        hist = state.attrs[name].history
        if not hist.has_changes():
            continue
        old = hist.deleted[0] if hist.deleted else None
        new = hist.added[0] if hist.added else None
        if isinstance(old, dict) or isinstance(new, dict):
            old_d, new_d = old or {}, new or {}
            for key in sorted(set(old_d) | set(new_d)):
                before, after = old_d.get(key), new_d.get(key)
                if before is after or (type(before) is type(after) and before == after):
                    continue  # cheap test first: most keys of a large record are untouched
                if plain(before) != plain(after):
                    out.append((f"{name}.{key}", before, after))
        elif plain(old) != plain(new):
            out.append((name, old, new))
    return out


@event.listens_for(Session, "before_flush")
def _guard_and_chain(session: Session, flush_context, instances) -> None:
    """Refuse changes to the trail itself, then chain every entry waiting to be written."""
    for obj in session.deleted:
        if isinstance(obj, AuditEntry):
            raise PermissionError("audit entries are never deleted")
        if getattr(obj, "__audited__", None) is not None and not getattr(obj, "__deletable__", False):
            raise PermissionError(f"{obj.__tablename__} rows are never deleted; cancel or deactivate instead")
    for obj in session.dirty:
        if isinstance(obj, AuditEntry) and session.is_modified(obj):
            raise PermissionError("audit entries are append-only")
    _chain_new_entries(session)


@event.listens_for(Session, "after_flush")
def _audit_model_changes(session: Session, flush_context) -> None:
    """Turn every flushed change of an audited model into entries (written by the next flush of the commit).

    Runs after the flush so that defaults and primary keys are known; the change history is
    still available here. Session.commit() flushes until the session is clean, so these
    entries always land in the same transaction as the change they describe.
    """
    for obj in list(session.new):
        if getattr(obj, "__audited__", None) is not None:
            snapshot = {n: getattr(obj, n) for n in obj.__audited__}
            audit_event(session, "create", record_id=_record_id_of(obj), entity=obj.__tablename__,
                        entity_id=_entity_id(obj), new=snapshot)
    for obj in list(session.dirty):
        if getattr(obj, "__audited__", None) is None:
            continue
        for field, old, new in _changes(obj):
            audit_event(session, "update", record_id=_record_id_of(obj), entity=obj.__tablename__,
                        entity_id=_entity_id(obj), field=field, old=old, new=new)
    for obj in list(session.deleted):
        if getattr(obj, "__audited__", None) is not None:
            audit_event(session, "delete", record_id=_record_id_of(obj), entity=obj.__tablename__,
                        entity_id=_entity_id(obj), old={n: getattr(obj, n) for n in obj.__audited__})


def _chain_new_entries(session: Session) -> None:
    pending = sorted(
        (o for o in session.new if isinstance(o, AuditEntry) and o.seq is None),
        key=lambda e: e._order,
    )
    if not pending:
        return
    conn = session.connection()
    head = conn.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()).one()
    seq, prev = head.seq, head.hash
    for entry in pending:
        seq += 1
        entry.seq = seq
        entry.prev_hash = prev
        entry.hash = prev = entry.compute_hash()
    conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=prev))


def verify_chain(session: Session, batch: int = 5000) -> dict:
    """Walk the whole chain in order; report the first entry whose content or link is broken."""
    prev = GENESIS_HASH
    count = 0
    expected_seq = 1
    last_seq = 0
    while True:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.seq > last_seq).order_by(AuditEntry.seq).limit(batch)
        ).all()
        if not rows:
            break
        for entry in rows:
            problem = None
            if entry.seq != expected_seq:
                problem = f"entry {expected_seq} is missing"
                bad = expected_seq
            elif entry.prev_hash != prev:
                problem = "link to the previous entry is broken"
                bad = entry.seq
            elif entry.compute_hash() != entry.hash:
                problem = "content does not match its hash"
                bad = entry.seq
            if problem:
                return {"ok": False, "first_bad_seq": bad, "problem": problem, "entries": count}
            prev = entry.hash
            count += 1
            expected_seq += 1
            last_seq = entry.seq
        session.expunge_all()
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq != count or head.hash != prev):
        return {"ok": False, "first_bad_seq": count + 1, "problem": "entries after the last one are missing",
                "entries": count}
    return {"ok": True, "entries": count, "head": prev}
