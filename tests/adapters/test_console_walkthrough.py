"""The console as a newcomer meets it: `supportbot console` as a real child process, fed the
README's first session and more through a pipe or a terminal, then left with Ctrl-C."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.adapters.console import Console, ConsoleMessenger, Lines, run_console
from bot.adapters.plain import local_time
from bot.config import Settings, load_catalog
from bot.messages import Message
from bot.services import advisories
from bot.services.base import AppContext
from handlers import build_router
from handlers.core import Call, Reply
from storage import jobs
from storage.db import Database
from testkit.fakes import Clock

ROOT = Path(__file__).resolve().parents[2]
END = "walkthrough-end"  # a chat line: once echoed, every line before it was handled

# The README's first session, then the advisory whose "done" DM was printed twice, typos,
# a form, a mention of a new user, and the group switched to a Chinese-speaking account.
SESSION = [
    "/support plan",
    "/support open S2 checkout API returns 500",
    "/support sla",
    "/as tam",
    "/tam ack CS-1001",
    "/tam link devco",
    '/tam advisory new_feature low "New console" "Try it" confirm',
    "/support pln",
    "/suport plan",
    "/support open",
    "/help",
    "/as admin",
    "/tam staff add @bob engineer",
    "/as bob",
    "/tam breaches",
    "/as admin",
    '/tam account add acme enterprise annual name="Acme Corp" lang=zh',
    "/tam link acme force",
    "/as customer",
    "/support pln",
    "/support open",
    "/support plan",
    "/support open S2 结算接口返回 500",
    "/support cases",
    "/support sla",
    "/support escort 2020-01-01",
    "/tam ack CS-1002",
    END,
]


def child_env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLACK_", "SUPPORTBOT_", "DATABASE_URL"))}
    return {**clean, "PYTHONPATH": str(ROOT), "TZ": "Asia/Shanghai",
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'console.db'}"}


def read_until(fd: int, marker: str, limit: float = 120) -> str:
    """Output from `fd` until `marker` appears (or the bound passes: the test then fails on
    what it has, rather than hanging)."""
    buf = b""
    deadline = time.monotonic() + limit
    while marker.encode() not in buf and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # a pty reports its closed end this way
                break
            if not chunk:
                break
            buf += chunk
    return buf.decode("utf-8", "replace")


def test_walkthrough_piped_then_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "console"], cwd=tmp_path,
                            env=child_env(tmp_path), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(("\n".join(SESSION) + "\n").encode())
        proc.stdin.flush()  # and left open: only Ctrl-C ends this session
        text = read_until(proc.stdout.fileno(), f"customer: {END}")
        assert f"customer: {END}" in text, text
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)  # promptly: no Enter needed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text += rest.decode()
    errors = err.decode()
    assert proc.returncode in (0, 130), errors
    assert "Traceback" not in text + errors
    assert text.rstrip().endswith("[console] 再见。")  # the zh account says goodbye

    # the README's first session
    assert "Enterprise plan (annual)" in text
    assert "Case CS-1001 opened as S2" in text
    assert "Waiting for a first response (1)" in text
    assert "First response to CS-1001 recorded" in text
    assert "Developer tier, which does not include IM group support" in text
    # times in the reader's zone with an offset anyone can read
    assert "(UTC+8)" in text and "CST" not in text and "<t:" not in text
    # clean terminal text: no Slack markup and no neutral tokens left unrendered
    leftovers = re.findall(r"\*\w[^*\n]*\*|`|:[a-z_]+:|<@|</?b>|</?code>|<user:|<mark:", text)
    assert leftovers == [], leftovers
    # the advisory's progress DM ends with one "done", not two
    assert text.count("AD-1001 done: sent 1 / 1") == 1, text
    # typos get a suggestion, not the whole help
    assert ("Unknown command pln. Did you mean plan? "
            "Type /support help for all commands.") in text
    assert "Did you mean /support?" in text
    assert "— your support group. Commands:" not in text
    # no form in a pipe: exactly what to type
    assert "Type /support open <S1-S5> <summary>" in text
    assert "Grade the severity objectively" in text  # the form's note, said in a pipe too
    assert "S1 core-down, S2 prod-down, S3 prod-impaired, S4 impaired, S5 guidance" in text
    # `@bob` as the help suggests: a new user the admin can make staff and become
    assert "/tam staff add @bob engineer, then /as bob" in text  # /help says so
    assert "@bob is now engineer." in text
    assert "You are now bob (UBOB)." in text
    assert "for support staff" not in text and "is not a user" not in text
    # a Chinese-speaking account reads Chinese, punctuation included
    assert "未知命令“pln”。您是想输入“plan”吗？输入 /support help 查看全部命令。" in text
    assert "控制台没有表单。请输入 /support open <S1-S5> <问题描述>" in text
    # the console's own labels follow the reader's language too
    assert "[仅你可见] bot:" in text and "[only you see this] bot:" in text
    # every Chinese reply uses full-width punctuation: no ASCII , : ; ( ) next to a CJK
    # character (the console's "[where] who: " prefix is not the reply, and the rendered
    # local time's "(UTC+8)" stands after digits, not prose)
    replies = [re.sub(r"^\[[^\]]*\] (?:[\w@ ]+: )?", "", line) for line in text.splitlines()]
    # replies written in Chinese (an English notice quoting a customer's Chinese words is not)
    chinese = [r for r in replies
               if len(re.findall(r"[\u4e00-\u9fff]", r)) > len(re.findall(r"[A-Za-z]", r))]
    assert len(chinese) >= 5
    for line in chinese:
        assert not re.search(r"[\u4e00-\u9fff]\s*[,:;()]|[,:;()]\s*[\u4e00-\u9fff]",
                             line), line


def test_at_a_terminal_the_form_is_asked_and_ctrl_c_leaves(tmp_path: Path) -> None:
    env = child_env(tmp_path)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the console on a terminal of its own
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "bot.cli", "console"], env)
    try:
        assert "customer> " in read_until(fd, "customer> ")
        os.write(fd, b"/support open\n")
        form = read_until(fd, "cancel): ")
        assert "Severity (S1/S2/S3/S4/S5; empty to cancel): " in form
        # the form's description comes first: the seed's severity self-assessment note
        assert 0 <= form.find("Grade the severity objectively") < form.find("Severity (S1")
        os.write(fd, b"S9\n")
        asked = read_until(fd, "cancel): ")
        assert "“S9” is not a severity" in asked
        os.write(fd, b"S2\n")
        assert "What is wrong" in read_until(fd, "cancel): ")
        os.write(fd, b"database down\n")
        opened = read_until(fd, "customer> ")
        assert "Case CS-1001 opened as S2" in opened and "(UTC+8)" in opened
        os.write(fd, b"\x03")  # Ctrl-C typed at the prompt
        left = read_until(fd, "Bye.")
        _, status = os.waitpid(pid, 0)
        pid = 0
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert "[console] Bye." in left and "Traceback" not in left
    assert os.waitstatus_to_exitcode(status) in (0, 130)


async def test_a_background_post_redraws_the_prompt(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    await db.upgrade()
    ctx = AppContext(db=db, catalog=load_catalog(None), settings=Settings())
    out = io.StringIO()
    console = Console(ctx, build_router(), out, interactive=True)
    read, write = os.pipe()
    with os.fdopen(read) as stdin:
        console._lines = Lines(stdin)
        waiting = asyncio.create_task(console.read("customer> "))
        await asyncio.sleep(0)
        assert out.getvalue() == "customer> "
        await ConsoleMessenger(console.write).post("C-DUTY", Message("Breach: CS-1001"))
        os.write(write, b"/support plan\n")
        assert await waiting == "/support plan\n"
        console.write("[only you see this] bot: the plan")
        console._lines.close()
    os.close(write)
    await db.close()
    assert out.getvalue() == ("customer> \r\x1b[K[#duty] bot: Breach: CS-1001\ncustomer> "
                              "[only you see this] bot: the plan\n")


async def test_the_advisory_done_dm_is_printed_once(tmp_path: Path) -> None:
    """The progress DM is looked at again a few seconds later; that look re-renders the same
    "done" text, which Slack shows in place and the console printed a second time."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    await db.upgrade()
    clock = Clock()
    ctx = AppContext(db=db, catalog=load_catalog(None), settings=Settings(), clock=clock)

    async def later() -> None:  # the person takes their time between lines
        clock.advance(seconds=advisories.PROGRESS_EVERY + 1)

    out = io.StringIO()
    await run_console(ctx, build_router(), stdin=io.StringIO("\n".join([
        "/as tam",
        '/tam advisory new_feature low "New console" "Try it" confirm',
        "/tam advisories",
        "/tam advisories",
    ]) + "\n"), out=out, idle=later)
    async with ctx.db.read() as s:
        rechecked = await jobs.count(s, status=jobs.DONE, kind=advisories.PROGRESS)
    await db.close()
    assert rechecked >= 3  # start, final and the later look all ran
    assert out.getvalue().count("AD-1001 done: sent 1 / 1, failed 0.") == 1, out.getvalue()


async def test_an_update_that_changes_nothing_prints_nothing() -> None:
    lines: list[str] = []
    messenger = ConsoleMessenger(lines.append)
    posted = await messenger.post("D-UTAM", Message("AD-1001 done: sent 1 / 1, failed 0."))
    await messenger.update(posted.channel, posted.ts,
                           Message("AD-1001 done: sent 1 / 1, failed 0."))
    assert lines == ["[DM to @tam] bot: AD-1001 done: sent 1 / 1, failed 0."]
    await messenger.update(posted.channel, posted.ts,
                           Message("AD-1001 done: sent 2 / 2, failed 0."))
    assert lines[-1] == "[DM to @tam (updated)] bot: AD-1001 done: sent 2 / 2, failed 0."


def test_local_time_names_its_offset() -> None:
    from zoneinfo import ZoneInfo

    assert local_time(1_795_000_000, ZoneInfo("Asia/Shanghai")).endswith("(UTC+8)")
    assert local_time(1_795_000_000, ZoneInfo("Asia/Kolkata")).endswith("(UTC+5:30)")
    assert local_time(1_795_000_000, ZoneInfo("America/Havana")).endswith("(UTC-5)")
    assert local_time(1_795_000_000, ZoneInfo("UTC")).endswith("(UTC)")


async def test_typos_in_process(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    await db.upgrade()
    ctx = AppContext(db=db, catalog=load_catalog(None), settings=Settings(duty_channel="C-DUTY"))
    out = io.StringIO()
    await run_console(ctx, build_router(), stdin=io.StringIO("\n".join([
        "/support frobnicate",
        "/support hlep",
        "/as admin",
        "/tam account asign demo @tam",
        "/tam acount",
        "/tam account",
        "/asdf",
    ]) + "\n"), out=out)
    await db.close()
    text = out.getvalue()
    assert "Unknown command frobnicate. Type /support help for all commands." in text
    assert "Unknown command hlep. Did you mean help?" in text
    assert "Did you mean account assign?" in text
    assert "Unknown command acount. Did you mean account?" in text
    assert ("/tam account needs one more word: add, assign, email, renew, set, show, tag, "
            "usage.") in text
    assert "Unknown command /asdf. Did you mean /as?" in text


async def test_a_failing_command_is_one_log_line_and_a_plain_answer(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    await db.upgrade()
    ctx = AppContext(db=db, catalog=load_catalog(None), settings=Settings())
    router = build_router()

    @router.command("support", "boom", help_id="help.support.plan")
    async def boom(call: Call) -> Reply:
        raise RuntimeError("disk on fire")

    out = io.StringIO()
    await run_console(ctx, router, stdin=io.StringIO("/support boom\n/support plan\n"), out=out)
    await db.close()
    assert "[console] Sorry, something went wrong on our side" in out.getvalue()
    assert "Enterprise plan (annual)" in out.getvalue()  # and the console went on
    assert "Traceback" not in out.getvalue() + caplog.text
    failed = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failed) == 1 and "disk on fire" in failed[0].getMessage()
    assert "\n" not in failed[0].getMessage() and failed[0].exc_info is None
