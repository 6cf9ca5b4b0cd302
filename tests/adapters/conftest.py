"""Adapter fixtures: the bot's real HTTP server on the Slack-wired context, and a worker
that delivers through the Slack messenger to the fake Slack."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.adapters.slack.app import make_client
from bot.adapters.slack.messenger import SlackMessenger
from bot.services.base import AppContext
from bot.worker import Worker
from handlers.core import Router
from testkit.fake_slack import FakeSlack
from testkit.slack_harness import BotServer


@pytest.fixture
async def bot(sctx: AppContext, router: Router, fake: FakeSlack) -> AsyncIterator[BotServer]:
    b = BotServer(sctx, router, fake)
    await b.start()
    yield b
    await b.close()


@pytest.fixture
def worker(sctx: AppContext) -> Worker:
    """Here the worker talks to the fake Slack; its client does not retry by itself, so the
    outbox's own retries are what the tests see."""
    return Worker(sctx, SlackMessenger(make_client(sctx.settings, retries=False)), name="slack")
