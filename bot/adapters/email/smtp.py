"""The SMTP client behind `bot.services.mailer.Mailer`: one connection per mail, STARTTLS,
implicit TLS or none, optional authentication, all from the settings.

Answers map onto the worker's retry policy: a 4xx reply, a timeout or a lost connection is
transient (`DeliveryError`, retried with backoff); a 5xx reply (the recipient does not
exist, authentication refused) or a server without the STARTTLS it was told to use is
permanent. Nothing here logs the password: errors carry the server's reply only."""

from __future__ import annotations

import hashlib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from zoneinfo import ZoneInfo

import aiosmtplib

from bot.adapters.email.render import html_body, plain_body, text_line
from bot.config import Settings
from bot.services.mailer import Email
from bot.services.messenger import DeliveryError


def message_id(key: str, sender: str) -> str:
    """The same outbox key gives the same Message-ID (a mail sent twice is recognisable)."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{sender.rpartition('@')[2]}>"


def build(mail: Email, sender: str) -> EmailMessage:
    """The MIME message: multipart/alternative of text/plain and (multipart/related of)
    text/html with its images, each also named as a file."""
    tz = ZoneInfo(mail.timezone)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = mail.to
    msg["Subject"] = text_line(mail.subject, tz)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message_id(mail.key, sender)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies, please
    msg.set_content(plain_body(mail.message, tz), charset="utf-8")
    msg.add_alternative(html_body(mail.message, tz,
                                  [(img.cid, img.filename) for img in mail.images]),
                        subtype="html", charset="utf-8")
    if mail.images:
        html_part = next(p for p in msg.iter_parts() if p.get_content_type() == "text/html")
        assert isinstance(html_part, EmailMessage)
        for img in mail.images:
            html_part.add_related(img.content, maintype="image", subtype=img.subtype,
                                  cid=f"<{img.cid}>", filename=img.filename,
                                  disposition="inline")
    return msg


class SmtpMailer:
    def __init__(self, settings: Settings, *, tls_context: ssl.SSLContext | None = None,
                 timeout: float | None = None) -> None:
        if settings.smtp_host is None or settings.smtp_from is None:
            raise ValueError("SMTP is not configured")
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.tls = settings.smtp_tls
        self.sender = settings.smtp_from
        self._user = settings.smtp_user
        self._password = settings.smtp_password
        self._tls_context = tls_context
        self.timeout = timeout or settings.slack_timeout_seconds

    async def send(self, mail: Email) -> str:
        msg = build(mail, self.sender)
        try:
            await aiosmtplib.send(
                msg, hostname=self.host, port=self.port, username=self._user,
                password=self._password, use_tls=self.tls == "ssl",
                start_tls=self.tls == "starttls",
                tls_context=self._tls_context, timeout=self.timeout)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0] if exc.recipients else None
            code = refused.code if refused else 550
            reason = f"{code} {refused.message if refused else 'recipient refused'}"
            raise DeliveryError(f"SMTP refused {mail.to}: {reason}",
                                permanent=code >= 500) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP answered {exc.code} {exc.message}",
                                permanent=exc.code >= 500) from None
        except aiosmtplib.SMTPNotSupported as exc:
            raise DeliveryError(f"SMTP server {self.host}: {exc}", permanent=True) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            # timeouts, refused or dropped connections, TLS handshakes: try again later
            raise DeliveryError(f"SMTP server {self.host}:{self.port} unreachable: "
                                f"{type(exc).__name__}: {exc}") from None
        return str(msg["Message-ID"])
