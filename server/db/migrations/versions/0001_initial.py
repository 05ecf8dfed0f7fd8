"""initial: the schema as it was before migrations, and the audit log's append-only triggers

Revision 0001, the first; made 2026-12-01 05:10:38.574778.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from server.db.dialect import append_only_triggers, drop_append_only_triggers

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('archives',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('serial', sa.String(length=64), nullable=False),
    sa.Column('command_id', sa.String(length=64), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_archives_command_id'), 'archives', ['command_id'], unique=False)
    op.create_index(op.f('ix_archives_serial'), 'archives', ['serial'], unique=False)
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('serial', sa.String(length=64), nullable=True),
    sa.Column('location', sa.String(length=200), nullable=True),
    sa.Column('result', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_audit_log_action'), 'audit_log', ['action'], unique=False)
    op.create_index(op.f('ix_audit_log_actor'), 'audit_log', ['actor'], unique=False)
    op.create_index(op.f('ix_audit_log_at'), 'audit_log', ['at'], unique=False)
    op.create_index(op.f('ix_audit_log_serial'), 'audit_log', ['serial'], unique=False)
    op.create_table('commands',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('serial', sa.String(length=64), nullable=False),
    sa.Column('command', sa.String(length=32), nullable=False),
    sa.Column('args', sa.Text(), nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_commands_serial'), 'commands', ['serial'], unique=False)
    op.create_table('console_users',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('all_locations', sa.Boolean(), nullable=False),
    sa.Column('locations', sa.Text(), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('totp_secret', sa.String(length=64), nullable=True),
    sa.Column('totp_last_step', sa.Integer(), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('events',
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('serial', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('at', sa.String(length=40), nullable=True),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_index(op.f('ix_events_serial'), 'events', ['serial'], unique=False)
    op.create_table('firmware_bundles',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('hardware', sa.Text(), nullable=False),
    sa.Column('install_from', sa.Text(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('manifest_digest', sa.String(length=64), nullable=False),
    sa.Column('signed_by', sa.String(length=16), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('added_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('manifest_digest')
    )
    op.create_table('firmware_policy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('min_pair_version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('login_failures',
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(), nullable=True),
    sa.Column('last_failure', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('terminals',
    sa.Column('serial', sa.String(length=64), nullable=False),
    sa.Column('scenario', sa.String(length=1), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('identity_key', sa.LargeBinary(length=32), nullable=True),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('paired_at', sa.DateTime(), nullable=True),
    sa.Column('last_seen', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('serial')
    )
    op.create_index(op.f('ix_terminals_location'), 'terminals', ['location'], unique=False)
    op.create_table('api_tokens',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('user', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_used', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user'], ['console_users.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('digest')
    )
    op.create_index(op.f('ix_api_tokens_user'), 'api_tokens', ['user'], unique=False)
    op.create_table('console_sessions',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('user', sa.String(length=64), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen', sa.DateTime(), nullable=False),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['user'], ['console_users.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('digest')
    )
    op.create_index(op.f('ix_console_sessions_user'), 'console_sessions', ['user'], unique=False)
    op.create_table('firmware_upgrades',
    sa.Column('serial', sa.String(length=64), nullable=False),
    sa.Column('origin_version', sa.Integer(), nullable=False),
    sa.Column('bundle_id', sa.Integer(), nullable=True),
    sa.Column('offered_from', sa.Integer(), nullable=True),
    sa.Column('offered_at', sa.DateTime(), nullable=True),
    sa.Column('completed_steps', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['serial'], ['terminals.serial'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('serial')
    )
    op.create_table('pairing_requests',
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('serial', sa.String(length=64), nullable=False),
    sa.Column('identity_key', sa.LargeBinary(length=32), nullable=False),
    sa.Column('commitment', sa.String(length=64), nullable=False),
    sa.Column('server_nonce', sa.LargeBinary(length=32), nullable=False),
    sa.Column('terminal_nonce', sa.LargeBinary(length=32), nullable=True),
    sa.Column('code', sa.String(length=9), nullable=True),
    sa.Column('peer', sa.String(length=64), nullable=True),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('hardware', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_poll', sa.DateTime(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['serial'], ['terminals.serial'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('request_id')
    )
    op.create_index(op.f('ix_pairing_requests_serial'), 'pairing_requests', ['serial'],
                    unique=False)
    op.create_table('status_history',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('serial', sa.String(length=64), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['serial'], ['terminals.serial'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_status_history_serial'), 'status_history', ['serial'], unique=False)
    op.create_table('terminal_status',
    sa.Column('serial', sa.String(length=64), nullable=False),
    sa.Column('online', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=True),
    sa.Column('slot', sa.String(length=32), nullable=True),
    sa.Column('state', sa.String(length=64), nullable=True),
    sa.Column('screen', sa.String(length=64), nullable=True),
    sa.Column('last_update', sa.String(length=40), nullable=True),
    sa.Column('last_sync', sa.String(length=40), nullable=True),
    sa.Column('last_sync_error', sa.String(length=500), nullable=True),
    sa.Column('uptime', sa.Double(), nullable=True),
    sa.Column('vpn_handshake_age', sa.Double(), nullable=True),
    sa.Column('outbox_pending', sa.Integer(), nullable=True),
    sa.Column('reported_at', sa.String(length=40), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=True),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('last_reject', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['serial'], ['terminals.serial'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('serial')
    )
    op.create_table('vpn_configs',
    sa.Column('serial', sa.String(length=64), nullable=False),
    sa.Column('tunnel_address', sa.String(length=45), nullable=False),
    sa.Column('public_key', sa.String(length=44), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['serial'], ['terminals.serial'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('serial'),
    sa.UniqueConstraint('tunnel_address')
    )
    dialect = op.get_bind().dialect.name
    for statement in append_only_triggers("audit_log", dialect):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_append_only_triggers("audit_log", op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_table('vpn_configs')
    op.drop_table('terminal_status')
    op.drop_index(op.f('ix_status_history_serial'), table_name='status_history')
    op.drop_table('status_history')
    op.drop_index(op.f('ix_pairing_requests_serial'), table_name='pairing_requests')
    op.drop_table('pairing_requests')
    op.drop_table('firmware_upgrades')
    op.drop_index(op.f('ix_console_sessions_user'), table_name='console_sessions')
    op.drop_table('console_sessions')
    op.drop_index(op.f('ix_api_tokens_user'), table_name='api_tokens')
    op.drop_table('api_tokens')
    op.drop_index(op.f('ix_terminals_location'), table_name='terminals')
    op.drop_table('terminals')
    op.drop_table('login_failures')
    op.drop_table('firmware_policy')
    op.drop_table('firmware_bundles')
    op.drop_index(op.f('ix_events_serial'), table_name='events')
    op.drop_table('events')
    op.drop_table('console_users')
    op.drop_index(op.f('ix_commands_serial'), table_name='commands')
    op.drop_table('commands')
    op.drop_index(op.f('ix_audit_log_serial'), table_name='audit_log')
    op.drop_index(op.f('ix_audit_log_at'), table_name='audit_log')
    op.drop_index(op.f('ix_audit_log_actor'), table_name='audit_log')
    op.drop_index(op.f('ix_audit_log_action'), table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_index(op.f('ix_archives_serial'), table_name='archives')
    op.drop_index(op.f('ix_archives_command_id'), table_name='archives')
    op.drop_table('archives')
