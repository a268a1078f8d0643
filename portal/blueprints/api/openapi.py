"""The OpenAPI 3.1 description of the ERP API, written by hand (served at ``/api/v1/openapi.json``).

Kept beside the routes so that a change to an endpoint and to its description
land in the same commit; ``tests/test_api.py`` checks every route is described.
"""
from __future__ import annotations

from copy import deepcopy
from typing import Any

VERSION = "1.0.0"

_NULLABLE_STR = {"type": ["string", "null"]}
_MONEY = {"type": ["string", "null"], "pattern": r"^-?\d+\.\d{2}$", "description": "两位小数的十进制字符串，如 \"24519.05\"", "examples": ["24519.05"]}
_DATE = {"type": ["string", "null"], "format": "date", "description": "YYYY-MM-DD"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return _json(_ref("Error"), description)


# The one rule of bill numbers (portal.bills.check_bill_no) in words: a JSON Schema pattern's \w
# is ASCII-only, while the rule accepts letters and digits of any script (e.g. a Chinese prefix).
_BILL_NO_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 64}
_BILL_NO = {"name": "bill_no", "in": "path", "required": True, "schema": _BILL_NO_SCHEMA,
            "description": "ERP 单据编号"}

_COMMON_ERRORS = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
}
_BILL_ERRORS = {**_COMMON_ERRORS, "404": {"$ref": "#/components/responses/NotFound"}}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "description": "机器可读的错误码",
                      "examples": ["invalid_client", "invalid_token", "not_found", "invalid_request", "conflict",
                                   "gone", "too_large", "unsupported_media_type"]},
            "message": {"type": "string", "description": "中文错误说明，可直接展示给用户"},
        },
    },
    "TokenRequest": {
        "type": "object",
        "required": ["client_id", "client_secret"],
        "properties": {
            "client_id": {"type": "string", "description": "企业授权的 client_id"},
            "client_secret": {"type": "string", "description": "企业授权的 client_secret"},
        },
    },
    "Token": {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in"],
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"type": "string", "const": "Bearer"},
            "expires_in": {"type": "integer", "description": "有效期（秒）；企业授权的密钥更换后立即失效"},
        },
    },
    "ScanPoint": {
        "type": "object",
        "required": ["code", "name"],
        "properties": {"code": {"type": "string"}, "name": {"type": "string"}},
    },
    "ExpectedInvoice": {
        "type": "object",
        "description": "单据应附的发票，字段名与收票助手推送协议一致",
        "required": ["invoiceNo"],
        "properties": {
            "serialNo": {"type": "string"},
            "invoiceType": {"type": "string", "description": "发票类型代码，如 01、04、10、20、31、32"},
            "invoiceCode": {"type": "string", "description": "发票代码（数电票为空）"},
            "invoiceNo": {"type": "string", "description": "发票号码：8 位，或数电票 20 位"},
            "invoiceDate": {"type": "string", "description": "开票日期 yyyyMMdd"},
            "amount": {"type": "string", "description": "不含税金额"},
            "taxAmount": {"type": "string", "description": "税额"},
            "totalAmount": {"type": "string", "description": "价税合计"},
            "checkCode": {"type": "string"},
            "salerName": {"type": "string"},
            "salerTaxNo": {"type": "string"},
            "buyerName": {"type": "string"},
            "buyerTaxNo": {"type": "string"},
            "downloadUrl": {"type": "string", "format": "uri"},
        },
    },
    "BillOpen": {
        "type": "object",
        "required": ["bill_no"],
        "properties": {
            "bill_no": {**_BILL_NO_SCHEMA,
                        "description": "单据编号：字母、数字、“-”、“_”、“.”，不含“..”、斜杠、空格和控制字符，"
                                       "最多 64 个字符；同一编号重复开启返回已有单据"},
            "form_id": {"type": "string", "maxLength": 64, "default": "ER_ExpReimbursement", "description": "星空表单标识"},
            "erp_id": {"type": "string", "maxLength": 64, "description": "星空单据内码"},
            "submitter": {"type": "string", "maxLength": 100, "description": "提单人"},
            "org": {"type": "string", "maxLength": 200, "description": "组织"},
            "amount": {"type": "string", "description": "单据金额，最多两位小数", "examples": ["1280.50"]},
            "scan_point": {"type": "string", "maxLength": 32, "description": "影像扫描点编码（见 /scan-points）"},
            "expected_invoices": {"type": "array", "items": _ref("ExpectedInvoice")},
        },
    },
    "ReturnRequest": {
        "type": "object",
        "required": ["reason"],
        "properties": {"reason": {"type": "string", "maxLength": 500, "description": "退回重扫原因"}},
    },
    "Image": {
        "type": "object",
        "required": ["id", "sha256", "media_type", "pages", "filename"],
        "properties": {
            "id": {"type": "integer"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "media_type": {"type": "string", "enum": ["image/jpeg", "image/png", "image/tiff", "application/pdf",
                                                      "application/ofd", "application/xml"]},
            "pages": {"type": "integer", "minimum": 1},
            "filename": {"type": "string", "description": "上传时的原始文件名"},
            "recognition": {
                "type": ["object", "null"],
                "description": "后台 OCR 识别状态：null 表示无需 OCR；queued/running 识别中，done 完成，failed 失败，"
                               "unavailable 未安装 OCR",
                "properties": {"state": {"type": "string", "enum": ["queued", "running", "done", "failed", "unavailable"]},
                               "attempts": {"type": "integer"}, "error": _NULLABLE_STR},
            },
        },
    },
    "UploadedImage": {
        "allOf": [_ref("Image"), {
            "type": "object",
            "required": ["created"],
            "properties": {"created": {"type": "boolean", "description": "false：同一文件已在该单据上，未重复存储"}},
        }],
    },
    "Invoice": {
        "type": "object",
        "properties": {
            "image_id": {"type": ["integer", "null"]},
            "type": {**_NULLABLE_STR, "description": "发票类型代码"},
            "code": {**_NULLABLE_STR, "description": "发票代码（数电票为 null）"},
            "number": {**_NULLABLE_STR, "description": "发票号码"},
            "date": _DATE,
            "amount": {**_MONEY, "description": "不含税金额"},
            "tax": {**_MONEY, "description": "税额"},
            "total": {**_MONEY, "description": "价税合计"},
            "check_code": _NULLABLE_STR,
            "seller_name": _NULLABLE_STR,
            "seller_tax_no": _NULLABLE_STR,
            "buyer_name": _NULLABLE_STR,
            "buyer_tax_no": _NULLABLE_STR,
            "source": {"type": "string", "enum": ["push", "qr", "pdf_text", "xml", "ofd", "ocr", "manual", "erp"],
                       "description": "识别来源"},
            "needs_confirmation": {"type": "boolean", "description": "待确认：由 OCR 识别，扫描岗尚未确认或修改"},
            "ocr_fields": {"type": "array", "items": {"type": "string"},
                           "description": "由 OCR 补全的字段（二维码未包含的销方、购方、价税合计等）；无则为空"},
            "duplicate_bills": {"type": "array", "items": {"type": "string"},
                                "description": "同一张发票所在的其他有效单据编号（重复报销）"},
            "verification": {
                "type": ["object", "null"],
                "description": "发票云查验结果；企业未开启“发票查验”时为 null",
                "properties": {
                    "status": {"type": "string", "enum": ["verified", "failed", "void", "unverified"],
                               "description": "verified 查验通过、failed 查验不符、void 已作废/红冲、unverified 未查验"},
                    "code": {**_NULLABLE_STR, "description": "发票云返回的 errcode"},
                    "message": {**_NULLABLE_STR, "description": "发票云的说明，或未能查验的原因"},
                    "checked_at": {"type": ["string", "null"], "format": "date-time", "description": "查验时间（UTC）"},
                },
            },
        },
    },
    "Bill": {
        "type": "object",
        "required": ["bill_no", "status", "images", "invoices"],
        "properties": {
            "bill_no": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "uploaded", "submitted", "recognised", "matched",
                                                  "match_failed", "completed", "returned", "deleted"]},
            "status_label": {"type": "string", "description": "状态的中文名称"},
            "amount": _MONEY,
            "form_id": {"type": "string"},
            "erp_id": _NULLABLE_STR,
            "submitter": _NULLABLE_STR,
            "org": _NULLABLE_STR,
            "scan_point": {**_NULLABLE_STR, "description": "扫描点编码"},
            "return_reason": {**_NULLABLE_STR, "description": "最近一次退回原因"},
            "images": {"type": "array", "items": _ref("Image")},
            "invoices": {"type": "array", "items": _ref("Invoice")},
            "match": {"type": "object", "description": (
                "影像匹配结果（仅在匹配后出现）：result、reasons（中文原因）、items；items[].status 为 matched、"
                "missing_image、amount_mismatch（key 为 bill_amount 的一项比较单据金额与发票价税合计）、"
                "unexpected_image、duplicate（重复报销）、duplicate_in_bill（单据内重复）或 verify_failed"
                "（发票查验不符或已作废/红冲）")},
        },
    },
    "UploadResult": {
        "type": "object",
        "required": ["images", "invoices"],
        "properties": {
            "images": {"type": "array", "items": _ref("UploadedImage")},
            "invoices": {"type": "array", "items": _ref("Invoice")},
        },
    },
    "ViewLink": {
        "type": "object",
        "required": ["url", "expires_at"],
        "properties": {
            "url": {"type": "string", "format": "uri", "description": "免登录只读调阅地址"},
            "expires_at": {"type": "string", "format": "date-time", "description": "失效时间（UTC, ISO 8601）"},
        },
    },
}

PATHS: dict[str, Any] = {
    "/token": {
        "post": {
            "operationId": "getToken",
            "summary": "获取访问令牌",
            "description": "用企业授权的 client_id / client_secret 换取 Bearer 令牌；令牌只能访问该企业的数据。",
            "security": [],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _ref("TokenRequest")},
                "application/x-www-form-urlencoded": {"schema": _ref("TokenRequest")},
            }},
            "responses": {
                "200": _json(_ref("Token"), "令牌"),
                "401": _error("client_id 或 client_secret 不正确（error = invalid_client）"),
            },
        },
    },
    "/scan-points": {
        "get": {
            "operationId": "listScanPoints",
            "summary": "影像扫描点列表",
            "responses": {
                "200": _json({"type": "object", "required": ["items"],
                              "properties": {"items": {"type": "array", "items": _ref("ScanPoint")}}}, "扫描点"),
                **_COMMON_ERRORS,
            },
        },
    },
    "/bills": {
        "post": {
            "operationId": "openBill",
            "summary": "开启影像任务",
            "description": "同一单据编号再次调用时返回 200 和已有单据，不会重复创建。",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("BillOpen")}}},
            "responses": {
                "201": {**_json(_ref("Bill"), "已创建"),
                        "headers": {"Location": {"schema": {"type": "string"}, "description": "单据地址"}}},
                "200": _json(_ref("Bill"), "单据已存在"),
                "422": _error("参数有误：单据编号不符合规则、文本字段超过长度上限、金额或发票无效"),
                **_COMMON_ERRORS,
            },
        },
    },
    "/bills/{bill_no}": {
        "parameters": [_BILL_NO],
        "get": {
            "operationId": "getBill",
            "summary": "查询单据影像与发票",
            "responses": {"200": _json(_ref("Bill"), "单据"), **_BILL_ERRORS},
        },
        "delete": {
            "operationId": "deleteBill",
            "summary": "单据被 ERP 删除",
            "description": "单据状态变为 deleted；影像保留以备审计，其发票不再参与重复报销检查；"
                           "已发出的调阅和上传链接随之失效（410）。",
            "responses": {"200": _json(_ref("Bill"), "已标记删除的单据"), **_BILL_ERRORS},
        },
    },
    "/bills/{bill_no}/images": {
        "parameters": [_BILL_NO],
        "post": {
            "operationId": "uploadImages",
            "summary": "上传影像文件",
            "description": "一个或多个 file 字段。任一文件被拒绝时整个请求不保存任何文件。"
                           "同一文件在同一单据上只存一次（created = false）。",
            "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "array", "items": {"type": "string", "contentMediaType": "application/octet-stream"}}},
            }}}},
            "responses": {
                "201": _json(_ref("UploadResult"), "已保存的影像及识别出的发票"),
                "409": _error("单据当前状态不允许修改影像"),
                "413": _error("文件或请求过大"),
                "415": _error("不支持的文件类型（按内容判断）"),
                "422": _error("文件损坏、不安全或请求缺少文件"),
                **_BILL_ERRORS,
            },
        },
    },
    "/bills/{bill_no}/view-link": {
        "parameters": [_BILL_NO],
        "get": {
            "operationId": "getViewLink",
            "summary": "获取影像调阅链接",
            "description": "单据被删除后不再提供链接（410），已发出的链接也随之失效。",
            "responses": {"200": _json(_ref("ViewLink"), "调阅链接"),
                          "410": _error("单据已被删除（error = gone）"), **_BILL_ERRORS,
                          "503": _error("服务器未配置对外访问地址，无法生成链接（error = public_base_url_unset）")},
        },
    },
    "/bills/{bill_no}/return": {
        "parameters": [_BILL_NO],
        "post": {
            "operationId": "returnBill",
            "summary": "退回重扫",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ReturnRequest")}}},
            "responses": {
                "200": _json(_ref("Bill"), "已退回的单据"),
                "409": _error("单据当前状态不能退回"),
                "422": _error("缺少退回原因，或退回原因超过 500 个字符"),
                **_BILL_ERRORS,
            },
        },
    },
    "/openapi.json": {
        "get": {
            "operationId": "getOpenApi",
            "summary": "本接口文档（OpenAPI 3.1）",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 文档", "content": {"application/json": {}}}},
        },
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "发票影像系统 ERP 接口",
        "version": VERSION,
        "description": "供金蝶云星空等 ERP 调用：获取令牌、开启影像任务、上传与查询影像、获取调阅链接、退回与删除单据。"
                       "所有错误均返回 JSON：{\"error\": 错误码, \"message\": 中文说明}。",
    },
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearerAuth": []}],
    "paths": PATHS,
    "components": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                           "description": "POST /token 取得的 access_token"}},
        "schemas": SCHEMAS,
        "responses": {
            "Unauthorized": _error("缺少令牌、令牌无效或已过期（error = invalid_token）"),
            "NotFound": _error("单据不存在或不属于本企业"),
        },
    },
}


def document() -> dict[str, Any]:
    """A copy of the document (callers may not change the shared one)."""
    return deepcopy(DOCUMENT)
