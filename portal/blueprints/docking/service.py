"""Galaxy connections: data-centre lookup, connection test, save."""
from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select

from ... import audit
from ...crypto import decrypt, encrypt, is_masked
from ...errors import UserError
from ...extensions import db
from ...integration.errors import IntegrationError
from ...integration.galaxy import GalaxyClient
from ...integration.http import allowed_hosts_from_config
from ...models import DockingConnection, Enterprise, User

#: Shown when a bound ops tries to change a connection other enterprises rely on too.
NOT_MANAGEABLE = "该连接还被您管理范围以外的企业使用，只能查看；请由全部企业的运维修改。"


@dataclass
class TestResult:
    ok: bool
    message: str
    acct_name: str = ""


def enterprises_using(conn_ids: list[int]) -> dict[int, set[int]]:
    """Ids of the enterprises that use each connection (one query)."""
    out: dict[int, set[int]] = {}
    if conn_ids:
        for did, eid in db.session.execute(select(Enterprise.docking_id, Enterprise.id).where(Enterprise.docking_id.in_(conn_ids))):
            out.setdefault(did, set()).add(eid)
    return out


def manageable_ids(user: User, conns: list[DockingConnection]) -> set[int]:
    """Ids of the connections ``user`` may change, delete or assign (DESIGN §10).

    A deployment-wide ops manages every connection. A bound ops manages a connection only
    when its owner and every enterprise using it lie within the user's own enterprises:
    otherwise an edit would send another enterprise's images to an ERP of the editor's choice.
    """
    if user.is_global:
        return {c.id for c in conns}
    own = {e.id for e in user.enterprises}
    using = enterprises_using([c.id for c in conns])
    out = set()
    for c in conns:
        reach = using.get(c.id, set()) | ({c.enterprise_id} if c.enterprise_id else set())
        if reach and reach <= own:
            out.add(c.id)
    return out


def _timeout() -> tuple[float, float]:
    return (current_app.config["OUTBOUND_CONNECT_TIMEOUT"], current_app.config["OUTBOUND_READ_TIMEOUT"])


def client(base_url: str, acct_id: str, username: str, password: str) -> GalaxyClient:
    """A Galaxy client with the deployment's timeouts."""
    return GalaxyClient(base_url, acct_id, username, password, timeout=_timeout(),
                        allowed_hosts=allowed_hosts_from_config(current_app.config, "ERP_ALLOWED_HOSTS"),
                        max_reply=current_app.config["ERP_MAX_REPLY_BYTES"])


def data_centers(base_url: str) -> tuple[list[dict], str | None]:
    """The data centres Galaxy lists at ``base_url`` (no login needed), or an error message."""
    try:
        with client(base_url, "", "", "") as c:
            return c.data_centers(), None
    except IntegrationError as exc:
        return [], f"获取数据中心失败：{exc.message}"


# A refused form re-shows the data centres the user picked from: at most this many, short texts.
CENTRES_MAX = 200
CENTRE_TEXT_MAX = 200


def centres_from_form(text: str | None) -> list[dict]:
    """The data-centre list the form carried back (``acct_choices``, JSON), checked and bounded.

    It is only ever shown again to the user who sent it, so a refused save keeps their choice by
    name without asking Galaxy again; anything malformed gives an empty list (the plain Id field).
    """
    if not text or len(text) > CENTRES_MAX * 3 * (CENTRE_TEXT_MAX + 16):
        return []
    try:
        rows = json.loads(text)
    except ValueError:
        return []
    if not isinstance(rows, list):
        return []
    out = []
    for row in rows[:CENTRES_MAX]:
        if not isinstance(row, dict):
            return []
        values = {k: row.get(k) for k in ("Id", "Name", "Number")}
        if not all(isinstance(v, str) and len(v) <= CENTRE_TEXT_MAX for v in values.values()) or not values["Id"]:
            return []
        out.append(values)
    return out


def test_connection(base_url: str, acct_id: str, username: str, password: str) -> TestResult:
    """Log in with ValidateUser; a failure is a result carrying Galaxy's own message."""
    try:
        with client(base_url, acct_id, username, password) as c:
            c.login()
            name = ""
            try:
                name = next((d.get("Name", "") for d in c.data_centers() if str(d.get("Id")) == acct_id), "")
            except IntegrationError:
                pass  # the name is a nicety; the login is what counts
    except IntegrationError as exc:
        return TestResult(False, exc.message)
    label = f"“{name}”" if name else acct_id
    return TestResult(True, f"连接成功，已登录数据中心 {label}。", name)


def snapshot(conn: DockingConnection) -> dict:
    """Fields for the audit log (the password only as set/changed)."""
    return {
        "name": conn.name,
        "base_url": conn.base_url,
        "acct_id": conn.acct_id,
        "username": conn.username,
        "password": bool(conn.password_enc),
        "status_field": conn.status_field,
        "form_ids": conn.form_ids,
        "amount_field": conn.amount_field,
        "enterprise_id": conn.enterprise_id,
    }


#: Form error when the mask comes back for another server, data centre or user.
RETYPE_PASSWORD = "前缀地址、数据中心或用户名已更改，请重新输入星空密码（已保存的密码只发给原来的服务器、数据中心和用户）。"


def _endpoint(base_url: str) -> tuple[str, int] | None:
    """Host name and effective port of a prefix address (None when it is not a usable URL)."""
    try:
        parts = urlsplit(base_url or "")
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname.lower(), port


def may_reuse_password(conn: DockingConnection, base_url: str, acct_id: str, username: str) -> bool:
    """True when the stored password may be sent for these form values.

    A stored secret leaves only for what it was stored for (DESIGN §10): the same host and port,
    data centre and user. A new path on the same server is fine; anything else needs the
    password typed again, or a mask sent back with a new address would hand it to that host.
    """
    endpoint = _endpoint(base_url)
    return (endpoint is not None and endpoint == _endpoint(conn.base_url)
            and acct_id == conn.acct_id and username == conn.username)


def effective_password(form, conn: DockingConnection | None) -> str:
    """The form's password, or the stored one when the mask came back for the same target."""
    if conn is not None and is_masked(form.password.data):
        if not may_reuse_password(conn, form.base_url.data, form.acct_id.data, form.username.data):
            raise UserError(RETYPE_PASSWORD, field="password")  # the form refuses this first; never send it elsewhere
        return decrypt(conn.password_enc)
    return form.password.data


def save(form, conn: DockingConnection | None, acct_name: str) -> DockingConnection:
    """Create or update a connection from a validated, tested form."""
    creating = conn is None
    before = None if creating else snapshot(conn)
    password_changed = creating or not is_masked(form.password.data)
    if creating:
        conn = DockingConnection(kind="galaxy")
        db.session.add(conn)
    conn.name = form.name.data
    conn.base_url = form.base_url.data
    conn.acct_id = form.acct_id.data
    conn.acct_name = acct_name
    conn.username = form.username.data
    if password_changed:
        conn.password_enc = encrypt(form.password.data)
    conn.status_field = form.status_field.data or ""
    conn.form_ids = ",".join(f.strip() for f in form.form_ids.data.split(",") if f.strip())
    conn.amount_field = form.amount_field.data
    conn.enterprise_id = form.enterprise_id.data or None
    db.session.flush()
    after = snapshot(conn)
    after["password"] = "changed" if password_changed and not creating else after["password"]
    audit.record("create" if creating else "update", "docking", conn.id, enterprise_id=conn.enterprise_id,
                 summary=f"{'新增' if creating else '修改'}对接业务系统 {conn.name}", before=before, after=after)
    db.session.commit()
    return conn
