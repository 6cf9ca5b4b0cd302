"""A real SMTP server in the test's own event loop (`aiosmtpd`): it records every mail that
arrives (envelope and parsed message), can answer chosen replies at RCPT or DATA (a 451 to
make the bot retry, a 550 to refuse for good), can hold a transaction open until told
(to kill a bot mid-send), and can speak STARTTLS or implicit TLS with authentication."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    def part(self, content_type: str) -> EmailMessage:
        found = [p for p in self.message.walk() if p.get_content_type() == content_type]
        assert len(found) == 1, (content_type, [p.get_content_type()
                                                for p in self.message.walk()])
        part = found[0]
        assert isinstance(part, EmailMessage)
        return part

    def text(self, content_type: str) -> str:
        return str(self.part(content_type).get_content())


class SmtpServer:
    def __init__(self, *, tls: ssl.SSLContext | None = None, implicit_tls: bool = False,
                 credentials: tuple[str, str] | None = None) -> None:
        self.received: list[Received] = []
        self.rcpt_replies: list[str] = []  # answered (and used up) before accepting RCPT
        self.data_replies: list[str] = []  # answered (and used up) instead of accepting DATA
        self.hold: asyncio.Event | None = None  # RCPT waits for it while set
        self.held = asyncio.Event()  # a transaction is waiting on `hold`
        self.attempts = 0  # DATA commands seen
        self.logins: list[str] = []
        self._tls = tls
        self._implicit = implicit_tls
        self._credentials = credentials
        self._server: asyncio.Server | None = None
        self.port = 0

    # --- aiosmtpd handler hooks
    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if self.hold is not None:
            self.held.set()
            await self.hold.wait()
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.attempts += 1
        if self.data_replies:
            return self.data_replies.pop(0)
        raw = envelope.original_content or b""
        msg = message_from_bytes(raw, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self._credentials is not None and (
            data.login.decode(), data.password.decode()) == self._credentials
        if isinstance(data, LoginPassword):
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)  # the server answers 235 or 535

    def _protocol(self) -> SMTP:
        kwargs: dict[str, Any] = {"hostname": "smtp.test", "enable_SMTPUTF8": True}
        if self._tls is not None and not self._implicit:
            kwargs.update(tls_context=self._tls, require_starttls=True)
        if self._credentials is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=self._tls is not None)
        return SMTP(self, **kwargs)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, "127.0.0.1", 0, ssl=self._tls if self._implicit else None)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def wait_for(self, n: int, limit: float = 20.0) -> None:
        """Until `n` mails have arrived (or fail after `limit` seconds)."""
        for _ in range(int(limit / 0.05)):
            if len(self.received) >= n:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{len(self.received)} of {n} mails arrived")


def tls_contexts(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext, Path]:
    """A self-signed certificate for 127.0.0.1: the server's context, a client context that
    trusts it, and the certificate's file (a CA bundle for the client)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp / "smtp-cert.pem", tmp / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client, cert_file
