"""Every label a person reads for a stored key: roles, statuses, modes, sources, job kinds, fields.

The database and the code keep stable English keys (see the StrEnums in
:mod:`portal.models`); this is the one table that turns them into Simplified Chinese, for
the pages, the forms, the audit log and the messages alike. Nothing here imports the app.
"""
from __future__ import annotations

ROLES = {"ops": "运维", "scanner": "扫描岗", "viewer": "查看"}

IMAGE_MODES = {
    "basic": "基础模式",
    "match": "影像匹配",
    "sync": "影像同步提单人",
}
IMAGE_MODE_HELP = {
    "basic": "影像只做存储和调阅，不做系统初审。适合只需要电子化归档、由人工审核发票的企业。",
    "match": "扫描后把识别出的发票与收票助手推送（或 ERP 提供）的发票逐张比对，作为系统初审。适合已启用收票服务、要求票单一致的企业。",
    "sync": "不设扫描岗：收票助手推送的发票文件（以及提单人通过单据链接补传的文件）直接作为单据影像。适合全部使用电子发票、无纸质票的企业。",
}

BILL_STATUSES = {
    "pending": "待扫描",
    "uploaded": "影像已上传",
    "submitted": "已提交",
    "recognised": "识别完成",
    "matched": "匹配成功",
    "match_failed": "匹配失败",
    "completed": "审核完成",
    "returned": "影像有误待重扫",
    "withdrawn": "已撤回",
    "deleted": "单据被删除",
}

# Invoice kind codes as the VAT QR code carries them (DESIGN §6); unknown codes are kept.
INVOICE_TYPES = {
    "01": "增值税专用发票",
    "04": "增值税普通发票",
    "08": "增值税电子专用发票",
    "10": "增值税电子普通发票",
    "20": "增值税电子专用发票",
    "31": "电子发票（增值税专用发票）",
    "32": "电子发票（普通发票）",
    "51": "电子发票（铁路电子客票）",
    "61": "电子发票（航空运输电子客票行程单）",
    # Kinds the invoice cloud pushes that carry no VAT QR type code (cloud_records.CLOUD_TYPES).
    "03": "机动车销售统一发票",
    "11": "增值税普通发票（卷票）",
    "14": "通行费电子发票",
    "15": "二手车销售统一发票",
    "taxi": "出租车发票",
    "train": "火车票",
    "air": "航空运输电子客票行程单",
    "quota": "定额发票",
    "bus": "客运发票",
    "toll": "过路过桥费发票",
    "ship": "轮船票",
    "other": "其他票据",
}


def invoice_type_label(code: str | None) -> str:
    """The Chinese name of an invoice kind code; unknown codes stay visible as 其他（code）."""
    if not code:
        return "—"
    return INVOICE_TYPES.get(code, f"其他（{code}）")


INVOICE_SOURCES = {
    "push": "收票推送",
    "qr": "二维码",
    "pdf_text": "PDF 文本",
    "xml": "XML",
    "ofd": "OFD",
    "manual": "人工录入",
    "ocr": "OCR 识别",
    "erp": "ERP",
}

# Write-back jobs (portal.writeback): what a job does, and where it stands.
WRITEBACK_KINDS = {"attachment": "上传附件", "approve": "工作流审批", "reject": "工作流驳回", "status": "回写状态"}
WRITEBACK_STATES = {"pending": "待处理", "running": "处理中", "failed": "失败", "done": "已完成"}
# Background OCR of an upload (portal.ocr_state): the image card, and the jobs page.
OCR_STATES = {"queued": "识别中", "running": "识别中", "done": "识别完成", "failed": "识别失败",
              "unavailable": "OCR 未安装"}
OCR_JOB_STATES = {"queued": "排队中", "running": "识别中", "failed": "识别失败"}
# A fill-only OCR job (a QR gave the invoice; OCR adds seller, buyer and total): it holds nothing up.
OCR_FILL_STATES = {"queued": "补全识别中", "running": "补全识别中", "failed": "补全失败"}

# 发票查验 with the invoice cloud (portal.verification): where an invoice's verification stands.
# A pushed file's download in sync mode (影像同步提单人), as the bill page shows it (portal.sync).
FETCH_STATES = {"fetched": "已下载", "waiting": "等待下载", "retrying": "下载失败，将重试", "failed": "下载失败，已停止",
                "no_url": "未提供文件地址"}

VERIFICATION_STATUSES = {
    "verified": "查验通过",
    "failed": "查验不符",
    "void": "已作废/红冲",
    "unverified": "未查验",
}

# The system first review (portal.matching): the bill's result and each compared invoice's.
MATCH_RESULTS = {"matched": "匹配成功", "match_failed": "匹配失败", "confirmed": "人工确认通过"}
MATCH_ITEMS = {
    "matched": "匹配成功",
    "missing_image": "缺少影像",
    "amount_mismatch": "金额不一致",
    "unexpected_image": "非应收发票",
    "duplicate": "重复报销",
    "duplicate_in_bill": "单据内重复",
    "verify_failed": "查验未通过",
}

# A bill's history and images.
BILL_EVENTS = {
    "open": "开启影像任务",
    "upload": "上传影像",
    "add_image": "添加影像",
    "remove_image": "删除影像",
    "reorder": "调整影像顺序",
    "correct": "修正识别结果",
    "add_invoice": "手工录入发票",
    "submit": "提交",
    "complete": "审核完成",
    "recognise": "识别完成",
    "match": "系统初审",
    "matched": "匹配成功",
    "match_failed": "匹配失败",
    "confirm": "人工确认通过",
    "return": "退回重扫",
    "rescan": "重新扫描",
    "delete": "单据被删除",
    "writeback": "回写 ERP",
    "ocr": "OCR 识别完成",
    "confirm_invoice": "确认 OCR 识别结果",
    "verify_late": "提交后查验不符",
}

RESCAN_STATES = {"added_after_return": "退扫后新增", "removed_after_return": "退扫后删除"}

MEDIA_TYPES = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/tiff": "TIFF",
    "application/pdf": "PDF",
    "application/ofd": "OFD",
    "application/xml": "XML",
}

IMAGE_ORIGINS = {"upload": "扫描上传", "api": "ERP 上传", "push": "收票推送", "link": "提单人补传"}

# One invoice's fields (corrections, history, audit).
INVOICE_FIELDS = {
    "type": "发票类型",
    "code": "发票代码",
    "number": "发票号码",
    "date": "开票日期",
    "amount": "金额（不含税）",
    "tax": "税额",
    "total": "价税合计",
    "check_code": "校验码",
    "seller_name": "销方名称",
    "seller_tax_no": "销方税号",
    "buyer_name": "购方名称",
    "buyer_tax_no": "购方税号",
}
MONEY_FIELDS = {key: INVOICE_FIELDS[key] for key in ("amount", "tax", "total")}

# The audit log: field names, and what a secret field may say (set or changed, never its value).
AUDIT_FIELDS = {
    **INVOICE_FIELDS,
    "status": "状态", "reason": "原因", "state": "状态", "attempts": "已尝试次数", "next_attempt_at": "下次尝试时间",
    "kind": "任务类型", "tax_no": "企业税号", "name": "名称", "client_id": "client_id",
    "client_secret": "client_secret", "encrypt_key": "encrypt_key", "image_mode": "影像模式",
    "docking_id": "对接业务系统", "encrypted_push_only": "只接受加密推送", "erp_orgs": "ERP 组织编码",
    "reject_on_return": "退回重扫时在星空驳回", "verify_invoices": "发票查验", "username": "用户名", "role": "角色", "active": "启用",
    "enterprises": "所属企业", "scan_points": "扫描点", "code": "编码", "bills": "使用的单据数",
    "scanners": "使用的扫描岗人数", "received": "收到", "accepted": "新增", "duplicates": "重复", "ok": "结果",
    "message": "消息", "base_url": "前缀地址", "acct_id": "数据中心", "password": "密码",
    "status_field": "状态字段", "form_ids": "单据类型", "form_id": "单据类型", "amount_field": "金额字段",
    "enterprise_id": "所属企业", "bill_no": "单据编号",
}
SECRET_STATES = {True: "已设置", False: "未设置", None: "未设置", "": "未设置", "changed": "已修改", "kept": "未修改"}
