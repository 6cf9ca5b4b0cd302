"""Bolt wiring and the aiohttp server: /slack/events, /healthz, /readyz, /metrics."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import SQLAlchemyError

from bot import metrics
from bot.adapters.slack import listeners
from bot.config import Settings
from bot.i18n import Translator
from bot.services.base import AppContext, record_event
from handlers.core import Router

log = logging.getLogger(__name__)


def make_client(settings: Settings, *, retries: bool = True) -> AsyncWebClient:
    """A Web API client on SLACK_API_URL. Listeners get Slack's retry handlers; the worker
    gets none, because it retries through the outbox (honouring Retry-After) and a client
    sleeping through retries could outlive the job's lease."""
    client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url,
                            # annotated int, but passed to aiohttp.ClientTimeout: floats work
                            timeout=settings.slack_timeout_seconds)  # type: ignore[arg-type]
    if not retries:
        client.retry_handlers.clear()
        return client
    client.retry_handlers.extend([
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        AsyncRateLimitErrorRetryHandler(max_retry_count=2),
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ])
    return client


def build_bolt(ctx: AppContext, router: Router, client: AsyncWebClient) -> AsyncApp:
    bolt = AsyncApp(client=client, signing_secret=ctx.settings.slack_signing_secret or "unused",
                    request_verification_enabled=ctx.settings.slack_app_token is None,
                    raise_error_for_unhandled_request=False)
    listeners.register_middleware(bolt, ctx)
    listeners.register_commands(bolt, ctx, router)
    listeners.register_interactions(bolt, ctx, router)
    listeners.register_buttons(bolt, ctx, router)
    listeners.register_forms(bolt, ctx, router)
    listeners.register_events(bolt, ctx, router)

    @bolt.error
    async def on_error(error: Exception, body: dict[str, Any], respond: Any) -> None:
        # one place for unexpected failures: log the detail, tell the user only that it failed
        log.exception("unhandled error in a Slack listener", exc_info=error)
        if respond is not None and isinstance(body, dict) and body.get("response_url"):
            try:
                lang = await listeners.body_lang(router, ctx, body)
                await respond(text=Translator(lang)("error.internal"),
                              response_type="ephemeral", replace_original=False)
            except Exception:
                log.warning("could not tell the user about the error", exc_info=True)

    return bolt


def build_web(ctx: AppContext, bolt: AsyncApp | None) -> web.Application:
    verifier = SignatureVerifier(ctx.settings.slack_signing_secret or "")

    async def events(request: web.Request) -> web.Response:
        assert bolt is not None
        try:
            return await dispatch(request)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            # Bolt reads payload fields before our listeners run; a body of the wrong shape
            # is the sender's fault (4xx), not ours, and must not show a traceback
            log.warning("malformed Slack payload rejected", exc_info=True)
            return web.json_response({"error": "malformed payload"}, status=400)

    async def dispatch(request: web.Request) -> web.Response:
        assert bolt is not None
        bolt_req = await to_bolt_request(request)
        signature = request.headers.get("X-Slack-Signature", "")
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        if not verifier.is_valid(bolt_req.raw_body, timestamp, signature):
            # unsigned or stale: Bolt's own verification answers 401
            return await to_aiohttp_response(await bolt.async_dispatch(bolt_req))
        if bolt_req.body.get("type") == "app_rate_limited":
            # Slack dropped events for a minute: nothing to do but say so in the log
            log.warning("Slack rate-limited this app's events (minute %s)",
                        bolt_req.body.get("minute_rate_limited"))
            return web.json_response({"ok": True})
        if not listeners.well_formed(bolt_req.body):
            # checked before Bolt, which reads some of these fields before any middleware
            log.warning("a Slack request of an unexpected shape was refused")
            return web.json_response({"error": "malformed payload"}, status=400)
        if request.content_type == "application/x-www-form-urlencoded" and \
                "ssl_check" not in bolt_req.body:
            # Slack never resends a command or an interaction (events carry an event_id and
            # are deduplicated in their own work): the same signed request again is a replay
            try:
                first = await record_event(ctx, "sig:" + signature[3:61])
            except SQLAlchemyError:
                log.exception("could not record the request for replay detection")
                first = True  # the database is in trouble: serve, do not refuse
            if not first:
                log.warning("replayed Slack request rejected")
                return web.json_response({"error": "replayed request"}, status=401)
        return await to_aiohttp_response(await bolt.async_dispatch(bolt_req))

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ok = await ctx.db.ping()
        return web.json_response({"status": "ready" if ok else "database unreachable"},
                                 status=200 if ok else 503)

    async def prometheus(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.REGISTRY),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    webapp = web.Application(client_max_size=1024 * 1024)
    if bolt is not None:
        webapp.router.add_post("/slack/events", events)
    webapp.router.add_get("/healthz", healthz)
    webapp.router.add_get("/readyz", readyz)
    webapp.router.add_get("/metrics", prometheus)
    return webapp
