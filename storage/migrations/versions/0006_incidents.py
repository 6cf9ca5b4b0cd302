"""incidents: declared outages, their posts to groups and linked cases

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.tables

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CHAT_ID = sa.String(length=128)


def _when(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, storage.tables.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("team_id", CHAT_ID, nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("products", sa.JSON(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("declared_by", CHAT_ID, nullable=False),
        _when("declared_at"),
        sa.Column("latest", sa.Text(), nullable=True),
        _when("latest_at", True),
        sa.Column("resolved_by", CHAT_ID, nullable=True),
        _when("resolved_at", True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_incidents_status", "incidents", ["status"])
    op.create_table(
        "incident_posts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("incident_id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("respond", sa.Boolean(), nullable=False),
        sa.Column("created_by", CHAT_ID, nullable=False),
        _when("created_at"),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("progress_channel", CHAT_ID, nullable=True),
        sa.Column("progress_ts", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_incident_posts_incident_id", "incident_posts", ["incident_id"])
    op.create_table(
        "incident_deliveries",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("post_id", BIG_ID, nullable=False),
        sa.Column("incident_id", BIG_ID, nullable=False),
        sa.Column("account_key", sa.String(length=64), nullable=False),
        sa.Column("channel_id", CHAT_ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ts", sa.String(length=32), nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        _when("sent_at", True),
        sa.ForeignKeyConstraint(["post_id"], ["incident_posts.id"]),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"]),
        sa.ForeignKeyConstraint(["account_key"], ["accounts.key"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("post_id", "channel_id"),
    )
    op.create_index("ix_incident_deliveries_post_id", "incident_deliveries", ["post_id"])
    op.create_index("ix_incident_deliveries_incident_id", "incident_deliveries",
                    ["incident_id"])
    op.create_index("ix_incident_deliveries_account_key", "incident_deliveries",
                    ["account_key"])
    op.create_table(
        "incident_cases",
        sa.Column("incident_id", BIG_ID, nullable=False),
        sa.Column("case_id", BIG_ID, nullable=False),
        sa.Column("linked_by", CHAT_ID, nullable=False),
        _when("linked_at"),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"]),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("incident_id", "case_id"),
    )
    op.create_index("ix_incident_cases_case_id", "incident_cases", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_incident_cases_case_id", table_name="incident_cases")
    op.drop_table("incident_cases")
    for ix in ("account_key", "incident_id", "post_id"):
        op.drop_index(f"ix_incident_deliveries_{ix}", table_name="incident_deliveries")
    op.drop_table("incident_deliveries")
    op.drop_index("ix_incident_posts_incident_id", table_name="incident_posts")
    op.drop_table("incident_posts")
    op.drop_index("ix_incidents_status", table_name="incidents")
    op.drop_table("incidents")
