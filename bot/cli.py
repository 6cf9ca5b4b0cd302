"""`supportbot`: run (serve Slack), console, db upgrade, staff add."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Coroutine, Sequence
from dataclasses import replace
from typing import Any

from bot.config import ConfigError, Settings, load_catalog
from bot.domain.catalog import CatalogError
from bot.domain.model import Role, StaffMember

log = logging.getLogger("supportbot")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="supportbot", description=(
        "Support-plan chat-ops bot. Configuration comes from the environment (see README)."))
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="serve Slack (HTTP mode, or Socket Mode with "
                                     "SLACK_APP_TOKEN) and WeCom, and run the worker")
    # checked with the other settings (one-line configuration error), not by argparse
    run.add_argument("--role", metavar="{all,web,worker}",
                     help="all (default): serve and run the worker; web: serve only; "
                          "worker: the worker only, with /healthz, /readyz and /metrics "
                          "(default: SUPPORTBOT_ROLE, else all)")
    sub.add_parser("console", help="a local IM group in the terminal on embedded SQLite, "
                                   "with demo data; no Slack needed")
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", help="apply migrations up to the latest schema")
    staff = sub.add_parser("staff", help="manage the bot's staff table")
    staff_sub = staff.add_subparsers(dest="staff_command", required=True, metavar="ACTION")
    add = staff_sub.add_parser("add", help="add or change a staff member")
    add.add_argument("user_id", metavar="USER_ID", help="Slack user id, e.g. U012ABCDEF")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--team", default="*",
                     help="Slack team id the entry is for (default: every workspace)")
    return p


async def _db_upgrade(settings: Settings) -> None:
    from bot.app import core

    async with core(settings):
        pass


async def _staff_add(settings: Settings, user_id: str, role: Role, team: str) -> None:
    from bot.app import core
    from bot.services.base import utcnow
    from storage.repos import Audit, Staff

    async with core(settings) as c, c.ctx.db.transaction() as s:
        before = await Staff(s).upsert(StaffMember(team, user_id, role), "cli", utcnow())
        await Audit(s).write(at=utcnow(), actor="cli", action="staff.add", team_id=team,
                             before={"role": before.role.value} if before else None,
                             after={"user": user_id, "role": role.value})


async def _console(settings: Settings) -> None:
    from bot.adapters.console import DUTY, run_console
    from bot.app import core

    if settings.duty_channel is None:  # show staff notices in the console's duty channel
        settings = replace(settings, duty_channel=DUTY)
    async with core(settings) as c:
        await run_console(c.ctx, c.router, catch_interrupt=True)


def _run_profiled(main: Coroutine[Any, Any, None], profile: str | None) -> None:
    """Run the bot; with `SUPPORTBOT_PROFILE=<path>` (benchmarks) under cProfile, the
    statistics written to `<path>.<pid>` when it stops (read them with `pstats`)."""
    if not profile:
        asyncio.run(main)
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(main)
    finally:
        profiler.disable()
        profiler.dump_stats(f"{profile}.{os.getpid()}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = dict(os.environ)
    if args.command == "run" and args.role is not None:
        env["SUPPORTBOT_ROLE"] = args.role  # the flag wins over the environment
    try:
        settings = Settings.from_env(env)
        if args.command == "run":
            settings.require_platform()
        load_catalog(settings.catalog_path)  # a bad catalog stops every command up front
    except (ConfigError, CatalogError) as exc:
        print(f"supportbot: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level if args.command == "run" else "WARNING",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        if args.command == "run":
            from bot.app import serve

            _run_profiled(serve(settings), os.environ.get("SUPPORTBOT_PROFILE"))
        elif args.command == "console":
            asyncio.run(_console(settings))
        elif args.command == "db":
            asyncio.run(_db_upgrade(settings))
            print("database is at the latest schema")
        elif args.command == "staff":
            role = Role(args.role)
            asyncio.run(_staff_add(settings, args.user_id, role, args.team))
            print(f"{args.user_id} is now {role.value}")
    except (ConfigError, CatalogError) as exc:
        print(f"supportbot: configuration error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"supportbot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
