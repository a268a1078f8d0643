"""Absolute URLs (push address, view links) come from PUBLIC_BASE_URL or a trusted host, never any Host: header."""
from __future__ import annotations

from portal.blueprints.enterprises.service import PUSH_PATH

from .conftest import PASSWORD
from .test_api import Api, ent  # noqa: F401 (fixture)

EVIL = "evil.example"


def _show(browser, ent_id, host="localhost"):
    """The enterprise page as seen by ops who reached the portal under ``host``."""
    browser.get(f"http://{host}/login")
    assert browser.post(f"http://{host}/login", {"username": "root", "password": PASSWORD}).status_code == 302
    return browser.get(f"http://{host}/enterprises/{ent_id}").data.decode()


def test_push_address_uses_public_base_url_whatever_the_host(app, browser, ops, make_enterprise):
    app.config["PUBLIC_BASE_URL"] = "https://images.example.com/"
    ent = make_enterprise()
    html = _show(browser, ent.id, EVIL)
    assert f"推送地址：https://images.example.com{PUSH_PATH}" in html
    assert EVIL not in html
    assert "未配置对外访问地址" not in html


def test_push_address_is_never_built_from_an_untrusted_host(browser, ops, make_enterprise):
    ent = make_enterprise()
    html = _show(browser, ent.id, EVIL)
    assert EVIL not in html
    assert "推送地址：（无法生成" in html
    assert "当前访问的主机也不在 TRUSTED_HOSTS 中" in html


def test_loopback_host_gives_an_address_with_a_warning(app, browser, ops, make_enterprise):
    ent = make_enterprise()
    html = _show(browser, ent.id)
    assert f"推送地址：http://localhost{PUSH_PATH}" in html
    assert "未配置对外访问地址（PUBLIC_BASE_URL）" in html
    # The same page names the invoice cloud in use.
    assert app.config["INVOICE_CLOUD_URL"] in html


def test_configured_trusted_host_gives_the_address_and_others_are_refused(app, browser, ops, make_enterprise):
    ent = make_enterprise()
    app.config["TRUSTED_HOSTS"] = ["images.corp.example", "localhost"]
    html = _show(browser, ent.id, "images.corp.example:8443")
    assert f"推送地址：http://images.corp.example:8443{PUSH_PATH}" in html
    refused = browser.get(f"http://{EVIL}/login")
    assert refused.status_code == 400
    assert "受信任主机" in refused.get_data(as_text=True)


def test_enterprise_list_shows_the_deployment_to_ops_only(app, browser, ops, make_user, make_enterprise):
    ent = make_enterprise()
    make_user("v", "viewer", [ent])
    browser.login("root")
    html = browser.get("/enterprises/").data.decode()
    assert 'id="deployment-info"' in html and app.config["INVOICE_CLOUD_URL"] in html
    assert "未配置对外访问地址" in html
    viewer = type(browser)(app)
    viewer.login("v")
    assert 'id="deployment-info"' not in viewer.get("/enterprises/").data.decode()


def test_view_link_is_refused_on_an_untrusted_host(app, ent):  # noqa: F811
    api = Api(app, ent)
    api.open("FYBX0001")
    resp = api.client.get(f"http://{EVIL}/api/v1/bills/FYBX0001/view-link", headers=api._headers())
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["error"] == "public_base_url_unset" and "PUBLIC_BASE_URL" in body["message"]
    assert EVIL not in resp.get_data(as_text=True)
    app.config["PUBLIC_BASE_URL"] = "https://images.example.com"
    resp = api.client.get(f"http://{EVIL}/api/v1/bills/FYBX0001/view-link", headers=api._headers())
    assert resp.get_json()["url"].startswith("https://images.example.com/v/")
