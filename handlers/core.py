"""Platform-neutral commands: a Request goes through the Router to a handler, a Reply comes back.

Every transport (Slack, the console, tests) builds a `Request`, calls `Router.dispatch`, and
renders the `Reply`. Help texts are generated from what is registered here.
"""

from __future__ import annotations

import enum
import logging
import re
import shlex
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from difflib import get_close_matches
from typing import Any

from bot.domain.model import Account, Lang, Role
from bot.i18n import Translator, clean_user_text
from bot.messages import Button, Message, code
from bot.services import home
from bot.services.accounts import channel_account
from bot.services.base import (
    Actor,
    AppContext,
    Denied,
    Refusal,
    audit_denial,
    record_event,
    resolve_actor,
)
from handlers import aliases

log = logging.getLogger(__name__)


class Visibility(enum.Enum):
    EPHEMERAL = "ephemeral"  # only the person who typed sees it
    CHANNEL = "channel"  # everyone in the channel


class Kind(enum.Enum):
    """What the user did. Every kind goes through `Router.dispatch`; the adapter only
    translates its platform's payload into a `Request` and renders the `Reply`."""

    COMMAND = "command"  # typed: a slash command, an @-mention, a console line
    BUTTON = "button"  # a `Button` clicked: its command, run as the clicker, where clicked
    FORM = "form"  # a submitted form: `fields` holds its values; `text` names the command
    INTAKE = "intake"  # "open a case from this message": `fields["message"]` is its text
    REACTION = "reaction"  # a reaction that asks for a case (`event_id` set)
    THREAD_REPLY = "thread_reply"  # a reply in a message's thread (`thread_id`, `event_id`)
    HOME = "home"  # the user opened their dashboard (App Home)


@dataclass(frozen=True)
class Form:
    """Ask the transport to open a form (a Slack modal); `kind` names which one."""

    kind: str
    prefill: dict[str, str] = field(default_factory=dict)
    description: str = ""  # neutral markup shown above the fields (a rule to keep in mind)


@dataclass(frozen=True)
class Reply:
    """What the user gets back. `text` is neutral markup (`bot.messages`); `message`, when
    set, is a richer layout (a dashboard) of the same content."""

    text: str
    visibility: Visibility = Visibility.EPHEMERAL
    form: Form | None = None
    buttons: tuple[Button, ...] = ()
    refused: bool = False  # a usage error, refusal or denial: nothing was changed
    field_errors: Mapping[str, str] = field(default_factory=dict)  # form field -> problem
    message: Message | None = None
    silent: bool = False  # nothing to show (an event that needs no answer)
    replayed: bool = False  # the same signed request again: refused, and nothing was done

    def as_message(self) -> Message:
        return self.message or Message(self.text, buttons=self.buttons)


NOTHING = Reply("", silent=True)


@dataclass(frozen=True)
class Request:
    """One user interaction, platform-neutral: `/support open S2 db down` -> root `support`,
    text `open S2 db down`. Ids are the platform's own (qualified by `team_id`)."""

    root: str
    text: str
    team_id: str
    channel_id: str
    user_id: str
    can_open_form: bool = False
    kind: Kind = Kind.COMMAND
    fields: Mapping[str, str] = field(default_factory=dict)
    event_id: str | None = None
    thread_id: str | None = None


@dataclass
class Call:
    """What a handler gets: the request, its parsed arguments, the actor and helpers."""

    req: Request
    args: list[str]
    actor: Actor
    app: AppContext
    t: Translator
    account: Account | None  # the account bound to the channel, if any

    def reply(self, msg_id: str, **params: Any) -> Reply:
        return Reply(self.t(msg_id, **params))

    def form_value(self, name: str) -> str:
        """A submitted form's field, stripped ('' when absent)."""
        return str(self.req.fields.get(name, "")).strip()


Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True)
class Command:
    root: str
    path: tuple[str, ...]
    usage: str  # arguments after the path, e.g. "<ref> <severity>"
    help_id: str  # message id of a one-line description
    handler: Handler
    role: Role | None  # minimum staff role; None = anyone in a bound group
    hidden: bool = False  # reached by buttons and forms, not listed in help
    # on a form, refusals with these message ids are shown at the named field
    form_fields: Mapping[str, str] = field(default_factory=dict)


def reply_lang(actor: Actor, account: Account | None) -> Lang:
    """The one language rule for every reply, refusals and usage errors included.

    Staff read their own setting wherever they type; anyone else reads the language of
    the account bound to the channel (English where none is), whatever root they typed:
    a customer of a `lang=zh` group trying `/tam` is told off in Chinese.
    """
    if actor.is_staff:
        return actor.lang
    return account.lang if account is not None else Lang.EN


class Router:
    """The one way in: maps every request to its handler. It alone resolves the actor, the
    reader's language and the channel's account, authorizes, audits denials and turns
    refusals into replies (or form-field errors). Help is generated from the registrations."""

    staff_roots = frozenset({"tam"})

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.events: dict[Kind, Handler] = {}
        self.notes: dict[str, list[str]] = {}  # root -> message ids help ends with

    def command(self, root: str, path: str, usage: str = "", *, help_id: str,
                role: Role | None = None, hidden: bool = False,
                form_fields: Mapping[str, str] | None = None) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.commands.append(Command(root, tuple(path.split()), usage, help_id, fn, role,
                                         hidden, dict(form_fields or {})))
            return fn
        return register

    def help_note(self, root: str, msg_id: str) -> None:
        """A line `/<root> help` shows after the commands (e.g. where the hotline is)."""
        self.notes.setdefault(root, []).append(msg_id)

    def on(self, kind: Kind) -> Callable[[Handler], Handler]:
        """Register the handler of a non-command interaction (reaction, thread reply, ...)."""
        def register(fn: Handler) -> Handler:
            self.events[kind] = fn
            return fn
        return register

    def roots(self) -> list[str]:
        return sorted({c.root for c in self.commands})

    def usage(self, cmd: Command) -> str:
        return " ".join(["/" + cmd.root, *cmd.path, cmd.usage]).strip()

    def help_text(self, root: str, t: Translator, actor: Actor) -> str:
        lines = [t(f"help.{root}.title")]
        for cmd in self.commands:
            if cmd.root != root or not cmd.path or cmd.hidden or (
                    cmd.role and not actor.at_least(cmd.role)):
                continue
            lines.append(f"• {code(self.usage(cmd))} — {t(cmd.help_id)}")
        words = aliases.listing(root, t("list.sep"), lambda word, command: t(
            "help.alias_item", word=word, command=command))
        if words:
            lines.append(t("help.aliases", words=words))
        lines.append(t("help.footer"))
        lines += [t(msg_id) for msg_id in self.notes.get(root, ())]
        return "\n".join(lines)

    def suggest(self, root: str, words: list[str], actor: Actor
                ) -> tuple[str, str | None, list[str]]:
        """For words that name no command: the unknown part, the closest command the actor
        may use (`pln` -> `plan`, `account asign` -> `account assign`) if any, and the words
        that may follow when everything typed is only the start of commands (`account`)."""
        # hidden commands are what buttons and forms run: help does not offer them to type,
        # so neither does an answer to a typo (`cards` is `cases`, not the card's buttons)
        paths = [c.path for c in self.commands if c.root == root and c.path and not c.hidden
                 and (c.role is None or actor.at_least(c.role))]
        typed = [w.lower() for w in words]
        depth = 0  # leading words that start longer commands, e.g. `account` of `account ad`
        while depth < len(typed) and any(
                len(p) > depth + 1 and list(p[:depth + 1]) == typed[:depth + 1] for p in paths):
            depth += 1
        options = sorted({p[depth] for p in paths
                          if len(p) > depth and list(p[:depth]) == typed[:depth]})
        if depth == len(typed):
            return " ".join(words), None, options
        close = get_close_matches(typed[depth], options + ["help"] * (depth == 0), n=1,
                                  cutoff=0.6)
        return (" ".join(words[:depth + 1]),
                " ".join([*typed[:depth], close[0]]) if close else None, [])

    def unknown(self, root: str, words: list[str], t: Translator, actor: Actor) -> str:
        """A short answer to an unknown subcommand: a suggestion, never the whole help."""
        unknown, close, more = self.suggest(root, words, actor)
        if more:
            return t("error.unknown_group", root=root, word=unknown,
                     choices=t("list.sep").join(more))
        if close is None:
            return t("error.unknown_subcommand", root=root, word=unknown)
        return t("error.unknown_suggest", root=root, word=unknown, suggestion=close)

    def _match(self, root: str, words: list[str]) -> tuple[Command | None, list[str]]:
        best: Command | None = None
        for cmd in self.commands:
            n = len(cmd.path)
            if cmd.root == root and [w.lower() for w in words[:n]] == list(cmd.path) and (
                    best is None or n > len(best.path)):
                best = cmd
        if best is None:
            return None, words
        return best, words[len(best.path):]

    async def resolve(self, req: Request, app: AppContext) -> tuple[Actor, Account | None]:
        return (await resolve_actor(app, req.team_id, req.user_id),
                await channel_account(app, req.channel_id) if req.channel_id else None)

    async def reader_lang(self, req: Request, app: AppContext) -> Lang:
        """The language a reply to this request is written in (for adapters' own errors)."""
        return reply_lang(*await self.resolve(req, app))

    async def dispatch(self, req: Request, app: AppContext) -> Reply:
        """Everything a request does happens in one transaction: its replay row, the actor,
        the binding, the use case (a savepoint of it) and the note of the customer's group;
        a refused request commits only its audit row."""
        # bidi overrides and other invisible characters never reach a handler or an echo
        req = replace(req, text=clean_user_text(req.text),
                      fields={k: clean_user_text(v) for k, v in req.fields.items()})
        async with app.db.transaction():
            return await self._dispatch(req, app)

    async def _dispatch(self, req: Request, app: AppContext) -> Reply:
        if req.kind in (Kind.COMMAND, Kind.BUTTON) and req.event_id is not None and \
                not await record_event(app, req.event_id):
            # the same signed request again (Slack never resends a command) or the same
            # click delivered twice (WeCom may call back again): done once only
            t = Translator(await self.reader_lang(req, app))
            return Reply(t("error.replayed"), refused=True, replayed=True)
        actor, account = await self.resolve(req, app)
        t = Translator(reply_lang(actor, account))
        if req.kind in self.events:
            call = Call(req=req, args=[], actor=actor, app=app, t=t, account=account)
            return await self._run(call, self.events[req.kind], None)
        try:
            words = aliases.expand(req.root, shlex.split(req.text))
        except ValueError:
            return Reply(t("error.quotes"), refused=True)
        if req.root in self.staff_roots and not actor.is_staff:
            await audit_denial(app, actor, f"{req.root} {words[0] if words else ''}".strip(),
                               "not staff")
            return Reply(t("error.staff_only", root=req.root), refused=True)
        if not words or words[0].lower() == "help":
            return Reply(self.help_text(req.root, t, actor))
        cmd, args = self._match(req.root, words)
        if cmd is None:
            return Reply(self.unknown(req.root, words, t, actor), refused=True)
        if cmd.role is not None and not actor.at_least(cmd.role):
            await audit_denial(app, actor, " ".join(cmd.path), f"needs role {cmd.role.value}")
            return Reply(t("error.role_required", role=cmd.role.value,
                           command=self.usage(cmd)), refused=True)
        call = Call(req=req, args=args, actor=actor, app=app, t=t, account=account)
        reply = await self._run(call, cmd.handler, cmd)
        if account is not None and not actor.is_staff and not reply.refused:
            # their App Home shows the account whose group they use
            await home.note_customer(app, req.team_id, req.user_id, account.key,
                                     req.channel_id)
        return reply

    async def _run(self, call: Call, handler: Handler, cmd: Command | None) -> Reply:
        t = call.t
        try:
            return await handler(call)
        except Refusal as refusal:
            if isinstance(refusal, Denied):
                await audit_denial(call.app, call.actor, refusal.action, refusal.reason,
                                   account_key=refusal.account_key)
            text = refusal.render(t)
            where = cmd.form_fields.get(refusal.msg_id) if cmd else None
            if call.req.kind is Kind.FORM and where:
                return Reply(text, refused=True, field_errors={where: text})
            return Reply(text, refused=True)
        except UsageError as err:
            usage = self.usage(cmd) if cmd else ""
            text = t("error.usage", problem=err.render(t), usage=usage)
            if call.req.kind is Kind.FORM and err.field:
                return Reply(text, refused=True, field_errors={err.field: err.render(t)})
            return Reply(text, refused=True)


class UsageError(Exception):
    """Arguments that do not fit the command; the reply shows the problem and the usage.
    `field` names the form field at fault when the request came from a form."""

    def __init__(self, msg_id: str, *, field: str | None = None, **params: Any) -> None:
        super().__init__(msg_id)
        self.msg_id = msg_id
        self.field = field
        self.params = params

    def render(self, t: Translator) -> str:
        return t(self.msg_id, **self.params)


def split_options(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """Separate `key=value` options from positional arguments."""
    positional: list[str] = []
    options: dict[str, str] = {}
    for a in args:
        if "=" in a and not a.startswith("=") and a.split("=", 1)[0].isidentifier():
            k, v = a.split("=", 1)
            options[k.lower()] = v
        else:
            positional.append(a)
    return positional, options


def parse_mention(text: str) -> str | None:
    """A user named in a command: a neutral mention `<user:ID>` (adapters turn their
    platform's mentions into it), `@ID` or a bare id -> `ID`."""
    t = text.strip()
    m = MENTION.fullmatch(t)
    if m:
        return m.group(1)
    t = t.lstrip("@")
    if t and t[0] in "UW" and t.isalnum() and t.isupper() and 2 < len(t) <= 32:
        return t
    return None


MENTION = re.compile(r"<user:([A-Za-z0-9_.:@-]{1,64})>")


def parse_arg(word: str, parse: Callable[[str], int | None], bad_msg: str) -> int:
    """An id typed by the user (`CS-1042`, `PR-1001`, `AD-1001`), or a usage error naming it."""
    value = parse(word)
    if value is None:
        raise UsageError(bad_msg, given=word)
    return value


def single_ref(call: Call, parse: Callable[[str], int | None], bad_msg: str) -> int:
    """The one reference a command takes."""
    if len(call.args) != 1:
        raise UsageError("error.arg_count", n=1)
    return parse_arg(call.args[0], parse, bad_msg)
