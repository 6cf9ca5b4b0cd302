"""The `supportbot` command: console sessions, configuration errors, db upgrade, staff add."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.adapters.console import run_console
from bot.config import ConfigError, Settings, load_catalog
from bot.services.base import AppContext
from handlers import build_router
from storage.db import Database


def run_cli(args: list[str], env: dict[str, str], cwd: Path,
            stdin: str = "") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SUPPORTBOT_"))}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], input=stdin, text=True,
                          capture_output=True, env={**clean, **env}, cwd=cwd, timeout=120)


async def test_console_session_as_a_newcomer(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    await db.upgrade()
    ctx = AppContext(db=db, catalog=load_catalog(None), settings=Settings(duty_channel="C-DUTY"))
    lines = "\n".join([
        "/support plan",
        "hello, anyone there?",
        "/support open S2 checkout API returns 500",
        "/as tam",
        "/tam link devco",
        "/reply CS-1001 looking at it now",
        "/support case CS-1001",
        "/as nobody",
        "/quit",
        "/support plan",  # never reached
    ]) + "\n"
    out = io.StringIO()
    await run_console(ctx, build_router(), stdin=io.StringIO(lines), out=out)
    await db.close()
    text = out.getvalue()
    assert "Enterprise plan (annual)" in text
    assert "Escort days: 0 used, 0 pending, 3 left of 3" in text
    assert "[#support] customer: hello, anyone there?" in text
    assert "Case CS-1001 opened as S2" in text
    assert "[#support] bot: CS-1001 [S2 · prod-down] checkout API returns 500" in text
    assert "[DM to @tam] bot: New case CS-1001" in text
    assert "[#duty] bot: New case CS-1001" in text
    assert "Developer tier, which does not include IM group support" in text
    assert "First response: " in text and "Status: in progress" in text  # card updated
    assert "Who? One of: customer, tam, admin, engineer." in text
    assert "<t:" not in text  # times rendered for a person
    assert text.count("Enterprise plan (annual)") == 1


def test_console_command_runs_in_a_fresh_directory(tmp_path: Path) -> None:
    result = run_cli(["console"], {}, tmp_path, "/support plan\n/support sla\n/quit\n")
    assert result.returncode == 0, result.stderr
    assert "Demo Corp" in result.stdout and "Traceback" not in result.stderr
    assert (tmp_path / "supportbot.db").exists()


@pytest.mark.parametrize(("env", "message"), [
    ({}, "SLACK_BOT_TOKEN is not set"),
    ({"SLACK_BOT_TOKEN": "nope"}, "SLACK_BOT_TOKEN must be a bot token starting with xoxb-"),
    ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET is not set"),
    ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-2"}, "SLACK_APP_TOKEN must be"),
    ({"PORT": "http"}, "PORT must be a TCP port number"),
    ({"SLACK_API_URL": "ftp://x"}, "SLACK_API_URL must be an http(s) URL"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL must start with"),
    ({"SUPPORTBOT_POLL_SECONDS": "-1"}, "SUPPORTBOT_POLL_SECONDS must be a number"),
    ({"WECOM_CORP_ID": "ww1", "WECOM_TOKEN": "t"}, "WECOM_ENCODING_AES_KEY is not set"),
    ({"WELINK_CLIENT_ID": "20261124wlk"}, "WELINK_CLIENT_SECRET is not set"),
    ({"WELINK_CLIENT_ID": "c", "WELINK_CLIENT_SECRET": "s"}, "SUPPORTBOT_SECRET_KEY is not set"),
    ({"WELINK_CLIENT_ID": "c", "WELINK_CLIENT_SECRET": "s",
      "SUPPORTBOT_SECRET_KEY": "qZz5mR8aJc4b0Vq7j6bO3y2Jm0nT1sWcXyZkLm9pQrs="},
     "WeLink only delivers, so commands need Slack or WeCom"),
    ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s",
      "SUPPORTBOT_CATALOG": "/nonexistent/catalog.yaml"}, "SUPPORTBOT_CATALOG: cannot read"),
    ({"SUPPORTBOT_ROLE": "dyno"}, "SUPPORTBOT_ROLE (run --role) must be one of all, web, "
                                  "worker, got 'dyno'"),
    ({"SUPPORTBOT_ROLE": "web", "SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET is not set"),
])
def test_bad_configuration_stops_run_with_one_line(tmp_path: Path, env: dict[str, str],
                                                   message: str) -> None:
    result = run_cli(["run"], env, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_role_flag_is_a_one_line_error(tmp_path: Path) -> None:
    # the flag is checked as the variable is, not by argparse (usage and error: two lines)
    result = run_cli(["run", "--role", "Web2"], {"SUPPORTBOT_ROLE": "worker"}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "supportbot: configuration error: SUPPORTBOT_ROLE (run --role) must be one of all, "
        "web, worker, got 'web2'"]


def test_role_flag_wins_over_the_environment(tmp_path: Path) -> None:
    # the worker needs no signing secret: past the platform check, the catalog stops it
    env = {"SUPPORTBOT_ROLE": "web", "SLACK_BOT_TOKEN": "xoxb-1",
           "SUPPORTBOT_CATALOG": "/nonexistent/catalog.yaml"}
    result = run_cli(["run", "--role", "worker"], env, tmp_path)
    assert result.returncode == 2 and "SUPPORTBOT_CATALOG: cannot read" in result.stderr
    result = run_cli(["run"], env, tmp_path)
    assert result.returncode == 2 and "SLACK_SIGNING_SECRET is not set" in result.stderr


@pytest.mark.parametrize(("value", "role", "serves", "works"), [
    (None, "all", True, True), ("", "all", True, True), ("all", "all", True, True),
    ("web", "web", True, False), (" Worker ", "worker", False, True),
])
def test_process_role_from_the_environment(value: str | None, role: str, serves: bool,
                                           works: bool) -> None:
    env = {} if value is None else {"SUPPORTBOT_ROLE": value}
    settings = Settings.from_env(env)
    assert (settings.process_role, settings.serves_platforms, settings.runs_worker) == (
        role, serves, works)


def test_worker_role_needs_no_inbound_secrets() -> None:
    worker = Settings.from_env({"SUPPORTBOT_ROLE": "worker", "SLACK_BOT_TOKEN": "xoxb-1"})
    worker.require_platform()  # no signing secret, no app token: it only sends
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET is not set"):
        Settings.from_env({"SUPPORTBOT_ROLE": "web",
                           "SLACK_BOT_TOKEN": "xoxb-1"}).require_platform()
    # what it sends with is still checked
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN is not set"):
        Settings.from_env({"SUPPORTBOT_ROLE": "worker",
                           "SLACK_SIGNING_SECRET": "s"}).require_platform()
    with pytest.raises(ConfigError, match="no chat platform is configured"):
        Settings.from_env({"SUPPORTBOT_ROLE": "worker"}).require_platform()


def test_malformed_catalog_names_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "cat.yaml"
    bad.write_text("version: 1\nsla: {near_breach_ratio: 2}\n")
    result = run_cli(["run"], {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s",
                               "SUPPORTBOT_CATALOG": str(bad)}, tmp_path)
    assert result.returncode == 2
    assert f"{bad}: sla.near_breach_ratio: expected a number between 0 and 1" in result.stderr


def test_db_upgrade_and_staff_add(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}
    up = run_cli(["db", "upgrade"], env, tmp_path)
    assert up.returncode == 0 and "latest schema" in up.stdout
    added = run_cli(["staff", "add", "U0123ABC", "--role", "tam"], env, tmp_path)
    assert added.returncode == 0 and "U0123ABC is now tam" in added.stdout
    wrong = run_cli(["staff", "add", "U0123ABC", "--role", "boss"], env, tmp_path)
    assert wrong.returncode == 2 and "invalid choice: 'boss'" in wrong.stderr
