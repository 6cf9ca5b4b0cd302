"""notice digests

Near-breach and breach notices to one recipient within a short window become one message
(`digests`), listing its cases (`digest_items`, one row per notice, unique by its key).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.tables

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "digests",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("recipient", sa.String(length=160), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("opened_at", storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closes_at", storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("shown_version", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=128), nullable=True),
        sa.Column("ts", sa.String(length=64), nullable=True),
        sa.Column("posts_tried", sa.Integer(), nullable=False),
        sa.Column("held_by", sa.String(length=64), nullable=True),
        sa.Column("held_until", storage.tables.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_digests_recipient_closes", "digests", ["recipient", "closes_at"])
    op.create_table(
        "digest_items",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("digest_id", BIG_ID, nullable=False),
        sa.Column("notice_key", sa.String(length=200), nullable=False),
        sa.Column("case_id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("due_at", storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("fired_at", storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("incident", sa.String(length=64), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["digest_id"], ["digests.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("notice_key"),
    )
    op.create_index("ix_digest_items_digest_id", "digest_items", ["digest_id"])


def downgrade() -> None:
    op.drop_index("ix_digest_items_digest_id", table_name="digest_items")
    op.drop_table("digest_items")
    op.drop_index("ix_digests_recipient_closes", table_name="digests")
    op.drop_table("digests")
