"""Incidents end to end over HTTP against the fake Slack: the declare form (and a field at
fault), the status post once per group, a case opened meanwhile linked on its card and in
its confirmation."""

from __future__ import annotations

import json
from typing import Any

from bot.services.base import AppContext
from bot.worker import Worker
from testkit.chat import ACME_CH, BIZ_CH, CUSTOMER, TAM
from testkit.fake_slack import FakeSlack
from testkit.slack_harness import BotServer


def submission(view: dict[str, Any], region: str, title: str) -> dict[str, Any]:
    return {"type": "view_submission", "team": {"id": "T1"},
            "user": {"id": TAM, "team_id": "T1"}, "api_app_id": "A1", "trigger_id": "t",
            "view": {**view, "id": "V1", "state": {"values": {
                "region": {"value": {"type": "static_select",
                                     "selected_option": {"value": region}}},
                "products": {"value": {"type": "plain_text_input", "value": None}},
                "title": {"value": {"type": "plain_text_input", "value": title}}}}}}


async def test_declare_by_form_post_once_and_link_a_new_case(
        bot: BotServer, fake: FakeSlack, worker: Worker, sctx: AppContext) -> None:
    await bot.command("tam", "incident declare", user=TAM, channel="CSTAFF")
    view = (await fake.wait_for(lambda: fake.of("views.open")))[0]["view"]
    assert view["callback_id"] == "incident_form"
    assert "cn-north-4" in json.dumps(view["blocks"])

    bad = await bot.interaction(submission(view, "cn-north-4", ""))
    body = json.loads(await bad.text())
    assert body["response_action"] == "errors" and "title" in body["errors"]

    resp = await bot.interaction(submission(view, "cn-north-4", "ECS API errors"))
    assert resp.status == 200
    answer = await fake.wait_for(lambda: [b for b in fake.of("chat.postEphemeral")
                                          if "INC-1001" in b.get("text", "")])
    assert "on its way to 2 groups" in answer[0]["text"]  # acme and bizco, both cn-north-4
    for _ in range(3):
        await worker.run_once()
    for channel in (ACME_CH, BIZ_CH):
        status = [b for b in fake.posts_to(channel) if "INC-1001" in b.get("text", "")]
        assert len(status) == 1, channel

    resp = await bot.command("support", "open S1 instances unreachable", user=CUSTOMER,
                             channel=ACME_CH)
    reply = json.loads(await resp.text())
    assert "linked to platform incident *INC-1001*" in reply["text"]
    for _ in range(3):
        await worker.run_once()
    cards = [b for b in fake.posts_to(ACME_CH) if "CS-1001" in json.dumps(b.get("blocks"))
             and "Acknowledge" in json.dumps(b.get("blocks"))]
    assert len(cards) == 1 and "INC-1001 ECS API errors" in json.dumps(cards[0]["blocks"])
