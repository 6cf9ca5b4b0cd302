"""The outbound side of a chat platform, as the worker sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.services.cards import CaseCard


class DeliveryError(Exception):
    """A platform call failed. `permanent` ones are not retried (e.g. channel archived)."""

    def __init__(self, reason: str, *, permanent: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass(frozen=True)
class Posted:
    channel: str
    ts: str


class Messenger(Protocol):
    async def post(self, channel: str, text: str, *, thread_ts: str | None = None,
                   card: CaseCard | None = None) -> Posted:
        """Post a message (or a case card) and return where it landed."""
        ...

    async def dm(self, user_id: str, text: str) -> Posted:
        """Send a direct message to a user."""
        ...

    async def update(self, channel: str, ts: str, text: str, *,
                     card: CaseCard | None = None) -> None:
        """Replace a message in place (a case card as the case changes)."""
        ...

    def link(self, channel: str, ts: str) -> str:
        """A link to a message that a reader can follow."""
        ...
