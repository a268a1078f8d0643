"""Pushed items in the invoice cloud's own record shape (reference §B.5) read into our field names."""
import pytest

from portal.cloud_records import is_cloud_record, normalise

RECORD = {  # the reference's sample record, trimmed
    "serialNo": "cf38d93e018d4d8f8885d1a13a3020530", "fid": "x1", "recognitionSerialNo": "r1",
    "invoiceType": "3", "invoiceCode": "023001800104", "invoiceNo": "37748688", "invoiceDate": "20190620",
    "checkCode": "258239", "machineNo": "929907103545",
    "invoiceAmount": "751.46", "invoiceMoney": "751.46", "totalTaxAmount": "22.54",
    "totalAmount": "774.00", "totalAmountCn": "柒佰柒拾肆元整", "taxRate": "0.030000",
    "salerName": "某某商店", "salerTaxNo": "92232741MA19M9KF16", "buyerName": "某某公司", "buyerTaxNo": "914403007084678371",
    "cancelMark": "N", "snapshotUrl": "https://files.example.com/snap.jpg", "pdfUrl": "https://files.example.com/a.pdf",
    "isRepeat": False, "invoiceStatus": "0",
    "verifyResult": [{"key": "verifyBuyerName", "result": "1", "msg": "购方名称一致"}],
}


def test_a_cloud_record_maps_kind_amounts_and_the_original_file():
    item = normalise(RECORD)
    assert item["invoiceType"] == "04" and item["cloudType"] == "3"  # 普通纸质 → VAT ordinary paper, kept as sent
    assert (item["amount"], item["taxAmount"], item["totalAmount"]) == ("751.46", "22.54", "774.00")
    assert item["downloadUrl"] == "https://files.example.com/a.pdf"  # the PDF, not the snapshot picture
    assert item["cloud"] == {"verifyResult": RECORD["verifyResult"], "isRepeat": False, "invoiceStatus": "0",
                             "cancelMark": "N"}
    assert item["extra"]["machineNo"] == "929907103545" and item["extra"]["totalAmountCn"] == "柒佰柒拾肆元整"
    assert "pdfUrl" not in item["extra"] and "invoiceMoney" not in item["extra"]


@pytest.mark.parametrize("sent,number,kind", [
    ("1", "12345678", "10"), ("1", "24112000000048542163", "32"), (2, "24112000000048542163", "31"),
    ("4", "00472703", "01"), ("8", "1", "taxi"), ("9", "1", "train"), ("10", "9223372036854775807", "air"),
    ("10", "24512000000012345678", "61"), ("14", "1", "quota"), ("15", "1", "14"), ("77", "1", "c77"),
])
def test_cloud_type_codes(sent, number, kind):
    item = normalise({"invoiceType": sent, "invoiceNo": number, "cancelMark": "N"})
    assert item["invoiceType"] == kind and item["cloudType"] == str(sent)


def test_items_in_the_push_protocol_pass_unchanged():
    ours = {"serialNo": "s1", "invoiceType": "10", "invoiceNo": "12345678", "amount": "1.00", "downloadUrl": "u"}
    assert not is_cloud_record(ours) and normalise(ours) is ours
    assert is_cloud_record({"invoiceType": "3", "invoiceNo": "1"}) and is_cloud_record({"invoiceType": 10})
