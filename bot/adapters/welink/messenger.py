"""The WeLink `Messenger`: group posts through each group's webhook robot, staff DMs as card
messages from the open platform app; failures sorted for the outbox's retries.

What WeLink documents, and so what this does (docs/platforms/welink.md has the sources):
- group webhook robot: `POST …/werobot/v1/webhook/send?token=…&channel=standard` with a
  `text` message (1-500 characters), a millisecond `timeStamp` valid for 10 minutes and a
  fresh `uuid` per call; answer `{"code": "0", …}`; 58404 robot not found, 58500 service
  error, 58601 bad parameter, 58602 robot disabled.
- access token: `POST …/auth/v2/tickets` with the app's client id and secret; kept for
  `expires_in` − 300 s, fetched again when WeLink says it is bad (41500).
- card message to users: `POST …/messages/v2/card/common` with `x-wlk-Authorization`.
- 48503: over a rate limit (40/s or 1500/min per app and interface); wait and retry.
No history (`find` returns None: a crash between a send and its commit may repeat a group
message), no edits (`update` posts again, marked 🔄), no App Home, no files (a chart is
announced by its title only).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.adapters.http import TRANSPORT_ERRORS, JsonApiClient
from bot.adapters.welink import render
from bot.config import Settings
from bot.messages import Message
from bot.services.messenger import DeliveryError, Posted

log = logging.getLogger(__name__)

DM_PREFIX = render.PREFIX + "dm:"  # the core's "DM channel" of a WeLink user
WEBHOOK = "werobot/v1/webhook/send"
TICKETS = "auth/v2/tickets"
CARD = "messages/v2/card/common"
RATE_LIMITED = frozenset({"48503"})
RATE_RETRY_AFTER = 5.0  # "wait a while": the limits are per second and per minute
TOKEN_INVALID = frozenset({"41500"})
# errors that retrying cannot fix: no such robot, a bad parameter, a disabled robot, a
# locked or wrong app id/secret, a user the app may not message
PERMANENT = frozenset({"58404", "58601", "58602", "41403", "41579", "41580", "10007",
                       "51019"})
# WeLink states no limit for the webhook robot; the bot keeps to 20 a minute per robot (the
# limit WeCom, DingTalk and Feishu state for theirs), so a broadcast never floods a group
WEBHOOK_PER_MINUTE = 20


def webhook_token(address: str) -> tuple[str, str]:
    """The token and channel of a group's webhook robot, given its URL
    (`…/webhook/send?token=T&channel=standard`) or the bare token; ("", "") if none."""
    address = address.strip()
    if "://" in address or "?" in address:
        query = parse_qs(urlsplit(address).query)
        token = (query.get("token") or [""])[0]
        channel = (query.get("channel") or ["standard"])[0]
        return (token, channel) if token else ("", "")
    return (address, "standard") if address else ("", "")


class WeLinkMessenger(JsonApiClient):
    platform = "WeLink"

    def __init__(self, settings: Settings, address_of: Callable[[str], Awaitable[str | None]],
                 *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.api = settings.welink_api_url
        self.address_of = address_of
        self.clock = clock  # for pacing and the token's lifetime
        self.wall = wall  # for the webhook's timeStamp, which WeLink checks against its own
        self._token: str | None = None
        self._token_expires = 0.0
        self._sent: dict[str, deque[float]] = {}  # webhook token -> send times, last minute

    async def _call(self, method: str, path: str, body: dict[str, Any], *,
                    params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                    per_channel: bool = False) -> dict[str, Any]:
        """One API call: the JSON answer when its code is "0", else a DeliveryError. The URL
        or headers carry a credential (webhook token, access token): never logged."""
        try:
            async with self._http().post(self.api + path, params=params, json=body,
                                         headers=headers) as resp:
                if resp.status == 429 or resp.status >= 500:
                    log.warning("WeLink %s failed: HTTP %s", method, resp.status)
                    after = _seconds(resp.headers.get("Retry-After")) \
                        if resp.status == 429 else None
                    raise DeliveryError(f"{method}: HTTP {resp.status}", retry_after=after,
                                        per_channel=per_channel and after is not None)
                if resp.status >= 400:
                    # e.g. a caller outside the robot's IP allowlist: retrying cannot help
                    log.warning("WeLink %s failed: HTTP %s", method, resp.status)
                    raise DeliveryError(f"{method}: HTTP {resp.status}", permanent=True)
                data = await resp.json(content_type=None)
        except TRANSPORT_ERRORS as exc:
            raise self._unreachable(method, exc) from exc
        data = self._json_object(method, data)
        code = str(data.get("code", "0") or "0")
        if code == "0":
            return data
        log.warning("WeLink %s failed: code %s", method, code)
        if code in RATE_LIMITED:
            raise DeliveryError(f"{method}: code {code} (rate limited)",
                                retry_after=RATE_RETRY_AFTER, per_channel=per_channel)
        if code in TOKEN_INVALID:
            self._token = None
        raise DeliveryError(f"{method}: code {code}", permanent=code in PERMANENT)

    # --- group posts: the webhook robot

    async def _robot(self, channel: str) -> tuple[str, str]:
        address = await self.address_of(channel)
        token, robot_channel = webhook_token(address) if address else ("", "")
        if not token:
            raise DeliveryError("webhook/send: no webhook robot stored for this group (link "
                                "it again with webhook=)", permanent=True)
        return token, robot_channel

    def _take_slots(self, token: str, n: int) -> None:
        """Room for `n` messages within 20 a minute per robot, all or none: a message in
        several parts never goes out half."""
        now = self.clock()
        sent = self._sent.setdefault(token, deque())
        while sent and sent[0] <= now - 60.0:
            sent.popleft()
        if len(sent) + n > WEBHOOK_PER_MINUTE:
            wait = sent[len(sent) + n - WEBHOOK_PER_MINUTE - 1] + 60.0 - now
            raise DeliveryError(f"webhook/send: paced ({WEBHOOK_PER_MINUTE} a minute)",
                                retry_after=max(0.1, wait), per_channel=True)
        sent.extend([now] * n)

    async def _group(self, channel: str, content: str, mentioned: list[str]) -> None:
        token, robot_channel = await self._robot(channel)
        chunks = render.parts(content)
        self._take_slots(token, len(chunks))
        at = mentioned[:render.MAX_AT]
        for chunk in chunks:
            body: dict[str, Any] = {
                "messageType": "text", "content": {"text": chunk},
                "timeStamp": int(self.wall() * 1000), "uuid": uuid.uuid4().hex,
                "isAt": bool(at), "isAtAll": False}
            if at:
                body["atAccounts"] = at
            await self._call("webhook/send", WEBHOOK, body,
                             params={"token": token, "channel": robot_channel},
                             per_channel=True)

    # --- staff DMs: card messages

    async def _access_token(self) -> str:
        if self._token is not None and self.clock() < self._token_expires:
            return self._token
        data = await self._call("auth/v2/tickets", TICKETS, {
            "client_id": self.settings.welink_client_id or "",
            "client_secret": self.settings.welink_client_secret or ""})
        token = str(data.get("access_token") or "")
        if not token:
            raise DeliveryError("auth/v2/tickets: no access_token")
        # WeLink's advice: keep it for expires_in - 300 seconds
        self._token = token
        self._token_expires = self.clock() + max(60.0, float(data.get("expires_in", 7200))
                                                 - 300)
        return token

    async def _card(self, user: str, message: Message, *, updated: bool = False) -> None:
        title, content = render.card(message, updated=updated)
        token = await self._access_token()
        data = await self._call("messages/v2/card/common", CARD, {
            "msgOwner": self.settings.welink_sender, "msgRange": "0", "toUserList": [user],
            "msgTitle": title, "msgContent": content, "receiveDeviceType": "2"},
            headers={"x-wlk-Authorization": token})
        if data.get("failedUserId"):
            log.warning("WeLink messages/v2/card/common failed: user not reached")
            raise DeliveryError("messages/v2/card/common: user not reached", permanent=True)

    # --- the port

    async def _send(self, channel: str, message: Message, *, updated: bool = False) -> None:
        if channel.startswith(DM_PREFIX):
            await self._card(channel[len(DM_PREFIX):], message, updated=updated)
            return
        mentioned: list[str] = []
        content = render.plain(message, updated=updated, mentioned=mentioned)
        await self._group(channel, content, mentioned)

    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None,
                   key: str | None = None) -> Posted:
        # WeLink has no threads reachable by a webhook: a thread reply is a group message
        await self._send(channel, message)
        return Posted(channel=channel, ts=uuid.uuid4().hex[:24])

    async def find(self, channel: str, key: str, *, thread_ts: str | None = None
                   ) -> Posted | None:
        return None  # no API to read a group's messages

    async def dm_channel(self, user_id: str) -> str:
        return DM_PREFIX + render.unqualify(user_id)

    async def upload(self, channel: str, filename: str, content: bytes, *, title: str,
                     thread_ts: str | None = None) -> None:
        # the webhook robot takes text only: the chart is announced by its title
        await self._send(channel, Message(title))

    async def publish_home(self, user_id: str, home: Message) -> None:
        return None  # WeLink has no App Home

    async def update(self, channel: str, ts: str, message: Message) -> None:
        await self._send(channel, message, updated=True)

    def link(self, channel: str, ts: str) -> str:
        return "(WeLink)"  # a webhook message has no address


def _seconds(header: str | None) -> float | None:
    try:
        return max(0.0, float(header)) if header else None
    except ValueError:
        return None
