"""Secrets never leave the vault: not in pages, JSON, logs, audit rows, or the database file's bytes."""
import json
import logging
from pathlib import Path

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEvent, DockingConnection, Enterprise
from portal.sandbox.seed import TEST_CLOUD_CLIENT, TEST_GALAXY

from .conftest import tax_no


def test_saved_secrets_appear_nowhere(app, browser, ops, cloud, galaxy, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = [TEST_CLOUD_CLIENT.client_secret, TEST_CLOUD_CLIENT.encrypt_key, TEST_GALAXY.password]
    browser.login("root")
    assert browser.post("/enterprises/", {
        "name": "保密测试", "tax_no": tax_no(77), "client_id": TEST_CLOUD_CLIENT.client_id,
        "client_secret": TEST_CLOUD_CLIENT.client_secret, "encrypt_key": TEST_CLOUD_CLIENT.encrypt_key}).status_code == 303
    ent = db.session.scalar(select(Enterprise))
    assert browser.post("/docking/", {
        "name": "星空", "base_url": galaxy.url + "/k3cloud/", "acct_id": TEST_GALAXY.acct_id, "username": TEST_GALAXY.username,
        "password": TEST_GALAXY.password, "enterprise_id": str(ent.id), "status_field": ""}).status_code == 303
    conn = db.session.scalar(select(DockingConnection))
    # Edits that keep the masks, a test, and a failed save exercise the other code paths.
    browser.post(f"/enterprises/{ent.id}/edit", {"name": ent.name, "tax_no": ent.tax_no, "client_id": ent.client_id,
                                                 "client_secret": "", "encrypt_key": "", "image_mode": "match",
                                                 "docking_id": str(conn.id)})
    browser.post("/docking/test", {"name": "星空", "base_url": galaxy.url + "/k3cloud/", "acct_id": TEST_GALAXY.acct_id,
                                   "username": TEST_GALAXY.username, "password": "••••", "connection_id": str(conn.id),
                                   "enterprise_id": str(ent.id)})
    browser.post("/enterprises/", {"name": "x", "tax_no": tax_no(78), "client_id": "other01",
                                   "client_secret": TEST_CLOUD_CLIENT.client_secret, "encrypt_key": "short"})

    pages = ["/", "/enterprises/", f"/enterprises/{ent.id}", f"/enterprises/{ent.id}/edit", "/docking/",
             f"/docking/{conn.id}/edit", "/scan-points/", "/users/", "/audit/", "/enterprises/new", "/docking/new"]
    seen = []
    for url in pages:
        resp = browser.get(url, follow_redirects=True)
        assert resp.status_code == 200, url
        seen.append(resp.data.decode())
    for url in app.url_map.iter_rules():
        if "GET" in url.methods and str(url).startswith("/api/") and "<" not in str(url):
            seen.append(browser.get(str(url)).data.decode())
    audit_rows = [json.dumps([e.summary, e.before, e.after], ensure_ascii=False) for e in db.session.scalars(select(AuditEvent))]
    assert len(audit_rows) >= 4
    logs = caplog.text

    db.session.remove()
    db.engine.dispose()  # checkpoint the WAL so the main file holds everything, then read both
    db_file = Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"))
    raw = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
    for secret in secrets:
        for text in seen:
            assert secret not in text
        for row in audit_rows:
            assert secret not in row
        assert secret not in logs
        assert secret.encode() not in raw
        assert secret.encode("utf-16-le") not in raw
