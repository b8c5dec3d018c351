"""checks: every field of a check record (description, reference, tolerance, action, retried)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 18:50:00

Before this revision a check row held the verdict but not what the report and the operator see
beside it: the description, the reference and tolerance it was judged against, the procedure's
"what to do" and whether a later attempt of a ``retry`` group superseded it (record_json held
them, a SQL query could not). Rows written before it read as no description, no action, not
retried.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('checks') as batch:
        batch.add_column(sa.Column('description', sa.Text(), nullable=False, server_default=''))
        batch.add_column(sa.Column('reference', sa.Float(), nullable=True))
        batch.add_column(sa.Column('tolerance', sa.Float(), nullable=True))
        batch.add_column(sa.Column('tolerance_kind', sa.String(length=10), nullable=True))
        batch.add_column(sa.Column('action', sa.Text(), nullable=True))
        batch.add_column(sa.Column('retried', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('checks') as batch:
        for column in ('retried', 'action', 'tolerance_kind', 'tolerance', 'reference', 'description'):
            batch.drop_column(column)
