"""Settings: a small frozen dataclass built from an environment mapping."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bot.domain.catalog import Catalog, CatalogError, parse_catalog
from bot.domain.reports import parse_address

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///supportbot.db"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_WECOM_API_URL = "https://qyapi.weixin.qq.com/cgi-bin/"
DEFAULT_WELINK_API_URL = "https://open.welink.huaweicloud.com/api/"

# WeLink's variables: the open platform app (access token, staff DMs as card messages)
WELINK_REQUIRED = ("WELINK_CLIENT_ID", "WELINK_CLIENT_SECRET")

# WeCom's variables: the robot's callback (inbound) and the self-built app (staff DMs)
WECOM_REQUIRED = ("WECOM_CORP_ID", "WECOM_TOKEN", "WECOM_ENCODING_AES_KEY", "WECOM_AGENT_ID",
                  "WECOM_SECRET")


# what `supportbot run` runs: the HTTP front and the worker (all), or one of them apart
PROCESS_ROLES = ("all", "web", "worker")


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
    # near-breach and breach notices to one recipient within this many seconds are one
    # message (0: each its own)
    digest_window_seconds: float = 30.0
    channel_burst: int = 3
    workspace_rate: float = 0.0  # messages per second for the whole workspace; 0 = no pace
    report_charts: bool = True
    # processes rendering report charts: None one per core, 0 in the bot's own process
    chart_workers: int | None = None
    log_level: str = "INFO"
    # `supportbot run`: "all" serves the platforms and runs the worker; "web" only serves
    # them; "worker" only runs the worker (and /healthz, /readyz, /metrics)
    process_role: str = "all"
    wecom_corp_id: str | None = None
    wecom_token: str | None = field(default=None, repr=False)
    wecom_encoding_aes_key: str | None = field(default=None, repr=False)
    wecom_agent_id: int | None = None
    wecom_secret: str | None = field(default=None, repr=False)
    wecom_api_url: str = DEFAULT_WECOM_API_URL
    wecom_bot_name: str = "supportbot"  # the robot's name, as members @-mention it
    welink_client_id: str | None = None
    welink_client_secret: str | None = field(default=None, repr=False)
    welink_api_url: str = DEFAULT_WELINK_API_URL
    welink_sender: str = "supportbot"  # msgOwner of staff card messages (18 bytes at most)
    # the self-built app's own callback (clicks on its cards, messages to it); optional
    wecom_app_token: str | None = field(default=None, repr=False)
    wecom_app_encoding_aes_key: str | None = field(default=None, repr=False)
    wecom_callback_max_age: float = 300.0  # seconds a callback's timestamp may be off
    # Fernet key encrypting delivery addresses (a WeCom group's push webhook key)
    secret_key: str | None = field(default=None, repr=False)
    # SMTP for the monthly report by email; no host: email is off
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_tls: str = "starttls"  # starttls | ssl | none
    smtp_from: str | None = None

    @property
    def email(self) -> bool:
        """Whether reports are also sent by email (SMTP is configured)."""
        return self.smtp_host is not None

    @property
    def wecom(self) -> bool:
        """Whether WeCom is configured (checked complete by `from_env`)."""
        return self.wecom_corp_id is not None

    @property
    def welink(self) -> bool:
        """Whether WeLink is configured (checked complete by `from_env`)."""
        return self.welink_client_id is not None

    @property
    def wecom_app_callback(self) -> bool:
        """Whether the self-built app's callback is served (its cards may have buttons)."""
        return self.wecom and self.wecom_app_token is not None

    @property
    def slack(self) -> bool:
        return self.slack_bot_token is not None

    @property
    def serves_platforms(self) -> bool:
        """Whether `run` mounts the platforms' callbacks (Slack, WeCom): roles all and web."""
        return self.process_role != "worker"

    @property
    def runs_worker(self) -> bool:
        """Whether `run` runs the worker (timers and the outbox): roles all and worker."""
        return self.process_role != "web"

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
        role = (env.get("SUPPORTBOT_ROLE") or "all").strip().lower()
        if role not in PROCESS_ROLES:
            raise ConfigError(f"SUPPORTBOT_ROLE (run --role) must be one of "
                              f"{', '.join(PROCESS_ROLES)}, got {role!r}")
        wecom = _wecom(env)
        welink = _welink(env)
        secret_key = env.get("SUPPORTBOT_SECRET_KEY") or None
        if secret_key is not None:
            _check_fernet_key(secret_key)
        elif wecom or welink:
            raise ConfigError("SUPPORTBOT_SECRET_KEY is not set (a Fernet key; it encrypts "
                              f"each {'WeCom' if wecom else 'WeLink'} group's webhook key)")
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
            digest_window_seconds=0.0 if env.get("SUPPORTBOT_DIGEST_WINDOW") == "0"
            else _positive(env, "SUPPORTBOT_DIGEST_WINDOW", 30.0),
            report_charts=_flag(env, "SUPPORTBOT_REPORT_CHARTS", True),
            chart_workers=_count(env, "SUPPORTBOT_CHART_WORKERS"),
            workspace_rate=_positive(env, "SUPPORTBOT_WORKSPACE_RATE", 0.0)
            if env.get("SUPPORTBOT_WORKSPACE_RATE") not in (None, "", "0") else 0.0,
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            process_role=role,
            secret_key=secret_key,
            **wecom,
            **welink,
            **_smtp(env),
        )

    def require_platform(self) -> None:
        """Check what `supportbot run` needs: at least one platform, each one complete. The
        worker role only sends: Slack's signing secret (or app token) is not needed there."""
        if self.slack_bot_token or self.slack_app_token or self.slack_signing_secret:
            self.require_slack(inbound=self.serves_platforms)
        elif not self.wecom:
            if self.welink:
                # WeLink documents no callback for group messages: nobody could command
                raise ConfigError("SLACK_BOT_TOKEN is not set, nor WeCom's WECOM_* "
                                  "variables: WeLink only delivers, so commands need Slack "
                                  "or WeCom")
            raise ConfigError("SLACK_BOT_TOKEN is not set, nor WeCom's WECOM_* variables: "
                              "no chat platform is configured")

    def require_slack(self, *, inbound: bool = True) -> None:
        """Check what `supportbot run` needs before anything starts; without `inbound` (the
        worker role: it only calls the Web API) only the bot token."""
        if not self.slack_bot_token:
            raise ConfigError("SLACK_BOT_TOKEN is not set (the bot token, xoxb-...)")
        if not self.slack_bot_token.startswith("xoxb-"):
            raise ConfigError("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
        if not inbound:
            return
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
    return {**_wecom_app(env),
            "wecom_corp_id": given["WECOM_CORP_ID"], "wecom_token": given["WECOM_TOKEN"],
            "wecom_encoding_aes_key": given["WECOM_ENCODING_AES_KEY"],
            "wecom_agent_id": int(given["WECOM_AGENT_ID"]),
            "wecom_secret": given["WECOM_SECRET"], "wecom_api_url": api_url,
            "wecom_bot_name": name or "supportbot"}


def _welink(env: Mapping[str, str]) -> dict[str, Any]:
    """WeLink's settings: the app's client id and secret, both or none."""
    given = {name: env.get(name, "").strip() for name in WELINK_REQUIRED}
    if not any(given.values()):
        return {}
    for name, value in given.items():
        if not value:
            raise ConfigError(f"{name} is not set (WeLink needs both of "
                              f"{', '.join(WELINK_REQUIRED)})")
    api_url = env.get("WELINK_API_URL") or DEFAULT_WELINK_API_URL
    if not api_url.startswith(("http://", "https://")):
        raise ConfigError(f"WELINK_API_URL must be an http(s) URL, got {api_url!r}")
    if not api_url.endswith("/"):
        api_url += "/"
    sender = (env.get("WELINK_SENDER") or "supportbot").strip()
    if not sender or len(sender.encode("utf-8")) > 18:
        raise ConfigError("WELINK_SENDER must be 1 to 18 bytes (WeLink's msgOwner), got "
                          f"{sender!r}")
    return {"welink_client_id": given["WELINK_CLIENT_ID"],
            "welink_client_secret": given["WELINK_CLIENT_SECRET"],
            "welink_api_url": api_url, "welink_sender": sender}


def _wecom_app(env: Mapping[str, str]) -> dict[str, Any]:
    """The self-built app's callback settings: its Token and EncodingAESKey, both or none,
    and how far a callback's timestamp may be from now (both callbacks)."""
    token = env.get("WECOM_APP_TOKEN", "").strip()
    key = env.get("WECOM_APP_ENCODING_AES_KEY", "").strip()
    out: dict[str, Any] = {"wecom_callback_max_age": _positive(env, "WECOM_CALLBACK_MAX_AGE",
                                                               300.0)}
    if not token and not key:
        return out
    if not token or not key:
        missing = "WECOM_APP_TOKEN" if not token else "WECOM_APP_ENCODING_AES_KEY"
        raise ConfigError(f"{missing} is not set (the app's callback needs "
                          "WECOM_APP_TOKEN and WECOM_APP_ENCODING_AES_KEY)")
    if len(key) != 43:
        raise ConfigError("WECOM_APP_ENCODING_AES_KEY must be the 43 characters of the app's "
                          "EncodingAESKey")
    try:
        base64.b64decode(key + "=", validate=True)
    except ValueError as exc:
        raise ConfigError("WECOM_APP_ENCODING_AES_KEY is not valid base64") from exc
    return {**out, "wecom_app_token": token, "wecom_app_encoding_aes_key": key}


SMTP_TLS_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


def _smtp(env: Mapping[str, str]) -> dict[str, Any]:
    """SMTP's settings: none without SUPPORTBOT_SMTP_HOST; the others are checked with it."""
    host = env.get("SUPPORTBOT_SMTP_HOST", "").strip()
    others = ("SUPPORTBOT_SMTP_PORT", "SUPPORTBOT_SMTP_USER", "SUPPORTBOT_SMTP_PASSWORD",
              "SUPPORTBOT_SMTP_TLS", "SUPPORTBOT_SMTP_FROM")
    if not host:
        given = [name for name in others if env.get(name, "").strip()]
        if given:
            raise ConfigError(f"SUPPORTBOT_SMTP_HOST is not set, but {given[0]} is (email "
                              "needs the SMTP server's host name)")
        return {}
    tls = (env.get("SUPPORTBOT_SMTP_TLS") or "starttls").strip().lower()
    if tls not in SMTP_TLS_PORTS:
        raise ConfigError(f"SUPPORTBOT_SMTP_TLS must be starttls, ssl or none, got {tls!r}")
    port_text = (env.get("SUPPORTBOT_SMTP_PORT") or str(SMTP_TLS_PORTS[tls])).strip()
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"SUPPORTBOT_SMTP_PORT must be a TCP port number (1-65535), got "
                          f"{port_text!r}")
    user = env.get("SUPPORTBOT_SMTP_USER", "").strip() or None
    password = env.get("SUPPORTBOT_SMTP_PASSWORD") or None
    if (user is None) != (password is None):
        missing = "SUPPORTBOT_SMTP_PASSWORD" if password is None else "SUPPORTBOT_SMTP_USER"
        raise ConfigError(f"{missing} is not set (SMTP authentication needs both "
                          "SUPPORTBOT_SMTP_USER and SUPPORTBOT_SMTP_PASSWORD, or neither)")
    sender = env.get("SUPPORTBOT_SMTP_FROM", "").strip()
    if not sender:
        raise ConfigError("SUPPORTBOT_SMTP_FROM is not set (the reports' sender address, "
                          "e.g. support@example.com)")
    if parse_address(sender) is None:
        raise ConfigError(f"SUPPORTBOT_SMTP_FROM must be an email address, got {sender!r}")
    return {"smtp_host": host, "smtp_port": int(port_text), "smtp_user": user,
            "smtp_password": password, "smtp_tls": tls, "smtp_from": sender}


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
