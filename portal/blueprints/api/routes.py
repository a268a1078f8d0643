"""ERP API endpoints (``/api/v1``): thin views over :mod:`portal.bills` and :mod:`portal.links`.

Every answer is JSON; every refusal is ``{"error": <code>, "message": <中文说明>}``.
The blueprint is CSRF-exempt because its callers are servers holding a bearer
token, not browsers holding a session cookie.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, g, jsonify, request, url_for
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from ... import bills, links
from ...errors import UserError
from ...extensions import csrf, db
from ...models import Bill, Image, ScanPoint
from ...web.errors import MESSAGES
from . import openapi
from .auth import ApiError, issue_token, token_required
from .serializers import bill_json, image_json, invoices_json

bp = Blueprint("api", __name__)
csrf.exempt(bp)

# Machine-readable codes of refusals, by HTTP status.
ERROR_CODES = {
    400: "bad_request",
    401: "invalid_token",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


def _error(status: int, message: str, code: str | None = None, headers: dict | None = None):
    """The one shape of every refusal: ``{"error": code, "message": 中文说明}``."""
    resp = jsonify(error=code or ERROR_CODES.get(status, "error"), message=message)
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


@bp.errorhandler(ApiError)
def _api_error(err: ApiError):
    """Refusals raised by this package (auth, bad bodies, unknown bills)."""
    return _error(err.status, err.message, err.code, err.headers)


@bp.errorhandler(UserError)
def _user_error(err: UserError):
    """Refusals of the domain rules, with their own status and message."""
    # A refused request stores nothing: whatever it flushed so far is undone.
    db.session.rollback()
    return _error(err.status, err.message)


@bp.errorhandler(HTTPException)
def _http_error(err: HTTPException):
    """Werkzeug errors inside the API (e.g. 413 from the body limit) as API JSON, not the app's generic shape."""
    status = err.code or 500
    return _error(status, MESSAGES.get(status, "请求失败。"))


# --------------------------------------------------------------------------- helpers

def _json_body() -> dict[str, Any]:
    """The request's JSON object; 422 when the body is not one."""
    # force=True: some ERP HTTP clients send JSON without a JSON content type.
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_request", "请求体应为 JSON 对象")
    return data


def _bill_or_404(bill_no: str) -> Bill:
    """The bill of the token's enterprise; 404 for any other enterprise's (no existence leak)."""
    bill = db.session.scalar(select(Bill).where(Bill.enterprise_id == g.api_enterprise.id, Bill.bill_no == bill_no))
    if bill is None:
        raise ApiError(404, "not_found", f"单据 {bill_no} 不存在")
    return bill


def _basename(name: str | None) -> str:
    # Some clients send the client-side path; only the last part is the file's name.
    return (name or "").replace("\\", "/").rsplit("/", 1)[-1]


def _public_url(token: str) -> str:
    """Absolute URL of a view link: on ``PUBLIC_BASE_URL``, else only on a trusted host (503 otherwise)."""
    path = url_for("public.view", token=token)[len(request.script_root):]
    url = links.absolute_url(path)
    if url is None:
        raise ApiError(503, "public_base_url_unset",
                       "服务器未配置对外访问地址（PUBLIC_BASE_URL），无法生成调阅链接，请联系影像系统运维人员。")
    return url


def _iso(ts: int) -> str:
    """Unix seconds as ISO 8601 in UTC (``2025-01-01T00:00:00Z``)."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- endpoints

@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 description of this API (no token needed)."""
    return jsonify(openapi.document())


@bp.post("/token")
def token():
    """Exchange an enterprise's client_id/client_secret for a bearer token."""
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        data = request.form  # OAuth clients often post the credentials form-encoded
    issued = issue_token(str(data.get("client_id") or ""), str(data.get("client_secret") or ""))
    resp = jsonify(access_token=issued.access_token, token_type="Bearer", expires_in=issued.expires_in)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/scan-points")
@token_required
def scan_points():
    """The enterprise's scan points, for the ERP's scan-point picker."""
    points = db.session.scalars(select(ScanPoint).where(ScanPoint.enterprise_id == g.api_enterprise.id)
                                .order_by(ScanPoint.code))
    return jsonify(items=[{"code": p.code, "name": p.name} for p in points])


@bp.post("/bills")
@token_required
def open_bill():
    """Open an image task; the same bill number again answers 200 with the existing bill."""
    opened = bills.open_bill(g.api_enterprise, _json_body(), g.api_actor)
    db.session.commit()
    resp = jsonify(bill_json(opened.bill))
    if opened.created:
        resp.status_code = 201
        resp.headers["Location"] = url_for(".get_bill", bill_no=opened.bill.bill_no)
    return resp


@bp.get("/bills/<bill_no>")
@token_required
def get_bill(bill_no: str):
    """The bill with its images and recognised invoices."""
    return jsonify(bill_json(_bill_or_404(bill_no)))


@bp.delete("/bills/<bill_no>")
@token_required
def delete_bill(bill_no: str):
    """The ERP deleted the bill: it becomes ``deleted``; its images stay for the audit trail."""
    bill = _bill_or_404(bill_no)
    bills.delete_bill(bill, g.api_actor)
    db.session.commit()
    return jsonify(bill_json(bill))


@bp.post("/bills/<bill_no>/return")
@token_required
def return_bill(bill_no: str):
    """Return the bill for rescan with a reason (影像退回)."""
    bill = _bill_or_404(bill_no)
    bills.return_bill(bill, str(_json_body().get("reason") or ""), g.api_actor)
    db.session.commit()
    return jsonify(bill_json(bill))


@bp.post("/bills/<bill_no>/images")
@token_required
def upload_images(bill_no: str):
    """Attach one or more files (multipart ``file`` parts): all of them, or none when one is refused."""
    bill = _bill_or_404(bill_no)
    files = [(_basename(f.filename), f.read()) for f in request.files.getlist("file")]
    if not files:
        raise ApiError(422, "invalid_request", "请上传文件（multipart 表单字段 file）")
    bills.require_editable(bill)  # a 409 answers before any file-level complaint
    # Every file is checked and recognised before any reaches the store: all or none.
    prepared = [bills.prepare_file(data, name, tenant=bill.enterprise_id) for name, data in files]
    added: list[tuple[int, bool]] = []
    try:
        for file in prepared:
            result = bills.attach(bill, file, g.api_actor, origin="api", check_status=False)
            added.append((result.image.id, result.created))
    except UserError:
        db.session.rollback()  # one refused file: none of the request's files is attached
        raise
    db.session.commit()
    # Reload in one go (blob joined, invoices selectin) instead of one lazy load per image.
    ids = [image_id for image_id, _ in added]
    loaded = {img.id: img for img in db.session.scalars(select(Image).where(Image.id.in_(ids)))}
    images, seen, invoices = [], set(), []
    for image_id, created in added:
        images.append({**image_json(loaded[image_id]), "created": created})
        if image_id not in seen:  # the same file twice in one request lists its invoices once
            seen.add(image_id)
            invoices.extend(loaded[image_id].invoices)
    return jsonify(images=images, invoices=invoices_json(bill.enterprise_id, bill.id, invoices)), 201


@bp.get("/bills/<bill_no>/view-link")
@token_required
def view_link(bill_no: str):
    """A signed, time-limited link through which approvers view the bill's images without an account."""
    bill = _bill_or_404(bill_no)
    if bill.status == "deleted":
        # Links of a deleted bill are revoked; a fresh one must not bring them back.
        raise ApiError(410, "gone", f"单据 {bill_no} 已被删除，不再提供调阅链接")
    link = links.view_link(bill.id)
    return jsonify(url=_public_url(link.token), expires_at=_iso(link.expires_at))
