"""Slack listeners: an event is translated into a router call and its answer goes back
through the Web API (App Home opened publishes the view; refreshes use the same API)."""

from __future__ import annotations

import json

from bot.adapters.slack.app import make_client
from bot.adapters.slack.messenger import SlackMessenger
from bot.services.base import AppContext
from bot.worker import Worker
from handlers.core import Router
from testkit.chat import ACME_CH, CUSTOMER, TAM, Chat
from testkit.fake_slack import FakeSlack
from testkit.fakes import Clock
from testkit.slack_harness import BotServer


async def test_app_home_opened_publishes_the_view(sctx: AppContext, router: Router,
                                                   fake: FakeSlack, bot: BotServer,
                                                   clock: Clock) -> None:
    await Chat(sctx, router)(CUSTOMER, ACME_CH, "/support open S2 api down")
    await bot.event({"type": "app_home_opened", "user": TAM, "tab": "home",
                     "channel": "DTAM"}, "EvHome")
    published = await fake.wait_for(lambda: fake.of("views.publish"))
    assert published[0]["user_id"] == TAM
    assert "CS-1001" in json.dumps(published[0]["view"])
    # and the worker's messenger publishes refreshes through the same API
    worker = Worker(sctx, SlackMessenger(make_client(sctx.settings, retries=False)), name="h")
    await Chat(sctx, router)(CUSTOMER, ACME_CH, "/support open S3 second")
    clock.advance(seconds=2)
    await worker.run_once()
    await fake.wait_for(lambda: len(fake.of("views.publish")) >= 2)
    assert "CS-1002" in json.dumps(fake.of("views.publish")[-1]["view"])
