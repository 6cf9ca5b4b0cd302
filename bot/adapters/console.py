"""A terminal IM group on the same handlers: type commands and messages, switch who you are."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import os
import re
import shlex
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta, tzinfo
from difflib import get_close_matches
from itertools import count
from typing import TextIO

from bot.adapters.plain import MARK_GLYPH, local_time
from bot.domain.model import (
    Account,
    Lang,
    Role,
    Severity,
    StaffMember,
    Term,
    Tier,
    parse_case_ref,
)
from bot.i18n import Translator
from bot.messages import Button, Message, mention, tokens
from bot.services import accounts
from bot.services.base import AppContext
from bot.services.messenger import Posted
from bot.worker import worker_running
from handlers.core import Form, Kind, Reply, Request, Router
from storage.repos import Accounts, Bindings, Staff

TEAM = "T-CONSOLE"
CHANNEL = "C-CONSOLE"
DUTY = "C-DUTY"
USERS = {"customer": "UCUSTOMER", "tam": "UTAM", "admin": "UADMIN", "engineer": "UENGINEER"}
NAMES = {v: k for k, v in USERS.items()}
# `@bob` as typed: not inside a mention token and not the middle of an e-mail address
TYPED_MENTION = re.compile(r"(?<![<\w])@([A-Za-z][A-Za-z0-9]{0,30})\b")
CONSOLE_COMMANDS = ("as", "reply", "help", "quit", "exit")
log = logging.getLogger(__name__)


def render(text: str, tz: tzinfo | None = None, names: dict[str, str] | None = None) -> str:
    """Neutral markup as clean terminal text: emphasis and code as their words, users as
    `@name`, times in the reader's local time, status marks as glyphs."""
    known = NAMES if names is None else names
    out: list[str] = []
    for tok in tokens(text):
        if tok.kind == "text":
            out.append(tok.value)
        elif tok.kind == "user":
            out.append("@" + known.get(tok.value, tok.value))
        elif tok.kind == "time":
            out.append(local_time(int(tok.value), tz))
        elif tok.kind == "mark":
            out.append(MARK_GLYPH[tok.value])
    return "".join(out)


def button_hints(buttons: Sequence[Button]) -> str:
    """Buttons as the commands they run (the console has nothing to click)."""
    return "".join(f"\n[{b.label}] → {b.command}" + (f" <{b.ask}>" if b.ask else "")
                   for b in buttons)


class ConsoleMessenger:
    """Prints what the bot would post; cards show as text blocks."""

    def __init__(self, write: Callable[[str], None], tz: tzinfo | None = None,
                 names: dict[str, str] | None = None,
                 labels: Callable[[], Translator] | None = None) -> None:
        self.write = write
        self.tz = tz
        self.names = NAMES if names is None else names
        # the console's own words (DM to…, thread, updated) in the current reader's language
        self.labels = labels or (lambda: Translator(Lang.EN))
        self._ts = count(1)
        # what each message shows now: Slack edits a message in place, so an update that
        # changes nothing is invisible there and must not print a second copy here
        self._shown: dict[tuple[str, str], str] = {}

    def _next(self) -> str:
        return f"{1_700_000_000 + next(self._ts)}.000100"

    def _where(self, channel: str) -> str:
        if channel == CHANNEL:
            return "#support"
        if channel == DUTY:
            return "#duty"
        if channel.startswith("D-"):
            return self.labels()("console.label.dm",
                                 who=self.names.get(channel[2:], channel[2:]))
        return channel

    def _show(self, where: str, text: str) -> None:
        body = render(text, self.tz, self.names).replace("\n", "\n    ")
        self.write(f"[{where}] bot: {body}")

    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None,
                   key: str | None = None) -> Posted:
        where = self._where(channel)
        if thread_ts:
            where = self.labels()("console.label.thread", where=where)
        shown = message.text + button_hints(message.buttons)
        posted = Posted(channel, self._next())
        self._shown[(channel, posted.ts)] = shown
        self._show(where, shown)
        return posted

    async def find(self, channel: str, key: str, *, thread_ts: str | None = None
                   ) -> Posted | None:
        return None  # the console keeps no history to search

    async def dm_channel(self, user_id: str) -> str:
        return f"D-{user_id}"

    async def publish_home(self, user_id: str, home: Message) -> None:
        who = self.names.get(user_id, user_id)
        # a one-line summary: the dashboard's section headings (they carry the counts)
        self.write(f"[{self.labels()('console.label.home', who=who)}] " + " · ".join(
            render(sec.title, self.tz, self.names) for sec in home.sections if sec.title))

    async def upload(self, channel: str, filename: str, content: bytes, *, title: str,
                     thread_ts: str | None = None) -> None:
        t = self.labels()
        self.write(f"[{t('console.label.thread', where=self._where(channel))}] bot: "
                   + t("console.label.file", filename=filename, title=title,
                       size=f"{len(content):,}"))

    async def update(self, channel: str, ts: str, message: Message) -> None:
        shown = message.text + button_hints(message.buttons)
        if self._shown.get((channel, ts)) == shown:
            return
        self._shown[(channel, ts)] = shown
        self._show(self.labels()("console.label.updated", where=self._where(channel)), shown)

    def link(self, channel: str, ts: str) -> str:
        return f"console://{channel}/{ts}"


async def seed_demo(ctx: AppContext) -> None:
    """Demo data, added once: an enterprise annual account bound to the console group."""
    now = ctx.clock()
    async with ctx.db.transaction() as s:
        if await Accounts(s).get("demo") is not None:
            return
        staff = Staff(s)
        await staff.upsert(StaffMember(TEAM, USERS["admin"], Role.ADMIN), "seed", now)
        await staff.upsert(StaffMember(TEAM, USERS["tam"], Role.TAM), "seed", now)
        await staff.upsert(StaffMember(TEAM, USERS["engineer"], Role.ENGINEER), "seed", now)
        start = now.date() - timedelta(days=30)
        region = ctx.catalog.default_region
        tz = ctx.catalog.regions[region].timezone
        for key, name, tier, term in (("demo", "Demo Corp", Tier.ENTERPRISE, Term.ANNUAL),
                                      ("devco", "DevCo", Tier.DEVELOPER, Term.MONTHLY)):
            end = accounts.add_years(start, 1) if term is Term.ANNUAL else \
                accounts.add_months(start, 1)
            await Accounts(s).add(Account(key=key, name=name, tier=tier, term=term, start=start,
                                          end=end, region=region, timezone=tz, lang=Lang.EN,
                                          team_id=TEAM), now)
        await Accounts(s).set_tam("demo", USERS["tam"])
        await Bindings(s).bind(TEAM, CHANNEL, "demo", "seed", now)


class Lines:
    """Input lines without a reading thread: a pipe or terminal is watched by the event loop,
    so Ctrl-C never waits for Enter; anything else (a file, a StringIO) is read directly."""

    def __init__(self, stdin: TextIO) -> None:
        self.stdin = stdin
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._fd: int | None = None
        self._pending = ""
        self._decoder = codecs.getincrementaldecoder(
            getattr(stdin, "encoding", None) or "utf-8")(errors="replace")
        loop = asyncio.get_running_loop()
        try:
            fd = stdin.fileno()
            loop.add_reader(fd, self._ready)
        except (AttributeError, OSError, ValueError):
            return  # no descriptor, or a regular file the loop cannot watch: read directly
        self._fd = fd

    def _ready(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        self._pending += self._decoder.decode(data, final=not data)
        *complete, self._pending = self._pending.split("\n")
        for line in complete:
            self.queue.put_nowait(line + "\n")
        if not data:
            if self._pending:
                self.queue.put_nowait(self._pending)
            self.queue.put_nowait(None)
            self.close()

    async def get(self) -> str | None:
        """The next line, or None at end of input."""
        if self._fd is None and self.queue.empty():
            return self.stdin.readline() or None
        return await self.queue.get()

    def close(self) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = None


class Console:
    """Reads lines, dispatches them as the current user, prints the bot's answers."""

    def __init__(self, ctx: AppContext, router: Router, out: TextIO, *,
                 tz: tzinfo | None = None, interactive: bool = False) -> None:
        self.ctx = ctx
        self.router = router
        self.out = out
        self.who = "customer"
        self.tz = tz  # None: the reader's local time zone
        self.interactive = interactive  # a person at a terminal: prompts and questions
        self.users = dict(USERS)
        self.labels = Translator(Lang.EN)  # the current user's language, after each line
        self.names = {v: k for k, v in USERS.items()}
        self._prompt: str | None = None  # the prompt on screen, waiting for input
        self._lines: Lines | None = None
        self._stop = asyncio.Event()

    def write(self, line: str) -> None:
        if self._prompt is not None:
            # a background post while the prompt waits: clear the prompt's line, print the
            # post, and draw the prompt again below it
            self.out.write("\r\x1b[K" + line + "\n" + self._prompt)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def say(self, text: str) -> None:
        """A line of the console's own, in neutral markup like the bot's."""
        self.write("[console] " + render(text, self.tz, self.names))

    def intro(self) -> None:
        self.write(render(self.labels("console.intro", channel="#support", who=self.who),
                          self.tz, self.names))

    def show(self, reply: Reply) -> None:
        label = self.labels("console.label.ephemeral") \
            if reply.visibility.value == "ephemeral" else "#support"
        body = render(reply.text + button_hints(reply.buttons), self.tz, self.names)
        body = body.replace("\n", "\n    ")
        self.write(f"[{label}] bot: {body}")

    def stop(self) -> None:
        """Leave after the current line (Ctrl-C)."""
        self._stop.set()

    async def read(self, prompt: str) -> str | None:
        """The next input line (None at the end of input or on Ctrl-C); the prompt is shown
        only to a person at a terminal."""
        assert self._lines is not None
        if self.interactive:
            self._prompt = prompt
            self.out.write(prompt)
            self.out.flush()
        get = asyncio.ensure_future(self._lines.get())
        halt = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({get, halt}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            halt.cancel()
            line = get.result() if get.done() and not get.cancelled() else None
            get.cancel()
            if self._prompt is not None and line is None:
                self.out.write("\n")  # Ctrl-C or Ctrl-D: the cursor is still after the prompt
            self._prompt = None
        return line

    async def translator(self) -> Translator:
        """The current user's language, chosen as the router chooses it."""
        return Translator(await self.router.reader_lang(
            Request("", "", TEAM, CHANNEL, self.users[self.who]), self.ctx))

    async def _translator_or_en(self) -> Translator:
        try:
            return await self.translator()
        except Exception:  # the database itself may be what failed
            return Translator(Lang.EN)

    def _user_for(self, name: str) -> str:
        """A console user for `@name`: the demo users, or a new one named on first mention."""
        key = name.lower()
        if key not in self.users:
            self.users[key] = "U" + key.upper()
            self.names[self.users[key]] = key
        return self.users[key]

    def mentions(self, text: str) -> str:
        """`@tam` typed in the console means that user, as a Slack mention would."""
        return TYPED_MENTION.sub(lambda m: mention(self._user_for(m.group(1))), text)

    async def handle(self, line: str) -> bool:
        """Handle one input line; False when the user wants to quit."""
        line = line.strip()
        if not line:
            return True
        if not line.startswith("/"):
            self.write(f"[#support] {self.who}: {line}")
            return True
        root, _, rest = line[1:].partition(" ")
        root, rest = root.lower(), rest.strip()
        if root in ("quit", "exit"):
            return False
        t = await self.translator()
        if root == "as":
            who = rest.lower().lstrip("@")
            if who not in self.users:
                self.say(t("console.who", users=", ".join(self.users)))
            else:
                self.who = who
                self.say(t("console.now", who=who, user=self.users[who]))
        elif root in ("help", "?"):
            self.write(render(t("console.help", users=t("console.mention_users")), self.tz,
                              self.names))
        elif root == "reply":
            await self._thread_reply(rest, t)
        elif root in self.router.roots():
            await self._dispatch(root, self.mentions(rest))
        else:
            close = get_close_matches(root, [*self.router.roots(), *CONSOLE_COMMANDS], n=1)
            self.say(t("console.unknown_root_suggest", root=root, suggestion=close[0])
                     if close else t("console.unknown_root", root=root))
        return True

    async def _dispatch(self, root: str, text: str) -> None:
        req = Request(root=root, text=text, team_id=TEAM, channel_id=CHANNEL,
                      user_id=self.users[self.who], can_open_form=True)
        reply = await self.router.dispatch(req, self.ctx)
        if reply.form is None:
            self.show(reply)
        else:
            await self._form(req, reply.form)

    async def _form(self, req: Request, form: Form) -> None:
        """Where Slack opens a form: ask for the fields at a terminal, otherwise say
        exactly what to type."""
        t = await self.translator()
        severities = t("list.sep").join(f"{s.value} {s.alias}" for s in Severity)
        if form.kind != "open_case":
            # the command's own usage answer says what to type on one line
            self.show(await self.router.dispatch(
                Request(root=req.root, text=req.text, team_id=req.team_id,
                        channel_id=req.channel_id, user_id=req.user_id), self.ctx))
            return
        if form.description:  # what the form would show above its fields
            self.say(form.description)
        if not self.interactive:
            self.say(t("console.open_how", severities=severities))
            return
        severity: Severity | None = None
        while severity is None:
            answer = await self.read(t("console.ask_severity",
                                       severities="/".join(s.value for s in Severity)))
            if not answer or not answer.strip():
                self.say(t("console.cancelled"))
                return
            severity = Severity.parse(answer.strip())
            if severity is None:
                self.say(t("error.bad_severity", given=answer.strip(), choices=severities))
        summary = await self.read(t("console.ask_summary"))
        if not summary or not summary.strip():
            self.say(t("console.cancelled"))
            return
        await self._dispatch(req.root, shlex.join(["open", severity.value,
                                                   self.mentions(summary.strip())]))

    async def _thread_reply(self, rest: str, t: Translator) -> None:
        """`/reply CS-1001 text`: a reply in the case thread (staff replies are responses)."""
        try:
            parts = shlex.split(rest) if rest else []
        except ValueError:
            parts = rest.split()
        case_id = parse_case_ref(parts[0]) if parts else None
        if case_id is None or len(parts) < 2:
            self.say(t("console.reply_usage"))
            return
        self.write(f"[#support (thread {parts[0].upper()})] {self.who}: {' '.join(parts[1:])}")
        reply = await self.router.dispatch(Request(
            root="", text=" ".join(parts[1:]), team_id=TEAM, channel_id=CHANNEL,
            user_id=self.users[self.who], kind=Kind.THREAD_REPLY, fields={"case": parts[0]}),
            self.ctx)
        if reply.refused:
            self.say(reply.text)

    async def run(self, stdin: TextIO, after_line: Callable[[], Awaitable[None]]) -> None:
        """Read and handle lines until the end of input, `/quit` or Ctrl-C."""
        self._lines = Lines(stdin)
        try:
            while not self._stop.is_set():
                line = await self.read(f"{self.who}> ")
                if line is None:
                    break
                try:
                    if not await self.handle(line):
                        break
                except Exception as exc:
                    # the detail goes to the log in one line; the person reads that it failed
                    log.error("console: %r failed: %s: %s", line.strip()[:80],
                              type(exc).__name__, exc)
                    self.say((await self._translator_or_en())("error.internal"))
                await after_line()
        finally:
            self._lines.close()
        if self._stop.is_set():
            self.say((await self.translator())("console.bye"))


async def run_console(ctx: AppContext, router: Router, stdin: TextIO | None = None,
                      out: TextIO | None = None,
                      idle: Callable[[], Awaitable[None]] | None = None, *,
                      tz: tzinfo | None = None, catch_interrupt: bool = False) -> None:
    """The interactive loop; the worker runs beside it and prints what the bot posts.

    With `catch_interrupt` (the `supportbot console` command) Ctrl-C leaves cleanly after the
    current line; a second Ctrl-C interrupts at once."""

    stdin = stdin or sys.stdin
    out = out or sys.stdout
    console = Console(ctx, router, out, tz=tz,
                      interactive=stdin.isatty() and out.isatty())
    await seed_demo(ctx)
    console.labels = await console._translator_or_en()
    console.intro()
    messenger = ConsoleMessenger(console.write, console.tz, console.names,
                                 lambda: console.labels)
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGINT) if catch_interrupt else None

    def interrupted() -> None:
        console.stop()
        loop.remove_signal_handler(signal.SIGINT)  # a second Ctrl-C is not ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)

    if catch_interrupt:
        loop.add_signal_handler(signal.SIGINT, interrupted)
    try:
        async with worker_running(ctx, messenger) as worker:
            async def after_line() -> None:
                # the reader may have changed (/as) or their language (staff lang=, link)
                console.labels = await console._translator_or_en()
                # let the worker deliver what this line queued before the next prompt
                await worker.run_once()
                if idle is not None:
                    await idle()

            await console.run(stdin, after_line)
    finally:
        if catch_interrupt:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
                signal.signal(signal.SIGINT, previous)
