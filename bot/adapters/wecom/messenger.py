"""The WeCom `Messenger`: group posts through each group's push webhook, staff DMs through
the self-built app's application messages (a message with buttons as a button template card,
when the app has a callback for the clicks); failures sorted for the outbox's retries. Both
are paced to WeCom's documented limits before WeCom has to say "too fast".

What WeCom cannot do is said plainly: no message history (`find` returns None, so a crash
between a send and its commit may repeat a group message), no edits (`update` posts a new
message marked as an update), no App Home (`publish_home` does nothing).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.adapters.http import TRANSPORT_ERRORS, JsonApiClient
from bot.adapters.wecom import render
from bot.config import Settings
from bot.messages import Message
from bot.pacing import Window
from bot.services.messenger import DeliveryError, Posted

log = logging.getLogger(__name__)

DM_PREFIX = render.PREFIX + "dm:"  # the core's "DM channel" of a WeCom user
RATE_LIMITED = frozenset({45009, 130101})  # API frequency limit; webhook "send too fast"
RATE_RETRY_AFTER = 60.0
TOKEN_INVALID = frozenset({40014, 42001})  # invalid / expired access_token: fetch a new one
# errors that retrying cannot fix: a wrong webhook key, user, app or content
PERMANENT = frozenset({93000, 93004, 40003, 81013, 40058, 40001, 40013, 40056, 40008,
                       60020, 301002})
WEBHOOK_PER_MINUTE = 20  # the push webhook's documented limit per robot
# application messages: at most 30 a minute and 1000 an hour to one member, beyond which
# WeCom drops them silently ("超过部分会被丢弃不下发", 90236)
MEMBER_LIMITS = ((30, 60.0), (1000, 3600.0))


def webhook_key(address: str) -> str:
    """The key of a push webhook, given its URL (`…/webhook/send?key=K`) or the key itself."""
    address = address.strip()
    if "://" in address or "?" in address:
        keys = parse_qs(urlsplit(address).query).get("key") or []
        return keys[0] if keys else ""
    return address


class WeComMessenger(JsonApiClient):
    platform = "WeCom"

    def __init__(self, settings: Settings, address_of: Callable[[str], Awaitable[str | None]],
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.api = settings.wecom_api_url
        self.address_of = address_of
        self.clock = clock
        self._token: str | None = None
        self._token_expires = 0.0
        # counted on self.clock at each call, so a test may swap the clock afterwards
        self._webhooks = Window(((WEBHOOK_PER_MINUTE, 60.0),), lambda: self.clock())
        self._members = Window(MEMBER_LIMITS, lambda: self.clock())

    async def _call(self, method: str, path: str, params: dict[str, str],
                    body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One API call: the JSON answer when errcode is 0, else a DeliveryError. The URL
        carries a credential (webhook key or access token): it is never logged."""
        try:
            if body is None:
                resp_cm = self._http().get(self.api + path, params=params)
            else:
                resp_cm = self._http().post(self.api + path, params=params, json=body)
            async with resp_cm as resp:
                if resp.status >= 400:
                    log.warning("WeCom %s failed: HTTP %s", method, resp.status)
                    raise DeliveryError(f"{method}: HTTP {resp.status}")
                data = await resp.json(content_type=None)
        except TRANSPORT_ERRORS as exc:
            raise self._unreachable(method, exc) from exc
        data = self._json_object(method, data)
        code = int(data.get("errcode", 0) or 0)
        if code == 0:
            return data
        log.warning("WeCom %s failed: errcode %s", method, code)
        if code in RATE_LIMITED:
            raise DeliveryError(f"{method}: errcode {code} (rate limited)",
                                retry_after=RATE_RETRY_AFTER, per_channel=True)
        if code in TOKEN_INVALID:
            self._token = None
        raise DeliveryError(f"{method}: errcode {code}", permanent=code in PERMANENT)

    # --- group posts: the push webhook

    async def _webhook_key(self, channel: str) -> str:
        address = await self.address_of(channel)
        key = webhook_key(address) if address else ""
        if not key:
            raise DeliveryError("webhook/send: no push webhook stored for this group (link it "
                                "again with webhook=)", permanent=True)
        return key

    def _take_slot(self, key: str) -> None:
        """At most 20 messages a minute per webhook, counted here so that WeCom never has to
        say "too fast" (which may block the robot for minutes)."""
        wait = self._webhooks.take(key)
        if wait > 0:
            raise DeliveryError("webhook/send: paced (20 a minute)",
                                retry_after=max(0.1, wait), per_channel=True)

    async def _webhook(self, channel: str, body: dict[str, Any]) -> None:
        key = await self._webhook_key(channel)
        self._take_slot(key)
        await self._call("webhook/send", "webhook/send", {"key": key}, body)

    # --- staff DMs: application messages

    async def _access_token(self) -> str:
        if self._token is not None and self.clock() < self._token_expires:
            return self._token
        data = await self._call("gettoken", "gettoken",
                                {"corpid": self.settings.wecom_corp_id or "",
                                 "corpsecret": self.settings.wecom_secret or ""})
        token = str(data.get("access_token") or "")
        if not token:
            raise DeliveryError("gettoken: no access_token")
        # renew a minute early, so a token never expires between the check and the call
        self._token = token
        self._token_expires = self.clock() + max(60.0, float(data.get("expires_in", 7200)) - 60)
        return token

    async def _app_message(self, user: str, body: dict[str, Any]) -> dict[str, Any]:
        wait = self._members.take(user)
        if wait > 0:  # the member's own limit: only messages to them wait
            raise DeliveryError("message/send: paced (30 a minute, 1000 an hour per member)",
                                retry_after=max(0.1, wait), per_channel=True)
        token = await self._access_token()
        data = await self._call("message/send", "message/send", {"access_token": token}, {
            "touser": user, "agentid": self.settings.wecom_agent_id,
            "enable_duplicate_check": 1, "duplicate_check_interval": 1800, **body})
        if data.get("invaliduser"):
            log.warning("WeCom message/send failed: invalid user")
            raise DeliveryError("message/send: invalid user", permanent=True)
        return data

    async def update_card(self, user_id: str, response_code: str, replace_name: str) -> None:
        """After a click: the card's buttons become one greyed-out button reading
        `replace_name` (update_template_card, 94945; a response code works once, 72 h)."""
        token = await self._access_token()
        await self._call("update_template_card", "message/update_template_card",
                         {"access_token": token}, {
                             "userids": [render.unqualify(user_id)],
                             "agentid": self.settings.wecom_agent_id,
                             "response_code": response_code,
                             "button": {"replace_name": replace_name}})

    # --- the port

    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None,
                   key: str | None = None) -> Posted:
        # WeCom has no threads: a thread reply is a message in the group
        if channel.startswith(DM_PREFIX) and self.settings.wecom_app_callback:
            # clicks call back to the app, so its messages may carry buttons (a card
            # needs a callback URL on the app: "没有配置回调接口的应用不可发送支持回调的卡片")
            task_id = render.new_task_id()
            card = render.template_card(message, self.settings.wecom_bot_name, task_id)
            if card is not None:
                await self._app_message(channel[len(DM_PREFIX):], {
                    "msgtype": "template_card", "template_card": card})
                return Posted(channel=channel, ts=task_id)
        await self._send(channel, render.markdown(message, self.settings.wecom_bot_name))
        return Posted(channel=channel, ts=uuid.uuid4().hex[:24])

    async def _send(self, channel: str, content: str) -> None:
        body = {"msgtype": "markdown", "markdown": {"content": content}}
        if channel.startswith(DM_PREFIX):
            await self._app_message(channel[len(DM_PREFIX):], body)
        else:
            await self._webhook(channel, body)

    async def find(self, channel: str, key: str, *, thread_ts: str | None = None
                   ) -> Posted | None:
        return None  # WeCom offers no history to look in

    async def dm_channel(self, user_id: str) -> str:
        return DM_PREFIX + render.unqualify(user_id)

    async def upload(self, channel: str, filename: str, content: bytes, *, title: str,
                     thread_ts: str | None = None) -> None:
        if channel.startswith(DM_PREFIX):
            # an app image needs a media upload first; a DM gets the title only, for now
            await self._send(channel, render.text(title))
            return
        await self._webhook(channel, {"msgtype": "image", "image": {
            "base64": base64.b64encode(content).decode("ascii"),
            "md5": hashlib.md5(content).hexdigest()}})  # WeCom asks for MD5

    async def publish_home(self, user_id: str, home: Message) -> None:
        return None  # WeCom has no App Home

    async def update(self, channel: str, ts: str, message: Message) -> None:
        await self._send(channel, render.markdown(message, self.settings.wecom_bot_name,
                                                  updated=True))

    def link(self, channel: str, ts: str) -> str:
        # a webhook message has no address; the reader finds it in the group
        return "(WeCom)"
