"""WeCom's ways in: the intelligent robot's callback, `GET/POST /wecom/callback`, and the
self-built app's, `GET/POST /wecom/app/callback` (clicks on its template cards, messages
members send to the app).

GET is the URL check (verify, decrypt, answer the echostr plaintext). POST is a message: its
signature is checked, it is decrypted, and a group text that @-mentions the robot becomes a
command: `@supportbot open S2 …` is `/support open S2 …`, `@supportbot tam ack CS-1001` is
`/tam ack CS-1001`. The work is done before the POST is answered (within a budget, as for
Slack); the reply goes to the callback's `response_url` (usable once, for an hour), which
the whole group sees: WeCom has no reply only one member sees. A staff member's message
that starts with a case reference (`@supportbot CS-1001 looking at it now`) is a reply on
that case, as a reply in a Slack card's thread: the first response.

The app's callback is XML (receive id: the corp id). A click on a card's button runs the
command its key holds, as the member who clicked; a text to the app is a command as typed in
a group. The clicked card is then updated (its buttons greyed out) and the reply comes as an
application message. Both callbacks refuse a timestamp further than
`WECOM_CALLBACK_MAX_AGE` seconds from now, before anything is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from xml.etree import ElementTree

import aiohttp
from aiohttp import web

from bot import metrics
from bot.adapters.wecom import render
from bot.adapters.wecom.crypto import (
    CallbackCrypto,
    CallbackError,
    encrypted_from_json,
    encrypted_from_xml,
)
from bot.adapters.wecom.messenger import DM_PREFIX, WeComMessenger
from bot.domain.model import parse_case_ref
from bot.i18n import Translator
from bot.services.base import AppContext, seen_event
from bot.services.messenger import DeliveryError
from handlers.core import Kind, Reply, Request, Router

log = logging.getLogger(__name__)

ACK_BUDGET = 2.0  # seconds of work before answering the POST empty and replying later
ROOTS = ("support", "tam")
# the robot's own @mention (and any others) in front of the command
LEADING_MENTIONS = re.compile(r"^(?:\s*@\S+)+\s*")
CALLBACK_KEY: web.AppKey[WeComCallback] = web.AppKey("wecom_callback")
APP_CALLBACK_KEY: web.AppKey[WeComAppCallback] = web.AppKey("wecom_app_callback")
STALE = "stale timestamp"  # the reason logged for a callback too far from now


def fresh(timestamp: str, max_age: float, now: float) -> bool:
    """Whether a callback's timestamp (UNIX seconds, as text) is within `max_age` seconds
    of now, either way. WeCom documents no window (only that a nonce does not repeat within
    two hours): this one is ours, so that a recorded callback cannot be played back later."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    return abs(now - int(timestamp)) <= max_age


def command_of(content: str) -> tuple[str, str]:
    """(root, text) of a message mentioning the robot: leading mentions go, a first word
    `tam` (or `/tam`) names the staff root, anything else is `support`."""
    words = LEADING_MENTIONS.sub("", content.strip(), count=1).strip()
    first, _, rest = words.partition(" ")
    root = first.lstrip("/").lower()
    if root in ROOTS:
        return root, rest.strip()
    return "support", words


def event_id(msgid: str) -> str:
    """The inbox key of a callback: its msgid, qualified (hashed if it would not fit)."""
    key = "wecom:" + msgid
    if len(key) > 64:
        key = "wecom:" + hashlib.sha256(msgid.encode("utf-8")).hexdigest()[:40]
    return key


class _Callback:
    """What both callbacks share: the URL check, the duplicate check, and the command's work
    run (within ACK_BUDGET) before the POST is answered, its reply going later."""

    label = "WeCom"  # names the callback in log lines
    ctx: AppContext
    router: Router
    crypto: CallbackCrypto
    inflight: set[str]
    tasks: set[asyncio.Task[None]]

    async def verify(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            plain = self.crypto.verify_url(q.get("msg_signature", ""), q.get("timestamp", ""),
                                           q.get("nonce", ""), q.get("echostr", ""))
        except CallbackError as exc:
            log.warning("%s URL verification refused: %s", self.label, exc.reason)
            return web.Response(status=401, text="")
        return web.Response(text=plain)

    async def _dispatch(self, req: Request,
                        answer: Callable[[asyncio.Future[Reply]], Awaitable[None]]
                        ) -> bool | None:
        """Start a command's work unless its event is a duplicate (None); wait for it up to
        ACK_BUDGET, then leave `answer` to send its reply. True when the work is done."""
        assert req.event_id is not None
        if req.event_id in self.inflight or await seen_event(self.ctx, req.event_id):
            # WeCom delivers again when unsure: the first delivery did (or does) the work
            log.info("duplicate %s callback ignored", self.label)
            metrics.DUPLICATE_EVENTS.inc()
            return None
        self.inflight.add(req.event_id)
        metrics.COMMANDS.labels(root=req.root).inc()
        work = asyncio.ensure_future(self._work(req))
        done, _ = await asyncio.wait({work}, timeout=ACK_BUDGET)
        task = asyncio.ensure_future(answer(work))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return bool(done)

    async def _work(self, req: Request) -> Reply:
        try:
            return await self.router.dispatch(req, self.ctx)
        except Exception:
            log.exception("unhandled error in a %s command", self.label)
            lang = await self.router.reader_lang(req, self.ctx)
            return Reply(Translator(lang)("error.internal"), refused=True)
        finally:
            assert req.event_id is not None
            self.inflight.discard(req.event_id)


class WeComCallback(_Callback):
    """The robot's callback handler, with the HTTP session that answers to response_url."""

    def __init__(self, ctx: AppContext, router: Router) -> None:
        s = ctx.settings
        assert s.wecom_token and s.wecom_encoding_aes_key
        self.ctx = ctx
        self.router = router
        # an enterprise-internal robot's plaintexts end with an empty receive id (101033)
        self.crypto = CallbackCrypto(s.wecom_token, s.wecom_encoding_aes_key, "")
        self.corp = render.qualify(s.wecom_corp_id or "")
        self.inflight: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self.wall: Callable[[], float] = time.time  # the real clock, as WeCom's timestamps

    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            timeout = aiohttp.ClientTimeout(total=self.ctx.settings.slack_timeout_seconds)
            self._http = aiohttp.ClientSession(timeout=timeout)
        return self._http

    async def close(self) -> None:
        """Let replies under way finish, then close the session."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=10)
        if self._http is not None:
            await self._http.close()

    def _params(self, request: web.Request) -> tuple[str, str, str]:
        q = request.query
        return q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", "")

    async def receive(self, request: web.Request) -> web.Response:
        sig, ts, nonce = self._params(request)
        if not fresh(ts, self.ctx.settings.wecom_callback_max_age, self.wall()):
            log.warning("WeCom callback refused: %s", STALE)
            return web.Response(status=401, text="")
        try:
            encrypted = encrypted_from_json(await request.read())
            plaintext = self.crypto.decrypt(sig, ts, nonce, encrypted)
        except CallbackError as exc:
            log.warning("WeCom callback refused: %s", exc.reason)
            status = 401 if exc.reason == CallbackError.BAD_SIGNATURE else 400
            return web.Response(status=status, text="")
        try:
            body = json.loads(plaintext)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            log.warning("WeCom callback refused: not a JSON object")
            return web.Response(status=400, text="")
        metrics.REQUESTS.labels(kind="wecom_" + str(body.get("msgtype", "unknown"))[:20]).inc()
        req = self.request(body)
        if req is None:
            return web.Response(text="")  # nothing for the bot (an event, an image, …)
        # the work runs before the answer, so an answered message is a done one; slow work
        # carries on and replies when done
        response_url = str(body.get("response_url") or "")
        if await self._dispatch(req, lambda work: self._answer(work, req, response_url)):
            await asyncio.sleep(0)  # let the reply start before the answer goes
        return web.Response(text="")

    def request(self, body: dict[str, Any]) -> Request | None:
        """The command a callback carries, or None when it carries none."""
        if body.get("msgtype") != "text":
            return None
        sender = body.get("from")
        content = (body.get("text") or {}).get("content") if isinstance(body.get("text"),
                                                                        dict) else None
        msgid = body.get("msgid")
        if not isinstance(sender, dict) or not isinstance(content, str) or \
                not isinstance(msgid, str) or not msgid or not sender.get("userid"):
            log.warning("WeCom text callback of an unexpected shape ignored")
            return None
        user = render.qualify(str(sender["userid"]))
        if body.get("chattype") == "group" and body.get("chatid"):
            channel = render.qualify(str(body["chatid"]))
        else:  # a direct chat with the robot: no group, so no account
            channel = render.qualify("dm:" + str(sender["userid"]))
        corp = str(sender.get("corpid") or "")
        team = render.qualify(corp) if corp else self.corp
        root, text = command_of(content)
        first, _, rest = text.partition(" ")
        if root == "support" and parse_case_ref(first) is not None:
            # WeCom has no threads: a message naming a case first is a reply on it
            return Request(root="", text=rest.strip(), team_id=team, channel_id=channel,
                           user_id=user, kind=Kind.THREAD_REPLY, fields={"case": first},
                           event_id=event_id(msgid))
        return Request(root=root, text=text, team_id=team, channel_id=channel, user_id=user,
                       event_id=event_id(msgid))

    async def _answer(self, work: asyncio.Future[Reply], req: Request,
                      response_url: str) -> None:
        reply = await work
        if reply.silent or not response_url:
            return
        content = render.markdown(reply.as_message(), self.ctx.settings.wecom_bot_name)
        try:
            async with self.http().post(response_url, json={
                    "msgtype": "markdown", "markdown": {"content": content}}) as resp:
                data: Any = await resp.json(content_type=None) if resp.status < 400 else None
                if resp.status >= 400:
                    log.warning("WeCom response_url post failed: HTTP %s", resp.status)
                elif isinstance(data, dict) and data.get("errcode"):
                    log.warning("WeCom response_url post failed: errcode %s",
                                data.get("errcode"))
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            # never str(exc): the URL carries the response code
            log.warning("WeCom response_url post failed: %s", type(exc).__name__)


def xml_fields(plaintext: str) -> dict[str, str]:
    """The top-level elements of a decrypted app callback (`<xml><MsgType>…`), as text."""
    if "<!DOCTYPE" in plaintext.upper() or "<!ENTITY" in plaintext.upper():
        raise CallbackError(CallbackError.BAD_BODY)
    try:
        root = ElementTree.fromstring(plaintext)
    except ElementTree.ParseError:
        raise CallbackError(CallbackError.BAD_BODY) from None
    if root.tag != "xml":
        raise CallbackError(CallbackError.BAD_BODY)
    return {child.tag: (child.text or "").strip() for child in root}


class WeComAppCallback(_Callback):
    """The self-built app's callback (接收消息, XML): clicks on its template cards and texts
    members send to the app, each a command run as that member."""

    label = "WeCom app"

    def __init__(self, ctx: AppContext, router: Router,
                 messenger: WeComMessenger | None = None) -> None:
        s = ctx.settings
        assert s.wecom_app_token and s.wecom_app_encoding_aes_key and s.wecom_corp_id
        self.ctx = ctx
        self.router = router
        # a self-built app's plaintexts end with the corp id (91144)
        self.crypto = CallbackCrypto(s.wecom_app_token, s.wecom_app_encoding_aes_key,
                                     s.wecom_corp_id)
        self.corp = render.qualify(s.wecom_corp_id)

        async def no_address(_: str) -> str | None:
            return None

        self.messenger = messenger or WeComMessenger(s, no_address)
        self.inflight: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.wall: Callable[[], float] = time.time

    async def close(self) -> None:
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=10)
        await self.messenger.close()

    async def receive(self, request: web.Request) -> web.Response:
        q = request.query
        ts = q.get("timestamp", "")
        if not fresh(ts, self.ctx.settings.wecom_callback_max_age, self.wall()):
            log.warning("WeCom app callback refused: %s", STALE)
            return web.Response(status=401, text="")
        try:
            encrypted = encrypted_from_xml(await request.read())
            fields = xml_fields(self.crypto.decrypt(q.get("msg_signature", ""), ts,
                                                    q.get("nonce", ""), encrypted))
        except CallbackError as exc:
            log.warning("WeCom app callback refused: %s", exc.reason)
            status = 401 if exc.reason in (CallbackError.BAD_SIGNATURE,
                                           CallbackError.WRONG_RECEIVE_ID) else 400
            return web.Response(status=status, text="")
        kind = fields.get("Event") if fields.get("MsgType") == "event" else \
            fields.get("MsgType")
        metrics.REQUESTS.labels(kind="wecom_app_" + str(kind or "unknown")[:20]).inc()
        if fields.get("AgentID") and fields["AgentID"] != str(self.ctx.settings.wecom_agent_id):
            log.warning("WeCom app callback for another agent ignored")
            return web.Response(text="")
        req = self.request(fields)
        if req is None:
            return web.Response(text="")  # nothing for the bot (entering the app, …)
        # the work runs before the answer (WeCom waits 5 s, then calls again); an empty
        # answer means "no passive reply": the reply goes as an application message
        response_code = fields.get("ResponseCode", "")
        if await self._dispatch(req, lambda work: self._answer(work, req, response_code)) \
                is not None:
            await asyncio.sleep(0)
        return web.Response(text="")

    def request(self, fields: dict[str, str]) -> Request | None:
        """The command a callback carries: a card click's key, or a text to the app."""
        user = fields.get("FromUserName", "")
        if not user:
            return None
        channel, member = DM_PREFIX + user, render.qualify(user)
        if fields.get("MsgType") == "event" and fields.get("Event") == "template_card_event":
            root, _, text = fields.get("EventKey", "").strip().lstrip("/").partition(" ")
            if root not in ROOTS:
                log.warning("WeCom card click with an unknown key ignored")
                return None
            # the same click delivered again has the same member, time and card (90240)
            once = f"app:{user}:{fields.get('CreateTime', '')}:{fields.get('TaskId', '')}"
            return Request(root=root, text=text.strip(), team_id=self.corp,
                           channel_id=channel, user_id=member, kind=Kind.BUTTON,
                           event_id=event_id(once))
        if fields.get("MsgType") == "text" and fields.get("MsgId"):
            root, text = command_of(fields.get("Content", ""))
            return Request(root=root, text=text, team_id=self.corp, channel_id=channel,
                           user_id=member, event_id=event_id("app:" + fields["MsgId"]))
        return None

    async def _answer(self, work: asyncio.Future[Reply], req: Request,
                      response_code: str) -> None:
        reply = await work
        try:
            if req.kind is Kind.BUTTON and response_code and not reply.refused:
                # done: grey the card's buttons out, so nobody clicks it again
                t = Translator(await self.router.reader_lang(req, self.ctx))
                await self.messenger.update_card(req.user_id, response_code,
                                                 t("wecom.card_done"))
            if not reply.silent:  # a reply with buttons (a quote to confirm) is a card
                await self.messenger.post(DM_PREFIX + render.unqualify(req.user_id),
                                          reply.as_message())
        except DeliveryError as exc:  # logged by the messenger, without the token
            log.warning("WeCom app reply not delivered: %s", exc.reason)


def add_routes(webapp: web.Application, ctx: AppContext, router: Router) -> WeComCallback:
    """Serve the robot's callback (and the app's, when configured) on the bot's one aiohttp
    server."""
    callback = WeComCallback(ctx, router)
    webapp[CALLBACK_KEY] = callback
    webapp.router.add_get("/wecom/callback", callback.verify)
    webapp.router.add_post("/wecom/callback", callback.receive)
    app_callback = WeComAppCallback(ctx, router) if ctx.settings.wecom_app_callback else None
    if app_callback is not None:
        webapp[APP_CALLBACK_KEY] = app_callback
        webapp.router.add_get("/wecom/app/callback", app_callback.verify)
        webapp.router.add_post("/wecom/app/callback", app_callback.receive)

    async def closing(_: web.Application) -> None:
        with contextlib.suppress(Exception):
            await callback.close()
        if app_callback is not None:
            with contextlib.suppress(Exception):
                await app_callback.close()

    webapp.on_cleanup.append(closing)
    return callback
