"""Bolt listeners: ack first, turn the payload into a neutral call, render the result."""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.adapters.slack import views
from bot.domain.model import CaseStatus, Lang, Severity
from bot.i18n import Translator
from bot.services import cases, home
from bot.services.accounts import channel_account
from bot.services.base import (
    AppContext,
    Denied,
    Refusal,
    audit_denial,
    record_event,
    resolve_actor,
)
from bot.services.messenger import Button
from handlers.core import Reply, Request, Router, Visibility, reply_lang

log = logging.getLogger(__name__)


async def _lang_for(ctx: AppContext, team_id: str, user_id: str, channel_id: str) -> Lang:
    """The reader's language, by the router's one rule (forms, buttons and errors too)."""
    actor = await resolve_actor(ctx, team_id, user_id)
    account = None if actor.is_staff else await channel_account(ctx, channel_id)
    return reply_lang(actor, account)


ACK_BUDGET = 2.0  # seconds of work before acking empty; Slack's limit is 3 s


async def body_lang(ctx: AppContext, body: dict[str, Any]) -> Lang:
    """The reader's language for any payload (commands, actions), English when unsure."""
    user = body.get("user_id") or (body.get("user") or {}).get("id")
    team = body.get("team_id") or (body.get("team") or {}).get("id")
    channel = body.get("channel_id") or (body.get("channel") or {}).get("id")
    if not user:
        return Lang.EN
    return await _lang_for(ctx, str(team or ""), str(user), str(channel or ""))


def register_commands(bolt: AsyncApp, ctx: AppContext, router: Router) -> None:
    async def on_command(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                         client: AsyncWebClient) -> None:
        root = str(body.get("command", "")).lstrip("/")
        metrics.COMMANDS.labels(root=root).inc()
        req = Request(root=root, text=str(body.get("text", "")), team_id=str(body["team_id"]),
                      channel_id=str(body["channel_id"]), user_id=str(body["user_id"]),
                      can_open_form="trigger_id" in body)
        # The work runs before the ack, so an acked command is a done command: a crash
        # cannot lose a case Slack already showed as accepted. Slow work falls back to an
        # empty ack and a reply through response_url.
        work = asyncio.ensure_future(router.dispatch(req, ctx))
        done, _ = await asyncio.wait({work}, timeout=ACK_BUDGET)
        if not done:
            await ack()
        reply = await work
        if reply.form is not None:
            if done:
                await ack()
            lang = await _lang_for(ctx, req.team_id, req.user_id, req.channel_id)
            regions = sorted(ctx.catalog.regions)
            view = views.open_case_modal(lang, req.channel_id, "", regions) \
                if reply.form.kind == "open_case" else \
                views.advisory_modal(lang, req.channel_id, regions)
            await client.views_open(trigger_id=body["trigger_id"], view=view)
            return
        if done:
            await ack(**reply_body(reply))
        else:
            await respond(**reply_body(reply), replace_original=False)

    for root in router.roots():
        bolt.command(f"/{root}")(on_command)


def reply_body(reply: Reply) -> dict[str, Any]:
    in_channel = reply.visibility is Visibility.CHANNEL
    return {"text": views.slack_text(reply.text)[:3900],
            "blocks": views.text_blocks(reply.text, reply.buttons),
            "response_type": "in_channel" if in_channel else "ephemeral"}


async def _run_command(ctx: AppContext, router: Router, command: str, team: str, user: str,
                       channel: str) -> Reply:
    """A button's command, dispatched exactly as if the clicking user had typed it."""
    root, _, rest = command.lstrip("/").partition(" ")
    if root not in router.roots():
        return Reply(Translator(Lang.EN)("error.unknown_command", root=root, word=""))
    req = Request(root=root, text=rest, team_id=team, channel_id=channel, user_id=user)
    return await router.dispatch(req, ctx)


def register_buttons(bolt: AsyncApp, ctx: AppContext, router: Router) -> None:
    @bolt.action(views.RUN_ACTION)
    async def on_run(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                     client: AsyncWebClient) -> None:
        await ack()
        button = _button(body)
        if button is None:
            return
        user = body["user"]["id"]
        reply = await _run_command(ctx, router, button.command, _team(body), user,
                                   _channel(body))
        await _answer(client, respond, body, user, reply)

    @bolt.action(views.RUN_ASK_ACTION)
    async def on_run_ask(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        button = _button(body)
        if button is not None:
            await client.views_open(trigger_id=body["trigger_id"],
                                    view=views.ask_modal(button, _channel(body)))

    @bolt.view(views.RUN_ASK_CALLBACK)
    async def on_ask_submit(ack: AsyncAck, body: dict[str, Any],
                            client: AsyncWebClient) -> None:
        await ack()
        view = body.get("view") or {}
        meta = json.loads(str(view.get("private_metadata") or "{}"))
        text = " ".join(views.modal_values(view).get("text", "").split())
        user = body["user"]["id"]
        reply = await _run_command(ctx, router, f"{meta.get('command', '')} {text}".strip(),
                                   _team(body), user, str(meta.get("channel", "")))
        await _answer(client, None, body, user, reply, str(meta.get("channel", "")))


def register_forms(bolt: AsyncApp, ctx: AppContext, router: Router) -> None:
    @bolt.view(views.ADVISORY_CALLBACK)
    async def on_advisory(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        """The form becomes the equivalent text command: previewed, with a Send button."""
        await ack()
        view = body.get("view") or {}
        v = views.modal_values(view)
        words = ["advisory", v.get("kind", ""), v.get("severity", ""), v.get("title", ""),
                 v.get("body", "")]
        words += [f"{name}={v[name]}" for name in ("regions", "products", "software",
                                                    "accounts") if v.get(name)]
        user, channel = body["user"]["id"], str(view.get("private_metadata") or "")
        reply = await _run_command(ctx, router, "/tam " + shlex.join(words), _team(body), user,
                                   channel)
        await _answer(client, None, body, user, reply, channel)


async def _answer(client: AsyncWebClient, respond: AsyncRespond | None, body: dict[str, Any],
                  user: str, reply: Reply, channel: str = "") -> None:
    """Reply to whoever clicked: in place when Slack gave a response_url, else ephemerally in
    the channel, else (the App Home has neither) by DM."""
    if respond is not None and body.get("response_url"):
        await respond(**reply_body(reply), replace_original=False)
        return
    message = {k: v for k, v in reply_body(reply).items() if k != "response_type"}
    if channel:
        await client.chat_postEphemeral(channel=channel, user=user, **message)
    else:
        await client.chat_postMessage(channel=user, **message)


def _button(body: dict[str, Any]) -> Button | None:
    try:
        data = json.loads(str(body["actions"][0].get("value", "")))
        return Button.from_dict({k: str(v) for k, v in data.items()})
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("a button with an unreadable value was ignored")
        return None


def _team(body: dict[str, Any]) -> str:
    return str((body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id", ""))


def _channel(body: dict[str, Any]) -> str:
    return str((body.get("channel") or {}).get("id") or
               (body.get("container") or {}).get("channel_id", ""))


def register_interactions(bolt: AsyncApp, ctx: AppContext) -> None:
    @bolt.view(views.OPEN_CASE_CALLBACK)
    async def on_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        view = body.get("view") or {}
        values = views.modal_values(view)
        user = body["user"]["id"]
        team = str((body.get("team") or {}).get("id") or body["user"].get("team_id", ""))
        channel = str(view.get("private_metadata") or "")
        lang = await _lang_for(ctx, team, user, channel)
        t = Translator(lang)
        severity = Severity.parse(values.get("severity", ""))
        if severity is None:
            await ack(response_action="errors", errors={"severity": t("form.pick_severity")})
            return
        actor = await resolve_actor(ctx, team, user)
        try:
            opened = await cases.open_case(ctx, actor, channel, severity,
                                           values.get("summary", ""),
                                           values.get("description", ""),
                                           values.get("region") or None,
                                           values.get("software") or None)
        except Refusal as refusal:
            block = {"case.summary_required": "summary", "case.summary_too_long": "summary",
                     "case.description_too_long": "description",
                     "account.bad_region": "region"}.get(refusal.msg_id)
            if block:
                await ack(response_action="errors", errors={block: refusal.render(t)})
                return
            await ack()
            await client.chat_postEphemeral(channel=channel, user=user,
                                            text=views.slack_text(refusal.render(t)))
            return
        await ack()
        lines = [t("case.opened_short", ref=opened.case.ref)]
        lines += [t(m, **p) for m, p in opened.notices]
        await client.chat_postEphemeral(channel=channel, user=user,
                                        text=views.slack_text("\n".join(lines)))

    @bolt.shortcut(views.OPEN_FROM_MESSAGE_SHORTCUT)
    async def on_message_shortcut(ack: AsyncAck, body: dict[str, Any],
                                  client: AsyncWebClient) -> None:
        await ack()
        channel = str((body.get("channel") or {}).get("id", ""))
        user = body["user"]["id"]
        team = str((body.get("team") or {}).get("id", ""))
        text = str((body.get("message") or {}).get("text", ""))
        await _open_form(ctx, client, body["trigger_id"], team, user, channel, text)

    @bolt.action(views.OPEN_FROM_REACTION_ACTION)
    async def on_reaction_button(ack: AsyncAck, body: dict[str, Any],
                                 client: AsyncWebClient) -> None:
        await ack()
        value = str(body["actions"][0].get("value", ""))
        channel, _, ts = value.partition("|")
        user = body["user"]["id"]
        team = str((body.get("team") or {}).get("id", ""))
        text = await _message_text(client, channel, ts)
        await _open_form(ctx, client, body["trigger_id"], team, user, channel, text)

    @bolt.action(views.ACK_ACTION)
    async def on_ack_button(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await _case_button(ctx, client, body, "ack")

    @bolt.action(views.CLOSE_ACTION)
    async def on_close_button(ack: AsyncAck, body: dict[str, Any],
                              client: AsyncWebClient) -> None:
        await ack()
        await _case_button(ctx, client, body, "close")


async def _message_text(client: AsyncWebClient, channel: str, ts: str) -> str:
    """The text of one message: top-level from the history, else a thread reply."""
    history = await client.conversations_history(channel=channel, latest=ts, oldest=ts,
                                                 inclusive=True, limit=1)
    for message in history.get("messages") or []:
        if message.get("ts") == ts:
            return str(message.get("text", ""))
    replies = await client.conversations_replies(channel=channel, ts=ts, inclusive=True,
                                                 latest=ts, limit=1)
    for message in replies.get("messages") or []:
        if message.get("ts") == ts:
            return str(message.get("text", ""))
    return ""


async def _open_form(ctx: AppContext, client: AsyncWebClient, trigger_id: str, team: str,
                     user: str, channel: str, text: str) -> None:
    lang = await _lang_for(ctx, team, user, channel)
    try:
        await cases.check_intake(ctx, channel)
    except Refusal as refusal:
        await client.chat_postEphemeral(channel=channel, user=user,
                                        text=refusal.render(Translator(lang)))
        return
    await client.views_open(trigger_id=trigger_id,
                            view=views.open_case_modal(lang, channel, text,
                                                       sorted(ctx.catalog.regions)))


async def _case_button(ctx: AppContext, client: AsyncWebClient, body: dict[str, Any],
                       what: str) -> None:
    """Acknowledge or close from the card. The case id in the button is never trusted alone:
    the case must belong to the account bound to the channel the click came from."""
    user = body["user"]["id"]
    team = str((body.get("team") or {}).get("id", ""))
    channel = str((body.get("channel") or {}).get("id", ""))
    lang = await _lang_for(ctx, team, user, channel)
    t = Translator(lang)
    actor = await resolve_actor(ctx, team, user)
    try:
        case_id = int(str(body["actions"][0].get("value", "")))
        account = await channel_account(ctx, channel)
        if account is None:
            raise Refusal("case.not_found")
        bound = account.key
        if what == "ack":
            await cases.get_case(ctx, case_id, bound)
            done = await cases.first_response(ctx, actor, case_id, via="button")
            msg = "case.acked_button" if done else "case.already_acked_short"
            text = t(msg)
        else:
            closed = await cases.finish(ctx, actor, case_id, scope_account=bound,
                                        status=CaseStatus.RESOLVED if actor.is_staff
                                        else CaseStatus.CLOSED)
            text = t("case.closed_ok", ref=closed.ref)
    except ValueError:
        text = t("case.not_found")
    except Refusal as refusal:
        if isinstance(refusal, Denied):
            await audit_denial(ctx, actor, refusal.action, refusal.reason,
                               account_key=refusal.account_key)
        text = refusal.render(t)
    if channel:
        await client.chat_postEphemeral(channel=channel, user=user, text=views.slack_text(text))


def register_events(bolt: AsyncApp, ctx: AppContext) -> None:
    @bolt.event("message")
    async def on_message(event: dict[str, Any], body: dict[str, Any]) -> None:
        # a staff reply in a case card's thread is the first response
        thread_ts = event.get("thread_ts")
        user = event.get("user")
        if not thread_ts or not user or event.get("bot_id") or \
                event.get("subtype") not in HUMAN_SUBTYPES:
            return
        case = await cases.case_by_card(ctx, str(event.get("channel")), str(thread_ts))
        if case is None:
            return
        actor = await resolve_actor(ctx, str(body.get("team_id", "")), str(user))
        if actor.is_staff:
            await cases.first_response(ctx, actor, case.id, via="thread",
                                       event_id=_event_id(body))

    @bolt.event("app_home_opened")
    async def on_home(event: dict[str, Any], body: dict[str, Any],
                      client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        data = await home.opened(ctx, str(body.get("team_id", "")), str(event["user"]))
        await client.views_publish(user_id=event["user"], view=views.home_view(data))

    @bolt.event("reaction_added")
    async def on_reaction(event: dict[str, Any], body: dict[str, Any],
                          client: AsyncWebClient) -> None:
        if event.get("reaction") != "ticket":
            return
        item = event.get("item") or {}
        channel, ts, user = str(item.get("channel", "")), str(item.get("ts", "")), event["user"]
        if await channel_account(ctx, channel) is None:
            return
        if not await record_event(ctx, _event_id(body)):
            return  # a retry of an offer already made
        lang = await _lang_for(ctx, str(body.get("team_id", "")), user, channel)
        await client.chat_postEphemeral(channel=channel, user=user,
                                        text=Translator(lang)("reaction.offer"),
                                        blocks=views.reaction_offer_blocks(lang, channel, ts))


HUMAN_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})


def _event_id(body: dict[str, Any]) -> str | None:
    return str(body["event_id"]) if body.get("event_id") else None


def well_formed(body: Any) -> bool:
    """The fields our listeners rely on, by request kind: anything else is a bad request."""
    if not isinstance(body, dict):
        return False
    if "ssl_check" in body:  # Slack's periodic certificate check: Bolt answers it
        return True

    def text(d: Any, *keys: str) -> bool:
        return isinstance(d, dict) and all(isinstance(d.get(k), str) and d[k] for k in keys)

    kind = body.get("type")
    if "command" in body:
        return text(body, "command", "team_id", "channel_id", "user_id") and \
            isinstance(body.get("text", ""), str)
    if kind == "event_callback":
        return text(body.get("event"), "type")
    if kind in ("url_verification", "app_rate_limited", "block_suggestion",
                "interactive_message"):
        return True  # no listener reads these: Bolt answers or ignores them
    if kind in ("block_actions", "view_submission", "view_closed", "message_action",
                "shortcut"):
        if not text(body.get("user"), "id"):
            return False
        if kind == "block_actions":
            actions = body.get("actions")
            return isinstance(actions, list) and bool(actions) and all(
                text(a, "action_id") for a in actions)
        if kind in ("view_submission", "view_closed"):
            return isinstance(body.get("view"), dict)
        return True
    return False


def register_middleware(bolt: AsyncApp, ctx: AppContext) -> None:
    @bolt.middleware
    async def screen(body: dict[str, Any], next: Any) -> BoltResponse | None:
        # no deduplication here: each event's work records its event_id in the inbox in its
        # own transaction, so a failed attempt leaves Slack's retry free to redo it
        metrics.REQUESTS.labels(kind=str(body.get("type", "command")) if isinstance(body, dict)
                                else "unknown").inc()
        if not well_formed(body):
            log.warning("a Slack request of an unexpected shape was refused")
            return BoltResponse(status=400, body="malformed payload")
        result: BoltResponse | None = await next()
        return result
