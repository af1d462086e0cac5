"""Tasks remember the item they are for (one instance of a multi-instance task).

Revision ID: 0006
Revises: 0005

A CAPA action, an impact assessment, an implementation task: each person's instance shows them
which item it is (the task page, the record page), from `tasks.item`, fixed when the task is
created. Tasks created before this revision have none.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("item", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("item")
