"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-25 13:25:43.936185
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('instruments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('family', sa.String(length=100), nullable=False),
    sa.Column('make', sa.String(length=100), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('serial', sa.String(length=100), nullable=False),
    sa.Column('firmware', sa.String(length=100), nullable=False),
    sa.Column('calibration_due', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('family', 'make', 'model', 'serial', name='uq_instrument_identity')
    )
    op.create_table('packs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('serial', sa.String(length=100), nullable=False),
    sa.Column('part_number', sa.String(length=100), nullable=False),
    sa.Column('nominal_capacity_ah', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('serial')
    )
    op.create_table('stations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=False),
    sa.Column('simulated', sa.Boolean(), nullable=False),
    sa.Column('production', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('runs',
    sa.Column('run_id', sa.String(length=100), nullable=False),
    sa.Column('station_id', sa.Integer(), nullable=False),
    sa.Column('pack_id', sa.Integer(), nullable=False),
    sa.Column('verdict', sa.String(length=20), nullable=False),
    sa.Column('abort_reason', sa.Text(), nullable=True),
    sa.Column('procedure_name', sa.String(length=200), nullable=False),
    sa.Column('procedure_version', sa.String(length=50), nullable=False),
    sa.Column('procedure_sha256', sa.String(length=64), nullable=False),
    sa.Column('software_version', sa.String(length=50), nullable=False),
    sa.Column('operator', sa.String(length=100), nullable=False),
    sa.Column('simulated', sa.Boolean(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('bms_serial', sa.String(length=100), nullable=False),
    sa.Column('bms_sw_version', sa.String(length=100), nullable=False),
    sa.Column('bms_hw_version', sa.String(length=100), nullable=False),
    sa.Column('as_received_soc_pct', sa.Float(), nullable=True),
    sa.Column('as_received_soh_pct', sa.Float(), nullable=True),
    sa.Column('as_received_cycle_count', sa.Integer(), nullable=True),
    sa.Column('as_received_dtcs', sa.JSON(), nullable=False),
    sa.Column('ah_charged', sa.Float(), nullable=False),
    sa.Column('ah_discharged', sa.Float(), nullable=False),
    sa.Column('wh_charged', sa.Float(), nullable=False),
    sa.Column('wh_discharged', sa.Float(), nullable=False),
    sa.Column('reference_capacity_ah', sa.Float(), nullable=True),
    sa.Column('bms_learned_capacity_ah', sa.Float(), nullable=True),
    sa.Column('soh_pct', sa.Float(), nullable=True),
    sa.Column('divergence_v', sa.Float(), nullable=True),
    sa.Column('bench_hours', sa.Float(), nullable=False),
    sa.Column('sample_count', sa.Integer(), nullable=False),
    sa.Column('record_json', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['pack_id'], ['packs.id'], ),
    sa.ForeignKeyConstraint(['station_id'], ['stations.id'], ),
    sa.PrimaryKeyConstraint('run_id')
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_pack_started', ['pack_id', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_procedure_name'), ['procedure_name'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_started_at'), ['started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_verdict'), ['verdict'], unique=False)

    op.create_table('checks',
    sa.Column('run_id', sa.String(length=100), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('check_id', sa.String(length=100), nullable=False),
    sa.Column('step_id', sa.String(length=100), nullable=False),
    sa.Column('t_s', sa.Float(), nullable=False),
    sa.Column('value_num', sa.Float(), nullable=True),
    sa.Column('value_text', sa.Text(), nullable=True),
    sa.Column('unit', sa.String(length=20), nullable=False),
    sa.Column('low', sa.Float(), nullable=True),
    sa.Column('high', sa.Float(), nullable=True),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('decision_rule', sa.Text(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'seq')
    )
    with op.batch_alter_table('checks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checks_check_id'), ['check_id'], unique=False)

    op.create_table('events',
    sa.Column('run_id', sa.String(length=100), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('t_s', sa.Float(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'seq')
    )
    op.create_table('run_files',
    sa.Column('run_id', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('bytes', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'name')
    )
    op.create_table('run_instruments',
    sa.Column('run_id', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('instrument_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('resource', sa.String(length=300), nullable=False),
    sa.Column('calibration_overdue', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['instrument_id'], ['instruments.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'name')
    )
    op.create_table('samples',
    sa.Column('run_id', sa.String(length=100), nullable=False),
    sa.Column('t_s', sa.Float(), nullable=False),
    sa.Column('step', sa.String(length=100), nullable=True),
    sa.Column('pack_v', sa.Float(), nullable=True),
    sa.Column('pack_i', sa.Float(), nullable=True),
    sa.Column('cell1_v', sa.Float(), nullable=True),
    sa.Column('cell2_v', sa.Float(), nullable=True),
    sa.Column('cell3_v', sa.Float(), nullable=True),
    sa.Column('cell4_v', sa.Float(), nullable=True),
    sa.Column('cell5_v', sa.Float(), nullable=True),
    sa.Column('cell6_v', sa.Float(), nullable=True),
    sa.Column('cell7_v', sa.Float(), nullable=True),
    sa.Column('cell8_v', sa.Float(), nullable=True),
    sa.Column('temp_max_c', sa.Float(), nullable=True),
    sa.Column('temp_min_c', sa.Float(), nullable=True),
    sa.Column('bms_pack_v', sa.Float(), nullable=True),
    sa.Column('bms_i', sa.Float(), nullable=True),
    sa.Column('bms_soc_pct', sa.Float(), nullable=True),
    sa.Column('ref_soc_pct', sa.Float(), nullable=True),
    sa.Column('ah', sa.Float(), nullable=True),
    sa.Column('wh', sa.Float(), nullable=True),
    sa.Column('step_ah', sa.Float(), nullable=True),
    sa.Column('divergence_v', sa.Float(), nullable=True),
    sa.Column('supply_on', sa.Float(), nullable=True),
    sa.Column('load_on', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 't_s')
    )
    op.create_table('steps',
    sa.Column('run_id', sa.String(length=100), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('step_id', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=50), nullable=False),
    sa.Column('start_s', sa.Float(), nullable=False),
    sa.Column('end_s', sa.Float(), nullable=True),
    sa.Column('end_reason', sa.Text(), nullable=False),
    sa.Column('ah', sa.Float(), nullable=False),
    sa.Column('wh', sa.Float(), nullable=False),
    sa.Column('resumed', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'seq')
    )



def downgrade() -> None:

    op.drop_table('steps')
    op.drop_table('samples')
    op.drop_table('run_instruments')
    op.drop_table('run_files')
    op.drop_table('events')
    with op.batch_alter_table('checks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checks_check_id'))

    op.drop_table('checks')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_verdict'))
        batch_op.drop_index(batch_op.f('ix_runs_started_at'))
        batch_op.drop_index(batch_op.f('ix_runs_procedure_name'))
        batch_op.drop_index('ix_runs_pack_started')

    op.drop_table('runs')
    op.drop_table('stations')
    op.drop_table('packs')
    op.drop_table('instruments')

