"""a case's reference and the worker's wake-up made by the database

Two statements fewer on every case opened: the case's reference (`CS-<1000 + id>`, as
`bot.domain.model.case_ref` makes it) is set by a trigger from the id the insert assigns,
instead of by an UPDATE after it; and on PostgreSQL a statement that adds jobs notifies the
workers (`NOTIFY supportbot_jobs`, delivered at commit) by a trigger, instead of by a
separate `SELECT pg_notify(...)`.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 14:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the channel storage.db.JOBS_CHANNEL names (a migration does not import the app's code)
JOBS_CHANNEL = "supportbot_jobs"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION supportbot_case_ref() RETURNS trigger AS $$
            BEGIN
                NEW.ref := 'CS-' || (1000 + NEW.id);
                RETURN NEW;
            END $$ LANGUAGE plpgsql""")
        op.execute("""
            CREATE TRIGGER cases_ref BEFORE INSERT ON cases FOR EACH ROW
            WHEN (NEW.ref IS NULL) EXECUTE FUNCTION supportbot_case_ref()""")
        op.execute(f"""
            CREATE FUNCTION supportbot_jobs_notify() RETURNS trigger AS $$
            BEGIN
                PERFORM pg_notify('{JOBS_CHANNEL}', '');
                RETURN NULL;
            END $$ LANGUAGE plpgsql""")
        op.execute("""
            CREATE TRIGGER jobs_notify AFTER INSERT ON jobs FOR EACH STATEMENT
            EXECUTE FUNCTION supportbot_jobs_notify()""")
    else:
        op.execute("""
            CREATE TRIGGER cases_ref AFTER INSERT ON cases FOR EACH ROW
            WHEN NEW.ref IS NULL
            BEGIN
                UPDATE cases SET ref = 'CS-' || (1000 + NEW.id) WHERE id = NEW.id;
            END""")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS cases_ref" +
               (" ON cases" if op.get_bind().dialect.name == "postgresql" else ""))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS jobs_notify ON jobs")
        op.execute("DROP FUNCTION IF EXISTS supportbot_jobs_notify()")
        op.execute("DROP FUNCTION IF EXISTS supportbot_case_ref()")
