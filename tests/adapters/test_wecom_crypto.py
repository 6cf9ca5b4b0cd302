"""WeCom's callback encryption: the documented example, round trips, and refusals."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.adapters.wecom.crypto import (
    CallbackCrypto,
    CallbackError,
    encrypted_from_json,
    encrypted_from_xml,
    signature,
)

# the worked example of https://developer.work.weixin.qq.com/document/path/91144
TOKEN = "QDG6eK"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
RECEIVE_ID = "wx5823bf96d3bd56c7"
TIMESTAMP = "1409659589"
NONCE = "263014780"
ECHOSTR = ("P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+"
           "FZXvnaqQ==")
MSG_SIGNATURE = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
PLAINTEXT = "1616140317555161061"


@pytest.fixture
def crypto() -> CallbackCrypto:
    return CallbackCrypto(TOKEN, AES_KEY, RECEIVE_ID)


def raw_cipher() -> Cipher[modes.CBC]:
    key = base64.b64decode(AES_KEY + "=")
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def seal(raw_plaintext: bytes) -> str:
    """Encrypt bytes exactly as given (no framing, no padding): for malformed inputs."""
    encryptor = raw_cipher().encryptor()
    return base64.b64encode(encryptor.update(raw_plaintext) + encryptor.finalize()).decode()


# the documented example

def test_the_documented_example_signature() -> None:
    assert signature(TOKEN, TIMESTAMP, NONCE, ECHOSTR) == MSG_SIGNATURE


def test_the_documented_example_verifies_and_decrypts(crypto: CallbackCrypto) -> None:
    assert crypto.verify_url(MSG_SIGNATURE, TIMESTAMP, NONCE, ECHOSTR) == PLAINTEXT
    assert crypto.decrypt(MSG_SIGNATURE.upper(), TIMESTAMP, NONCE, ECHOSTR) == PLAINTEXT


def test_encrypting_with_the_examples_random_bytes_gives_the_documented_echostr(
        crypto: CallbackCrypto) -> None:
    """Our encryption is WeCom's, byte for byte: reuse the example's 16 random bytes."""
    decryptor = raw_cipher().decryptor()
    prefix = (decryptor.update(base64.b64decode(ECHOSTR)) + decryptor.finalize())[:16]
    assert crypto.encrypt(PLAINTEXT, NONCE, TIMESTAMP, random_prefix=prefix) == \
        (ECHOSTR, MSG_SIGNATURE)


# WeCom's own SDK sample (github.com/sbzhu/weworkapi_python, callback/Sample.py): a second
# corp's URL check, and a real POST body with Chinese content
SDK = CallbackCrypto("hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
                     "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "ww1436e0e65a779aee")
SDK_POST = (
    b"<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA["
    b"Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3Nye"
    b"TkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde"
    b"0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrd"
    b"kJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpH"
    b"SGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+]]></Encrypt>\n<AgentID><![CDATA[1000002]]>"
    b"</AgentID>\n</xml>")


def test_the_sdk_samples_verify_and_decrypt() -> None:
    assert SDK.verify_url("012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373", "47744683",
                          "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjn"
                          "oVzEtpbhnFyq6SVHyA==") == "1288432023552776189"
    plain = SDK.decrypt("0c3914025cb4b4d68103f6bfc8db550f79dcf48e", "1476422779", "1597212914",
                        encrypted_from_xml(SDK_POST))
    assert "<FromUserName>ChenJiaShun</FromUserName>" in plain
    assert "<Content>你好</Content>" in plain and "<MsgId>1456453720</MsgId>" in plain


# round trips

XML_BODY = ("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"
            "<FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1348831860"
            "</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[@supportbot "
            "开单 S2 结账接口返回 500]]></Content><MsgId>1234567890123456</MsgId>"
            "<AgentID>1</AgentID></xml>")
JSON_BODY = json.dumps({
    "msgid": "CAIQ16HMjQYY/NGagIOAgAMgq4KM0AI=", "aibotid": "AIBOTID", "chatid": "CHATID",
    "chattype": "group", "from": {"userid": "USERID"}, "msgtype": "text",
    "text": {"content": "@supportbot tam ack CS-1001 已确认"}}, ensure_ascii=False)


@pytest.mark.parametrize("body", [XML_BODY, JSON_BODY, "", "中文", "x" * 5000])
def test_round_trip(crypto: CallbackCrypto, body: str) -> None:
    encrypted, sig = crypto.encrypt(body, "nonce-1", "1700000000")
    assert len(base64.b64decode(encrypted)) % 32 == 0  # WeCom pads to 32-byte blocks
    assert crypto.decrypt(sig, "1700000000", "nonce-1", encrypted) == body


def test_each_encryption_uses_fresh_random_bytes(crypto: CallbackCrypto) -> None:
    assert crypto.encrypt("same", "n", "1")[0] != crypto.encrypt("same", "n", "1")[0]


def test_an_intelligent_robot_has_an_empty_receive_id() -> None:
    robot = CallbackCrypto(TOKEN, AES_KEY, "")
    encrypted, sig = robot.encrypt(JSON_BODY, "n", "1")
    assert robot.decrypt(sig, "1", "n", encrypted) == JSON_BODY
    with pytest.raises(CallbackError, match="wrong receive id"):
        CallbackCrypto(TOKEN, AES_KEY, RECEIVE_ID).decrypt(sig, "1", "n", encrypted)


@settings(max_examples=200, deadline=None)
@given(body=st.text(), nonce=st.text(min_size=1, max_size=20),
       timestamp=st.integers(min_value=0, max_value=2**40).map(str),
       receive_id=st.text(max_size=40))
def test_round_trip_property(body: str, nonce: str, timestamp: str, receive_id: str) -> None:
    text = body.encode("utf-8", "replace").decode("utf-8")  # lone surrogates are not text
    crypto = CallbackCrypto(TOKEN, AES_KEY, receive_id.encode("utf-8", "replace").decode())
    encrypted, sig = crypto.encrypt(text, nonce, timestamp)
    assert crypto.decrypt(sig, timestamp, nonce, encrypted) == text


# refusals

def test_a_tampered_signature_is_refused(crypto: CallbackCrypto) -> None:
    bad = MSG_SIGNATURE[:-1] + ("0" if MSG_SIGNATURE[-1] != "0" else "1")
    for sig in (bad, "", "中文签名", MSG_SIGNATURE + "00"):
        with pytest.raises(CallbackError, match="bad signature"):
            crypto.verify_url(sig, TIMESTAMP, NONCE, ECHOSTR)


@pytest.mark.parametrize("field", ["timestamp", "nonce", "echostr"])
def test_changing_any_signed_field_is_refused(crypto: CallbackCrypto, field: str) -> None:
    args = {"timestamp": TIMESTAMP, "nonce": NONCE, "echostr": ECHOSTR}
    args[field] = "A" + args[field][1:] if field == "echostr" else args[field] + "1"
    with pytest.raises(CallbackError, match="bad signature"):
        crypto.verify_url(MSG_SIGNATURE, args["timestamp"], args["nonce"], args["echostr"])


def test_another_token_is_refused() -> None:
    with pytest.raises(CallbackError, match="bad signature"):
        CallbackCrypto("other", AES_KEY, RECEIVE_ID).verify_url(
            MSG_SIGNATURE, TIMESTAMP, NONCE, ECHOSTR)


def test_a_wrong_receive_id_is_refused() -> None:
    with pytest.raises(CallbackError, match="wrong receive id"):
        CallbackCrypto(TOKEN, AES_KEY, "wwSOMEOTHERCORP").verify_url(
            MSG_SIGNATURE, TIMESTAMP, NONCE, ECHOSTR)


def signed(crypto: CallbackCrypto, encrypted: str) -> str:
    """Sign garbage properly, so the refusal comes from the decryption, not the signature."""
    return crypto.decrypt(crypto.sign("1", "n", encrypted), "1", "n", encrypted)


@pytest.mark.parametrize(("encrypted", "reason"), [
    ("", "bad ciphertext length"),
    ("not base64!", "bad base64"),
    ("中文", "bad base64"),
    ("QUJD", "bad ciphertext length"),  # 3 bytes
    (ECHOSTR[:24], "bad ciphertext length"),  # 16 bytes would do; 18 do not
    (base64.b64encode(base64.b64decode(ECHOSTR)[:32]).decode(), "bad padding"),
    (base64.b64encode(bytes(64)).decode(), None),  # garbage: padding or layout
])
def test_truncated_or_garbage_ciphertext_is_refused(crypto: CallbackCrypto, encrypted: str,
                                                     reason: str | None) -> None:
    with pytest.raises(CallbackError) as caught:
        signed(crypto, encrypted)
    if reason:
        assert caught.value.reason == reason


@pytest.mark.parametrize(("framed", "reason"), [
    (bytes(16) + (99).to_bytes(4, "big") + b"short" + bytes([7]) * 7, "bad plaintext layout"),
    (bytes(8) + bytes([24]) * 24, "bad plaintext layout"),
    (bytes(16) + (2).to_bytes(4, "big") + b"\xff\xfe" + RECEIVE_ID.encode()
     + bytes([24]) * 24, "bad text encoding"),
    (bytes(31) + b"\x00", "bad padding"),
    (bytes(31) + b"\x21", "bad padding"),
    (bytes(30) + b"\x01\x02", "bad padding"),
])
def test_malformed_plaintexts_are_refused(crypto: CallbackCrypto, framed: bytes,
                                          reason: str) -> None:
    assert len(framed) % 16 == 0
    with pytest.raises(CallbackError) as caught:
        signed(crypto, seal(framed))
    assert caught.value.reason == reason


@settings(max_examples=300, deadline=None)
@given(garbage=st.one_of(st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()),
                         st.text(max_size=200)))
def test_garbage_only_ever_raises_callback_error(garbage: str) -> None:
    crypto = CallbackCrypto(TOKEN, AES_KEY, RECEIVE_ID)
    with pytest.raises(CallbackError):
        signed(crypto, garbage)
    with pytest.raises(CallbackError):
        crypto.decrypt(garbage, garbage, garbage, garbage)


def test_errors_and_repr_never_show_the_secrets(crypto: CallbackCrypto) -> None:
    messages = [repr(crypto)]
    calls: list[Callable[[], str]] = [
        lambda: crypto.verify_url("x", TIMESTAMP, NONCE, ECHOSTR),
        lambda: CallbackCrypto(TOKEN, AES_KEY, "x").verify_url(
            MSG_SIGNATURE, TIMESTAMP, NONCE, ECHOSTR),
        lambda: signed(crypto, "QUJD")]
    for call in calls:
        with pytest.raises(CallbackError) as caught:
            call()
        messages += [str(caught.value), repr(caught.value)]
    for bad_key in (AES_KEY[:-1], AES_KEY[:-1] + "!", AES_KEY + "A"):
        with pytest.raises(ValueError) as config:
            CallbackCrypto(TOKEN, bad_key, RECEIVE_ID)
        messages.append(str(config.value))
    for message in messages:
        assert TOKEN not in message and AES_KEY[:10] not in message


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="Token"):
        CallbackCrypto("", AES_KEY, RECEIVE_ID)
    with pytest.raises(ValueError, match="43"):
        CallbackCrypto(TOKEN, AES_KEY + "=", RECEIVE_ID)
    with pytest.raises(ValueError, match="16 bytes"):
        CallbackCrypto(TOKEN, AES_KEY, RECEIVE_ID).encrypt("x", "n", "1", random_prefix=b"x")


# envelopes

def test_passive_replies_open_again(crypto: CallbackCrypto) -> None:
    reply = json.loads(crypto.reply_json(JSON_BODY, "n1", "1700000001"))
    assert set(reply) == {"encrypt", "msgsignature", "timestamp", "nonce"}
    assert crypto.decrypt(reply["msgsignature"], reply["timestamp"], reply["nonce"],
                          encrypted_from_json(json.dumps(reply).encode())) == JSON_BODY
    xml = crypto.reply_xml(XML_BODY, "n2", "1700000002")
    assert xml.startswith("<xml><Encrypt>") and "<TimeStamp>1700000002</TimeStamp>" in xml
    sig = xml.split("<MsgSignature>")[1].split("</MsgSignature>")[0]
    assert crypto.decrypt(sig, "1700000002", "n2", encrypted_from_xml(xml.encode())) == XML_BODY


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b'{"encrypt": 5}', b'{"encrypt": ""}', b'{"other": "x"}',
    b"\xff\xfe",
])
def test_bad_json_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(CallbackError, match="bad body"):
        encrypted_from_json(body)


@pytest.mark.parametrize("body", [
    b"", b"<xml>", b"<xml></xml>", b"<other><Encrypt>x</Encrypt></other>",
    b'<!DOCTYPE xml [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>',
    b"<xml><Encrypt></Encrypt></xml>", b"\xff\xfe<xml/>",
])
def test_bad_xml_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(CallbackError, match="bad body"):
        encrypted_from_xml(body)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300))
def test_garbage_bodies_only_ever_raise_callback_error(body: bytes) -> None:
    for parse in (encrypted_from_json, encrypted_from_xml):
        with contextlib.suppress(CallbackError):
            parse(body)
