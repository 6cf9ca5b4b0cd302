"""One `Messenger` for several platforms: each call goes to the platform whose ids it names.

Inside the core, ids of platforms other than Slack are qualified (`wecom:<chatid>`,
`wecom:<userid>`); Slack's stay bare (they never contain ':'). So the prefix of a channel or
user id is enough to know which platform delivers it.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.messages import Message
from bot.services.messenger import DeliveryError, Messenger, Posted


class RoutingMessenger:
    """`platforms` maps an id prefix (`wecom`) to its messenger; `default` takes bare ids."""

    def __init__(self, default: Messenger | None, platforms: Mapping[str, Messenger]) -> None:
        self.default = default
        self.platforms = dict(platforms)

    def for_id(self, some_id: str) -> Messenger:
        prefix, sep, _ = some_id.partition(":")
        messenger = self.platforms.get(prefix) if sep else self.default
        if messenger is None:
            # e.g. a Slack channel while only WeCom is configured: retrying cannot help
            raise DeliveryError(f"no platform configured for {prefix if sep else 'Slack'} "
                                "ids", permanent=True)
        return messenger

    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None,
                   key: str | None = None) -> Posted:
        return await self.for_id(channel).post(channel, message, thread_ts=thread_ts, key=key)

    async def find(self, channel: str, key: str, *, thread_ts: str | None = None
                   ) -> Posted | None:
        return await self.for_id(channel).find(channel, key, thread_ts=thread_ts)

    async def dm_channel(self, user_id: str) -> str:
        return await self.for_id(user_id).dm_channel(user_id)

    async def upload(self, channel: str, filename: str, content: bytes, *, title: str,
                     thread_ts: str | None = None) -> None:
        await self.for_id(channel).upload(channel, filename, content, title=title,
                                          thread_ts=thread_ts)

    async def publish_home(self, user_id: str, home: Message) -> None:
        await self.for_id(user_id).publish_home(user_id, home)

    async def update(self, channel: str, ts: str, message: Message) -> None:
        await self.for_id(channel).update(channel, ts, message)

    async def close(self) -> None:
        """Close the platforms' own HTTP sessions."""
        for messenger in [self.default, *self.platforms.values()]:
            close = getattr(messenger, "close", None)
            if close is not None:
                await close()

    def link(self, channel: str, ts: str) -> str:
        try:
            return self.for_id(channel).link(channel, ts)
        except DeliveryError:
            return ""
