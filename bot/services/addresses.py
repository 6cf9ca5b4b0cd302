"""Delivery addresses: what some platforms need besides a channel id to post into a group
(a WeCom group's push webhook). They are credentials, so they are stored encrypted with the
operator's key (`SUPPORTBOT_SECRET_KEY`, a Fernet key) and never logged or echoed."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.base import AppContext, Refusal
from storage.repos import GroupSecrets

MAX_ADDRESS = 512


def needs_address(app: AppContext, channel_id: str) -> bool:
    """Whether the channel's platform posts to groups through a per-group address."""
    platform, sep, _ = channel_id.partition(":")
    return bool(sep) and platform in app.address_platforms


def _fernet(app: AppContext) -> Fernet:
    if not app.settings.secret_key:
        raise Refusal("link.no_secret_key")
    return Fernet(app.settings.secret_key.encode("ascii"))


async def store(s: AsyncSession, app: AppContext, channel_id: str, address: str) -> None:
    """Keep a channel's address, encrypted (in the caller's transaction)."""
    address = address.strip()
    if not address or len(address) > MAX_ADDRESS or any(c.isspace() for c in address):
        raise Refusal("link.bad_address")
    await GroupSecrets(s).put(channel_id, _fernet(app).encrypt(address.encode("utf-8")),
                              app.clock())


async def lookup(app: AppContext, channel_id: str) -> str | None:
    """A channel's address in clear, for the platform's messenger; None when there is none
    (or it cannot be decrypted with the configured key)."""
    async with app.db.read() as s:
        secret = await GroupSecrets(s).get(channel_id)
    if secret is None or not app.settings.secret_key:
        return None
    try:
        return _fernet(app).decrypt(secret).decode("utf-8")
    except InvalidToken:
        return None  # the key was changed: the group must be linked again
