"""OCR of paper invoices: every field read from the print, and every field that fails its own check left empty."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from portal.recognition import ocr, recognise
from portal.recognition.ocr import Line, extract
from portal.taxno import uscc_check_char

from .conftest import corpus

GOOD_USCC = "91440300MA5F00001" + uscc_check_char("91440300MA5F00001")
BAD_USCC = GOOD_USCC[:-1] + ("0" if GOOD_USCC[-1] != "0" else "1")


def _paper(**change) -> list[Line]:
    """The printed rows of a VAT special paper invoice, as OCR returns them (text and position)."""
    rows = {
        "title": (300, 20, "增值税专用发票"), "code": (160, 40, "4403191130"), "no": (600, 40, "No12345678"),
        "code2": (760, 45, "4403191130"), "date": (630, 85, "开票日期：2023年03月08日"),
        "buyer": (110, 118, "称：深圳某某科技有限公司"), "buyer_label": (88, 118, "名"),
        "buyer_tax": (110, 137, f"纳税人识别号：{GOOD_USCC}"),
        "sums_a": (600, 344, "￥1000.00"), "sums_t": (750, 344, "￥130.00"), "sums_label": (135, 345, "合 计"),
        "total_label": (120, 371, "价税合计（大写）"), "words": (290, 371, "壹仟壹佰叁拾圆整"),
        "figure": (620, 371, "（小写）￥1130.00"),
        "seller": (110, 398, "称：深圳某某商贸有限公司"), "seller_label": (88, 398, "名"),
        "seller_tax": (110, 414, f"纳税人识别号：{GOOD_USCC}"),
    }
    rows.update(change)
    return [Line(text, x, y) for x, y, text in (v for v in rows.values() if v is not None)]


def test_every_field_of_a_clean_print():
    inv = extract(_paper(), page=1)
    assert (inv.source, inv.type, inv.code, inv.number, inv.date) == ("ocr", "01", "4403191130", "12345678",
                                                                       dt.date(2023, 3, 8))
    assert (inv.amount, inv.tax, inv.total) == (Decimal("1000.00"), Decimal("130.00"), Decimal("1130.00"))
    assert (inv.buyer_name, inv.seller_name) == ("深圳某某科技有限公司", "深圳某某商贸有限公司")
    assert inv.buyer_tax_no == inv.seller_tax_no == GOOD_USCC


def test_capitals_that_disagree_with_the_figures_leave_the_total_empty():
    inv = extract(_paper(words=(290, 371, "壹仟壹佰叁拾捌圆整")))
    assert inv.total is None and inv.amount is None and inv.tax is None  # nothing to check the sums against


def test_amount_and_tax_that_do_not_add_up_are_left_empty():
    inv = extract(_paper(sums_t=(750, 344, "￥180.00")))
    assert inv.total == Decimal("1130.00") and inv.amount is None and inv.tax is None


def test_a_tax_number_with_a_wrong_check_character_is_left_empty():
    inv = extract(_paper(seller_tax=(110, 414, f"纳税人识别号：{BAD_USCC}")))
    assert inv.seller_tax_no is None and inv.buyer_tax_no == GOOD_USCC


def test_an_impossible_date_is_left_empty():
    assert extract(_paper(date=(630, 85, "开票日期：2023年02月30日"))).date is None
    assert extract(_paper(date=(630, 85, "开票日期：2099年01月01日"))).date is None


def test_nothing_checkable_is_no_invoice():
    assert extract([Line("此联不作报销凭证使用", 10, 10)]) is None
    assert extract([]) is None


def test_the_paper_invoice_without_a_qr_code_is_read_by_ocr():
    """The corpus's paper special invoice has no QR code: only OCR reads it, and it reads every field."""
    data = corpus("vat_special_paper_sample_87654321.jpg")
    assert recognise(data, "image/jpeg") == []  # without OCR nothing is found
    assert ocr.available()
    [inv] = recognise(data, "image/jpeg", ocr=True)
    assert (inv.source, inv.type, inv.code, inv.number, inv.date) == ("ocr", "01", "1100094140", "87654321",
                                                                       dt.date(2010, 11, 18))
    assert (inv.amount, inv.tax, inv.total) == (Decimal("5999.00"), Decimal("1019.83"), Decimal("7018.83"))
    assert (inv.buyer_name, inv.buyer_tax_no) == ("测试购方企业", "410305123456789")
    assert (inv.seller_name, inv.seller_tax_no) == ("测试销方企业", "410305012345678")


def test_a_tilted_photo_keeps_one_printed_row_together():
    """Label and value far apart on one printed row stay one row when the photo is tilted 4 degrees."""
    import math

    from portal.recognition.ocr import _upright
    from portal.recognition.ocr_fields import Page

    turn = math.radians(4)

    def box(x, y, w, h):
        corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
        return [[cx * math.cos(turn) - cy * math.sin(turn), cx * math.sin(turn) + cy * math.cos(turn)]
                for cx, cy in corners]

    found = [(box(100, 600, 300, 30), "价税合计（大写）"), (box(1250, 600, 220, 30), "（小写）￥1130.00"),
             (box(100, 650, 300, 30), "名称：深圳某某商贸有限公司")]
    tilted_rows = Page([Line(t, min(p[0] for p in b), min(p[1] for p in b), 30.0) for b, t in found]).rows
    assert len(tilted_rows) == 3  # the far end of the row sits ~80 px lower than its start
    rows = Page(_upright(found)).rows
    assert [row.text for row in rows] == ["价税合计（大写） （小写）￥1130.00", "名称：深圳某某商贸有限公司"]


def test_the_item_table_heading_is_no_party_name():
    """Without a readable buyer row, the heading "货物或应税劳务、服务名称 规格型号" must not become the buyer."""
    inv = extract(_paper(buyer=None, buyer_label=None, heading=(80, 200, "货物或应税劳务、服务名称 规格型号 单位")))
    assert inv.buyer_name is None and inv.seller_name == "深圳某某商贸有限公司"
    headed = extract(_paper(buyer=None, buyer_label=None, heading=(80, 200, "项目名称：规格型号单位数量")))
    assert headed.buyer_name is None
