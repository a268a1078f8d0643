"""The 影像查看 button: a signed /erp/open request shows the bill without a portal account."""
from __future__ import annotations

import time
from urllib.parse import urlencode, urlsplit

import pytest
from sqlalchemy import select

from portal import bills
from portal.blueprints.erp.routes import signature
from portal.extensions import db
from portal.models import AuditEvent

from .conftest import corpus

SECRET = "s3cret-value-1234567890"  # make_enterprise's default client secret


@pytest.fixture
def bill(make_enterprise):
    ent = make_enterprise("甲公司", client_id="clientERP1")
    bill = bills.open_bill(ent, {"bill_no": "FYBX0001", "erp_id": "100001"}, "erp").bill
    bills.add_file(bill, corpus("vat_e_ordinary_zhejiang_83089647_original_invoice.xml"), "发票.xml", "s1")
    db.session.commit()
    return bill


def _url(**override):
    values = {"client_id": "clientERP1", "form_id": "ER_ExpReimbursement", "bill_no": "FYBX0001",
              "user": "王审批", "ts": str(int(time.time()))}
    secret = override.pop("secret", SECRET)
    values.update({k: v for k, v in override.items() if k != "sign"})
    sign = override.get("sign") or signature(secret, **{k: values[k] for k in ("client_id", "form_id", "bill_no",
                                                                              "user", "ts")})
    return "/erp/open?" + urlencode({**values, "sign": sign})


def test_a_signed_request_shows_the_bill_and_is_audited(browser, bill):
    resp = browser.get(_url())
    assert resp.status_code == 303 and "/v/" in resp.headers["Location"]
    page = browser.get(resp.headers["Location"])
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "FYBX0001" in html and "83089647" in html
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "erp_open"))
    assert event.actor == "星空用户 王审批" and event.object_id == str(bill.id)


@pytest.mark.parametrize("change", [
    {"bill_no": "FYBX0002", "sign": "from-the-original"},  # altered after signing
    {"user": "别人", "sign": "from-the-original"},
    {"secret": "another-secret-000000000"},
    {"client_id": "unknown"},
    {"ts": str(int(time.time()) - 601)},  # signed, but more than ten minutes old
    {"ts": "soon"},
])
def test_altered_forged_or_old_requests_are_refused(browser, bill, change):
    if change.get("sign") == "from-the-original":
        original = _url()
        sign = original.rsplit("sign=", 1)[1]
        change = {**change, "sign": sign}
    resp = browser.get(_url(**change))
    assert resp.status_code == 403
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "erp_open")) is None


def test_a_bill_without_images_yet_is_404_with_a_plain_message(browser, bill):
    resp = browser.get(_url(bill_no="FYBX0999"))
    assert resp.status_code == 404 and "该单据还没有影像" in resp.get_data(as_text=True)


# -- the Galaxy plug-in script, run under stand-ins for the .NET classes IronPython gives it -------------


class _DotNet:
    """Just the .NET surface the script touches, with the same behaviour."""

    class DateTime:
        def __init__(self, *parts):
            import datetime as dt

            self.value = dt.datetime(*parts[:6], tzinfo=dt.timezone.utc)

        UtcNow = None  # set per run

        def __sub__(self, other):
            class Span:
                TotalSeconds = (self.value - other.value).total_seconds()

            return Span()

    class Uri:
        @staticmethod
        def EscapeDataString(value):
            from urllib.parse import quote

            return quote(value, safe="-_.~")

    class HMACSHA256:
        def __init__(self, key):
            self.key = key

        def ComputeHash(self, data):
            import hmac as _hmac

            return list(_hmac.new(bytes(self.key), bytes(data), "sha256").digest())

    class Encoding:
        class UTF8:
            @staticmethod
            def GetBytes(text):
                return text.encode("utf-8")


def _run_plugin(script: str, bill_no: str, user: str) -> list[dict]:
    import sys
    import types

    modules = {"clr": types.SimpleNamespace(AddReference=lambda name: None),
               "System": types.SimpleNamespace(DateTime=_DotNet.DateTime, DateTimeKind=types.SimpleNamespace(Utc=1),
                                               Uri=_DotNet.Uri),
               "System.Security": types.SimpleNamespace(), "System.Text": types.SimpleNamespace(Encoding=_DotNet.Encoding),
               "System.Security.Cryptography": types.SimpleNamespace(HMACSHA256=_DotNet.HMACSHA256)}
    _DotNet.DateTime.UtcNow = _DotNet.DateTime(*time.gmtime()[:6])
    actions = []
    view = types.SimpleNamespace(
        Model=types.SimpleNamespace(GetValue=lambda key: bill_no if key == "FBillNo" else None),
        BillBusinessInfo=types.SimpleNamespace(GetForm=lambda: types.SimpleNamespace(Id="ER_ExpReimbursement")),
        AddAction=lambda name, args: actions.append({"name": name, **args}),
        SendDynamicFormAction=lambda v: None, ShowMessage=lambda text: actions.append({"message": text}))
    this = types.SimpleNamespace(View=view, Context=types.SimpleNamespace(UserName=user))
    saved = {k: sys.modules.get(k) for k in modules}
    sys.modules.update(modules)
    try:
        namespace = {"this": this, "__name__": "plugin"}
        exec(compile(script, "image_buttons.py", "exec"), namespace)
        namespace["BarItemClick"](types.SimpleNamespace(BarItemKey="tbImageView"))
        namespace["BarItemClick"](types.SimpleNamespace(BarItemKey="tbImageScan"))
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return actions


def test_the_plugin_script_opens_a_link_the_portal_accepts(browser, bill, make_user):
    from portal.blueprints.erp.routes import plugin_script

    make_user("ops1", "ops")
    browser.login("ops1")
    resp = browser.get(f"/erp/plugin/{bill.enterprise_id}/image_buttons.py")
    script = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'CLIENT_ID = "clientERP1"' in script and 'CLIENT_SECRET = ""' in script
    assert SECRET not in script  # the secret is never handed out
    script = script.replace('CLIENT_SECRET = ""', f'CLIENT_SECRET = "{SECRET}"')
    view, scan = _run_plugin(script, "FYBX0001", "王审批")
    assert view["isweb"] is True and view["title"] == "影像查看" and scan["title"] == "影像扫描"
    assert scan["source"].endswith("/scan/open?bill_no=FYBX0001")
    target = urlsplit(view["source"])
    opened = browser.get(f"{target.path}?{target.query}")
    assert opened.status_code == 303 and "/v/" in opened.headers["Location"]
    assert plugin_script("https://img.example.cn", "X").count("https://img.example.cn") == 1
