"""A local fake of WeCom's server API (qyapi), reached over HTTP via WECOM_API_URL, and
helpers that send the bot signed, encrypted callbacks as WeCom would: the robot's (JSON) and
the self-built app's (XML).

The fake checks what the bot sends: the corp id and secret on gettoken, the access token on
message/send, a known webhook key on webhook/send, payload shapes, markdown within 4096
bytes, template cards as the docs shape them (button_interaction: a task id unique per app
of at most 128 bytes of [0-9A-Za-z_-@], 1 to 6 buttons with unique keys of at most 1024
bytes, a title or a text), and update_template_card with a response code it issued, used
once. It records every call, and can answer with an errcode (45009, -1, 93000, …) or an
HTTP 5xx for the next calls of a method. Tests await conditions on the recording.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.adapters.wecom.crypto import CallbackCrypto

CORP_ID = "wwcorp0001"
CORP_SECRET = "app-secret-0123456789"
AGENT_ID = 1000002
TOKEN = "QDG6eK"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
MAX_MARKDOWN = 4096
APP_TOKEN = "appTok3n"  # the self-built app's callback Token and EncodingAESKey
APP_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
TASK_ID = re.compile(r"[0-9A-Za-z_\-@]{1,128}")


@dataclass
class Call:
    method: str
    params: dict[str, str]
    body: dict[str, Any]
    errcode: int
    status: int = 200
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.errcode == 0

    @property
    def content(self) -> str:
        return str((self.body.get("markdown") or {}).get("content", ""))


class FakeWeCom:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.webhook_keys: set[str] = set()  # keys of the groups' push webhooks
        self.users: set[str] = set()  # user ids the app may message
        self.tokens: set[str] = set()
        self.task_ids: set[str] = set()  # cards sent, by task id
        self.response_codes: dict[str, str] = {}  # unused code -> the task id it updates
        self._faults: dict[str, list[tuple[int, int]]] = {}  # method -> [(errcode, status)]
        self._n = count(1)
        self.server: TestServer | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        app.router.add_post("/cgi-bin/message/send", self._message_send)
        app.router.add_post("/cgi-bin/webhook/send", self._webhook_send)
        app.router.add_post("/cgi-bin/aibot/response", self._response)
        app.router.add_post("/cgi-bin/message/update_template_card", self._update_card)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    @property
    def api_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/cgi-bin/"

    def bot_env(self) -> dict[str, str]:
        """The `WECOM_*` variables a bot process needs to use this fake (robot and app)."""
        return {"WECOM_CORP_ID": CORP_ID, "WECOM_TOKEN": TOKEN, "WECOM_ENCODING_AES_KEY": AES_KEY,
                "WECOM_AGENT_ID": str(AGENT_ID), "WECOM_SECRET": CORP_SECRET,
                "WECOM_API_URL": self.api_url}

    def response_url(self) -> str:
        return f"{self.api_url}aibot/response?response_code=rc{next(self._n)}"

    def webhook_url(self, key: str) -> str:
        return f"{self.api_url}webhook/send?key={key}"

    def fail(self, method: str, errcode: int = 0, *, status: int = 200, times: int = 1) -> None:
        """The next `times` calls of `method` answer `errcode` (or HTTP `status`)."""
        self._faults.setdefault(method, []).extend([(errcode, status)] * times)

    def of(self, method: str, ok_only: bool = True) -> list[Call]:
        return [c for c in self.calls if c.method == method and (c.ok or not ok_only)]

    def to_group(self, key: str, ok_only: bool = True) -> list[Call]:
        return [c for c in self.of("webhook/send", ok_only) if c.params.get("key") == key]

    def to_user(self, user: str) -> list[Call]:
        return [c for c in self.of("message/send") if c.body.get("touser") == user]

    def cards_to(self, user: str) -> list[dict[str, Any]]:
        return [c.body["template_card"] for c in self.to_user(user)
                if c.body.get("msgtype") == "template_card"]

    def click_code(self, task_id: str) -> str:
        """A fresh response code for a click on the card `task_id` (as the callback has)."""
        code = f"rc-click-{next(self._n)}"
        self.response_codes[code] = task_id
        return code

    async def wait_for(self, predicate: Callable[[], Any], limit: float = 10.0) -> Any:
        async def loop() -> Any:
            while True:
                got = predicate()
                if got:
                    return got
                await asyncio.sleep(0.01)
        return await asyncio.wait_for(loop(), timeout=limit)

    # the API

    def _answer(self, method: str, params: dict[str, str], body: dict[str, Any],
                errcode: int, extra: dict[str, Any] | None = None) -> web.Response:
        fault = self._faults.get(method)
        status = 200
        if errcode == 0 and fault:
            errcode, status = fault.pop(0)
        self.calls.append(Call(method, params, body, errcode, status))
        if status != 200:
            return web.Response(status=status, text="busy")
        return web.json_response({"errcode": errcode,
                                  "errmsg": "ok" if errcode == 0 else "error",
                                  **(extra if extra and errcode == 0 else {})})

    async def _gettoken(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        if q.get("corpid") != CORP_ID or q.get("corpsecret") != CORP_SECRET:
            return self._answer("gettoken", q, {}, 40001)
        token = "tok-" + secrets.token_hex(8)
        self.tokens.add(token)
        return self._answer("gettoken", q, {}, 0, {"access_token": token, "expires_in": 7200})

    async def _message_send(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        body = await request.json()
        if q.get("access_token") not in self.tokens:
            return self._answer("message/send", q, body, 40014)
        card = body.get("template_card") if body.get("msgtype") == "template_card" else None
        problem = self._card_problem(card) if card is not None else _markdown_problem(body)
        if problem is None and body.get("agentid") != AGENT_ID:
            problem = 40056
        if problem is not None:
            return self._answer("message/send", q, body, problem)
        if body.get("touser") not in self.users:
            return self._answer("message/send", q, body, 81013)
        extra: dict[str, Any] = {"invaliduser": "", "msgid": "m1"}
        if card is not None:
            self.task_ids.add(card["task_id"])
            extra["response_code"] = code = f"rc-send-{next(self._n)}"
            self.response_codes[code] = card["task_id"]
        return self._answer("message/send", q, body, 0, extra)

    def _card_problem(self, card: Any) -> int | None:
        """40008 (invalid message) for a card the docs would not take, else None."""
        if not isinstance(card, dict) or card.get("card_type") != "button_interaction":
            return 40008
        task = card.get("task_id")
        if not isinstance(task, str) or not TASK_ID.fullmatch(task) or task in self.task_ids:
            return 40008
        buttons = card.get("button_list")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 6:
            return 40008
        keys = [b.get("key") for b in buttons if isinstance(b, dict)]
        if len(keys) != len(buttons) or len(set(keys)) != len(keys) or any(
                not isinstance(k, str) or not k or len(k.encode()) > 1024 for k in keys) or any(
                not b.get("text") for b in buttons):
            return 40008
        title = (card.get("main_title") or {}).get("title")
        if not title and not card.get("sub_title_text"):
            return 40008
        if len(card.get("horizontal_content_list") or []) > 6:
            return 40008
        return None

    async def _update_card(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        body = await request.json()
        if q.get("access_token") not in self.tokens:
            return self._answer("update_template_card", q, body, 40014)
        code = str(body.get("response_code", ""))
        replace = (body.get("button") or {}).get("replace_name")
        if body.get("agentid") != AGENT_ID:
            return self._answer("update_template_card", q, body, 40056)
        if code not in self.response_codes or not isinstance(replace, str) or not replace:
            return self._answer("update_template_card", q, body, 40008)
        del self.response_codes[code]  # a code works once
        return self._answer("update_template_card", q, body, 0)

    async def _webhook_send(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        body = await request.json()
        if q.get("key") not in self.webhook_keys:
            return self._answer("webhook/send", q, body, 93000)
        if body.get("msgtype") == "image":
            image = body.get("image") or {}
            raw = base64.b64decode(str(image.get("base64", "")))
            if not raw or hashlib.md5(raw).hexdigest() != image.get("md5"):
                return self._answer("webhook/send", q, body, 301019)
            return self._answer("webhook/send", q, body, 0)
        problem = _markdown_problem(body)
        return self._answer("webhook/send", q, body, problem or 0)

    async def _response(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        body = await request.json()
        used = [c for c in self.of("aibot/response")
                if c.params.get("response_code") == q.get("response_code")]
        if used:  # usable once
            return self._answer("aibot/response", q, body, 600039)
        return self._answer("aibot/response", q, body, _markdown_problem(body) or 0)


def _markdown_problem(body: dict[str, Any]) -> int | None:
    """WeCom's errcode for a malformed markdown message, None when it is fine."""
    if body.get("msgtype") != "markdown":
        return 40008
    content = (body.get("markdown") or {}).get("content")
    if not isinstance(content, str) or not content:
        return 40008
    if len(content.encode("utf-8")) > MAX_MARKDOWN:
        return 40058
    return None


class RobotSender:
    """Sends the bot's callback URL what WeCom would: signed, encrypted robot callbacks."""

    def __init__(self, base_url: str, fake: FakeWeCom, *, token: str = TOKEN,
                 aes_key: str = AES_KEY) -> None:
        self.url = base_url + "/wecom/callback"
        self.fake = fake
        self.crypto = CallbackCrypto(token, aes_key, "")
        self.http = aiohttp.ClientSession()
        self._n = count(1)

    async def close(self) -> None:
        await self.http.close()

    def text_message(self, content: str, *, user: str, chat: str | None,
                     msgid: str | None = None) -> dict[str, Any]:
        n = next(self._n)
        body: dict[str, Any] = {
            "msgid": msgid or f"msg{n}-{secrets.token_hex(4)}", "aibotid": "AIBOT1",
            "chattype": "group" if chat else "single", "from": {"userid": user},
            "response_url": self.fake.response_url(), "msgtype": "text",
            "text": {"content": content}}
        if chat:
            body["chatid"] = chat
        return body

    async def send(self, payload: dict[str, Any], *, signature: str | None = None,
                   timestamp: str | None = None) -> tuple[int, str]:
        ts, nonce = timestamp or str(int(time.time())), secrets.token_hex(5)
        encrypted, sig = self.crypto.encrypt(json.dumps(payload, ensure_ascii=False), nonce, ts)
        params = {"msg_signature": signature or sig, "timestamp": ts, "nonce": nonce}
        async with self.http.post(self.url, params=params,
                                  json={"encrypt": encrypted}) as resp:
            return resp.status, await resp.text()

    async def say(self, content: str, *, user: str, chat: str | None,
                  msgid: str | None = None) -> dict[str, Any]:
        """A group member's @-mention; returns the callback sent (status checked: 200)."""
        payload = self.text_message(content, user=user, chat=chat, msgid=msgid)
        status, text = await self.send(payload)
        assert status == 200 and text == "", (status, text)
        return payload

    async def verify_url(self, echo: str) -> tuple[int, str]:
        ts, nonce = str(int(time.time())), secrets.token_hex(5)
        encrypted, sig = self.crypto.encrypt(echo, nonce, ts)
        async with self.http.get(self.url, params={"msg_signature": sig, "timestamp": ts,
                                                   "nonce": nonce, "echostr": encrypted}) as r:
            return r.status, await r.text()


class AppSender:
    """Sends the bot's app callback URL what WeCom would: signed, encrypted XML callbacks of
    the self-built app (receive id: the corp id)."""

    def __init__(self, base_url: str, *, token: str = APP_TOKEN, aes_key: str = APP_AES_KEY,
                 corp_id: str = CORP_ID) -> None:
        self.url = base_url + "/wecom/app/callback"
        self.crypto = CallbackCrypto(token, aes_key, corp_id)
        self.corp_id = corp_id
        self.http = aiohttp.ClientSession()
        self._n = count(1)

    async def close(self) -> None:
        await self.http.close()

    def click(self, user: str, key: str, task_id: str, response_code: str, *,
              at: int | None = None) -> str:
        """The plaintext XML of a click on a button_interaction card (90240)."""
        return (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
                f"<FromUserName><![CDATA[{user}]]></FromUserName>"
                f"<CreateTime>{at or int(time.time())}</CreateTime>"
                "<MsgType><![CDATA[event]]></MsgType>"
                "<Event><![CDATA[template_card_event]]></Event>"
                f"<EventKey><![CDATA[{key}]]></EventKey>"
                f"<TaskId><![CDATA[{task_id}]]></TaskId>"
                "<CardType><![CDATA[button_interaction]]></CardType>"
                f"<ResponseCode><![CDATA[{response_code}]]></ResponseCode>"
                f"<AgentID>{AGENT_ID}</AgentID></xml>")

    def text(self, user: str, content: str) -> str:
        """The plaintext XML of a text a member sends to the app (90239)."""
        return (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
                f"<FromUserName><![CDATA[{user}]]></FromUserName>"
                f"<CreateTime>{int(time.time())}</CreateTime>"
                f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>"
                f"<MsgId>{7000000000000000000 + next(self._n)}</MsgId>"
                f"<AgentID>{AGENT_ID}</AgentID></xml>")

    async def send(self, plaintext: str, *, signature: str | None = None,
                   timestamp: str | None = None) -> tuple[int, str]:
        ts, nonce = timestamp or str(int(time.time())), secrets.token_hex(5)
        encrypted, sig = self.crypto.encrypt(plaintext, nonce, ts)
        body = (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
                f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>"
                f"<AgentID><![CDATA[{AGENT_ID}]]></AgentID></xml>")
        params = {"msg_signature": signature or sig, "timestamp": ts, "nonce": nonce}
        async with self.http.post(self.url, params=params, data=body.encode(),
                                  headers={"Content-Type": "text/xml"}) as resp:
            return resp.status, await resp.text()

    async def verify_url(self, echo: str) -> tuple[int, str]:
        ts, nonce = str(int(time.time())), secrets.token_hex(5)
        encrypted, sig = self.crypto.encrypt(echo, nonce, ts)
        async with self.http.get(self.url, params={"msg_signature": sig, "timestamp": ts,
                                                   "nonce": nonce, "echostr": encrypted}) as r:
            return r.status, await r.text()
