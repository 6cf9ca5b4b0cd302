"""Start the bot's real aiohttp server against the fake Slack and send signed requests."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp.test_utils import TestServer
from slack_sdk.signature import SignatureVerifier

from bot.adapters.slack.app import build_bolt, build_web, make_client
from bot.services.base import AppContext
from handlers.core import Router
from testkit.fake_slack import FakeSlack

SECRET = "test-signing-secret-0123456789"
TOKEN = "xoxb-test-token"


class BotServer:
    def __init__(self, ctx: AppContext, router: Router, fake: FakeSlack) -> None:
        self.ctx = ctx
        self.router = router
        self.fake = fake
        self.server: TestServer | None = None
        self.http: aiohttp.ClientSession | None = None
        self.signer = SignatureVerifier(SECRET)
        self._n = 0

    async def start(self) -> None:
        client = make_client(self.ctx.settings)
        bolt = build_bolt(self.ctx, self.router, client)
        self.server = TestServer(build_web(self.ctx, bolt), host="127.0.0.1")
        await self.server.start_server()
        self.http = aiohttp.ClientSession()

    async def close(self) -> None:
        if self.http:
            await self.http.close()
        if self.server:
            await self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    def headers(self, body: str, *, timestamp: int | None = None,
                signature: str | None = None, content_type: str) -> dict[str, str]:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        sig = signature or self.signer.generate_signature(timestamp=ts, body=body)
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig,
                "Content-Type": content_type}

    async def post_raw(self, body: str, content_type: str, **kw: Any) -> aiohttp.ClientResponse:
        assert self.http is not None
        extra = kw.pop("extra_headers", {})
        headers = {**self.headers(body, content_type=content_type, **kw), **extra}
        resp = await self.http.post(self.url + "/slack/events", data=body.encode(),
                                    headers=headers)
        await resp.read()
        return resp

    async def command(self, root: str, text: str, *, user: str, channel: str,
                      **kw: Any) -> aiohttp.ClientResponse:
        self._n += 1
        form = {"token": "x", "team_id": "T1", "team_domain": "t", "channel_id": channel,
                "channel_name": "c", "user_id": user, "user_name": user,
                "command": f"/{root}", "text": text, "api_app_id": "A1",
                "response_url": self.fake.response_url(self._n),
                "trigger_id": f"trigger-{self._n}"}
        return await self.post_raw(urlencode(form), "application/x-www-form-urlencoded", **kw)

    async def interaction(self, payload: dict[str, Any], **kw: Any) -> aiohttp.ClientResponse:
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post_raw(body, "application/x-www-form-urlencoded", **kw)

    async def event(self, event: dict[str, Any], event_id: str,
                    **kw: Any) -> aiohttp.ClientResponse:
        body = json.dumps({"token": "x", "team_id": "T1", "api_app_id": "A1",
                           "type": "event_callback", "event_id": event_id,
                           "event_time": int(time.time()), "event": event})
        return await self.post_raw(body, "application/json", **kw)

    async def get(self, path: str) -> tuple[int, str]:
        assert self.http is not None
        async with self.http.get(self.url + path) as resp:
            return resp.status, await resp.text()


class RemoteBot(BotServer):
    """Signed requests to a bot running in another process."""

    def __init__(self, url: str, fake: FakeSlack) -> None:
        self._url = url
        self.fake = fake
        self.server = None
        self.http = None
        self.signer = SignatureVerifier(SECRET)
        self._n = 0

    async def start(self) -> None:
        self.http = aiohttp.ClientSession()

    @property
    def url(self) -> str:
        return self._url
