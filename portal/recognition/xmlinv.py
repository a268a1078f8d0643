"""Structured invoice XML: 数电 <EInvoice>, the legacy e-invoice XML and the MoF XBRL.

All three carry the figures exactly, so this reader is trusted over every other one.
Element names differ between the formats and between issuers (namespaces, case,
'TotalTax-includedAmount' vs 'TotaltaxIncludedAmount'), so elements are looked up by a
normalised local name: lower case, without '-' and '_'.
"""

from __future__ import annotations

import logging
from xml.etree.ElementTree import Element

from portal.files.limits import local_name, parse_xml

from .model import (
    Invoice,
    clean_digits,
    clean_tax_no,
    clean_text,
    kind_code_from_name,
    parse_date,
    parse_money,
)
from .qr import parse_payload

log = logging.getLogger(__name__)

# Containers of line items: their Amount/TaxAmount are per line, never the invoice totals.
_LINE_ITEM_CONTAINERS = (
    "goodsinfos", "goodsinfo", "issuiteminformation", "detailitems", "tuple", "specificinformation",
)

# Candidate element names per field, best first (normalised, see module docstring).
_FIELDS: dict[str, tuple[str, ...]] = {
    "number": (
        "eiid", "invoicenumber", "invoiceno", "numberofinvoice",
        "electronicinvoicerailwayeticketnumber", "electronicinvoicenumber",
    ),
    "code": ("invoicecode", "codeofinvoice"),
    "date": ("issuetime", "issuedate", "dateofissue", "invoicedate", "requesttime"),
    "amount": ("totalamwithouttax", "taxexclusivetotalamount", "totalamountexcludingtax"),
    "tax": ("totaltaxam", "taxtotalamount", "totaltaxamount"),
    "total": (
        "totaltaxincludedamount", "taxinclusivetotalamount", "taxincludedamountinfigures",
        "totalamountincludingtax",
    ),
    "check_code": ("invoicecheckcode", "identifyingcode", "checkcode"),
    "seller_name": ("sellername", "nameofseller"),
    "seller_tax_no": (
        "selleridnum", "sellertaxid",
        "taxpayeridentificationnumberunifiedsocialcreditcodeofseller",
    ),
    "buyer_name": ("buyername", "nameofpurchaser"),
    "buyer_tax_no": (
        "buyeridnum", "buyertaxid",
        "taxpayeridentificationnumberunifiedsocialcreditcodeofpurchaser",
    ),
}


def _norm(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def _index(root: Element) -> tuple[dict[str, str], set[str]]:
    """First non-empty text per normalised local name (line items left out), and the namespaces used."""
    found: dict[str, str] = {}
    namespaces: set[str] = set()
    stack = [root]
    # Iterative walk in document order; recursion depth is attacker-controlled otherwise.
    while stack:
        elem = stack.pop()
        name = _norm(local_name(elem.tag))
        if isinstance(elem.tag, str) and elem.tag.startswith("{"):
            namespaces.add(elem.tag[1:].split("}", 1)[0].rstrip("/"))
        if elem is not root and any(c in name for c in _LINE_ITEM_CONTAINERS):
            continue
        text = (elem.text or "").strip()
        if text and name not in found:
            found[name] = text
        stack.extend(reversed(list(elem)))
    return found, namespaces


def read_xml(data: bytes) -> list[Invoice]:
    """Invoices from one structured XML document; [] when it is not an invoice XML.

    Raises UnsafeFile for DTD/entity declarations or an over-size document.
    """
    root = parse_xml(data)
    inv = invoice_from_element(root)
    return [inv] if inv is not None else []


def invoice_from_element(root: Element) -> Invoice | None:
    """Map a parsed invoice XML (any of the three formats) to an Invoice, or None."""
    fields, namespaces = _index(root)
    root_name = local_name(root.tag)
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""

    def first(field: str) -> str | None:
        for candidate in _FIELDS[field]:
            if candidate in fields:
                return fields[candidate]
        return None

    # The 数电 root is 'EInvoice'; the legacy one is 'eInvoice' (case is the only cue
    # besides the 数电-only header elements).
    digital = root_name == "EInvoice" or "eiid" in fields or "taxsupervisioninfo" in {
        _norm(local_name(e.tag)) for e in root
    }
    inv = Invoice(
        source="xml",
        code=clean_digits(first("code")),
        number=clean_digits(first("number")),
        date=parse_date(first("date")),
        amount=parse_money(first("amount")),
        tax=parse_money(first("tax")),
        total=parse_money(first("total")),
        check_code=clean_digits(first("check_code")),
        seller_name=clean_text(first("seller_name")),
        seller_tax_no=clean_tax_no(first("seller_tax_no")),
        buyer_name=clean_text(first("buyer_name")),
        buyer_tax_no=clean_tax_no(first("buyer_tax_no")),
        raw={"xml": {"root": root_name, "namespace": namespace[:100]}},
    )
    # The railway e-ticket XBRL ('rai' taxonomy) states only the fare, which includes tax.
    if inv.total is None and any(ns.endswith("/rai") for ns in namespaces):
        inv.total = parse_money(fields.get("fare"))

    # The legacy XML carries its own QR payload (GraphCode): the type code comes from it.
    graph = fields.get("graphcode")
    if graph:
        inv.raw["xml"]["graph_code"] = graph[:200]
        qr = parse_payload(graph)
        if qr is not None and (not inv.number or qr.number == inv.number):
            inv.type = qr.type
    if inv.type is None:
        inv.type = kind_code_from_name(
            fields.get("labelname") or fields.get("typeofinvoice"), digital=digital
        )
    if not inv.number and not inv.code and inv.total is None and inv.amount is None:
        log.debug("XML %s has no invoice fields", root_name)
        return None
    return inv
