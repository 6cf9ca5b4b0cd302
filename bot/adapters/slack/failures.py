"""Failures of Slack calls that come from Slack or the network, not from our code."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError

# failures of a Web API call (or a response_url post) that come from Slack or the network,
# not from our code: one log line each, never a traceback
SLACK_FAILURES: tuple[type[BaseException], ...] = (SlackApiError, aiohttp.ClientError,
                                                   TimeoutError)


def describe_failure(exc: BaseException) -> str:
    """One line for a failed Slack call: Slack's error code, or the network error."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
    detail = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
