"""monthly report by email, and skipped reports

The addresses an account's monthly report is emailed to, and an account's report setting
(skipped, with the reason: a proof-of-concept stage or dedicated cloud).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.tables

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_settings",
        sa.Column("account_key", sa.String(length=64), nullable=False),
        sa.Column("skip_reason", sa.String(length=16), nullable=True),
        sa.Column("set_by", sa.String(length=128), nullable=False),
        sa.Column("set_at", storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_key"], ["accounts.key"]),
        sa.PrimaryKeyConstraint("account_key"),
    )
    op.create_table(
        "report_recipients",
        sa.Column("account_key", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("added_by", sa.String(length=128), nullable=False),
        sa.Column("added_at", storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_key"], ["accounts.key"]),
        sa.PrimaryKeyConstraint("account_key", "address"),
    )


def downgrade() -> None:
    op.drop_table("report_recipients")
    op.drop_table("report_settings")
