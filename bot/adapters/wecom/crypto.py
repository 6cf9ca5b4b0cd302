"""WeCom's callback encryption scheme (回调和回复的加解密方案, "WXBizMsgCrypt").

Every callback WeCom sends to a self-built app or an intelligent robot carries
`msg_signature`, `timestamp` and `nonce` in the query string and an encrypted payload:
the `echostr` query parameter of the GET URL check, or the `Encrypt` / `encrypt` field of
a POST body (XML for apps, JSON for intelligent robots). Passive replies travel back the
same way. The scheme, from https://developer.work.weixin.qq.com/document/path/91144 :

- msg_signature = hex SHA1 of the four strings token, timestamp, nonce and the base64
  ciphertext, sorted and concatenated;
- AESKey = base64decode(EncodingAESKey + "="), 32 bytes; AES-256-CBC, IV = AESKey[:16];
- PKCS#7 padding to a multiple of 32 bytes (not AES's 16);
- plaintext = 16 random bytes + 4-byte big-endian length of msg + msg + ReceiveId, where
  ReceiveId is the corp id for a self-built app, the suite id for a third-party app's
  instruction callbacks, and empty for an intelligent robot.

AES itself comes from `cryptography`; only the framing around it is written here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import struct
from xml.etree import ElementTree

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["BLOCK_BYTES", "CallbackCrypto", "CallbackError", "encrypted_from_json",
           "encrypted_from_xml", "signature"]

# WeCom pads to 32-byte multiples (its docs and SDKs say so), twice AES's block size
BLOCK_BYTES = 32
_RANDOM_BYTES = 16
_LENGTH = struct.Struct(">I")


class CallbackError(Exception):
    """A callback (or a reply) that must be refused. `reason` is a short fixed phrase
    safe to log and to count in metrics: it never holds the token, the key or the text."""

    BAD_BODY = "bad body"
    BAD_SIGNATURE = "bad signature"
    BAD_BASE64 = "bad base64"
    BAD_LENGTH = "bad ciphertext length"
    BAD_PADDING = "bad padding"
    BAD_LAYOUT = "bad plaintext layout"
    BAD_ENCODING = "bad text encoding"
    WRONG_RECEIVE_ID = "wrong receive id"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """WeCom's msg_signature: hex SHA1 over the four strings sorted and joined."""
    joined = "".join(sorted((token, timestamp, nonce, encrypted)))
    return hashlib.sha1(joined.encode("utf-8")).hexdigest()


def _aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key behind an EncodingAESKey (43 characters of base64, no '=')."""
    if len(encoding_aes_key) != 43:
        raise ValueError("the EncodingAESKey must be 43 characters long")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the EncodingAESKey is not base64 (letters and digits)") from None
    if len(key) != 32:  # a 43-character base64 text always decodes to 32 bytes; be sure
        raise ValueError("the EncodingAESKey does not decode to 32 bytes")
    return key


class CallbackCrypto:
    """Checks, decrypts and encrypts the callbacks of one WeCom app or robot.

    `token` and `encoding_aes_key` are the values set on the callback page of the admin
    console; `receive_id` is what the plaintext must end with (the corp id for a
    self-built app, "" for an intelligent robot). Neither secret ever appears in an
    error message or in `repr`.
    """

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if not token:
            raise ValueError("the callback Token must not be empty")
        self._token = token
        self._key = _aes_key(encoding_aes_key)
        self._receive_id = receive_id.encode("utf-8")

    def __repr__(self) -> str:
        return f"CallbackCrypto(receive_id={self._receive_id.decode('utf-8')!r})"

    # signatures

    def sign(self, timestamp: str, nonce: str, encrypted: str) -> str:
        """The msg_signature WeCom would send with this ciphertext."""
        return signature(self._token, timestamp, nonce, encrypted)

    def check_signature(self, msg_signature: str, timestamp: str, nonce: str,
                        encrypted: str) -> None:
        """Raise CallbackError unless `msg_signature` signs the ciphertext.

        Compared in constant time, as bytes so that any text an attacker sends is
        comparable; the hex digest is compared case-insensitively like WeCom's SDKs."""
        expected = self.sign(timestamp, nonce, encrypted).encode("ascii")
        given = msg_signature.lower().encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(expected, given):
            raise CallbackError(CallbackError.BAD_SIGNATURE)

    # the three operations of WeCom's SDKs

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """The GET URL check: verify, decrypt and return the echostr plaintext, which the
        endpoint answers with as is (no quotes, BOM or newline)."""
        return self.decrypt(msg_signature, timestamp, nonce, echostr)

    def decrypt(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> str:
        """Verify the signature first, then decrypt. The signature covers the ciphertext,
        so nothing unsigned ever reaches the cipher and no padding oracle exists."""
        self.check_signature(msg_signature, timestamp, nonce, encrypted)
        return self._open(encrypted)

    def encrypt(self, plaintext: str, nonce: str, timestamp: str, *,
                random_prefix: bytes | None = None) -> tuple[str, str]:
        """Encrypt a passive reply (or, in tests, a callback as WeCom would send it).
        Returns (ciphertext in base64, its msg_signature). `random_prefix` exists for
        reproducing known vectors; leave it out otherwise."""
        prefix = secrets.token_bytes(_RANDOM_BYTES) if random_prefix is None else random_prefix
        if len(prefix) != _RANDOM_BYTES:
            raise ValueError("the random prefix must be 16 bytes")
        message = plaintext.encode("utf-8")
        framed = prefix + _LENGTH.pack(len(message)) + message + self._receive_id
        padder = padding.PKCS7(BLOCK_BYTES * 8).padder()
        padded = padder.update(framed) + padder.finalize()
        encryptor = self._cipher().encryptor()
        raw = encryptor.update(padded) + encryptor.finalize()
        encrypted = base64.b64encode(raw).decode("ascii")
        return encrypted, self.sign(timestamp, nonce, encrypted)

    # passive replies, in the two envelopes WeCom accepts

    def reply_json(self, plaintext: str, nonce: str, timestamp: str) -> str:
        """An intelligent robot's passive reply (https://developer.work.weixin.qq.com/document/
        path/101033): the JSON reply encrypted into {encrypt, msgsignature, timestamp, nonce}.
        The field spelling and the string timestamp follow WeCom's JSON SDK."""
        encrypted, sig = self.encrypt(plaintext, nonce, timestamp)
        return json.dumps({"encrypt": encrypted, "msgsignature": sig, "timestamp": timestamp,
                           "nonce": nonce})

    def reply_xml(self, plaintext: str, nonce: str, timestamp: str) -> str:
        """A self-built app's passive reply: the XML reply encrypted into WeCom's envelope."""
        encrypted, sig = self.encrypt(plaintext, nonce, timestamp)
        root = ElementTree.Element("xml")
        for tag, value in (("Encrypt", encrypted), ("MsgSignature", sig),
                           ("TimeStamp", timestamp), ("Nonce", nonce)):
            ElementTree.SubElement(root, tag).text = value
        return ElementTree.tostring(root, encoding="unicode")

    # internals

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def _open(self, encrypted: str) -> str:
        try:
            raw = base64.b64decode(encrypted.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error, ValueError):
            raise CallbackError(CallbackError.BAD_BASE64) from None
        if not raw or len(raw) % 16:
            raise CallbackError(CallbackError.BAD_LENGTH)
        decryptor = self._cipher().decryptor()
        padded = decryptor.update(raw) + decryptor.finalize()
        framed = _unpad(padded)
        if len(framed) < _RANDOM_BYTES + _LENGTH.size:
            raise CallbackError(CallbackError.BAD_LAYOUT)
        (length,) = _LENGTH.unpack_from(framed, _RANDOM_BYTES)
        start = _RANDOM_BYTES + _LENGTH.size
        if length > len(framed) - start:
            raise CallbackError(CallbackError.BAD_LAYOUT)
        message, receive_id = framed[start:start + length], framed[start + length:]
        if not hmac.compare_digest(receive_id, self._receive_id):
            raise CallbackError(CallbackError.WRONG_RECEIVE_ID)
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            raise CallbackError(CallbackError.BAD_ENCODING) from None


def _unpad(padded: bytes) -> bytes:
    """Strip PKCS#7 padding of 1 to 32 bytes. Checked by hand rather than with
    `padding.PKCS7(256).unpadder()`, which would also insist on a 32-byte multiple: the
    scheme's ciphertext is only guaranteed to be whole AES blocks, so accept any padding
    WeCom's own decoder accepts, but check every pad byte, which its SDKs do not."""
    pad = padded[-1]
    if not 1 <= pad <= BLOCK_BYTES or pad > len(padded) or \
            padded[-pad:] != bytes([pad]) * pad:
        raise CallbackError(CallbackError.BAD_PADDING)
    return padded[:-pad]


def encrypted_from_json(body: bytes) -> str:
    """The `encrypt` field of an intelligent robot's callback body {"encrypt": "..."}."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise CallbackError(CallbackError.BAD_BODY) from None
    value = data.get("encrypt") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise CallbackError(CallbackError.BAD_BODY)
    return value


def encrypted_from_xml(body: bytes) -> str:
    """The <Encrypt> element of a self-built app's callback body. A DOCTYPE is refused
    outright: WeCom never sends one, and it is the door to entity expansion attacks."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise CallbackError(CallbackError.BAD_BODY)
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise CallbackError(CallbackError.BAD_BODY) from None
    value = root.findtext("Encrypt")
    if root.tag != "xml" or not value:
        raise CallbackError(CallbackError.BAD_BODY)
    return value  # exactly as sent: the signature covers these characters
