"""The invoice cloud's own invoice records (reference §B.5), read into the push protocol's field names.

The receipt assistant pushes what the cloud holds, not our names: ``invoiceType`` in the cloud's enum
(1 普通电子, 2 电子专票, 3 普通纸质, 4 专用纸质, 8 的士, 9 火车, 10 飞机 …), the pre-tax amount under
``amount``/``invoiceAmount``/``invoiceMoney``, the tax under ``taxAmount``/``totalTaxAmount``, the file under
one of several URL fields, plus verification results. :func:`normalise` maps such a record to the fields
``push.invoice_row`` validates, keeps the cloud's type code as sent and every field we do not map raw, so
nothing is lost and nothing unknown is a refusal.
"""
from __future__ import annotations

from typing import Any

__all__ = ["CLOUD_TYPES", "is_cloud_record", "normalise"]

# The cloud's type enum → (our kind for a classic number, our kind for a 20-digit 数电 number, label).
# Our kinds are the VAT QR type codes where one exists (labels.INVOICE_TYPES), else a short word.
CLOUD_TYPES: dict[str, tuple[str, str, str]] = {
    "1": ("10", "32", "普通电子发票"),
    "2": ("20", "31", "电子发票专票"),
    "3": ("04", "32", "普通纸质发票"),
    "4": ("01", "31", "专用纸质发票"),
    "5": ("11", "32", "普通纸质卷票"),
    "7": ("other", "other", "通用机打发票"),
    "8": ("taxi", "taxi", "的士票"),
    "9": ("train", "train", "火车票"),
    "10": ("air", "61", "飞机票"),
    "11": ("other", "other", "其他"),
    "12": ("03", "03", "机动车销售发票"),
    "13": ("15", "15", "二手车销售发票"),
    "14": ("quota", "quota", "定额发票"),
    "15": ("14", "14", "通行费发票"),
    "16": ("bus", "bus", "客运发票"),
    "17": ("toll", "toll", "过路过桥费发票"),
    "18": ("other", "other", "车船税"),
    "19": ("other", "other", "完税证明"),
    "20": ("ship", "ship", "轮船票"),
    "21": ("other", "other", "酒店账单"),
    "999": ("other", "other", "未查询类型"),
}
# Fields only the cloud's records carry: their presence says which shape a pushed item is in.
CLOUD_ONLY = ("invoiceMoney", "invoiceAmount", "totalTaxAmount", "cancelMark", "verifyResult", "isRepeat",
              "invoiceStatus", "snapshotUrl", "localUrl", "ofdUrl", "pdfUrl", "recognitionSerialNo", "fid")
_CLOUD_ONLY = frozenset(CLOUD_ONLY)
_QR_CODES = frozenset(("01", "03", "04", "08", "10", "11", "14", "15", "20", "31", "32", "51", "61"))
# Where the file is, best first: the original e-invoice file before any picture of it.
FILE_FIELDS = ("downloadUrl", "ofdUrl", "pdfUrl", "localUrl", "snapshotUrl")
AMOUNT_FIELDS = ("amount", "invoiceAmount", "invoiceMoney")
TAX_FIELDS = ("taxAmount", "totalTaxAmount")
# Cloud fields shown on the invoice as they were sent.
SHOWN = ("verifyResult", "isRepeat", "invoiceStatus", "cancelMark")
# Fields of the push protocol itself (DESIGN §4): everything else of a record is kept raw.
PROTOCOL = ("serialNo", "invoiceType", "invoiceCode", "invoiceNo", "invoiceDate", "amount", "taxAmount",
            "totalAmount", "checkCode", "salerName", "salerTaxNo", "buyerName", "buyerTaxNo", "downloadUrl", "billNo")


def _first(item: dict, names: tuple[str, ...]) -> Any:
    for name in names:
        value = item.get(name)
        if value not in (None, ""):
            return value
    return None


def is_cloud_record(item: dict) -> bool:
    """True for an item in the cloud's record shape rather than the push protocol's.

    Only the cloud's records carry fields such as ``invoiceMoney`` or ``cancelMark``; a bare
    unpadded type code (``"3"``, ``4``) that is no QR type code also says so. A two-digit code such
    as ``"10"`` alone is read as the QR code it is in the push protocol.
    """
    # Runs for every pushed invoice (10,000 a second): one set operation decides most items.
    if not _CLOUD_ONLY.isdisjoint(item.keys()):
        return True
    kind = item.get("invoiceType")
    if kind is None or kind in _QR_CODES:
        return False
    return isinstance(kind, int) or (isinstance(kind, str) and kind.isdigit() and not kind.startswith("0")
                                     and len(kind) != 2)


def normalise(item: Any) -> Any:
    """The item in the push protocol's field names (anything not a cloud record comes back as it is).

    Adds ``cloudType`` (the code as sent), ``cloud`` (the shown cloud fields) and ``extra`` (every other
    field we do not map, kept raw).
    """
    if not isinstance(item, dict) or not is_cloud_record(item):
        return item
    out = {name: item[name] for name in PROTOCOL if name in item}
    sent = item.get("invoiceType")
    code = "" if sent is None else str(sent).strip()
    number = str(item.get("invoiceNo") or "").strip()
    if code in CLOUD_TYPES:
        classic, digital, _label = CLOUD_TYPES[code]
        out["invoiceType"] = digital if len(number) == 20 else classic
    elif code:
        out["invoiceType"] = f"c{code}"[:8]  # unknown cloud code: kept visible, never a refusal
    out["amount"] = _first(item, AMOUNT_FIELDS)
    out["taxAmount"] = _first(item, TAX_FIELDS)
    out["downloadUrl"] = _first(item, FILE_FIELDS)
    out["cloudType"] = code or None
    out["cloud"] = {name: item[name] for name in SHOWN if name in item}
    used = set(PROTOCOL) | set(AMOUNT_FIELDS) | set(TAX_FIELDS) | set(FILE_FIELDS) | set(SHOWN)
    out["extra"] = {k: v for k, v in item.items() if k not in used}
    return out
