"""Bolt wiring and the aiohttp server: /slack/events, /healthz, /readyz, /metrics."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.logger import messages as bolt_messages
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from sqlalchemy.exc import SQLAlchemyError

from bot import metrics
from bot.adapters.slack import listeners
from bot.adapters.slack.failures import SLACK_FAILURES, describe_failure
from bot.config import Settings
from bot.i18n import Translator
from bot.services.base import AppContext, record_event
from handlers.core import Router

log = logging.getLogger(__name__)

class LoggingWebClient(AsyncWebClient):
    """The listeners' Web API client: a failed call is logged in one line with its method,
    then raised as before (listeners that handle SlackApiError still see it)."""

    async def api_call(self, api_method: str, **kwargs: Any
                       ) -> AsyncSlackResponse:
        try:
            return await super().api_call(api_method, **kwargs)
        except SLACK_FAILURES as exc:
            log.warning("Slack Web API call %s failed: %s", api_method, describe_failure(exc))
            exc.supportbot_logged = True  # type: ignore[attr-defined]
            raise


class _QuietTokenWarnings(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment on its own and then warns that it will
    not use it: true and intended here (the token reaches Bolt through `authorize`)."""

    HIDDEN = frozenset({bolt_messages.warning_client_prioritized_and_token_skipped(),
                        bolt_messages.warning_token_skipped()})

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.HIDDEN


_BOLT_LOG = logging.getLogger("slack_bolt.AsyncApp")
if not any(isinstance(f, _QuietTokenWarnings) for f in _BOLT_LOG.filters):
    _BOLT_LOG.addFilter(_QuietTokenWarnings())


class Workspace:
    """The single workspace's bot credentials, for Bolt's `authorize`.

    Bolt's default single-workspace authorization calls auth.test on the first request, so a
    request could wait on (or fail with) an unreachable Slack. The token is all a request
    needs; the bot's own ids only help Bolt skip the bot's own events, and are learned in the
    background (`learn`) when Slack answers."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self.bot_user_id: str | None = None
        self.bot_id: str | None = None

    def result(self, enterprise_id: str | None, team_id: str | None,
               user_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id,
                               bot_token=self.token, bot_user_id=self.bot_user_id,
                               bot_id=self.bot_id, user_id=user_id)

    async def learn(self, client: AsyncWebClient, *, first_delay: float = 5.0,
                    max_delay: float = 300.0) -> bool:
        """auth.test until Slack answers: True once the ids are known, False when Slack
        rejects the token (retrying cannot fix that). Each failure is one log line."""
        delay = first_delay
        while True:
            try:
                resp = await client.auth_test()
            except SlackApiError as exc:
                error = describe_failure(exc)
                if error in ("invalid_auth", "not_authed", "account_inactive",
                             "token_revoked", "token_expired"):
                    log.error("Slack Web API call auth.test failed: %s (check SLACK_BOT_TOKEN)",
                              error)
                    return False
                log.warning("Slack Web API call auth.test failed: %s; retrying in %.0f s",
                            error, delay)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning("Slack Web API call auth.test failed: %s; retrying in %.0f s",
                            describe_failure(exc), delay)
            else:
                self.bot_user_id = str(resp.get("user_id") or "") or None
                self.bot_id = str(resp.get("bot_id") or "") or None
                log.info("connected to Slack as %s (team %s)", self.bot_user_id,
                         resp.get("team_id"))
                return True
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


def make_client(settings: Settings, *, retries: bool = True,
                session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    """A Web API client on SLACK_API_URL. Listeners get Slack's retry handlers; the worker
    gets none, because it retries through the outbox (honouring Retry-After) and a client
    sleeping through retries could outlive the job's lease. Without a `session`, each call
    opens (and closes) its own connection; the worker's messenger passes one, kept open."""
    client = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url,
                            # annotated int, but passed to aiohttp.ClientTimeout: floats work
                            timeout=settings.slack_timeout_seconds,  # type: ignore[arg-type]
                            session=session)
    if not retries:
        client.retry_handlers.clear()
        return client
    client.retry_handlers.extend([
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        AsyncRateLimitErrorRetryHandler(max_retry_count=2),
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ])
    return client


class SupportBolt(AsyncApp):
    """The Bolt app, and beside it `commands`: an app for slash commands only, with
    `process_before_response`, so Slack's answer leaves as soon as the command is done
    (or acked empty after the ack budget) instead of at Bolt's next 10 ms ack poll. Other
    requests (buttons, forms, events) keep acking first and working after."""

    commands: AsyncApp | None = None


def build_bolt(ctx: AppContext, router: Router, client: AsyncWebClient,
               workspace: Workspace | None = None) -> SupportBolt:
    """The Bolt app. It never needs the network to accept a request: `workspace` (made from
    the configured token unless given) authorizes every request locally."""
    known = workspace or Workspace(ctx.settings.slack_bot_token)

    # a plain function: Bolt passes arguments by the parameter names it finds
    async def authorize(enterprise_id: str | None, team_id: str | None,
                        user_id: str | None) -> AuthorizeResult:
        return known.result(enterprise_id, team_id, user_id)

    # one per workspace, made once: a client holds no per-request state, and making one for
    # every request cost a fair part of a command's CPU
    logging_clients: dict[tuple[str | None, str | None], LoggingWebClient] = {}

    async def logging_client(context: AsyncBoltContext,
                             next: Callable[[], Awaitable[Any]]) -> Any:
        # the client Bolt made for this request, as one that logs its failures
        given = context.client
        key = (given.token, context.team_id)
        found = logging_clients.get(key)
        if found is None or found.session is not given.session:
            if len(logging_clients) > 1000:
                logging_clients.clear()
            found = logging_clients[key] = LoggingWebClient(
                token=given.token, base_url=given.base_url, timeout=given.timeout,
                session=given.session, headers=given.headers, team_id=context.team_id,
                logger=given.logger, retry_handlers=list(given.retry_handlers))
        context["client"] = found
        return await next()

    async def on_error(error: Exception, body: dict[str, Any], respond: Any) -> None:
        # one place for unexpected failures: log the detail, tell the user only that it failed
        if isinstance(error, SLACK_FAILURES):
            # Slack or the network failed, not our code: the call was logged with its method
            if not getattr(error, "supportbot_logged", False):
                log.warning("a Slack listener stopped: %s", describe_failure(error))
        else:
            log.exception("unhandled error in a Slack listener", exc_info=error)
        if respond is not None and isinstance(body, dict) and body.get("response_url"):
            try:
                lang = await listeners.body_lang(router, ctx, body)
                await respond(text=Translator(lang)("error.internal"),
                              response_type="ephemeral", replace_original=False)
            except SLACK_FAILURES as exc:
                log.warning("could not tell the user about the error: response_url post "
                            "failed: %s", describe_failure(exc))
            except Exception:
                log.warning("could not tell the user about the error", exc_info=True)

    def app(cls: type[AsyncApp], *, inline: bool) -> AsyncApp:
        made = cls(client=client,
                   signing_secret=ctx.settings.slack_signing_secret or "unused",
                   authorize=authorize,
                   # the commands app is reached only through `events` below, which has
                   # checked the signature already: no second HMAC for every command
                   request_verification_enabled=ctx.settings.slack_app_token is None
                   and not inline,
                   raise_error_for_unhandled_request=False, process_before_response=inline)
        made.middleware(logging_client)
        listeners.register_middleware(made, ctx)
        made.error(on_error)
        return made

    bolt = app(SupportBolt, inline=False)
    assert isinstance(bolt, SupportBolt)
    listeners.register_commands(bolt, ctx, router)  # Socket Mode's way in
    listeners.register_interactions(bolt, ctx, router)
    listeners.register_buttons(bolt, ctx, router)
    listeners.register_forms(bolt, ctx, router)
    listeners.register_events(bolt, ctx, router)
    bolt.commands = app(AsyncApp, inline=True)
    listeners.register_commands(bolt.commands, ctx, router)
    return bolt


SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
TIMESTAMP = re.compile(r"[0-9]{1,15}")


def build_web(ctx: AppContext, bolt: SupportBolt | None) -> web.Application:
    # without Bolt (WeCom only, or Socket Mode) no request is verified here: the verifier
    # refuses an empty secret, so it gets a placeholder it never uses
    verifier = SignatureVerifier(ctx.settings.slack_signing_secret or "unused")

    async def events(request: web.Request) -> web.Response:
        assert bolt is not None
        # checked before anything reads the body: a missing or malformed header would make
        # the signature check itself fail (int(''), non-ASCII compare) with a traceback
        signature = request.headers.get("X-Slack-Signature", "")
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        if not TIMESTAMP.fullmatch(timestamp) or not SIGNATURE.fullmatch(signature):
            missing = [name for name, value, form in (
                ("X-Slack-Request-Timestamp", timestamp, TIMESTAMP),
                ("X-Slack-Signature", signature, SIGNATURE)) if not form.fullmatch(value)]
            log.warning("unsigned Slack request refused: missing or malformed %s",
                        " and ".join(missing))
            return web.json_response({"error": "invalid request signature"}, status=401)
        try:
            return await dispatch(request, signature, timestamp)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            # Bolt reads payload fields before our listeners run; a body of the wrong shape
            # is the sender's fault (4xx), not ours: one line, no traceback
            log.warning("malformed Slack payload rejected (%s)", type(exc).__name__)
            return web.json_response({"error": "malformed payload"}, status=400)

    async def dispatch(request: web.Request, signature: str, timestamp: str) -> web.Response:
        assert bolt is not None
        bolt_req = await to_bolt_request(request)
        if not verifier.is_valid(bolt_req.raw_body, timestamp, signature):
            # wrong or stale signature: Bolt's own verification answers 401
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
            # are deduplicated in their own work): the same signed request again is a replay.
            # A command records it in its own transaction (the router's), which refuses a
            # replay (401, from the command listener); anything else here.
            key = "sig:" + signature[3:61]
            if "command" in bolt_req.body and bolt.commands is not None:
                bolt_req.context["replay_key"] = key
                return await to_aiohttp_response(await bolt.commands.async_dispatch(bolt_req))
            try:
                first = await record_event(ctx, key)
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

    @web.middleware
    async def count(request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        # by route, not path: an unknown path must not mint a new time series
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        # the platform a route serves (/slack/events, /wecom/callback); none for /healthz …
        platform = route.split("/")[1] if route.startswith(("/slack/", "/wecom/")) else "none"
        labels = {"route": route, "platform": platform}
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            metrics.HTTP_REQUESTS.labels(status=str(exc.status), **labels).inc()
            raise
        except Exception:
            metrics.HTTP_REQUESTS.labels(status="500", **labels).inc()
            raise
        metrics.HTTP_REQUESTS.labels(status=str(response.status), **labels).inc()
        return response

    webapp = web.Application(client_max_size=1024 * 1024, middlewares=[count])
    if bolt is not None:
        webapp.router.add_post("/slack/events", events)
    webapp.router.add_get("/healthz", healthz)
    webapp.router.add_get("/readyz", readyz)
    webapp.router.add_get("/metrics", prometheus)
    return webapp
