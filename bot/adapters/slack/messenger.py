"""The Slack `Messenger`: Web API calls for the worker, with failures sorted for retry."""

from __future__ import annotations

from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.slack.views import home_view, message_blocks, slack_text
from bot.messages import Message
from bot.services.messenger import DeliveryError, Posted

# errors that retrying cannot fix: the bot lost access or the target is gone
PERMANENT = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "account_inactive", "invalid_auth",
    "token_revoked", "no_permission", "missing_scope", "user_not_found", "cannot_dm_bot",
    "restricted_action", "msg_too_long", "invalid_blocks", "message_not_found",
    "cant_update_message", "team_access_not_granted", "ekm_access_denied",
})


METADATA_TYPE = "supportbot_outbox"


def _refused(method: str, exc: SlackApiError) -> DeliveryError:
    """Slack answered ok=false. A missing scope names the one it needs (Slack's `needed`),
    so the one-line log and the staff notice say what to add to the app."""
    error = str(exc.response.get("error", "unknown_error"))
    needed = exc.response.get("needed") if error == "missing_scope" else None
    needed = str(needed) if needed else None
    reason = f"{method}: {error}" + (f" (needs {needed})" if needed else "")
    return DeliveryError(reason, permanent=error in PERMANENT, needed=needed)


class SlackMessenger:
    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._dm_channels: dict[str, str] = {}

    async def close(self) -> None:
        """Close the client's HTTP session, when it has one of its own (kept-alive
        connections to Slack instead of a new one per call)."""
        if self.client.session is not None and not self.client.session.closed:
            await self.client.session.close()

    async def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        try:
            resp = await self.client.api_call(method, json=kwargs)
            return dict(resp.data) if isinstance(resp.data, dict) else {}
        except SlackApiError as exc:
            error = str(exc.response.get("error", "unknown_error"))
            if exc.response.status_code == 429 or error == "ratelimited":
                retry_after = float(exc.response.headers.get("Retry-After", "1") or 1)
                raise DeliveryError(f"{method}: rate limited", retry_after=retry_after) from exc
            raise _refused(method, exc) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise DeliveryError(f"{method}: {type(exc).__name__}") from exc

    async def post(self, channel: str, message: Message, *, thread_ts: str | None = None,
                   key: str | None = None) -> Posted:
        args: dict[str, Any] = {"channel": channel, "text": slack_text(message.text)[:3900],
                                "blocks": message_blocks(message), "unfurl_links": False}
        if thread_ts:
            args["thread_ts"] = thread_ts
        if key:
            # the outbox key travels with the message, so a retry can find it (see find)
            args["metadata"] = {"event_type": METADATA_TYPE, "event_payload": {"key": key}}
        data = await self._call("chat.postMessage", **args)
        return Posted(channel=str(data.get("channel", channel)), ts=str(data.get("ts", "")))

    async def find(self, channel: str, key: str, *, thread_ts: str | None = None
                   ) -> Posted | None:
        if thread_ts:
            data = await self._call("conversations.replies", channel=channel, ts=thread_ts,
                                    limit=200, include_all_metadata=True)
        else:
            data = await self._call("conversations.history", channel=channel, limit=100,
                                    include_all_metadata=True)
        for message in data.get("messages") or []:
            meta = message.get("metadata") or {}
            if meta.get("event_type") == METADATA_TYPE and \
                    (meta.get("event_payload") or {}).get("key") == key:
                return Posted(channel=channel, ts=str(message.get("ts")))
        return None

    async def dm_channel(self, user_id: str) -> str:
        channel = self._dm_channels.get(user_id)
        if channel is None:
            data = await self._call("conversations.open", users=user_id)
            channel = str((data.get("channel") or {}).get("id", ""))
            if not channel:
                raise DeliveryError("conversations.open returned no channel")
            self._dm_channels[user_id] = channel
        return channel

    async def upload(self, channel: str, filename: str, content: bytes, *, title: str,
                     thread_ts: str | None = None) -> None:
        """files.getUploadURLExternal, the upload itself, files.completeUploadExternal."""
        try:
            await self.client.files_upload_v2(channel=channel, filename=filename,
                                              content=content, title=title,
                                              thread_ts=thread_ts)
        except SlackApiError as exc:
            # name the step that failed (files_upload_v2 makes several calls)
            method = str(getattr(exc.response, "api_url", "")).rsplit("/", 1)[-1]
            raise _refused(method or "files.upload", exc) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DeliveryError(f"files.upload: {type(exc).__name__}") from exc

    async def publish_home(self, user_id: str, home: Message) -> None:
        await self._call("views.publish", user_id=user_id, view=home_view(home))

    async def update(self, channel: str, ts: str, message: Message) -> None:
        await self._call("chat.update", channel=channel, ts=ts,
                         text=slack_text(message.text)[:3900], blocks=message_blocks(message))

    def link(self, channel: str, ts: str) -> str:
        # archive links resolve in any workspace the reader belongs to, with no API call
        return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"
