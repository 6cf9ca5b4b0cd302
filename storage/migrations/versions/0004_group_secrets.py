"""group secrets and wider chat ids

A group's encrypted delivery address (a WeCom push webhook key) gets a table; columns holding
chat ids grow from 32 to 128 characters, for platform-qualified ids (`wecom:<userid>`, where
a WeCom user id alone may have 64 characters).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 09:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.tables

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, nullable) of every column that holds a team, channel or user id
CHAT_ID_COLUMNS = [
    ("accounts", "team_id", True),
    ("accounts", "tam_user_id", True),
    ("advisories", "team_id", False),
    ("advisories", "created_by", False),
    ("advisories", "progress_channel", True),
    ("audit_log", "team_id", True),
    ("audit_log", "actor", False),
    ("home_viewers", "team_id", False),
    ("home_viewers", "user_id", False),
    ("staff", "team_id", False),
    ("staff", "user_id", False),
    ("staff", "added_by", False),
    ("user_prefs", "team_id", False),
    ("user_prefs", "user_id", False),
    ("account_usage", "recorded_by", False),
    ("advisory_deliveries", "channel_id", False),
    ("advisory_deliveries", "acked_by", True),
    ("cases", "team_id", False),
    ("cases", "channel_id", False),
    ("cases", "opener_user_id", False),
    ("cases", "first_response_by", True),
    ("channel_bindings", "channel_id", False),
    ("channel_bindings", "team_id", False),
    ("channel_bindings", "bound_by", False),
    ("perk_requests", "channel_id", False),
    ("perk_requests", "requested_by", False),
    ("perk_requests", "decided_by", True),
    ("plan_changes", "by", False),
    ("reports", "channel_id", True),
    ("user_accounts", "team_id", False),
    ("user_accounts", "user_id", False),
    ("user_accounts", "channel_id", True),
]


def upgrade() -> None:
    op.create_table(
        "group_secrets",
        sa.Column("channel_id", sa.String(length=128), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel_id"),
    )
    _resize(32, 128)


def downgrade() -> None:
    op.drop_table("group_secrets")
    _resize(128, 32)


def _resize(before: int, after: int) -> None:
    # SQLite does not enforce a VARCHAR's length (and would rebuild every table to change
    # it): only PostgreSQL needs the change, which widening makes a catalog-only update
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, nullable in CHAT_ID_COLUMNS:
        op.alter_column(table, column, type_=sa.String(length=after),
                        existing_type=sa.String(length=before), existing_nullable=nullable)
