"""A local fake of WeLink's open platform (open.welink.huaweicloud.com/api/), reached over
HTTP via WELINK_API_URL.

It checks what the bot sends as WeLink documents it: the app's client id and secret on
`auth/v2/tickets`; the access token in `x-wlk-Authorization` on card messages, with their
byte limits; on the group webhook robot a known token and `channel=standard`, a `text`
message of 1 to 500 characters, a millisecond `timeStamp` within 10 minutes, a `uuid` never
used before, `atAccounts` only with `isAt` (at most 10). It can enforce a per-robot rate
(answering 48503), and answer the next calls of a method with a code (58500, 58404, 48503,
41500, …) or an HTTP status (429 with Retry-After, 502). It records every call.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

CLIENT_ID = "20261124wlk0001"
CLIENT_SECRET = "welink-app-secret-0123456789"
MAX_TEXT = 500
WEBHOOK = "werobot/v1/webhook/send"
TICKETS = "auth/v2/tickets"
CARD = "messages/v2/card/common"


@dataclass
class Call:
    method: str
    params: dict[str, str]
    body: dict[str, Any]
    headers: dict[str, str]
    code: str
    status: int = 200
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.code == "0"

    @property
    def text(self) -> str:
        """The group message's text, or a card's title and content."""
        if self.method == WEBHOOK:
            return str((self.body.get("content") or {}).get("text", ""))
        return f"{self.body.get('msgTitle', '')}\n{self.body.get('msgContent', '')}"


class FakeWeLink:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 robot_per_minute: int | None = None) -> None:
        self.calls: list[Call] = []
        self.robots: set[str] = set()  # tokens of the groups' webhook robots
        self.users: set[str] = set()  # user ids the app may send card messages to
        self.tokens: set[str] = set()  # access tokens issued
        self.clock = clock  # for the per-robot rate
        self.robot_per_minute = robot_per_minute
        self._robot_times: dict[str, deque[float]] = {}
        self._uuids: set[str] = set()
        self._faults: dict[str, list[tuple[str, int, str | None]]] = {}
        self.server: TestServer | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/" + TICKETS, self._tickets)
        app.router.add_post("/api/" + WEBHOOK, self._webhook)
        app.router.add_post("/api/" + CARD, self._card)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    @property
    def api_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/api/"

    def webhook_url(self, token: str) -> str:
        """A group's webhook address as WeLink shows it (the host is the fake's)."""
        return f"{self.api_url}{WEBHOOK}?token={token}&channel=standard"

    def fail(self, method: str, code: str = "0", *, status: int = 200, times: int = 1,
             retry_after: str | None = None) -> None:
        """The next `times` calls of `method` answer `code` (or HTTP `status`)."""
        self._faults.setdefault(method, []).extend([(code, status, retry_after)] * times)

    def of(self, method: str, ok_only: bool = True) -> list[Call]:
        return [c for c in self.calls if c.method == method and (c.ok or not ok_only)]

    def to_group(self, token: str, ok_only: bool = True) -> list[Call]:
        return [c for c in self.of(WEBHOOK, ok_only) if c.params.get("token") == token]

    def to_user(self, user: str) -> list[Call]:
        return [c for c in self.of(CARD) if user in (c.body.get("toUserList") or [])]

    async def wait_for(self, predicate: Callable[[], Any], limit: float = 10.0) -> Any:
        async def loop() -> Any:
            while True:
                got = predicate()
                if got:
                    return got
                await asyncio.sleep(0.01)
        return await asyncio.wait_for(loop(), timeout=limit)

    # the API

    def _answer(self, method: str, request: web.Request, body: dict[str, Any], code: str,
                extra: dict[str, Any] | None = None) -> web.Response:
        fault = self._faults.get(method)
        status, retry_after = 200, None
        if code == "0" and fault:
            code, status, retry_after = fault.pop(0)
        self.calls.append(Call(method, dict(request.query), body, dict(request.headers),
                               code, status))
        if status != 200:
            headers = {"Retry-After": retry_after} if retry_after else None
            return web.Response(status=status, text="busy", headers=headers)
        answer: dict[str, Any] = {"code": code, "message": "ok" if code == "0" else "error"}
        return web.json_response({**answer, **(extra or {})})

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    async def _tickets(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if not body.get("client_id") or not body.get("client_secret"):
            return self._answer(TICKETS, request, body, "41579")
        if body.get("client_id") != CLIENT_ID or body.get("client_secret") != CLIENT_SECRET:
            return self._answer(TICKETS, request, body, "10007")
        token = "wlk-" + secrets.token_hex(8)
        self.tokens.add(token)
        return self._answer(TICKETS, request, body, "0",
                            {"access_token": token, "expires_in": 7200})

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        q = request.query
        if q.get("token") not in self.robots:
            return self._answer(WEBHOOK, request, body, "58404")
        if q.get("channel") != "standard" or _webhook_problem(body, self._uuids):
            return self._answer(WEBHOOK, request, body, "58601")
        self._uuids.add(str(body["uuid"]))
        if self.robot_per_minute is not None:
            now = self.clock()
            times = self._robot_times.setdefault(str(q.get("token")), deque())
            while times and times[0] <= now - 60.0:
                times.popleft()
            if len(times) >= self.robot_per_minute:
                return self._answer(WEBHOOK, request, body, "48503")
            times.append(now)
        return self._answer(WEBHOOK, request, body, "0", {"data": "success"})

    async def _card(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if request.headers.get("x-wlk-Authorization") not in self.tokens:
            return self._answer(CARD, request, body, "41500")
        if _card_problem(body):
            return self._answer(CARD, request, body, "40000")
        strangers = [u for u in body["toUserList"] if u not in self.users]
        if strangers:
            return self._answer(CARD, request, body, "51019", {"failedUserId": strangers})
        return self._answer(CARD, request, body, "0", {"itemId": secrets.token_hex(8)})


def _webhook_problem(body: dict[str, Any], used: set[str]) -> str | None:
    """What WeLink would refuse in a webhook robot message (58601), None when it is fine."""
    text = (body.get("content") or {}).get("text") if isinstance(body.get("content"), dict) \
        else None
    if body.get("messageType") != "text":
        return "messageType"
    if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT:
        return "content.text"
    stamp = body.get("timeStamp")
    if not isinstance(stamp, int) or abs(time.time() * 1000 - stamp) > 10 * 60 * 1000:
        return "timeStamp"
    if not isinstance(body.get("uuid"), str) or not body["uuid"] or body["uuid"] in used:
        return "uuid"
    at = body.get("atAccounts")
    if body.get("isAt") is True:
        if not isinstance(at, list) or not 1 <= len(at) <= 10:
            return "atAccounts"
    elif at:
        return "atAccounts"
    return None


def _card_problem(body: dict[str, Any]) -> str | None:
    def size(name: str) -> int:
        value = body.get(name)
        return len(value.encode("utf-8")) if isinstance(value, str) and value else 0

    if not 0 < size("msgOwner") <= 18:
        return "msgOwner"
    if not 0 < size("msgTitle") <= 128:
        return "msgTitle"
    if not 0 < size("msgContent") <= 512:
        return "msgContent"
    users = body.get("toUserList")
    if body.get("msgRange", "0") != "0" or not isinstance(users, list) or \
            not 1 <= len(users) <= 1000:
        return "toUserList"
    return None
