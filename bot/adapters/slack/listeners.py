"""Bolt listeners: ack first, turn the payload into a neutral call, render the result."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.adapters.slack import views
from bot.adapters.slack.failures import SLACK_FAILURES, describe_failure
from bot.domain.model import Lang, case_ref
from bot.i18n import Translator
from bot.messages import Button
from bot.services.base import AppContext
from handlers.core import Kind, Reply, Request, Router, Visibility

log = logging.getLogger(__name__)


ACK_BUDGET = 2.0  # seconds of work before acking empty; Slack's limit is 3 s


def _team(body: dict[str, Any]) -> str:
    return str(body.get("team_id") or (body.get("team") or {}).get("id") or
               (body.get("user") or {}).get("team_id", ""))


def _channel(body: dict[str, Any]) -> str:
    return str(body.get("channel_id") or (body.get("channel") or {}).get("id") or
               (body.get("container") or {}).get("channel_id", ""))


def _user(body: dict[str, Any]) -> str:
    return str(body.get("user_id") or (body.get("user") or {}).get("id") or "")


async def body_lang(router: Router, ctx: AppContext, body: dict[str, Any]) -> Lang:
    """The reader's language for any payload (the router's rule), English when unsure."""
    user = _user(body)
    if not user:
        return Lang.EN
    return await router.reader_lang(Request("", "", _team(body), _channel(body), user), ctx)


def reply_body(reply: Reply) -> dict[str, Any]:
    in_channel = reply.visibility is Visibility.CHANNEL
    return {"text": views.slack_text(reply.text)[:3900],
            "blocks": views.text_blocks(reply.text, reply.buttons),
            "response_type": "in_channel" if in_channel else "ephemeral"}


def _request(body: dict[str, Any], command: str, kind: Kind, channel: str | None = None,
             **extra: Any) -> Request:
    """A button's, form's or shortcut's command as a request of whoever clicked, where."""
    root, _, rest = command.strip().lstrip("/").partition(" ")
    return Request(root=root, text=rest, team_id=_team(body), user_id=_user(body),
                   channel_id=_channel(body) if channel is None else channel, kind=kind,
                   **extra)


# commands whose work outlived the ack budget: finished (and answered) in the background
_LATE: set[asyncio.Task[None]] = set()


def register_commands(bolt: AsyncApp, ctx: AppContext, router: Router) -> None:
    """Slash commands. On an app with `process_before_response` (the HTTP server's), Slack
    gets its answer as soon as the listener returns, with no 10 ms ack poll: the listener
    returns once the command is done, or once it has acked empty after `ACK_BUDGET` and left
    the rest to a background task that replies through response_url."""
    inline = bolt.process_before_response

    async def on_command(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                         client: AsyncWebClient, context: AsyncBoltContext
                         ) -> BoltResponse | None:
        root = str(body.get("command", "")).lstrip("/")
        metrics.COMMANDS.labels(root=root).inc()
        req = Request(root=root, text=views.neutral_text(str(body.get("text", ""))),
                      team_id=str(body["team_id"]),
                      channel_id=str(body["channel_id"]), user_id=str(body["user_id"]),
                      can_open_form="trigger_id" in body, event_id=context.get("replay_key"))
        # The work runs before the ack, so an acked command is a done command: a crash
        # cannot lose a case Slack already showed as accepted. Slow work falls back to an
        # empty ack and a reply through response_url.
        work = asyncio.ensure_future(router.dispatch(req, ctx))
        done, _ = await asyncio.wait({work}, timeout=ACK_BUDGET)
        if not done:
            await ack()
            late = asyncio.create_task(_finish_late(ctx, router, client, body, req, work,
                                                    respond))
            _LATE.add(late)
            late.add_done_callback(_LATE.discard)
            return None
        reply = work.result()
        if reply.replayed and inline:
            # the same signed request again (seen by the router, in its transaction)
            log.warning("replayed Slack request rejected")
            return BoltResponse(status=401, body=json.dumps({"error": "replayed request"}),
                                headers={"content-type": ["application/json"]})
        if reply.form is not None:
            await ack()
            if not inline:
                await _open_form(ctx, router, client, body, req, reply)
                return None
            # Slack gets its answer now; the form opens (views.open) right after
            late = asyncio.create_task(_finish_late(ctx, router, client, body, req, work,
                                                    respond))
            _LATE.add(late)
            late.add_done_callback(_LATE.discard)
            return None
        await ack(**reply_body(reply))
        return None

    for root in router.roots():
        bolt.command(f"/{root}")(on_command)


async def _finish_late(ctx: AppContext, router: Router, client: AsyncWebClient,
                       body: dict[str, Any], req: Request, work: asyncio.Future[Reply],
                       respond: AsyncRespond) -> None:
    """After the ack: the reply of a command whose work took longer than the ack budget, or
    the form a command asks for. A failure is logged and the user told, as Bolt's error
    handler would."""
    try:
        reply = await work
        if reply.form is not None:
            await _open_form(ctx, router, client, body, req, reply)
        else:
            await respond(**reply_body(reply), replace_original=False)
    except Exception as exc:
        if isinstance(exc, SLACK_FAILURES):
            # the failed Web API call was logged with its method by the client
            if not getattr(exc, "supportbot_logged", False):
                log.warning("a Slack command reply failed: %s", describe_failure(exc))
        else:
            log.exception("unhandled error in a Slack command")
        try:
            lang = await router.reader_lang(req, ctx)
            await respond(text=Translator(lang)("error.internal"), response_type="ephemeral",
                          replace_original=False)
        except Exception:
            log.warning("could not tell the user about the error", exc_info=True)


async def _open_form(ctx: AppContext, router: Router, client: AsyncWebClient,
                     body: dict[str, Any], req: Request, reply: Reply) -> None:
    """Open the form a reply asks for, in the reader's language."""
    assert reply.form is not None
    lang = await router.reader_lang(req, ctx)
    regions = sorted(ctx.catalog.regions)
    if reply.form.kind == "advisory":
        view = views.advisory_modal(lang, req.channel_id, regions,
                                    description=reply.form.description)
    elif reply.form.kind == "incident":
        view = views.incident_modal(lang, req.channel_id, regions)
    else:
        view = views.open_case_modal(lang, req.channel_id,
                                     reply.form.prefill.get("message", ""), regions,
                                     description=reply.form.description)
    await client.views_open(trigger_id=body["trigger_id"], view=view)


def register_buttons(bolt: AsyncApp, ctx: AppContext, router: Router) -> None:
    @bolt.action(views.RUN_ACTION)
    async def on_run(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                     client: AsyncWebClient) -> None:
        await ack()
        button = _button(body)
        if button is not None:
            reply = await router.dispatch(_request(body, button.command, Kind.BUTTON), ctx)
            await _answer(client, respond, body, reply)

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
        channel = str(meta.get("channel", ""))
        req = _request(body, f"{meta.get('command', '')} {text}", Kind.BUTTON, channel)
        await _answer(client, None, body, await router.dispatch(req, ctx), channel)

    # cards posted before buttons became commands carry the case id: same commands
    @bolt.action(views.ACK_ACTION)
    async def on_ack_button(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await _card_button(ctx, router, client, body, "ack")

    @bolt.action(views.CLOSE_ACTION)
    async def on_close_button(ack: AsyncAck, body: dict[str, Any],
                              client: AsyncWebClient) -> None:
        await ack()
        await _card_button(ctx, router, client, body, "close")


async def _card_button(ctx: AppContext, router: Router, client: AsyncWebClient,
                       body: dict[str, Any], what: str) -> None:
    value = str(body["actions"][0].get("value", ""))
    ref = case_ref(int(value)) if value.isascii() and value.isdecimal() else value
    reply = await router.dispatch(_request(body, f"support card {what} {ref}", Kind.BUTTON),
                                  ctx)
    channel = _channel(body)
    if channel:
        await client.chat_postEphemeral(channel=channel, user=_user(body),
                                        text=views.slack_text(reply.text))


def register_forms(bolt: AsyncApp, ctx: AppContext, router: Router) -> None:
    @bolt.view(views.ADVISORY_CALLBACK)
    async def on_advisory(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        """Previewed like the text command, with a Send button."""
        await ack()
        view = body.get("view") or {}
        channel = str(view.get("private_metadata") or "")
        req = _request(body, "tam advisory", Kind.FORM, channel,
                       fields=views.modal_values(view))
        await _answer(client, None, body, await router.dispatch(req, ctx), channel)

    @bolt.view(views.INCIDENT_CALLBACK)
    async def on_incident(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        """Declared like the text command; a field at fault is shown on the form."""
        done = await _submit(ack, body, "tam incident declare", router, ctx)
        if done is not None:
            reply, channel = done
            await _answer(client, None, body, reply, channel)

    @bolt.view(views.OPEN_CASE_CALLBACK)
    async def on_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        done = await _submit(ack, body, "support open-form", router, ctx)
        if done is not None:
            reply, channel = done
            await client.chat_postEphemeral(channel=channel, user=_user(body),
                                            text=views.slack_text(reply.text))


async def _submit(ack: AsyncAck, body: dict[str, Any], root: str, router: Router,
                  ctx: AppContext) -> tuple[Reply, str] | None:
    """Run a submitted form as the command `root` (the channel it was opened from rides in
    the view's private_metadata). Fields at fault are shown on the form (None); otherwise
    the form closes and the reply and channel are returned."""
    view = body.get("view") or {}
    channel = str(view.get("private_metadata") or "")
    req = _request(body, root, Kind.FORM, channel, fields=views.modal_values(view))
    reply = await router.dispatch(req, ctx)
    if reply.field_errors:
        await ack(response_action="errors",
                  errors={k: views.slack_text(v) for k, v in reply.field_errors.items()})
        return None
    await ack()
    return reply, channel


async def _answer(client: AsyncWebClient, respond: AsyncRespond | None, body: dict[str, Any],
                  reply: Reply, channel: str = "") -> None:
    """Reply to whoever clicked: in place when Slack gave a response_url, else ephemerally in
    the channel, else (the App Home has neither) by DM."""
    if reply.silent:
        return
    if respond is not None and body.get("response_url"):
        await respond(**reply_body(reply), replace_original=False)
        return
    message = {k: v for k, v in reply_body(reply).items() if k != "response_type"}
    if channel:
        await client.chat_postEphemeral(channel=channel, user=_user(body), **message)
    else:
        await client.chat_postMessage(channel=_user(body), **message)


def _button(body: dict[str, Any]) -> Button | None:
    try:
        data = json.loads(str(body["actions"][0].get("value", "")))
        return Button.from_dict({k: str(v) for k, v in data.items()})
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("a button with an unreadable value was ignored")
        return None


def register_interactions(bolt: AsyncApp, ctx: AppContext, router: Router) -> None:
    async def intake(body: dict[str, Any], client: AsyncWebClient, channel: str,
                     text: str) -> None:
        req = _request(body, "support", Kind.INTAKE, channel, fields={"message": text})
        reply = await router.dispatch(req, ctx)
        if reply.form is not None:
            await _open_form(ctx, router, client, body, req, reply)
        elif not reply.silent:
            await client.chat_postEphemeral(channel=channel, user=_user(body),
                                            text=views.slack_text(reply.text))

    @bolt.shortcut(views.OPEN_FROM_MESSAGE_SHORTCUT)
    async def on_message_shortcut(ack: AsyncAck, body: dict[str, Any],
                                  client: AsyncWebClient) -> None:
        await ack()
        await intake(body, client, _channel(body),
                     views.neutral_text(str((body.get("message") or {}).get("text", ""))))

    @bolt.action(views.OPEN_FROM_REACTION_ACTION)
    async def on_reaction_button(ack: AsyncAck, body: dict[str, Any],
                                 client: AsyncWebClient) -> None:
        await ack()
        channel, _, ts = str(body["actions"][0].get("value", "")).partition("|")
        await intake(body, client, channel,
                     views.neutral_text(await _message_text(client, channel, ts)))


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


def register_events(bolt: AsyncApp, ctx: AppContext, router: Router) -> None:
    @bolt.event("message")
    async def on_message(event: dict[str, Any], body: dict[str, Any]) -> None:
        thread_ts, user = event.get("thread_ts"), event.get("user")
        if not thread_ts or not user or event.get("bot_id") or \
                event.get("subtype") not in HUMAN_SUBTYPES:
            return
        await router.dispatch(Request(
            root="", text="", team_id=str(body.get("team_id", "")), user_id=str(user),
            channel_id=str(event.get("channel", "")), kind=Kind.THREAD_REPLY,
            thread_id=str(thread_ts), event_id=_event_id(body)), ctx)

    @bolt.event("app_home_opened")
    async def on_home(event: dict[str, Any], body: dict[str, Any],
                      client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        reply = await router.dispatch(Request(
            root="", text="", team_id=str(body.get("team_id", "")), user_id=str(event["user"]),
            channel_id="", kind=Kind.HOME), ctx)
        await client.views_publish(user_id=event["user"],
                                   view=views.home_view(reply.as_message()))

    @bolt.event("reaction_added")
    async def on_reaction(event: dict[str, Any], body: dict[str, Any],
                          client: AsyncWebClient) -> None:
        if event.get("reaction") != "ticket":
            return
        item = event.get("item") or {}
        channel, ts, user = str(item.get("channel", "")), str(item.get("ts", "")), event["user"]
        req = Request(root="", text="", team_id=str(body.get("team_id", "")), user_id=user,
                      channel_id=channel, kind=Kind.REACTION, event_id=_event_id(body))
        reply = await router.dispatch(req, ctx)
        if reply.form is not None:  # the offer: a button that opens the form for the message
            lang = await router.reader_lang(req, ctx)
            await client.chat_postEphemeral(channel=channel, user=user,
                                            text=views.slack_text(reply.text),
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
