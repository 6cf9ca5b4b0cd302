"""daily consumption figures

`account_usage.month` holds a month (`YYYY-MM`) or, since this revision, one day of it
(`YYYY-MM-DD`): with daily figures the incremental fee of a month of tier change is shared by
the consumption of each tier's days (seed §6).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _resize(7, 10)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DELETE FROM account_usage WHERE length(month) > 7")
    _resize(10, 7)


def _resize(before: int, after: int) -> None:
    # SQLite does not enforce a VARCHAR's length: only PostgreSQL needs the change
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("account_usage", "month", type_=sa.String(length=after),
                    existing_type=sa.String(length=before), existing_nullable=False)
