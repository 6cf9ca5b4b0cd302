"""What the messengers that call a platform's JSON API over HTTP share (WeCom, WeLink): one
aiohttp session opened on first use, and the same sorting of a call that did not get a JSON
object back. The platform's own codes, limits and retries stay in its adapter."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from bot.config import Settings
from bot.services.messenger import DeliveryError

# what a call that never got an answer (or got one that is not JSON) raises
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError, ValueError)


class JsonApiClient:
    """Mixin for a messenger: `_http()` is its session (timeout SLACK_TIMEOUT_SECONDS, as for
    every platform), `close()` closes it. Log lines go to the messenger's own logger."""

    settings: Settings
    platform: str  # names the platform in log lines
    _session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.settings.slack_timeout_seconds)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    def _log(self) -> logging.Logger:
        return logging.getLogger(type(self).__module__)

    def _unreachable(self, method: str, exc: BaseException) -> DeliveryError:
        """The (retryable) error of a call that got no usable answer, logged once."""
        # str(exc) may quote the URL, and with it a credential: the type is enough
        self._log().warning("%s %s failed: %s", self.platform, method, type(exc).__name__)
        return DeliveryError(f"{method}: {type(exc).__name__}")

    def _json_object(self, method: str, data: Any) -> dict[str, Any]:
        """The answer, when it is a JSON object; else a (retryable) error, logged once."""
        if not isinstance(data, dict):
            self._log().warning("%s %s failed: unexpected answer", self.platform, method)
            raise DeliveryError(f"{method}: unexpected answer")
        return data
