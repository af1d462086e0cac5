"""Attachments: files kept with a record or a task, with their SHA-256; never deleted.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=120), nullable=False),
        sa.Column("size", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], name=op.f("fk_attachments_record_id_records")),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_attachments_task_id_tasks")),
        sa.ForeignKeyConstraint(["uploaded_by_id"], ["users.id"], name=op.f("fk_attachments_uploaded_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachments_record_id"), ["record_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_attachments_task_id"), ["task_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_attachments_sha256"), ["sha256"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # URS-AUD-04: evidence is never physically deleted, not even with the application's credentials.
        op.execute(
            """
            CREATE FUNCTION attachments_never_deleted() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'attachments are never deleted or changed: % refused', TG_OP;
            END;
            $$ LANGUAGE plpgsql;
            """
        )
        op.execute(
            "CREATE TRIGGER attachments_no_change BEFORE UPDATE OR DELETE ON attachments "
            "FOR EACH ROW EXECUTE FUNCTION attachments_never_deleted()"
        )
    else:
        op.execute(
            "CREATE TRIGGER attachments_no_update BEFORE UPDATE ON attachments "
            "BEGIN SELECT RAISE(ABORT, 'attachments are never changed: UPDATE refused'); END"
        )
        op.execute(
            "CREATE TRIGGER attachments_no_delete BEFORE DELETE ON attachments "
            "BEGIN SELECT RAISE(ABORT, 'attachments are never deleted: DELETE refused'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER attachments_no_change ON attachments")
        op.execute("DROP FUNCTION attachments_never_deleted()")
    else:
        op.execute("DROP TRIGGER attachments_no_update")
        op.execute("DROP TRIGGER attachments_no_delete")
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachments_sha256"))
        batch_op.drop_index(batch_op.f("ix_attachments_task_id"))
        batch_op.drop_index(batch_op.f("ix_attachments_record_id"))
    op.drop_table("attachments")
