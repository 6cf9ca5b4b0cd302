"""The outbound side of a chat platform, as the worker sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.messages import Message


class DeliveryError(Exception):
    """A platform call failed. `permanent` ones are not retried (e.g. channel archived).
    `needed` names the permission the bot lacks, when the platform said so. `per_channel`:
    the rate limit behind `retry_after` is the channel's own, not the platform's."""

    def __init__(self, reason: str, *, permanent: bool = False,
                 retry_after: float | None = None, needed: str | None = None,
                 per_channel: bool = False) -> None:
        super().__init__(reason)
        self.per_channel = per_channel
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after
        self.needed = needed


@dataclass(frozen=True)
class Posted:
    channel: str
    ts: str


class Messenger(Protocol):
    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None,
                   key: str | None = None) -> Posted:
        """Post a neutral message tagged with `key`; return where it landed."""
        ...

    async def find(self, channel: str, key: str, *, thread_ts: str | None = None
                   ) -> Posted | None:
        """A recent message in the channel (or thread) tagged with `key`, if any."""
        ...

    async def dm_channel(self, user_id: str) -> str:
        """The direct-message channel with a user."""
        ...

    async def upload(self, channel: str, filename: str, content: bytes, *, title: str,
                     thread_ts: str | None = None) -> None:
        """Share a file (a report chart) in a channel or thread."""
        ...

    async def publish_home(self, user_id: str, home: Message) -> None:
        """Show a user their App Home dashboard."""
        ...

    async def update(self, channel: str, ts: str, message: Message) -> None:
        """Replace a message in place (a case card as the case changes)."""
        ...

    def link(self, channel: str, ts: str) -> str:
        """A link to a message that a reader can follow."""
        ...
