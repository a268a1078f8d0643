"""One refusal type, one handler set: every status keeps its Chinese message (page, htmx, JSON)."""
from __future__ import annotations

import json

import pytest

from portal import bills
from portal.errors import UserError
from portal.extensions import db

TWO = "多个企业都有单据 BX-TWO，请从单据页面操作。"


@pytest.fixture
def bill_in_two(make_enterprise, make_user):
    """The same bill number in two enterprises, and an ops user who sees both."""
    for ent in (make_enterprise(), make_enterprise()):
        bills.open_bill(ent, {"bill_no": "BX-TWO"}, "erp")
    db.session.commit()
    make_user("ops_all", "ops")


def test_a_409_page_keeps_its_message(browser, bill_in_two):
    browser.login("ops_all")
    resp = browser.post("/bills/BX-TWO/submit")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 409
    assert TWO in html and "出错了" not in html and "<html" in html


def test_a_409_fragment_keeps_its_message_and_toasts_it(browser, bill_in_two):
    browser.login("ops_all")
    resp = browser.post("/bills/BX-TWO/submit", htmx="bill-head")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 409
    assert TWO in html and "<html" not in html
    # htmx swaps no 409 by default: the toast is what the person sees.
    assert json.loads(resp.headers["HX-Trigger"]) == {"toast": {"message": TWO, "level": "error"}}


def test_a_user_error_under_the_api_answers_json_with_its_message(app, make_enterprise):
    from tests.test_api import Api

    api = Api(app, make_enterprise("甲企业", client_id="erp-a"))
    api.open("FYBX0001")
    api.delete("/bills/FYBX0001")
    resp = api.upload("FYBX0001", ("page.html", b"<html></html>"))
    assert resp.status_code == 409
    assert resp.get_json() == {"error": "conflict", "message": "单据已被 ERP 删除，不能再修改影像"}


def test_refusal_types_are_user_errors():
    from portal.blueprints.api.auth import ApiError
    from portal.blueprints.public.routes import BillDeleted, LinkRefused
    from portal.push import PushError

    api = ApiError(401, "invalid_token", "令牌无效")
    assert (api.status, api.code, api.message) == (401, "invalid_token", "令牌无效")
    push = PushError("1003", "签名错误")
    assert (push.status, push.errcode, push.message) == (401, "1003", "签名错误")
    assert isinstance(LinkRefused(), UserError) and BillDeleted().status == 410
