# -*- coding: utf-8 -*-
# 发票影像系统 · Galaxy (金蝶云星空) bill plug-in: toolbar buttons 影像扫描 and 影像查看.
#
# Register in BOS designer on the bill form (e.g. 费用报销单 ER_ExpReimbursement): 表单插件 → 注册Python脚本,
# paste this whole file, then add two toolbar items whose keys are tbImageScan (影像扫描) and tbImageView (影像查看).
# Galaxy runs it in IronPython with top-level functions (class-style scripts are ignored).
#
#   影像扫描: opens the scan desk of this bill in the image system (the scanner logs in there).
#   影像查看: opens the bill's images read-only, signed with the enterprise's client_secret
#             (HMAC-SHA256, valid 10 minutes), so approvers need no image-system account.
#
# Fill in the three values below. PORTAL_URL and CLIENT_ID come filled in when the script is copied
# from the enterprise page of the image system; CLIENT_SECRET is never shown there: type it in yourself.
import clr

clr.AddReference("System")
from System import DateTime, DateTimeKind, Uri
from System.Security.Cryptography import HMACSHA256
from System.Text import Encoding

PORTAL_URL = "https://images.example.com"
CLIENT_ID = ""
CLIENT_SECRET = ""


def _bill_no():
    value = this.View.Model.GetValue("FBillNo")
    return "" if value is None else str(value)


def _form_id():
    return str(this.View.BillBusinessInfo.GetForm().Id)


def _unix_seconds():
    epoch = DateTime(1970, 1, 1, 0, 0, 0, DateTimeKind.Utc)
    return str(int((DateTime.UtcNow - epoch).TotalSeconds))


def _sign(message):
    mac = HMACSHA256(Encoding.UTF8.GetBytes(CLIENT_SECRET))
    digest = mac.ComputeHash(Encoding.UTF8.GetBytes(message))
    return "".join(["%02x" % b for b in digest])


def _open(url, title):
    this.View.AddAction("ShowKDWebbrowseForm", {"source": url, "height": 700, "width": 1100, "isweb": True,
                                                "title": title})
    this.View.SendDynamicFormAction(this.View)


def BarItemClick(e):
    key = str(e.BarItemKey).lower()
    if key not in ("tbimagescan", "tbimageview"):
        return
    bill_no = _bill_no()
    if not bill_no:
        this.View.ShowMessage("请先保存单据，再扫描或查看影像。")
        return
    base = PORTAL_URL.rstrip("/")
    if key == "tbimagescan":
        _open(base + "/scan/open?bill_no=" + Uri.EscapeDataString(bill_no), "影像扫描")
        return
    form_id = _form_id()
    user = str(this.Context.UserName)
    ts = _unix_seconds()
    sign = _sign("\n".join([CLIENT_ID, form_id, bill_no, user, ts]))
    query = "&".join([name + "=" + Uri.EscapeDataString(value) for name, value in (
        ("client_id", CLIENT_ID), ("form_id", form_id), ("bill_no", bill_no), ("user", user), ("ts", ts),
        ("sign", sign))])
    _open(base + "/erp/open?" + query, "影像查看")
