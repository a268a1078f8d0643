"""The invoice push receiver (POST /api/v1/push/invoices): signatures, encryption, dedup, refusals."""
from __future__ import annotations

import datetime as dt
import io
import json
import time
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal import push, signing
from portal.errors import UserError
from portal.extensions import db
from portal.models import AuditEvent, ExpectedInvoice, PushReceipt

URL = "/api/v1/push/invoices"
SECRET = "s3cret-value-1234567890"
KEY = "0123456789abcdef"


def invoice(n: int = 1, **fields) -> dict:
    """A valid legacy invoice in the push protocol's field names."""
    inv = {
        "serialNo": f"SN{n:06d}",
        "invoiceType": "10",
        "invoiceCode": "012001800311",
        "invoiceNo": f"{33207000 + n:08d}",
        "invoiceDate": "20190508",
        "amount": "46.62",
        "taxAmount": "6.08",
        "totalAmount": "52.70",
        "checkCode": "76939056883466677916",
        "salerName": "天津某某商贸有限公司",
        "salerTaxNo": "91120000MA00000001",
        "buyerName": "测试企业",
        "buyerTaxNo": "91440300MA00000011",
        "downloadUrl": f"http://127.0.0.1:9/files/{n}.pdf",
        "billNo": "FYBX0001",
    }
    inv.update(fields)
    return {k: v for k, v in inv.items() if v is not None}


def envelope(ent, invoices, *, secret=SECRET, key=KEY, enc_type=None, encrypt=False, timestamp=None,
             client_id=None, tax_no=None, data_as_text=False) -> dict:
    """A signed push body as the receipt assistant sends it."""
    client_id = client_id or ent.client_id
    timestamp = int(time.time() * 1000) if timestamp is None else timestamp
    body = {"taxNo": tax_no or ent.tax_no, "client_id": client_id, "timestamp": timestamp,
            "sign": signing.sign(client_id, secret, timestamp, enc_type or 0)}
    if enc_type is not None:
        body["encType"] = enc_type
    text = json.dumps(invoices, ensure_ascii=False)
    if encrypt:
        body["encrypt"] = True
        body["data"] = signing.aes_ecb_encrypt(text.encode(), key)
    else:
        body["data"] = text if data_as_text else invoices
    return body


def stored(ent=None) -> int:
    stmt = select(func.count()).select_from(ExpectedInvoice)
    if ent is not None:
        stmt = stmt.where(ExpectedInvoice.enterprise_id == ent.id)
    return db.session.scalar(stmt)


def push_audits() -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "push").order_by(AuditEvent.id)))


@pytest.fixture
def ent(make_enterprise):
    # Plain pushes are part of the protocol; this enterprise has 只接受加密推送 turned off to test them.
    return make_enterprise("推送企业", client_id="push-client", encrypted_push_only=False)


@pytest.fixture
def strict(make_enterprise):
    """An enterprise with the default setting: only encrypted pushes (只接受加密推送)."""
    return make_enterprise("加密推送企业", client_id="push-strict")


@pytest.fixture
def send(browser):
    def send(body, **kw):
        return browser.request("POST", URL, json=body, **kw)

    return send


# --------------------------------------------------------------------------- accepted pushes

def test_plain_push_stores_every_field(ent, send):
    resp = send(envelope(ent, [invoice(1), invoice(2, serialNo=None, billNo=None)]))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"errcode": "0000", "description": "成功", "accepted": 2, "duplicates": 0}
    rows = list(db.session.scalars(select(ExpectedInvoice).order_by(ExpectedInvoice.id)))
    assert len(rows) == 2
    first, second = rows
    assert first.origin == "push" and first.enterprise_id == ent.id
    assert first.dedup_key == "s:SN000001" and first.serial_no == "SN000001"
    assert (first.code, first.number, first.type) == ("012001800311", "33207001", "10")
    assert first.invoice_key == "012001800311:33207001"
    assert first.date == date(2019, 5, 8)
    assert (first.amount, first.tax, first.total) == (Decimal("46.62"), Decimal("6.08"), Decimal("52.70"))
    assert first.check_code == "76939056883466677916"
    assert (first.seller_name, first.seller_tax_no) == ("天津某某商贸有限公司", "91120000MA00000001")
    assert (first.buyer_name, first.buyer_tax_no) == ("测试企业", "91440300MA00000011")
    assert first.download_url == "http://127.0.0.1:9/files/1.pdf"
    assert first.bill_no == "FYBX0001" and first.fetched_image_id is None
    assert second.dedup_key == "k:012001800311:33207002" and second.bill_no is None and second.serial_no is None


def test_data_may_be_json_text(ent, send):
    resp = send(envelope(ent, [invoice(1)], data_as_text=True))
    assert resp.get_json()["accepted"] == 1 and stored() == 1


def test_encrypted_push(ent, send):
    shudian = invoice(2, invoiceCode=None, invoiceNo="24112000000048542163", invoiceType="31", totalAmount="4449.00")
    resp = send(envelope(ent, [invoice(1), shudian], encrypt=True))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["accepted"] == 2
    row = db.session.scalar(select(ExpectedInvoice).where(ExpectedInvoice.number == "24112000000048542163"))
    assert row.invoice_key == ":24112000000048542163" and row.code is None and row.total == Decimal("4449.00")


def test_encrypt_flag_as_text(ent, send):
    body = envelope(ent, [invoice(1)], encrypt=True)
    body["encrypt"] = "true"
    assert send(body).get_json()["accepted"] == 1


@pytest.mark.parametrize("enc_type", [0, 1, 2, "1", "2"])
def test_each_sign_method(ent, send, enc_type):
    resp = send(envelope(ent, [invoice(1)], enc_type=enc_type, encrypt=True))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["accepted"] == 1


def test_uppercase_hex_sign_is_accepted(ent, send):
    body = envelope(ent, [invoice(1)])
    body["sign"] = body["sign"].upper()
    assert send(body).status_code == 200


def test_timestamp_in_seconds_and_milliseconds(ent, send):
    now = int(time.time())
    assert send(envelope(ent, [invoice(1)], timestamp=now)).get_json()["accepted"] == 1
    assert send(envelope(ent, [invoice(2)], timestamp=int(time.time() * 1000))).get_json()["accepted"] == 1
    # Another second: the same timestamp and sign with another body would be a replay.
    assert send(envelope(ent, [invoice(3)], timestamp=str(now - 1))).get_json()["accepted"] == 1
    assert stored() == 3


def test_timestamp_written_as_beijing_time(ent, send):
    beijing = dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))
    for n, text in enumerate((beijing.strftime("%Y%m%d%H%M%S"), beijing.strftime("%Y%m%d%H%M%S") + "123",
                              beijing.strftime("%Y%m%d%H%M%S") + "1234")):
        assert send(envelope(ent, [invoice(10 + n)], timestamp=text)).get_json()["accepted"] == 1, text
    # Read as Beijing time: the same digits as UTC are eight hours off, outside the window.
    utc = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S") + "0000"
    resp = send(envelope(ent, [invoice(20)], timestamp=utc))
    assert resp.get_json()["errcode"] == "1004" and "相差超过" in resp.get_json()["description"]
    # A month 13; 15 and 16 digits (no form has them); 20 digits.
    for bad in ("20261399120000", "202611301200001", "1234567890123456", "20261130120000123456"):
        resp = send(envelope(ent, [invoice(21)], timestamp=bad))
        assert resp.get_json()["errcode"] == "1004" and "yyyyMMddHHmmss" in resp.get_json()["description"], bad
    assert stored() == 3


def test_same_push_three_times_lands_once(ent, send):
    invoices = [invoice(n) for n in range(1, 6)]
    answers = [send(envelope(ent, invoices, encrypt=True)).get_json() for _ in range(3)]
    assert [(a["accepted"], a["duplicates"]) for a in answers] == [(5, 0), (0, 5), (0, 5)]
    assert stored() == 5
    # One audit event per push, counts only: never the secret, the key or the body.
    events = push_audits()
    assert len(events) == 3
    assert {e.actor for e in events} == {"push:push-client"}
    assert events[0].after == {"received": 5, "accepted": 5, "duplicates": 0}
    assert events[1].after == {"received": 5, "accepted": 0, "duplicates": 5}
    assert all(e.enterprise_id == ent.id for e in events)
    text = json.dumps([[e.summary, e.before, e.after] for e in events], ensure_ascii=False)
    assert SECRET not in text and KEY not in text and "SN000001" not in text and "33207001" not in text


def test_dedup_by_serial_no(ent, send):
    send(envelope(ent, [invoice(1)]))
    # Same serial number, even with changed fields: the same pushed invoice.
    answer = send(envelope(ent, [invoice(1, amount="99.00"), invoice(2)])).get_json()
    assert (answer["accepted"], answer["duplicates"]) == (1, 1)
    assert db.session.scalar(select(ExpectedInvoice.amount).where(ExpectedInvoice.serial_no == "SN000001")) == Decimal("46.62")


def test_dedup_by_invoice_key_without_serial(ent, send):
    legacy = invoice(1, serialNo=None)
    shudian = invoice(2, serialNo=None, invoiceCode=None, invoiceNo="24322000000489101796")
    assert send(envelope(ent, [legacy, shudian])).get_json()["accepted"] == 2
    # A 数电 number is its own key whatever code comes with it; a legacy key is code + number.
    again = [dict(legacy), dict(shudian, invoiceCode="")]
    assert send(envelope(ent, again)).get_json() == {"errcode": "0000", "description": "成功", "accepted": 0, "duplicates": 2}
    other_code = invoice(1, serialNo=None, invoiceCode="012001800322")
    assert send(envelope(ent, [other_code])).get_json()["accepted"] == 1
    assert stored() == 3


def test_dedup_within_one_push(ent, send):
    answer = send(envelope(ent, [invoice(1), invoice(1), invoice(2, serialNo=None), invoice(2, serialNo=None)])).get_json()
    assert (answer["accepted"], answer["duplicates"]) == (2, 2)
    assert stored() == 2


def test_dedup_is_per_enterprise(ent, make_enterprise, send):
    other = make_enterprise("另一企业", client_id="push-other", encrypted_push_only=False)
    assert send(envelope(ent, [invoice(1)])).get_json()["accepted"] == 1
    assert send(envelope(other, [invoice(1)])).get_json()["accepted"] == 1
    assert stored(ent) == 1 and stored(other) == 1


def test_empty_list_is_a_valid_push(ent, send):
    assert send(envelope(ent, [])).get_json() == {"errcode": "0000", "description": "成功", "accepted": 0, "duplicates": 0}


def test_body_without_json_content_type(ent, send, browser):
    raw = json.dumps(envelope(ent, [invoice(1)])).encode()
    resp = browser.request("POST", URL, data=raw, headers={"Content-Type": "text/plain"})
    assert resp.get_json()["accepted"] == 1


# --------------------------------------------------------------------------- refusals

def _without(key):
    def change(body):
        body.pop(key)
    return change


def _set(key, value):
    def change(body):
        body[key] = value
    return change


REFUSALS = [
    # (case, change of a valid encrypted envelope, errcode, HTTP status, words in the description)
    ("no taxNo", _without("taxNo"), "1001", 400, ["参数缺失", "taxNo"]),
    ("no client_id", _without("client_id"), "1001", 400, ["参数缺失", "client_id"]),
    ("no sign", _without("sign"), "1001", 400, ["参数缺失", "sign"]),
    ("no timestamp", _without("timestamp"), "1001", 400, ["参数缺失", "timestamp"]),
    ("no data", _without("data"), "1001", 400, ["参数缺失", "data"]),
    ("unknown client", _set("client_id", "nobody"), "1002", 403, ["企业未授权"]),
    ("bad sign", _set("sign", "0" * 32), "1003", 401, ["签名错误"]),
    ("unknown encType", _set("encType", 7), "1003", 401, ["签名错误", "encType"]),
    ("sign of another method", _set("encType", 1), "1003", 401, ["签名错误"]),
    ("timestamp not a number", _set("timestamp", "yesterday"), "1004", 401, ["timestamp"]),
    ("timestamp a float", _set("timestamp", 1.5), "1004", 401, ["timestamp"]),
    ("undecryptable", _set("data", "bm90IGVuY3J5cHRlZA=="), "1005", 400, ["解密失败"]),
    ("not base64", _set("data", "***"), "1005", 400, ["base64"]),
    ("encrypted but a list", _set("data", [{"invoiceNo": "1"}]), "1005", 400, ["解密失败"]),
]


@pytest.mark.parametrize("case, change, errcode, status, words", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_store_nothing(ent, send, case, change, errcode, status, words):
    body = envelope(ent, [invoice(1), invoice(2)], encrypt=True)
    change(body)
    resp = send(body)
    assert resp.status_code == status
    answer = resp.get_json()
    assert answer["errcode"] == errcode and answer["errcode"] in push.ERRCODES
    for word in words:
        assert word in answer["description"]
    assert stored() == 0 and push_audits() == []


def test_wrong_tax_no_for_the_client(ent, make_enterprise, send):
    other = make_enterprise("另一企业", client_id="push-other")
    # The other enterprise's real tax number with this client's valid signature: refused.
    resp = send(envelope(ent, [invoice(1)], tax_no=other.tax_no))
    assert resp.status_code == 403
    assert resp.get_json()["errcode"] == "1002" and "企业未授权" in resp.get_json()["description"]
    assert stored() == 0


def test_secret_of_another_enterprise_is_a_bad_sign(ent, make_enterprise, send):
    make_enterprise("另一企业", client_id="push-other", secret="other-secret-0987654321")
    resp = send(envelope(ent, [invoice(1)], secret="other-secret-0987654321"))
    assert resp.get_json()["errcode"] == "1003" and stored() == 0


def test_wrong_encrypt_key(ent, send):
    resp = send(envelope(ent, [invoice(1)], encrypt=True, key="fedcba9876543210"))
    assert resp.status_code == 400 and resp.get_json()["errcode"] == "1005"
    assert "解密失败" in resp.get_json()["description"] and stored() == 0


@pytest.mark.parametrize("offset", [-601, 601, -86400], ids=["stale", "future", "a-day-old"])
@pytest.mark.parametrize("unit", [1, 1000], ids=["seconds", "milliseconds"])
def test_timestamp_outside_the_window_is_refused(ent, send, offset, unit):
    resp = send(envelope(ent, [invoice(1)], timestamp=int((time.time() + offset) * unit)))
    assert resp.status_code == 401
    assert resp.get_json()["errcode"] == "1004" and "时间戳" in resp.get_json()["description"]
    assert stored() == 0


def test_timestamp_inside_the_window_is_accepted(ent, send):
    assert send(envelope(ent, [invoice(1)], timestamp=int(time.time()) - 590)).status_code == 200


@pytest.mark.parametrize("raw, words", [
    (b"{not json", "不是有效的 JSON"),
    (b"[1, 2]", "JSON 对象"),
    ("\u4e2d".encode("gbk"), "不是有效的 JSON"),
])
def test_malformed_body(ent, browser, raw, words):
    resp = browser.request("POST", URL, data=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.get_json()["errcode"] == "1006" and words in resp.get_json()["description"]


@pytest.mark.parametrize("data", ["[{not json", '{"invoiceNo": "1"}', 42])
def test_malformed_data(ent, send, data):
    body = envelope(ent, [])
    body["data"] = data
    resp = send(body)
    assert resp.status_code == 400 and resp.get_json()["errcode"] == "1006"
    assert "data" in resp.get_json()["description"] and stored() == 0


def test_decrypted_data_not_json(ent, send):
    body = envelope(ent, [])
    body["encrypt"] = True
    body["data"] = signing.aes_ecb_encrypt(b"not json at all", KEY)
    resp = send(body)
    assert resp.get_json()["errcode"] == "1006" and "解密后的 data" in resp.get_json()["description"]


BAD_INVOICES = [
    ({"invoiceNo": None}, "缺少 invoiceNo"),
    ({"invoiceNo": "12AB5678"}, "invoiceNo 无效"),
    ({"invoiceNo": "１２３４５６７８"}, "invoiceNo 无效"),  # full-width digits
    ({"invoiceNo": "1" * 21}, "invoiceNo 无效"),
    ({"invoiceCode": "0120018003X1"}, "invoiceCode 无效"),
    ({"invoiceDate": "20191332"}, "invoiceDate 不是有效的日期"),
    ({"amount": "12.345"}, "amount 不是有效的金额"),
    ({"totalAmount": "abc"}, "totalAmount 不是有效的金额"),
    ({"taxAmount": "NaN"}, "taxAmount 不是有效的金额"),
    ({"serialNo": "S" * 65}, "serialNo 过长"),
]


@pytest.mark.parametrize("fields, words", BAD_INVOICES, ids=[w for _, w in BAD_INVOICES])
def test_third_invalid_invoice_of_five_stores_nothing(ent, send, fields, words):
    invoices = [invoice(n) for n in range(1, 6)]
    invoices[2] = invoice(3, **fields)  # a None field is left out
    resp = send(envelope(ent, invoices, encrypt=True))
    assert resp.status_code == 422
    answer = resp.get_json()
    assert answer["errcode"] == "1007"
    assert "第 3 张发票" in answer["description"] and words in answer["description"]
    assert stored() == 0 and push_audits() == []


def test_an_invoice_that_is_not_an_object(ent, send):
    resp = send(envelope(ent, [invoice(1), "33207675"]))
    assert resp.get_json()["errcode"] == "1007" and "第 2 张发票格式错误" in resp.get_json()["description"]
    assert stored() == 0


def test_body_too_big(app, ent, send):
    app.config["PUSH_MAX_BYTES"] = 2048
    body = envelope(ent, [invoice(n) for n in range(1, 40)])
    resp = send(body)
    assert resp.status_code == 413
    assert resp.get_json()["errcode"] == "1008" and "请求体过大" in resp.get_json()["description"]
    assert stored() == 0
    assert send(envelope(ent, [invoice(1)])).status_code == 200  # a small push still passes


def test_default_body_cap_is_ten_megabytes(ent, browser):
    resp = browser.request("POST", URL, data=b" " * (10 * 1024 * 1024 + 1), headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and resp.get_json()["errcode"] == "1008"


@pytest.mark.parametrize("limit", [None, 4096], ids=["default-10MB", "small-cap"])
def test_chunked_body_over_the_cap_is_413_not_cut_and_parsed(app, ent, browser, limit):
    """No Content-Length: the server's decoded stream ends with the body; past the cap it is refused whole."""
    if limit:
        app.config["PUSH_MAX_BYTES"] = limit
    size = 13 * 1024 * 1024 if limit is None else 2 * limit
    body = json.dumps(envelope(ent, [invoice(1)])).encode()
    body = body[:-1] + b', "padding": "' + b"x" * size + b'"}'
    resp = browser.request("POST", URL, input_stream=io.BytesIO(body),
                           headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})
    assert resp.status_code == 413
    assert resp.get_json()["errcode"] == "1008" and "请求体过大" in resp.get_json()["description"]
    assert stored() == 0


def test_chunked_body_within_the_cap_is_read_whole(app, ent, browser):
    raw = json.dumps(envelope(ent, [invoice(1)])).encode()
    app.config["PUSH_MAX_BYTES"] = len(raw)  # exactly the cap
    resp = browser.request("POST", URL, input_stream=io.BytesIO(raw),
                           headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True})
    assert resp.status_code == 200, resp.get_json()
    assert stored() == 1


def test_deep_json_body_is_400_not_500(ent, browser):
    raw = b"[" * 100_000 + b"]" * 100_000
    resp = browser.request("POST", URL, data=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.get_json()["errcode"] == "1006" and "嵌套层数过多" in resp.get_json()["description"]


@pytest.mark.parametrize("where", ["envelope", "data text", "encrypted data", "invoice field"])
def test_deep_json_anywhere_in_a_push_is_refused(ent, send, browser, where):
    deep = "[" * 40 + "1" + "]" * 40
    if where == "envelope":
        raw = json.dumps(envelope(ent, [invoice(1)]))[:-1] + f', "extra": {deep}}}'
        resp = browser.request("POST", URL, data=raw, headers={"Content-Type": "application/json"})
    elif where == "data text":
        body = envelope(ent, [invoice(1)])
        body["data"] = f'[{json.dumps(invoice(1))}, {deep}]'
        resp = send(body)
    elif where == "encrypted data":
        body = envelope(ent, [], encrypt=True)
        body["data"] = signing.aes_ecb_encrypt(f"[{deep}]".encode(), KEY)
        resp = send(body)
    else:
        body = envelope(ent, [invoice(1, amount=json.loads(deep))])
        resp = send(body)
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["errcode"] == "1006" and "嵌套层数过多" in resp.get_json()["description"]
    assert stored() == 0


def test_the_depth_limit_leaves_brackets_in_text_alone(ent, send):
    resp = send(envelope(ent, [invoice(1, salerName="[" * 100 + '\\"{' * 50, buyerName="]" * 100)]))
    assert resp.status_code == 200, resp.get_json()


# --------------------------------------------------------------------------- 只接受加密推送 and replay

def test_new_enterprises_accept_only_encrypted_pushes(strict, send):
    assert strict.encrypted_push_only is True
    resp = send(envelope(strict, [invoice(1)]))
    assert resp.status_code == 403
    answer = resp.get_json()
    assert answer["errcode"] == "1009" and answer["errcode"] in push.ERRCODES
    assert "只接受加密推送" in answer["description"] and "encrypt=true" in answer["description"]
    assert stored() == 0 and push_audits() == []
    encrypted = send(envelope(strict, [invoice(1)], encrypt=True))
    assert encrypted.status_code == 200 and encrypted.get_json()["accepted"] == 1


def test_a_captured_sign_cannot_carry_another_body(strict, ent, send):
    """The sign covers client_id + secret + timestamp only: a second body under the same triple is a replay."""
    for e, encrypt in ((strict, True), (ent, False)):
        ts = int(time.time() * 1000)
        first = envelope(e, [invoice(1)], encrypt=encrypt, timestamp=ts)
        assert send(first).get_json()["accepted"] == 1
        forged = envelope(e, [invoice(2, billNo="FYBX9999")], encrypt=encrypt, timestamp=ts)
        assert forged["sign"] == first["sign"]
        forged_upper = dict(forged, sign=forged["sign"].upper())
        for attempt in (forged, forged_upper):
            resp = send(attempt)
            assert resp.status_code == 401
            assert resp.get_json()["errcode"] == "1004" and "重放" in resp.get_json()["description"]
        assert stored(e) == 1
        # The very same push again is a harmless repeat: accepted, nothing new stored.
        again = send(first)
        assert again.status_code == 200 and again.get_json()["accepted"] == 0 and again.get_json()["duplicates"] == 1
        assert stored(e) == 1


def test_a_refused_push_leaves_no_receipt(ent, send):
    ts = int(time.time() * 1000)
    bad = envelope(ent, [invoice(1, invoiceNo="12AB")], timestamp=ts)
    assert send(bad).get_json()["errcode"] == "1007"
    assert db.session.scalar(select(func.count()).select_from(PushReceipt)) == 0


def test_receipts_are_kept_for_the_timestamp_window_only(ent):
    now = time.time()
    push.receive(envelope(ent, [invoice(1)], timestamp=int(now * 1000)), now=now)
    db.session.commit()
    [receipt] = db.session.scalars(select(PushReceipt))
    assert abs((receipt.expires_at - push.utc_from_unix(now + 600)).total_seconds()) < 1
    later = now + 3600
    push.receive(envelope(ent, [invoice(2)], timestamp=int(later * 1000)), now=later)
    db.session.commit()
    assert [r.expires_at > push.utc_from_unix(later) for r in db.session.scalars(select(PushReceipt))] == [True]


def test_only_post(browser):
    resp = browser.request("GET", URL)
    assert resp.status_code == 405


def test_no_csrf_token_needed_and_no_session(ent, send):
    # A client without cookies or CSRF token: the signature is the only credential.
    resp = send(envelope(ent, [invoice(1)]))
    assert resp.status_code == 200 and "Set-Cookie" not in resp.headers


# --------------------------------------------------------------------------- the service function

def test_receive_service_directly(ent):
    got = push.receive(envelope(ent, [invoice(1), invoice(2)], encrypt=True))
    db.session.commit()
    assert (got.accepted, got.duplicates, got.enterprise_id) == (2, 0, ent.id)
    got = push.receive(json.dumps(envelope(ent, [invoice(1), invoice(3)])).encode())
    db.session.commit()
    assert (got.accepted, got.duplicates) == (1, 1)


def test_expected_from_push_shares_the_rules(app):
    from portal import bills

    row = bills.expected_from_push(1, invoice(1), 0, origin="erp", bill_no="X1")
    assert row.bill_no == "FYBX0001" and row.invoice_key == "012001800311:33207001" and row.amount == Decimal("46.62")
    with pytest.raises(UserError, match="第 4 张发票缺少 invoiceNo"):
        bills.expected_from_push(1, {"invoiceCode": "1"}, 3, origin="erp")
