"""The system-wide audit trail and its verification (URS-AUD-02, URS-AUD-03)."""
from __future__ import annotations

from flask import jsonify

from models import verify_chain

from . import queries
from .base import AUDIT_READER_ROLES, api_blueprint, int_arg, require_role, runtime
from .views import audit_view

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@api_blueprint.get("/audit")
def list_audit():
    """Entries after `since_seq` in chain order; page on with `next_since_seq`."""
    require_role(AUDIT_READER_ROLES, "Reading the system audit trail")
    since_seq = int_arg("since_seq", 0, 0)
    limit = int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    rt = runtime()
    with rt.db.sessionmaker() as session:
        entries = queries.audit_entries(session, since_seq, limit)
        return jsonify({
            "items": [audit_view(e) for e in entries],
            "since_seq": since_seq,
            "limit": limit,
            "next_since_seq": entries[-1].seq if entries else since_seq,
            "more": len(entries) == limit,
        })


@api_blueprint.get("/audit/verify")
def verify_audit():
    """Walk the hash chain; report ok with the head, or the first broken entry."""
    require_role(AUDIT_READER_ROLES, "Verifying the audit trail")
    rt = runtime()
    with rt.db.sessionmaker() as session:
        return jsonify(verify_chain(session))
