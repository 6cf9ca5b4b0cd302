"""The outbound email port: what a use case hands over to be mailed (a neutral message and
its images), and what it gets back. The SMTP client behind it lives in
`bot.adapters.email`; failures come back as `DeliveryError` (a 4xx or a lost connection is
retried, a 5xx is permanent)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.messages import Message


@dataclass(frozen=True)
class Image:
    """A picture shown in the mail's HTML (by content id) and named as an attachment."""

    cid: str
    filename: str
    content: bytes
    subtype: str = "png"


@dataclass(frozen=True)
class Email:
    """One mail to one recipient. `key` is the outbox key: it becomes the Message-ID, so a
    mail sent again after a crash can be recognised as the same one. `timezone` is where
    the reader's moments (`<t:…>`) are shown."""

    to: str
    subject: str
    message: Message
    key: str
    timezone: str = "UTC"
    images: tuple[Image, ...] = ()


class Mailer(Protocol):
    async def send(self, mail: Email) -> str:
        """Hand the mail to the mail server; return its Message-ID. Raises
        `DeliveryError` (permanent for a 5xx answer)."""
        ...
