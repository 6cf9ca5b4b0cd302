"""A local fake of Slack's Web API (and response_url), reached over HTTP via SLACK_API_URL.

It records every call with its body, answers like Slack for the methods the bot uses, and can
inject 429 with Retry-After, 5xx and slow answers. Tests await conditions on the recording
instead of sleeping.

Like Slack, it checks the token's scopes: by default the token holds exactly the bot scopes
`manifest.yaml` asks for, so every test that talks to it also proves the manifest is enough.
A method the token's scopes do not cover gets Slack's `missing_scope` answer; a method absent
from `METHOD_SCOPES` is refused outright, so a new Web API call cannot slip in unlisted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

MANIFEST = Path(__file__).resolve().parent.parent / "manifest.yaml"

# The bot-token scope each Web API method the bot calls needs, from Slack's method reference
# (docs.slack.dev/reference/methods/<method>). None: no scope needed. A mapping: the scope
# depends on the kind of conversation, as Slack's reference lists one per kind.
HISTORY = {"public": "channels:history", "private": "groups:history", "im": "im:history",
           "mpim": "mpim:history"}
METHOD_SCOPES: dict[str, str | dict[str, str] | None] = {
    "auth.test": None,  # Bolt checks its token with it
    "chat.postMessage": "chat:write",
    "chat.postEphemeral": "chat:write",
    "chat.update": "chat:write",
    # the bot opens 1:1 DMs only (one user); several users would need mpim:write
    "conversations.open": "im:write",
    "conversations.history": HISTORY,
    "conversations.replies": HISTORY,
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
    "views.open": None,
    "views.publish": None,
}


def manifest_bot_scopes() -> frozenset[str]:
    """The bot scopes manifest.yaml asks for: what an installation's token holds."""
    data = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    return frozenset(data["oauth_config"]["scopes"]["bot"])


def conversation_kind(channel: str) -> str:
    """Slack's id prefixes: D a DM, G a private channel (older ones), C a channel."""
    return {"D": "im", "G": "private"}.get(channel[:1], "public")


def scope_needed(method: str, channel: str = "") -> str | None:
    """The scope `method` needs for `channel` (None: none). KeyError: not in the table."""
    need = METHOD_SCOPES[method]
    if isinstance(need, dict):
        return need[conversation_kind(channel)]
    return need


@dataclass
class Call:
    method: str
    body: dict[str, Any]
    status: int
    at: float = field(default_factory=time.monotonic)
    wall: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class Fault:
    status: int  # 429, 500, 503 ..., 0 for "answer slowly", -1 for "reset the connection"
    retry_after: float = 1.0
    delay: float = 0.0
    times: int = 1
    channel: str | None = None  # only calls for this channel


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.responses: list[dict[str, Any]] = []  # bodies posted to response_url
        self.faults: dict[str, list[Fault]] = {}
        self.messages: dict[tuple[str, str], str] = {}  # (channel, ts) -> text
        self.blocks: dict[tuple[str, str], list[Any]] = {}  # (channel, ts) -> blocks, as updated
        self.history: list[dict[str, Any]] = []  # every posted message, oldest first
        self.uploads: dict[str, bytes] = {}  # file id -> uploaded bytes
        self.permanent_errors: dict[str, str] = {}  # channel -> Slack error code
        # the installed token's scopes (what the manifest asks for); a test may narrow them
        self.scopes: frozenset[str] = manifest_bot_scopes()
        self._ts = count(1)
        self._changed = asyncio.Condition()
        self.server: TestServer | None = None
        self.team_id = "T1"
        # Slack-like limits for chat.postMessage (off unless set): per channel and workspace
        self.channel_interval = 0.0
        self.channel_burst = 1  # messages a channel may take at once before the interval binds
        self.workspace_rate = 0.0
        self._channel_last: dict[str, float] = {}
        self._workspace_tokens = 0.0
        self._workspace_stamp = 0.0

    # -- set-up ---------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/response/{id}", self._response_url)
        app.router.add_post("/upload/{id}", self._upload)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self.url

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def response_url(self, n: int | str = 1) -> str:
        return f"{self.url}/response/{n}"

    def fail(self, method: str, status: int, *, retry_after: float = 1.0, times: int = 1,
             delay: float = 0.0, channel: str | None = None) -> None:
        self.faults.setdefault(method, []).append(
            Fault(status, retry_after, delay, times, channel))

    # -- queries --------------------------------------------------------------------------
    def of(self, method: str, ok_only: bool = True) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.method == method and (c.ok or not ok_only)]

    def posts_to(self, channel: str) -> list[dict[str, Any]]:
        return [b for b in self.of("chat.postMessage") if b.get("channel") == channel]

    def reads_now(self, channel: str) -> list[str]:
        """The channel's top-level messages as they read now (after any chat.update): the
        text of their section blocks, else their notification text."""
        out = []
        for m in self.history:
            if m["channel"] != channel or m["thread_ts"] not in (None, m["ts"]):
                continue
            where = (channel, m["ts"])
            sections = [str((b.get("text") or {}).get("text", ""))
                        for b in self.blocks.get(where, []) if b.get("type") == "section"]
            out.append("\n".join(sections) if sections else self.messages[where])
        return out

    async def wait_for(self, predicate: Callable[[], Any], limit: float = 10.0) -> Any:
        """Wait until `predicate()` is truthy (re-checked on every recorded call)."""
        async def loop() -> Any:
            async with self._changed:
                while True:
                    value = predicate()
                    if value:
                        return value
                    await self._changed.wait()
        try:
            return await asyncio.wait_for(loop(), limit)
        except TimeoutError:
            seen = Counter(f"{c.method}:{c.status}" for c in self.calls)
            raise AssertionError(f"condition not met in {limit}s; calls: {dict(seen)}") from None

    async def _record(self, call: Call) -> None:
        self.calls.append(call)
        async with self._changed:
            self._changed.notify_all()

    # -- handlers -------------------------------------------------------------------------
    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.method == "GET":
            return dict(request.query)
        raw = await request.text()
        if request.content_type == "application/json":
            return dict(json.loads(raw or "{}"))
        # some SDK calls POST their arguments in the query string
        body: dict[str, Any] = dict(request.query)
        for k, v in parse_qsl(raw, keep_blank_values=True):
            if v[:1] in "[{":
                try:
                    body[k] = json.loads(v)
                    continue
                except ValueError:
                    pass
            body[k] = v
        return body

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        body = await self._body(request)
        refusal = self._scope_check(method, body)
        if refusal is not None:
            await self._record(Call(method, body, 200))
            return web.json_response(refusal)
        faults = self.faults.get(method) or []
        fault = next((f for f in faults if f.channel in (None, body.get("channel"))), None)
        if fault is not None:
            fault.times -= 1
            if fault.times <= 0:
                faults.remove(fault)
            if fault.delay:
                # a slow Slack: the call completes, but only after the client gave up
                await asyncio.sleep(fault.delay)
            if fault.status == -1:  # connection reset: no answer at all
                await self._record(Call(method, body, -1))
                assert request.transport is not None
                request.transport.abort()
                return web.Response(status=500)
            if fault.status == 429:
                await self._record(Call(method, body, 429))
                return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                         headers={"Retry-After": str(int(fault.retry_after))})
            if fault.status >= 500:
                await self._record(Call(method, body, fault.status))
                return web.Response(status=fault.status, text="upstream trouble")
        channel = str(body.get("channel", ""))
        if method == "chat.postMessage" and self._over_limit(channel):
            await self._record(Call(method, body, 429))
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": "1"})
        if channel in self.permanent_errors and method.startswith("chat."):
            await self._record(Call(method, body, 200))
            return web.json_response({"ok": False, "error": self.permanent_errors[channel]})
        result = self._answer(method, body)
        await self._record(Call(method, body, 200))
        return web.json_response(result)

    def _scope_check(self, method: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Slack's answer when the token may not call `method` here, else None."""
        if method not in METHOD_SCOPES:
            # a real Slack would know the method; here it means the table (and so the
            # manifest check in tests/adapters/test_manifest.py) has not heard of it
            return {"ok": False, "error": "unknown_method",
                    "warning": f"{method} is not in testkit/fake_slack.py METHOD_SCOPES"}
        channel = str(body.get("channel") or body.get("channel_id") or "")
        needed = scope_needed(method, channel)
        if needed is None or needed in self.scopes:
            return None
        return {"ok": False, "error": "missing_scope", "needed": needed,
                "provided": ",".join(sorted(self.scopes))}

    def _over_limit(self, channel: str) -> bool:
        now = time.monotonic()
        # GCRA per channel: a message is refused while the channel's theoretical arrival
        # time (`_channel_last` + interval) is more than burst - 1 intervals ahead
        tat = self._channel_last.get(channel, -1e9) + self.channel_interval
        if self.channel_interval and now < tat - (self.channel_burst - 1) * self.channel_interval:
            return True
        if self.workspace_rate:
            burst = self.workspace_rate  # one second's worth
            self._workspace_tokens = min(burst, self._workspace_tokens + (
                now - self._workspace_stamp) * self.workspace_rate)
            self._workspace_stamp = now
            if self._workspace_tokens < 1.0:
                return True
            self._workspace_tokens -= 1.0
        self._channel_last[channel] = max(tat, now)
        return False

    def _answer(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "url": "https://fake.slack/", "team": "Fake", "user": "bot",
                    "team_id": self.team_id, "user_id": "UBOT", "bot_id": "BBOT"}
        if method == "chat.postMessage":
            ts = f"{1_800_000_000 + next(self._ts)}.000200"
            channel = str(body.get("channel"))
            self.messages[(channel, ts)] = str(body.get("text", ""))
            self.blocks[(channel, ts)] = list(body.get("blocks") or [])
            message = {"channel": channel, "ts": ts, "text": body.get("text"),
                       "thread_ts": body.get("thread_ts"), "metadata": body.get("metadata")}
            self.history.append(message)
            return {"ok": True, "channel": channel, "ts": ts,
                    "message": {"text": body.get("text"), "ts": ts}}
        if method == "chat.update":
            where = (str(body.get("channel")), str(body.get("ts")))
            if where in self.messages:
                self.messages[where] = str(body.get("text", ""))
                self.blocks[where] = list(body.get("blocks") or [])
            return {"ok": True, "channel": body.get("channel"), "ts": body.get("ts")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{1_800_000_000 + next(self._ts)}.000300"}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(body.get("users", "X"))}}
        if method == "conversations.history":
            channel = str(body.get("channel"))
            latest, oldest = body.get("latest"), body.get("oldest")
            found = [{"ts": ts, "text": text} for (ch, ts), text in self.messages.items()
                     if ch == channel]
            for m in self.history:
                if m["channel"] == channel and m["thread_ts"] in (None, m["ts"]):
                    next(f for f in found if f["ts"] == m["ts"])["metadata"] = m["metadata"]
            found = [f for f in found if (latest is None or float(f["ts"]) <= float(latest))
                     and (oldest is None or float(f["ts"]) >= float(oldest))]
            found.sort(key=lambda f: float(f["ts"]), reverse=True)
            return {"ok": True, "messages": found[: int(body.get("limit", 100))]}
        if method == "conversations.replies":
            channel, ts = str(body.get("channel")), str(body.get("ts"))
            return {"ok": True, "messages": [
                {"ts": m["ts"], "text": m["text"], "metadata": m["metadata"]}
                for m in self.history if m["channel"] == channel
                and (m["ts"] == ts or m["thread_ts"] == ts)]}
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._ts):06d}"
            return {"ok": True, "file_id": file_id, "upload_url": f"{self.url}/upload/{file_id}"}
        if method == "files.completeUploadExternal":
            files = body.get("files") or []
            if isinstance(files, str):
                files = json.loads(files)
            return {"ok": True, "files": [{"id": f.get("id"), "title": f.get("title")}
                                          for f in files]}
        if method == "views.open":
            return {"ok": True, "view": {"id": "V1", **(body.get("view") or {})}}
        return {"ok": True}

    async def _upload(self, request: web.Request) -> web.Response:
        data = await request.read()
        self.uploads[request.match_info["id"]] = data
        await self._record(Call("upload", {"id": request.match_info["id"], "size": len(data)},
                                200))
        return web.Response(text="OK - " + str(len(data)))

    async def _response_url(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        self.responses.append(body)
        await self._record(Call("response_url", body, 200))
        return web.Response(text="ok")
