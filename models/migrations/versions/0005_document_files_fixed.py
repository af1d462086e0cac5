"""The file of a document version, once stored, never changes; versions and documents are never deleted.

Revision ID: 0005
Revises: 0004

A version's status and dates move with its lifecycle (draft → in review → approved → effective
→ superseded/obsolete); its identity (document, major.minor) and its file (name, type, size,
SHA-256, bytes) are fixed at upload (URS-DOC-01, URS-AUD-04). Like the audit trail and the
attachments, this holds even against a session with the application's own credentials.
"""
from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Columns fixed at upload.
FIXED = ("document_id", "major", "minor", "filename", "content_type", "size", "sha256", "content", "created_at")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in FIXED)
        op.execute(
            f"""
            CREATE FUNCTION document_versions_fixed() RETURNS trigger AS $$
            BEGIN
                IF TG_OP = 'DELETE' THEN
                    RAISE EXCEPTION 'document versions are never deleted: DELETE refused';
                END IF;
                IF {changed} THEN
                    RAISE EXCEPTION 'the file and number of a document version never change: UPDATE refused';
                END IF;
                RETURN NEW;
            END;
            $$ LANGUAGE plpgsql;
            """
        )
        op.execute("CREATE TRIGGER document_versions_fixed BEFORE UPDATE OR DELETE ON document_versions "
                   "FOR EACH ROW EXECUTE FUNCTION document_versions_fixed()")
        op.execute(
            """
            CREATE FUNCTION documents_never_deleted() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'documents are never deleted (make them obsolete): DELETE refused';
            END;
            $$ LANGUAGE plpgsql;
            """
        )
        op.execute("CREATE TRIGGER documents_no_delete BEFORE DELETE ON documents "
                   "FOR EACH ROW EXECUTE FUNCTION documents_never_deleted()")
    else:
        changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in FIXED)
        op.execute(
            f"CREATE TRIGGER document_versions_fixed BEFORE UPDATE ON document_versions WHEN {changed} "
            "BEGIN SELECT RAISE(ABORT, 'the file and number of a document version never change: UPDATE refused'); END"
        )
        op.execute(
            "CREATE TRIGGER document_versions_no_delete BEFORE DELETE ON document_versions "
            "BEGIN SELECT RAISE(ABORT, 'document versions are never deleted: DELETE refused'); END"
        )
        op.execute(
            "CREATE TRIGGER documents_no_delete BEFORE DELETE ON documents "
            "BEGIN SELECT RAISE(ABORT, 'documents are never deleted (make them obsolete): DELETE refused'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER document_versions_fixed ON document_versions")
        op.execute("DROP FUNCTION document_versions_fixed()")
        op.execute("DROP TRIGGER documents_no_delete ON documents")
        op.execute("DROP FUNCTION documents_never_deleted()")
    else:
        op.execute("DROP TRIGGER document_versions_fixed")
        op.execute("DROP TRIGGER document_versions_no_delete")
        op.execute("DROP TRIGGER documents_no_delete")
