"""The dashboard (Slack's App Home) a user opened: staff see their accounts, breaches,
pending requests and advisories; a customer sees the accounts whose groups they use."""

from __future__ import annotations

from bot.services import home
from handlers.core import Call, Kind, Reply, Router


async def opened(call: Call) -> Reply:
    data = await home.opened(call.app, call.req.team_id, call.req.user_id)
    message = home.home_message(data)
    return Reply(message.text, message=message)


def register(router: Router) -> None:
    router.on(Kind.HOME)(opened)
