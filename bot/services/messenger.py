"""The outbound side of a chat platform, as the worker sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.services.cards import CaseCard

if TYPE_CHECKING:
    from bot.services.home import CustomerHome, StaffHome


class DeliveryError(Exception):
    """A platform call failed. `permanent` ones are not retried (e.g. channel archived).
    `needed` names the permission the bot lacks, when the platform said so."""

    def __init__(self, reason: str, *, permanent: bool = False,
                 retry_after: float | None = None, needed: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after
        self.needed = needed


@dataclass(frozen=True)
class Button:
    """A button that runs a command as whoever clicks it, where it was clicked.

    `ask` names a text to collect first (e.g. a rejection reason), appended to the command.
    The command is authorized like a typed one, so a forged click gains nothing.
    """

    label: str
    command: str
    style: str | None = None  # "primary" | "danger"
    ask: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("label", self.label), ("command", self.command),
                                  ("style", self.style), ("ask", self.ask)) if v}

    @classmethod
    def from_dict(cls, d: dict[str, str]) -> Button:
        return cls(d["label"], d["command"], d.get("style"), d.get("ask"))


@dataclass(frozen=True)
class Posted:
    channel: str
    ts: str


class Messenger(Protocol):
    async def post(self, channel: str, text: str, *, thread_ts: str | None = None,
                   card: CaseCard | None = None, buttons: list[Button] | None = None,
                   key: str | None = None) -> Posted:
        """Post a message (or a case card) tagged with `key`; return where it landed."""
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

    async def publish_home(self, user_id: str, home: StaffHome | CustomerHome) -> None:
        """Show a user their App Home dashboard."""
        ...

    async def update(self, channel: str, ts: str, text: str, *,
                     card: CaseCard | None = None) -> None:
        """Replace a message in place (a case card as the case changes)."""
        ...

    def link(self, channel: str, ts: str) -> str:
        """A link to a message that a reader can follow."""
        ...


class Deliverer(Protocol):
    """What job handlers outside the worker use to post: once, paced, recoverable."""

    messenger: Messenger

    async def deliver(self, key: str, channel: str, text: str, *, recover: bool,
                      thread_ts: str | None = None, card: CaseCard | None = None,
                      buttons: list[Button] | None = None) -> Posted:
        """Post once; with `recover`, first look for an earlier post with this key."""
        ...
