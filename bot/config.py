"""Settings: a small frozen dataclass built from an environment mapping."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bot.domain.catalog import Catalog, CatalogError, parse_catalog

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///supportbot.db"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_WECOM_API_URL = "https://qyapi.weixin.qq.com/cgi-bin/"

# WeCom's variables: the robot's callback (inbound) and the self-built app (staff DMs)
WECOM_REQUIRED = ("WECOM_CORP_ID", "WECOM_TOKEN", "WECOM_ENCODING_AES_KEY", "WECOM_AGENT_ID",
                  "WECOM_SECRET")


class ConfigError(ValueError):
    """Configuration that stops start-up; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    slack_api_url: str = DEFAULT_SLACK_API_URL
    catalog_path: str | None = None
    admins: frozenset[str] = frozenset()
    duty_channel: str | None = None
    host: str = "0.0.0.0"
    port: int = 3000
    worker_poll_seconds: float = 5.0
    worker_lease_seconds: float = 30.0
    slack_timeout_seconds: float = 10.0
    advisory_ack_hours: float = 24.0
    channel_interval_seconds: float = 1.0
    channel_burst: int = 3
    workspace_rate: float = 0.0  # messages per second for the whole workspace; 0 = no pace
    report_charts: bool = True
    # processes rendering report charts: None one per core, 0 in the bot's own process
    chart_workers: int | None = None
    log_level: str = "INFO"
    wecom_corp_id: str | None = None
    wecom_token: str | None = field(default=None, repr=False)
    wecom_encoding_aes_key: str | None = field(default=None, repr=False)
    wecom_agent_id: int | None = None
    wecom_secret: str | None = field(default=None, repr=False)
    wecom_api_url: str = DEFAULT_WECOM_API_URL
    wecom_bot_name: str = "supportbot"  # the robot's name, as members @-mention it
    # Fernet key encrypting delivery addresses (a WeCom group's push webhook key)
    secret_key: str | None = field(default=None, repr=False)

    @property
    def wecom(self) -> bool:
        """Whether WeCom is configured (checked complete by `from_env`)."""
        return self.wecom_corp_id is not None

    @property
    def slack(self) -> bool:
        return self.slack_bot_token is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        port_text = env.get("PORT", "3000")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigError(f"PORT must be a TCP port number (1-65535), got {port_text!r}")
        api_url = env.get("SLACK_API_URL") or DEFAULT_SLACK_API_URL
        if not api_url.startswith(("http://", "https://")):
            raise ConfigError(f"SLACK_API_URL must be an http(s) URL, got {api_url!r}")
        if not api_url.endswith("/"):
            api_url += "/"
        db_url = env.get("DATABASE_URL") or DEFAULT_DATABASE_URL
        if not db_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://",
                                  "postgresql://", "postgres://")):
            raise ConfigError("DATABASE_URL must start with sqlite+aiosqlite:// or "
                              "postgresql+asyncpg://")
        if db_url.startswith(("postgresql://", "postgres://")):
            db_url = "postgresql+asyncpg://" + db_url.split("://", 1)[1]
        poll_s = _positive(env, "SUPPORTBOT_POLL_SECONDS", 5.0)
        lease_s = _positive(env, "SUPPORTBOT_LEASE_SECONDS", 30.0)
        timeout_s = _positive(env, "SUPPORTBOT_SLACK_TIMEOUT", 10.0)
        if timeout_s * 2 >= lease_s:
            raise ConfigError("SUPPORTBOT_SLACK_TIMEOUT must be under half of "
                              "SUPPORTBOT_LEASE_SECONDS, so a slow call never outlives a lease")
        admins = frozenset(a.strip() for a in env.get("SUPPORTBOT_ADMINS", "").split(",")
                           if a.strip())
        wecom = _wecom(env)
        secret_key = env.get("SUPPORTBOT_SECRET_KEY") or None
        if secret_key is not None:
            _check_fernet_key(secret_key)
        elif wecom:
            raise ConfigError("SUPPORTBOT_SECRET_KEY is not set (a Fernet key; it encrypts "
                              "each WeCom group's push webhook key)")
        return cls(
            database_url=db_url,
            slack_bot_token=env.get("SLACK_BOT_TOKEN") or None,
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
            slack_app_token=env.get("SLACK_APP_TOKEN") or None,
            slack_api_url=api_url,
            catalog_path=env.get("SUPPORTBOT_CATALOG") or None,
            admins=admins,
            duty_channel=env.get("SUPPORTBOT_DUTY_CHANNEL") or None,
            host=env.get("HOST", "0.0.0.0"),
            port=int(port_text),
            worker_poll_seconds=poll_s,
            worker_lease_seconds=lease_s,
            slack_timeout_seconds=timeout_s,
            advisory_ack_hours=_positive(env, "SUPPORTBOT_ADVISORY_ACK_HOURS", 24.0),
            channel_interval_seconds=_positive(env, "SUPPORTBOT_CHANNEL_INTERVAL", 1.0),
            report_charts=_flag(env, "SUPPORTBOT_REPORT_CHARTS", True),
            chart_workers=_count(env, "SUPPORTBOT_CHART_WORKERS"),
            workspace_rate=_positive(env, "SUPPORTBOT_WORKSPACE_RATE", 0.0)
            if env.get("SUPPORTBOT_WORKSPACE_RATE") not in (None, "", "0") else 0.0,
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            secret_key=secret_key,
            **wecom,
        )

    def require_platform(self) -> None:
        """Check what `supportbot run` needs: at least one platform, each one complete."""
        if self.slack_bot_token or self.slack_app_token or self.slack_signing_secret:
            self.require_slack()
        elif not self.wecom:
            raise ConfigError("SLACK_BOT_TOKEN is not set, nor WeCom's WECOM_* variables: "
                              "no chat platform is configured")

    def require_slack(self) -> None:
        """Check what `supportbot run` needs before anything starts."""
        if not self.slack_bot_token:
            raise ConfigError("SLACK_BOT_TOKEN is not set (the bot token, xoxb-...)")
        if not self.slack_bot_token.startswith("xoxb-"):
            raise ConfigError("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
        if self.slack_app_token:
            if not self.slack_app_token.startswith("xapp-"):
                raise ConfigError("SLACK_APP_TOKEN must be an app-level token starting with "
                                  "xapp-")
        elif not self.slack_signing_secret:
            raise ConfigError("SLACK_SIGNING_SECRET is not set (needed for HTTP mode; set "
                              "SLACK_APP_TOKEN instead for Socket Mode)")


def _wecom(env: Mapping[str, str]) -> dict[str, Any]:
    """WeCom's settings: all of them or none (a partial set names the first one missing)."""
    given = {name: env.get(name, "").strip() for name in WECOM_REQUIRED}
    if not any(given.values()):
        return {}
    for name, value in given.items():
        if not value:
            raise ConfigError(f"{name} is not set (WeCom needs all of "
                              f"{', '.join(WECOM_REQUIRED)})")
    if len(given["WECOM_ENCODING_AES_KEY"]) != 43:
        raise ConfigError("WECOM_ENCODING_AES_KEY must be the 43 characters of the robot's "
                          "EncodingAESKey")
    try:
        base64.b64decode(given["WECOM_ENCODING_AES_KEY"] + "=", validate=True)
    except ValueError as exc:
        raise ConfigError("WECOM_ENCODING_AES_KEY is not valid base64") from exc
    if not given["WECOM_AGENT_ID"].isdigit():
        raise ConfigError(f"WECOM_AGENT_ID must be the app's numeric AgentId, got "
                          f"{given['WECOM_AGENT_ID']!r}")
    api_url = env.get("WECOM_API_URL") or DEFAULT_WECOM_API_URL
    if not api_url.startswith(("http://", "https://")):
        raise ConfigError(f"WECOM_API_URL must be an http(s) URL, got {api_url!r}")
    if not api_url.endswith("/"):
        api_url += "/"
    name = (env.get("WECOM_BOT_NAME") or "supportbot").strip().lstrip("@")
    return {"wecom_corp_id": given["WECOM_CORP_ID"], "wecom_token": given["WECOM_TOKEN"],
            "wecom_encoding_aes_key": given["WECOM_ENCODING_AES_KEY"],
            "wecom_agent_id": int(given["WECOM_AGENT_ID"]),
            "wecom_secret": given["WECOM_SECRET"], "wecom_api_url": api_url,
            "wecom_bot_name": name or "supportbot"}


def _check_fernet_key(key: str) -> None:
    try:
        raw = base64.urlsafe_b64decode(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ConfigError("SUPPORTBOT_SECRET_KEY must be a Fernet key (32 url-safe base64 "
                          "bytes)") from exc
    if len(raw) != 32:
        raise ConfigError("SUPPORTBOT_SECRET_KEY must be a Fernet key (32 url-safe base64 "
                          "bytes)")


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    text = env.get(name, "").strip().lower()
    if not text:
        return default
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {text!r}")


def _count(env: Mapping[str, str], name: str) -> int | None:
    """A number of processes: 0 or more; unset or empty is None (the default)."""
    text = env.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) > 256:
        raise ConfigError(f"{name} must be a whole number from 0 to 256, got {text!r}")
    return int(text)


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 86400:
        raise ConfigError(f"{name} must be a number of seconds above 0, got {text!r}")
    return value


def load_catalog(path: str | None) -> Catalog:
    """The catalog from `path`, or the built-in default; ConfigError names file and key."""
    if path is None:
        text = (resources.files("bot.domain") / "catalog.yaml").read_text("utf-8")
        return parse_catalog(text, "built-in catalog.yaml")
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"SUPPORTBOT_CATALOG: cannot read {path}: {exc.strerror}") from exc
    try:
        return parse_catalog(text, str(p))
    except CatalogError as exc:
        raise ConfigError(f"SUPPORTBOT_CATALOG: {exc}") from exc
