"""Signatures and AES-ECB helpers, checked against vectors produced independently with openssl."""

from __future__ import annotations

import json

import pytest

from portal.signing import aes_ecb_decrypt, aes_ecb_encrypt, sign, verify_sign

# printf 'cidsecret1700000000000' | md5sum / sha256sum / openssl dgst -sha256 -hmac secret
MD5 = "fbcc32f6b8fbd180394d5a08ef10b1ef"
SHA256 = "9d810449f9ed6096d2a57cb3a367ff2bbd125eaa2041772755aa9607f6359b71"
HMAC_SHA256 = "8f3187baa3946009ab74573476675a2672f0216b69b8d222696ce44a24e0e5cb"

KEY = "TestEncryptKey01"
# printf '{"invoiceNo":"12345678"}' | openssl enc -aes-128-ecb -K $(printf TestEncryptKey01 | xxd -p) -base64 -A
PLAIN = b'{"invoiceNo":"12345678"}'
CIPHER = "jogb97WyJiFJ3fEjGzQMPt6XHWM/6hPhUSEY4dD+Ung="
EMPTY_CIPHER = "WtKbUqgzrevXwi4ekabAcQ=="


@pytest.mark.parametrize(
    ("enc_type", "expected"),
    [(0, MD5), (1, SHA256), (2, HMAC_SHA256), ("0", MD5), ("1", SHA256), ("2", HMAC_SHA256)],
)
def test_sign_matches_vendor_algorithms(enc_type, expected):
    assert sign("cid", "secret", 1700000000000, enc_type) == expected
    assert sign("cid", "secret", "1700000000000", enc_type) == expected


def test_sign_defaults_to_md5():
    assert sign("cid", "secret", 1700000000000) == MD5


@pytest.mark.parametrize("enc_type", [3, -1, "x", "1.5"])
def test_sign_rejects_unknown_enc_type(enc_type):
    with pytest.raises(ValueError, match="encType"):
        sign("cid", "secret", 1, enc_type)


@pytest.mark.parametrize("enc_type", [0, 1, 2])
def test_verify_sign_accepts_own_signature_in_any_hex_case(enc_type):
    good = sign("cid", "secret", 42, enc_type)
    assert verify_sign("cid", "secret", 42, good, enc_type)
    assert verify_sign("cid", "secret", "42", good.upper(), enc_type)


@pytest.mark.parametrize(
    "given",
    [None, "", "0" * 32, MD5[:-1], SHA256, 12345, "签名"],
)
def test_verify_sign_rejects_mismatch_and_junk(given):
    assert verify_sign("cid", "secret", 1700000000000, given, 0) is False


def test_verify_sign_rejects_wrong_secret_timestamp_and_enc_type():
    assert not verify_sign("cid", "other", 1700000000000, MD5)
    assert not verify_sign("cid", "secret", 1700000000001, MD5)
    assert not verify_sign("cid", "secret", 1700000000000, MD5, 1)
    assert not verify_sign("cid", "secret", 1700000000000, MD5, 9)


def test_aes_matches_openssl_vector():
    assert aes_ecb_encrypt(PLAIN, KEY) == CIPHER
    assert aes_ecb_decrypt(CIPHER, KEY) == PLAIN
    assert aes_ecb_encrypt(b"", KEY) == EMPTY_CIPHER
    assert aes_ecb_decrypt(EMPTY_CIPHER, KEY) == b""


def test_aes_round_trip_of_chinese_json_of_many_blocks():
    payload = json.dumps([{"salerName": "演示销售方有限公司", "amount": "751.46", "n": i} for i in range(50)],
                         ensure_ascii=False).encode()
    text = aes_ecb_encrypt(payload, KEY)
    assert isinstance(text, str) and text.isascii()
    assert aes_ecb_decrypt(text, KEY) == payload
    assert aes_ecb_decrypt(text.encode(), KEY) == payload  # bytes input too


@pytest.mark.parametrize("key", ["short", "x" * 17, "", "密钥密钥密钥"])  # the last is 18 bytes in UTF-8
def test_aes_rejects_bad_key_length(key):
    with pytest.raises(ValueError, match="16"):
        aes_ecb_encrypt(b"x", key)
    with pytest.raises(ValueError, match="16"):
        aes_ecb_decrypt(CIPHER, key)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not base64!!", "base64"),
        ("YWJj", "16"),  # valid base64, 3 bytes
        ("", "16"),
        (CIPHER[:-4] + "AAA=", "填充"),  # last block corrupted → bad padding
    ],
)
def test_aes_decrypt_errors_are_clear(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        aes_ecb_decrypt(text, KEY)


def test_aes_decrypt_with_wrong_key_fails_on_padding():
    with pytest.raises(ValueError, match="加密密钥可能不正确"):
        aes_ecb_decrypt(CIPHER, "TestEncryptKey02")
