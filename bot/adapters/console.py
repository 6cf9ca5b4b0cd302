"""A terminal IM group on the same handlers: type commands and messages, switch who you are."""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from itertools import count
from typing import TextIO
from zoneinfo import ZoneInfo

from bot.domain.model import Account, Lang, Role, StaffMember, Term, Tier, parse_case_ref
from bot.i18n import Translator
from bot.messages import Button, Message, tokens
from bot.services import accounts
from bot.services.base import AppContext
from bot.services.messenger import Posted
from bot.worker import worker_running
from handlers.core import Kind, Reply, Request, Router
from storage.repos import Accounts, Bindings, Staff

TEAM = "T-CONSOLE"
CHANNEL = "C-CONSOLE"
DUTY = "C-DUTY"
USERS = {"customer": "UCUSTOMER", "tam": "UTAM", "admin": "UADMIN", "engineer": "UENGINEER"}
NAMES = {v: k for k, v in USERS.items()}
MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")


# the console's glyph for each neutral status mark
MARK_GLYPH = {"breach": "🚨", "warning": "⚠️", "ok": "✅", "advisory": "📣", "report": "📊",
              "reminder": "🔔", "ticket": "🎫"}


def local_time(ts: int, tz: ZoneInfo) -> str:
    """`2026-11-28 15:04 UTC+8`: local time with an offset that cannot be misread."""
    at = datetime.fromtimestamp(ts, tz)
    offset = at.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    zone = f"UTC{sign}{hours}" + (f":{mins:02d}" if mins else "") if minutes else "UTC"
    return at.strftime("%Y-%m-%d %H:%M ") + zone


def render(text: str, tz: ZoneInfo) -> str:
    """Neutral markup as clean terminal text: emphasis and code as their words, users as
    `@name`, times in the group's time zone, status marks as glyphs."""
    out: list[str] = []
    for tok in tokens(MENTION.sub(lambda m: f"<user:{m.group(1)}>", text)):
        if tok.kind == "text":
            out.append(tok.value)
        elif tok.kind == "user":
            out.append("@" + NAMES.get(tok.value, tok.value))
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

    def __init__(self, write: Callable[[str], None], tz: ZoneInfo) -> None:
        self.write = write
        self.tz = tz
        self._ts = count(1)

    def _next(self) -> str:
        return f"{1_700_000_000 + next(self._ts)}.000100"

    def _show(self, where: str, text: str) -> None:
        body = render(text, self.tz).replace("\n", "\n    ")
        self.write(f"[{where}] bot: {body}")

    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None,
                   key: str | None = None) -> Posted:
        where = "#support" if channel == CHANNEL else "#duty" if channel == DUTY else channel
        if channel.startswith("D-"):
            where = f"DM to @{NAMES.get(channel[2:], channel[2:])}"
        if thread_ts:
            where += " (thread)"
        self._show(where, message.text + button_hints(message.buttons))
        return Posted(channel, self._next())

    async def find(self, channel: str, key: str, *, thread_ts: str | None = None
                   ) -> Posted | None:
        return None  # the console keeps no history to search

    async def dm_channel(self, user_id: str) -> str:
        return f"D-{user_id}"

    async def publish_home(self, user_id: str, home: Message) -> None:
        who = NAMES.get(user_id, user_id)
        # a one-line summary: the dashboard's section headings (they carry the counts)
        self.write(f"[home of @{who}] " + " · ".join(
            render(sec.title, self.tz) for sec in home.sections if sec.title))

    async def upload(self, channel: str, filename: str, content: bytes, *, title: str,
                     thread_ts: str | None = None) -> None:
        where = "#support" if channel == CHANNEL else channel
        self.write(f"[{where} (thread)] bot: [file] {filename} — {title} "
                   f"({len(content):,} bytes)")

    async def update(self, channel: str, ts: str, message: Message) -> None:
        where = "#support" if channel == CHANNEL else "#duty" if channel == DUTY else \
            f"DM to @{NAMES.get(channel[2:], channel[2:])}" if channel.startswith("D-") \
            else channel
        self._show(f"{where} (updated)", message.text)

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


class Console:
    """Reads lines, dispatches them as the current user, prints the bot's answers."""

    def __init__(self, ctx: AppContext, router: Router, out: TextIO) -> None:
        self.ctx = ctx
        self.router = router
        self.out = out
        self.who = "customer"
        self.tz = ZoneInfo(ctx.catalog.regions[ctx.catalog.default_region].timezone)

    def write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def intro(self) -> None:
        self.write(Translator(Lang.EN)("console.intro", channel="#support", who=self.who))

    def show(self, reply: Reply) -> None:
        label = "only you see this" if reply.visibility.value == "ephemeral" else "#support"
        body = render(reply.text + button_hints(reply.buttons), self.tz)
        body = body.replace("\n", "\n    ")
        self.write(f"[{label}] bot: {body}")

    async def handle(self, line: str) -> bool:
        """Handle one input line; False when the user wants to quit."""
        line = line.strip()
        if not line:
            return True
        if line in ("/quit", "/exit"):
            return False
        if line.startswith("/as"):
            who = line[3:].strip().lower()
            if who not in USERS:
                self.write(f"[console] who? one of: {', '.join(USERS)}")
            else:
                self.who = who
                self.write(f"[console] you are now {who} ({USERS[who]})")
            return True
        if line in ("/help", "/?"):
            self.write(Translator(Lang.EN)("console.help", users=", ".join(
                f"@{name} = <@{uid}>" for name, uid in USERS.items())))
            return True
        if line.startswith("/reply"):
            await self._thread_reply(line[len("/reply"):].strip())
            return True
        if line.startswith("/"):
            root, _, rest = line[1:].partition(" ")
            if root not in self.router.roots():
                self.write(f"[console] unknown command /{root}; try /help")
                return True
            # `@tam` typed in the console means the demo user, as a Slack mention would
            rest = re.sub(r"(?<![<\w])@(\w+)", lambda m: f"<@{USERS[m.group(1)]}>"
                          if m.group(1) in USERS else m.group(0), rest)
            req = Request(root=root, text=rest, team_id=TEAM, channel_id=CHANNEL,
                          user_id=USERS[self.who])
            self.show(await self.router.dispatch(req, self.ctx))
            return True
        self.write(f"[#support] {self.who}: {line}")
        return True

    async def _thread_reply(self, rest: str) -> None:
        """`/reply CS-1001 text`: a reply in the case thread (staff replies are responses)."""
        parts = shlex.split(rest) if rest else []
        case_id = parse_case_ref(parts[0]) if parts else None
        if case_id is None or len(parts) < 2:
            self.write("[console] usage: /reply CS-1001 your message")
            return
        self.write(f"[#support (thread {parts[0].upper()})] {self.who}: {' '.join(parts[1:])}")
        reply = await self.router.dispatch(Request(
            root="", text=" ".join(parts[1:]), team_id=TEAM, channel_id=CHANNEL,
            user_id=USERS[self.who], kind=Kind.THREAD_REPLY, fields={"case": parts[0]}),
            self.ctx)
        if reply.refused:
            self.write("[console] " + render(reply.text, self.tz))


async def run_console(ctx: AppContext, router: Router, stdin: TextIO | None = None,
                      out: TextIO | None = None,
                      idle: Callable[[], Awaitable[None]] | None = None) -> None:
    """The interactive loop; the worker runs beside it and prints what the bot posts."""
    stdin = stdin or sys.stdin
    console = Console(ctx, router, out or sys.stdout)
    await seed_demo(ctx)
    console.intro()
    messenger = ConsoleMessenger(console.write, console.tz)
    loop = asyncio.get_running_loop()
    async with worker_running(ctx, messenger) as worker:
        while True:
            if stdin.isatty():
                console.out.write(f"{console.who}> ")
                console.out.flush()
            line = await loop.run_in_executor(None, stdin.readline)
            if not line:
                break
            if not await console.handle(line):
                break
            # let the worker deliver what this line queued before the next prompt
            await worker.run_once()
            if idle is not None:
                await idle()
