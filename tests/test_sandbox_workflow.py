"""The Galaxy emulator's workflow side, over real HTTP: filters, paging, tasks, WorkflowAudit, chunked uploads."""
import pytest

from portal.sandbox.filters import FilterSyntaxError, compile_filter
from portal.sandbox.galaxy import TASK_FORM, TASK_HISTORY_FORM
from portal.sandbox.seed import TEST_GALAXY

from .test_sandbox import form_op, logged_in, upload_body  # noqa: F401  (logged_in is a fixture)

FORM = TEST_GALAXY.form_id
ROWS = [{"FStatus": "0", "FReceiverId": 7, "FObjectTypeId": "ER_ExpReimbursement", "FBILLNUMBER": "A-1"},
        {"FStatus": "1", "FReceiverId": 7, "FObjectTypeId": "ER_ExpReimbursement", "FBILLNUMBER": "A-2"},
        {"FStatus": "0", "FReceiverId": 8, "FObjectTypeId": "ER_ExpReimbursement_Travel", "FBILLNUMBER": "O'Neil"},
        {"FStatus": "0", "FReceiverId": 7, "FObjectTypeId": "AP_PAYBILL", "FBILLNUMBER": None}]


def _select(text):
    keep = compile_filter(text)
    # Field names are case-insensitive, as on the real server.
    return [r["FBILLNUMBER"] for r in ROWS if keep(lambda key, r=r: {k.lower(): v for k, v in r.items()}.get(key.lower()))]


@pytest.mark.parametrize("text,expected", [
    ("", ["A-1", "A-2", "O'Neil", None]),
    ("FStatus='0' AND FReceiverId=7", ["A-1", None]),
    ("fstatus = '0' and (FObjectTypeId IN ('ER_ExpReimbursement','AP_PAYBILL') OR FReceiverId=8)", ["A-1", "O'Neil", None]),
    ("FStatus='0' AND FObjectTypeId IN ('ER_ExpReimbursement','AP_PAYBILL') OR FReceiverId=8", ["A-1", "O'Neil", None]),
    ("FStatus<>'0'", ["A-2"]),
    ("NOT (FReceiverId = 7)", ["O'Neil"]),
    ("FObjectTypeId NOT IN ('AP_PAYBILL')", ["A-1", "A-2", "O'Neil"]),
    ("FBILLNUMBER = 'O''Neil'", ["O'Neil"]),
    ("FObjectTypeId LIKE 'ER_%'", ["A-1", "A-2", "O'Neil"]),
    ("FBILLNUMBER IS NULL", [None]),
    ("FBILLNUMBER IS NOT NULL AND FReceiverId >= 8", ["O'Neil"]),
])
def test_filter_strings_are_evaluated_like_sql(text, expected):
    assert _select(text) == expected


@pytest.mark.parametrize("text", ["FStatus='0' AND", "(FStatus='0'", "FStatus", "FStatus='0' FReceiverId=7", "1=1; drop"])
def test_malformed_filters_are_refused(text):
    with pytest.raises(FilterSyntaxError):
        compile_filter(text)


def _query(galaxy, session, form, keys, filter_="", **extra):
    return form_op(galaxy, session, "ExecuteBillQuery",
                   {"data": {"FormId": form, "FieldKeys": keys, "FilterString": filter_, **extra}})


def test_bill_query_pages_with_start_row_and_limit(galaxy, logged_in):
    for n in range(2, 4106):
        galaxy.add_bill(FORM, 100000 + n, f"FYBX{n:04d}", "B", **{"FOrgID.FNumber": "100" if n % 2 else "200"})
    page = _query(galaxy, logged_in, FORM, "FID,FBillNo,FOrgID.FNumber", "FOrgID.FNumber='200'", OrderString="FID",
                  StartRow=0, Limit=5000)
    assert len(page) == 2000 and page[0] == [100002, "FYBX0002", "200"]  # at most 2000 rows a call
    rest = _query(galaxy, logged_in, FORM, "FID", "FOrgID.FNumber='200'", OrderString="FID", StartRow=2000, Limit=2000)
    assert len(rest) == 52 and rest[-1] == [104104]
    backwards = _query(galaxy, logged_in, FORM, "FBillNo", "", OrderString="FID DESC", Limit=1)
    assert backwards == [["FYBX4105"]]


def test_bad_filter_comes_back_in_the_nested_error_envelope(galaxy, logged_in):
    reply = _query(galaxy, logged_in, FORM, "FID", "FID = ")
    status = reply[0][0]["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False and status["MsgCode"] == 4


def _tester_id(galaxy):
    return galaxy.app.users[(TEST_GALAXY.acct_id, TEST_GALAXY.username)].user_id


def test_tasks_are_queried_and_approved_only_by_their_holder(galaxy, logged_in):
    me = _tester_id(galaxy)
    galaxy.app.add_task(FORM, "FYBX0001", me)
    galaxy.add_bill(FORM, 100050, "FYBX0050", "B")
    galaxy.app.add_task(FORM, "FYBX0050", me + 1000)  # someone else's
    pending = f"FReceiverId={me} AND FStatus='0' AND FActivityStatus='0' AND FInstStatus='2'"
    assert _query(galaxy, logged_in, TASK_FORM, "FBILLNUMBER,FObjectTypeId", pending) == [["FYBX0001", FORM]]

    refused = form_op(galaxy, logged_in, "WorkflowAudit", {"data": {
        "FormId": FORM, "Numbers": ["FYBX0050"], "UserId": me, "ApprovalType": 1, "Disposition": "ok"}})
    status = refused["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False and "FYBX0050" in status["Errors"][0]["Message"]

    done = form_op(galaxy, logged_in, "WorkflowAudit", {"data": {
        "FormId": FORM, "Numbers": ["FYBX0001"], "UserId": me, "ApprovalType": 1, "Disposition": "影像审核通过"}})
    assert done["Result"]["ResponseStatus"]["IsSuccess"] is True
    assert galaxy.get_bill(FORM, number="FYBX0001").status == "C"
    assert _query(galaxy, logged_in, TASK_FORM, "FBILLNUMBER", pending) == []
    assert _query(galaxy, logged_in, TASK_HISTORY_FORM, "FBILLNUMBER,FResultName,FDisposition") == [
        ["FYBX0001", "同意", "影像审核通过"]]
    again = form_op(galaxy, logged_in, "WorkflowAudit", {"data": {
        "FormId": FORM, "Numbers": ["FYBX0001"], "UserId": me, "ApprovalType": 1}})
    assert again["Result"]["ResponseStatus"]["IsSuccess"] is False  # a processed task cannot be approved twice


def test_a_task_with_a_post_needs_the_post_and_reject_sends_the_bill_back(galaxy, logged_in):
    me = _tester_id(galaxy)
    galaxy.app.add_task(FORM, "FYBX0001", me, base_post=31)
    body = {"FormId": FORM, "Numbers": ["FYBX0001"], "UserId": me, "ApprovalType": 2, "Disposition": "影像不清"}
    assert form_op(galaxy, logged_in, "WorkflowAudit", {"data": body})["Result"]["ResponseStatus"]["IsSuccess"] is False
    ok = form_op(galaxy, logged_in, "WorkflowAudit", {"data": {**body, "PostId": 31}})
    assert ok["Result"]["ResponseStatus"]["IsSuccess"] is True
    assert galaxy.get_bill(FORM, number="FYBX0001").status == "D"


def test_withdrawn_task_leaves_the_to_do_list(galaxy, logged_in):
    me = _tester_id(galaxy)
    galaxy.app.add_task(FORM, "FYBX0001", me)
    assert galaxy.app.withdraw_task(FORM, "FYBX0001") == 1
    assert _query(galaxy, logged_in, TASK_FORM, "FBILLNUMBER", "FStatus='0'") == []


def _upload_parts(galaxy, session, parts):
    file_id = None
    for index, part in enumerate(parts):
        body = upload_body(part, IsLast=index == len(parts) - 1, FileId=file_id)
        reply = form_op(galaxy, session, "AttachmentUpLoad", body)
        assert reply["Result"]["ResponseStatus"]["IsSuccess"] is True
        file_id = file_id or reply["Result"]["FileId"]
    return file_id


def test_parts_are_joined_by_file_id(galaxy, logged_in):
    file_id = _upload_parts(galaxy, logged_in, [b"a" * 10, b"b" * 10, b"c" * 3])
    [stored] = galaxy.attachments(form_id=FORM)
    assert stored["file_id"] == file_id and stored["size"] == 23


def test_separate_mode_keeps_only_the_last_part(galaxy, logged_in):
    galaxy.app.chunk_mode = "separate"
    _upload_parts(galaxy, logged_in, [b"a" * 10, b"b" * 10, b"c" * 3])
    [stored] = galaxy.attachments(form_id=FORM)
    assert stored["size"] == 3


def test_unknown_file_id_is_refused(galaxy, logged_in):
    reply = form_op(galaxy, logged_in, "AttachmentUpLoad", upload_body(b"x", FileId="nope"))
    assert reply["Result"]["ResponseStatus"]["IsSuccess"] is False
