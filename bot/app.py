"""Composition root: settings in, a running bot out, with explicit start-up and shut-down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from bot.adapters.routing import RoutingMessenger
from bot.config import Settings, load_catalog
from bot.services.base import AppContext
from bot.services.mailer import Mailer
from bot.services.messenger import Messenger
from bot.worker import worker_running
from handlers import build_router
from handlers.core import Router
from storage.db import Database

log = logging.getLogger(__name__)


@dataclass
class Core:
    ctx: AppContext
    router: Router


@asynccontextmanager
async def core(settings: Settings) -> AsyncIterator[Core]:
    """Catalog, database (migrated to head) and router; the database is closed on exit."""
    catalog = load_catalog(settings.catalog_path)
    db = Database(settings.database_url)
    try:
        await db.upgrade()
        # WeCom's groups are posted to through a push webhook each: linking one needs it
        needs_address = frozenset({"wecom"}) if settings.wecom else frozenset()
        # WeLink's through a webhook robot each, and they cannot command: linked from afar
        remote = frozenset({"welink"}) if settings.welink else frozenset()
        yield Core(AppContext(db=db, catalog=catalog, settings=settings,
                              address_platforms=needs_address | remote,
                              remote_platforms=remote, mailer=mailer_for(settings)),
                   build_router())
    finally:
        await db.close()


def mailer_for(settings: Settings) -> Mailer | None:
    """The SMTP client when SUPPORTBOT_SMTP_HOST is set; None: reports are not emailed."""
    if not settings.email:
        return None
    from bot.adapters.email.smtp import SmtpMailer

    return SmtpMailer(settings)


def messenger_for(ctx: AppContext, slack: Messenger | None) -> RoutingMessenger:
    """The worker's messenger: each platform's own, chosen by the ids' prefix."""
    platforms: dict[str, Messenger] = {}
    if ctx.settings.wecom:
        from bot.adapters.wecom.messenger import WeComMessenger
        from bot.services import addresses

        async def address_of(channel: str) -> str | None:
            return await addresses.lookup(ctx, channel)

        platforms["wecom"] = WeComMessenger(ctx.settings, address_of)
    if ctx.settings.welink:
        from bot.adapters.welink.messenger import WeLinkMessenger
        from bot.services import addresses

        async def robot_of(channel: str) -> str | None:
            return await addresses.lookup(ctx, channel)

        platforms["welink"] = WeLinkMessenger(ctx.settings, robot_of)
    return RoutingMessenger(slack, platforms)


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """`supportbot run`: every configured platform on one HTTP server, plus the worker.
    Slack in HTTP mode (or Socket Mode with SLACK_APP_TOKEN); WeCom's robot callback.
    `settings.process_role` runs them apart: "web" serves without the worker, "worker"
    runs the worker with only /healthz, /readyz and /metrics on the HTTP server."""
    from bot.adapters.slack.app import Workspace, build_bolt, build_web, make_client
    from bot.adapters.slack.messenger import SlackMessenger

    settings.require_platform()
    if settings.runs_worker and not settings.email:
        log.info("SUPPORTBOT_SMTP_HOST is not set: monthly reports go to groups only, not by "
                 "email")
    if settings.runs_worker and settings.duty_channel is None:
        log.warning("SUPPORTBOT_DUTY_CHANNEL is not set: breach notices reach only the "
                    "accounts' TAMs, and none at all for accounts without a TAM")
    stop = stop or asyncio.Event()
    async with core(settings) as c:
        # the platforms' callbacks come in only where they are served (roles all and web)
        slack = settings.slack and settings.serves_platforms
        wecom = settings.wecom and settings.serves_platforms
        workspace = Workspace(settings.slack_bot_token)
        bolt = build_bolt(c.ctx, c.router, make_client(settings), workspace) if slack else None
        socket_mode = slack and settings.slack_app_token is not None
        webapp = build_web(c.ctx, None if socket_mode else bolt)
        if wecom:
            from bot.adapters.wecom.app import add_routes

            add_routes(webapp, c.ctx, c.router)
        runner = web.AppRunner(webapp, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        served = [*(["Slack " + ("Socket mode" if socket_mode else "HTTP mode")] if slack
                    else []),
                  *(["WeCom"] if wecom else []),
                  *(["WeLink outbound"] if settings.welink and settings.runs_worker else []),
                  *(["no worker"] if not settings.runs_worker else []),
                  *(["/healthz, /readyz, /metrics only"] if not settings.serves_platforms
                    else [])]
        log.info("listening on %s:%s (%s%s)", settings.host, settings.port,
                 "" if settings.process_role == "all" else f"role {settings.process_role}: ",
                 ", ".join(served))
        handler = None
        if socket_mode:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            assert bolt is not None
            handler = AsyncSocketModeHandler(bolt, settings.slack_app_token)
            await handler.connect_async()  # type: ignore[no-untyped-call]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        # requests never wait for Slack: the bot's own ids arrive whenever Slack answers
        learning = asyncio.create_task(workspace.learn(make_client(settings, retries=False)),
                                       name="auth.test") if slack else None
        messenger: RoutingMessenger | None = None
        if settings.runs_worker:
            # the worker's Slack calls share one HTTP session (kept-alive connections)
            messenger = messenger_for(c.ctx, SlackMessenger(make_client(
                settings, retries=False, session=aiohttp.ClientSession()))
                if settings.slack else None)
        try:
            async with contextlib.AsyncExitStack() as running:
                if settings.process_role == "worker" and c.ctx.db.is_sqlite:
                    # a worker apart from the commands hears of their jobs by watching for
                    # commits (on PostgreSQL it LISTENs for the commands' NOTIFY)
                    await running.enter_async_context(c.ctx.db.commits_watched())
                if messenger is not None:
                    await running.enter_async_context(worker_running(c.ctx, messenger))
                await stop.wait()
        finally:
            if learning is not None:
                learning.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await learning
            if handler is not None:
                await handler.close_async()  # type: ignore[no-untyped-call]
            await runner.cleanup()
            if messenger is not None:
                await messenger.close()
