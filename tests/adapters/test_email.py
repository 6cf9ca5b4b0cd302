"""Email's edges: SMTP settings (a bad one stops start-up with one line naming the
variable), the HTML and text rendering of a neutral message, the MIME layout, addresses as
typed (Slack escapes them), and the Message-ID that a retried mail keeps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.adapters.email.render import html_body, plain_body
from bot.adapters.email.smtp import build, message_id
from bot.adapters.slack.views import neutral_text
from bot.config import ConfigError, Settings
from bot.domain.reports import parse_address
from bot.messages import Message, Section
from bot.services.mailer import Email, Image

SMTP = {"SUPPORTBOT_SMTP_HOST": "smtp.example.com", "SUPPORTBOT_SMTP_FROM": "bot@example.com"}


def test_smtp_settings_from_the_environment() -> None:
    off = Settings.from_env({})
    assert not off.email and off.smtp_host is None
    on = Settings.from_env({**SMTP, "SUPPORTBOT_SMTP_USER": "bot",
                            "SUPPORTBOT_SMTP_PASSWORD": "pw"})
    assert on.email and (on.smtp_port, on.smtp_tls, on.smtp_user) == (587, "starttls", "bot")
    assert "pw" not in repr(on)
    assert Settings.from_env({**SMTP, "SUPPORTBOT_SMTP_TLS": "SSL"}).smtp_port == 465
    assert Settings.from_env({**SMTP, "SUPPORTBOT_SMTP_TLS": "none"}).smtp_port == 25
    assert Settings.from_env({**SMTP, "SUPPORTBOT_SMTP_PORT": "2525"}).smtp_port == 2525


@pytest.mark.parametrize(("change", "message"), [
    ({"SUPPORTBOT_SMTP_TLS": "tls"}, "SUPPORTBOT_SMTP_TLS must be starttls, ssl or none"),
    ({"SUPPORTBOT_SMTP_PORT": "smtp"}, "SUPPORTBOT_SMTP_PORT must be a TCP port number"),
    ({"SUPPORTBOT_SMTP_PORT": "70000"}, "SUPPORTBOT_SMTP_PORT must be a TCP port number"),
    ({"SUPPORTBOT_SMTP_USER": "bot"}, "SUPPORTBOT_SMTP_PASSWORD is not set"),
    ({"SUPPORTBOT_SMTP_PASSWORD": "pw"}, "SUPPORTBOT_SMTP_USER is not set"),
    ({"SUPPORTBOT_SMTP_FROM": ""}, "SUPPORTBOT_SMTP_FROM is not set"),
    ({"SUPPORTBOT_SMTP_FROM": "Support <bot@x>"}, "SUPPORTBOT_SMTP_FROM must be an email"),
    ({"SUPPORTBOT_SMTP_HOST": ""}, "SUPPORTBOT_SMTP_HOST is not set, but SUPPORTBOT_SMTP_FROM"),
])
def test_bad_smtp_settings_name_the_variable(change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**SMTP, **change})
    assert message in str(err.value) and "pw" not in str(err.value).replace("PASSWORD", "")


def test_a_bad_smtp_setting_stops_run_with_one_line(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SUPPORTBOT_"))}
    env = {**clean, "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s",
           "SUPPORTBOT_SMTP_HOST": "smtp.example.com", "SUPPORTBOT_SMTP_TLS": "maybe"}
    result = subprocess.run([sys.executable, "-m", "bot.cli", "run"], text=True,
                            capture_output=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SUPPORTBOT_SMTP_TLS must be" in lines[0], result.stderr


@pytest.mark.parametrize(("typed", "kept"), [
    ("Ops@Acme.example", "ops@acme.example"), ("<ops@acme.example>", "ops@acme.example"),
    ("mailto:a.b+c@x.example", "a.b+c@x.example"), ("ops@acme", None), ("a@@b.com", None),
    ("a b@c.com", None), ("a@1.2.3.4", None), (".a@b.com", None), ("a..b@c.com", None),
    ("x@y.com,z@w.com", None), ("", None), ("@b.com", None),
])
def test_addresses_as_typed(typed: str, kept: str | None) -> None:
    assert parse_address(typed) == kept


def test_slack_escaped_addresses_reach_commands_as_addresses() -> None:
    assert neutral_text("acme add <mailto:ops@acme.example|ops@acme.example>") == \
        "acme add ops@acme.example"


def test_html_escapes_text_and_keeps_the_markup_meaning() -> None:
    message = Message("x", title="<mark:report> <b>Report — A&B</b>",
                      sections=(Section("<b>1</b> case <script>; see <code>/tam</code>",
                                        title="Overview"),), footer="bye")
    html = html_body(message, ZoneInfo("Asia/Shanghai"),
                     [("chart", "c.png")])
    assert "📊 <strong>Report — A&amp;B</strong></h1>" in html
    assert "<strong>1</strong> case &lt;script&gt;; see <code>/tam</code>" in html
    assert '<img src="cid:chart" alt="c.png"' in html and "<script>" not in html
    text = plain_body(message, ZoneInfo("Asia/Shanghai"))
    assert text.startswith("📊 Report — A&B\n====") and "\nOverview\n--------\n1 case" in text
    # a heading is underlined as wide as it shows: CJK characters take two columns
    zh = plain_body(Message("x", sections=(Section("y", title="服务总结"),)), ZoneInfo("UTC"))
    assert "服务总结\n--------\ny" in zh
    assert "<" in text and "<b>" not in text and text.endswith("bye\n")


def test_a_moment_is_shown_in_the_accounts_zone() -> None:
    message = Message("due <t:1795485600>")  # 2026-11-24 02:00 UTC
    shanghai = plain_body(message, ZoneInfo("Asia/Shanghai"))
    assert shanghai == "due 2026-11-24 10:00 (UTC+8)\n"


def test_the_mime_layout_and_a_stable_message_id() -> None:
    mail = Email(to="ops@acme.example", subject="<b>Report</b>", key="report-email:a:1:x",
                 message=Message("x", title="T", sections=(Section("body", title="H"),)),
                 images=(Image("chart", "chart.png", b"\x89PNG\r\n\x1a\nrest"),))
    msg = build(mail, "bot@cloud.example")
    assert msg["Subject"] == "Report"
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/alternative", "text/plain", "multipart/related", "text/html", "image/png"]
    assert msg["Message-ID"] == message_id("report-email:a:1:x", "bot@cloud.example")
    assert msg["Message-ID"].endswith("@cloud.example>")
    assert message_id("report-email:a:1:x", "b@c.d") != message_id("report-email:a:1:y", "b@c.d")
