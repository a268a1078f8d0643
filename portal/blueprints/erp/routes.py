"""``/erp/open``: the 影像查看 button on the ERP bill opens the bill's images without a portal account.

Approvers live in the ERP, so the button (the Galaxy plug-in in ``erp/galaxy/``) signs the request
with the enterprise's client_secret: ``sign`` = lowercase hex HMAC-SHA256 of
``client_id + "\\n" + form_id + "\\n" + bill_no + "\\n" + user + "\\n" + ts`` (UTF-8, ts in Unix
seconds), valid for ten minutes. A valid request is audited with the ERP user's name and sent on to
the bill's read-only view link.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from importlib import resources

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from sqlalchemy import select

from ... import audit, links
from ...crypto import decrypt
from ...extensions import db
from ...models import Bill, Enterprise
from ...web.access import enterprise_or_404, roles_required
from ...web.hooks import no_leak

bp = Blueprint("erp", __name__)

MAX_SKEW = 600  # seconds a signed request stays valid
VIEW_TTL = 8 * 3600  # the approver's view link: one working day
FIELDS = ("client_id", "form_id", "bill_no", "user", "ts")
PLACEHOLDER_URL = "https://images.example.com"


def signature(secret: str, client_id: str, form_id: str, bill_no: str, user: str, ts: str) -> str:
    """The ``sign`` the ERP plug-in computes (and tests and the guide reproduce)."""
    message = "\n".join((client_id, form_id, bill_no, user, ts)).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _refuse(message: str, status: int):
    return render_template("erp/refused.html", message=message, status=status), status


bp.after_request(no_leak)


@bp.get("/open")
def open_bill():
    """Check the signature and the clock, then show the bill's images read-only."""
    values = {name: request.args.get(name, "") for name in FIELDS}
    sign = request.args.get("sign", "")
    if not all(values.values()) or not sign:
        return _refuse("链接缺少参数，请从 ERP 单据上的“影像查看”按钮打开。", 403)
    try:
        age = abs(time.time() - int(values["ts"]))
    except ValueError:
        return _refuse("链接无效，请从 ERP 单据上重新打开。", 403)
    ent = db.session.scalar(select(Enterprise).where(Enterprise.client_id == values["client_id"]))
    expected = signature(decrypt(ent.client_secret_enc), **values) if ent is not None else ""
    # Unknown client and wrong signature answer alike: nothing tells which client_ids exist.
    if ent is None or not hmac.compare_digest(expected, sign.lower()):
        return _refuse("链接签名不正确，请从 ERP 单据上重新打开。", 403)
    if age > MAX_SKEW:
        return _refuse("链接已过期（10 分钟内有效），请从 ERP 单据上重新打开。", 403)
    bill = db.session.scalar(select(Bill).where(Bill.enterprise_id == ent.id, Bill.bill_no == values["bill_no"]))
    if bill is None or bill.form_id != values["form_id"]:
        return _refuse("该单据还没有影像。", 404)
    if bill.status == "deleted":
        return _refuse("该单据已在 ERP 中删除，影像不再提供调阅。", 410)
    user = values["user"][:60]
    audit.record("erp_open", "bill", bill.id, enterprise_id=ent.id, actor=f"星空用户 {user}",
                 summary=f"星空用户 {user} 从 ERP 打开单据 {bill.bill_no} 的影像")
    db.session.commit()
    return redirect(url_for("public.view", token=links.view_link(bill.id, VIEW_TTL).token), 303)


def plugin_script(portal_url: str, client_id: str) -> str:
    """The Galaxy plug-in script with this deployment's address and the enterprise's client_id filled in.

    The client_secret stays a blank for the ERP administrator to type: secrets never leave the portal.
    """
    text = resources.files("portal.erp_plugin").joinpath("image_buttons.py").read_text(encoding="utf-8")
    text = re.sub(r'^PORTAL_URL = ".*"$', lambda _m: f"PORTAL_URL = {json.dumps(portal_url)}", text, count=1, flags=re.M)
    return re.sub(r'^CLIENT_ID = ".*"$', lambda _m: f"CLIENT_ID = {json.dumps(client_id)}", text, count=1, flags=re.M)


def portal_url() -> str:
    """The address the ERP's buttons open; the script's placeholder when no trusted address is known."""
    return links.public_base_url() or PLACEHOLDER_URL


@bp.get("/plugin/<int:enterprise_id>/image_buttons.py")
@roles_required("ops")
def plugin(enterprise_id: int):
    """Download the plug-in script for one enterprise, ready to paste into BOS designer."""
    ent = enterprise_or_404(enterprise_id)
    resp = make_response(plugin_script(portal_url(), ent.client_id))
    resp.headers["Content-Type"] = "text/plain; charset=utf-8"
    resp.headers["Content-Disposition"] = "attachment; filename=image_buttons.py"
    return resp
