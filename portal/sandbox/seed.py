"""Named seed data for the emulators: ``test`` (pytest fixtures) and ``demo`` (``make demo``).

Every value here is made up and labelled as such (``demo``/``test`` in ids, secrets and
names); none is a real credential. Tax numbers are fictitious but carry a correct unified
social credit code check character, so the portal's forms accept them. The demo seeder of the portal reads these constants to
create matching enterprises and docking configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portal.sandbox.galaxy import GalaxyApp
from portal.sandbox.invoice_cloud import CloudApp

__all__ = [
    "DEMO_CLOUD_CLIENTS",
    "DEMO_KNOWN_INVOICES",
    "DEMO_SPARE_CLIENT",
    "DEMO_GALAXY",
    "SEEDS",
    "TEST_CLOUD_CLIENT",
    "TEST_CLOUD_CLIENTS",
    "TEST_EXPIRED_CLIENT",
    "TEST_GALAXY",
    "CloudClientSeed",
    "GalaxySeed",
]

EXPENSE_FORM = "ER_ExpReimbursement"


@dataclass(frozen=True)
class GalaxySeed:
    """One data centre with a whitelisted WebAPI user, a non-whitelisted one, and bills."""

    acct_id: str
    acct_number: str
    acct_name: str
    username: str
    password: str
    no_webapi_username: str
    bills: tuple[dict[str, Any], ...] = ()
    extra_data_centers: tuple[tuple[str, str, str], ...] = ()
    form_id: str = EXPENSE_FORM
    #: Bill numbers whose workflow task waits for the whitelisted user (the image user, 影像岗).
    tasks: tuple[str, ...] = ()

    @property
    def bill_id(self) -> int:
        """Internal id (FID) of the first bill."""
        return self.bills[0]["id"]

    @property
    def bill_no(self) -> str:
        """Number of the first bill."""
        return self.bills[0]["number"]

    def apply(self, app: GalaxyApp) -> None:
        """Register everything on a Galaxy emulator."""
        app.add_data_center(self.acct_id, self.acct_name, self.acct_number)
        for acct_id, name, number in self.extra_data_centers:
            app.add_data_center(acct_id, name, number)
        image_user = app.add_user(self.acct_id, self.username, self.password)
        app.add_user(self.acct_id, self.no_webapi_username, self.password, webapi_allowed=False)
        for bill in self.bills:
            fields = {k: v for k, v in bill.items() if k not in ("id", "number", "status")}
            app.add_bill(self.form_id, bill["id"], bill["number"], bill.get("status", "B"), **fields)
        for number in self.tasks:
            app.add_task(self.form_id, number, image_user.user_id)


@dataclass(frozen=True)
class CloudClientSeed:
    """An enterprise's invoice-cloud credentials, plus the image mode the demo gives it."""

    client_id: str
    client_secret: str
    encrypt_key: str
    tax_no: str
    name: str
    image_mode: str = "basic"
    expired: bool = False

    def apply(self, app: CloudApp) -> None:
        """Register this client on an invoice-cloud emulator."""
        app.add_client(self.client_id, self.client_secret, self.encrypt_key, tax_no=self.tax_no, name=self.name,
                       expired=self.expired)


TEST_GALAXY = GalaxySeed(
    acct_id="65a1b2c3d4e5f6",
    acct_number="100",
    acct_name="测试账套",
    username="tester",
    password="tester-pass",
    no_webapi_username="no_webapi",
    bills=({"id": 100001, "number": "FYBX0001", "status": "B", "FCausa": "测试报销", "FExpenseAmount": 100.0},),
)

TEST_CLOUD_CLIENT = CloudClientSeed(
    client_id="testClient0001",
    client_secret="test-secret-000000000000000001",
    encrypt_key="TestEncryptKey01",
    tax_no="91330100MATE00001L",
    name="测试企业",
)
TEST_EXPIRED_CLIENT = CloudClientSeed(
    client_id="testExpired001",
    client_secret="test-secret-000000000000000002",
    encrypt_key="TestEncryptKey02",
    tax_no="91330100MATE00002P",
    name="测试企业（许可过期）",
    expired=True,
)
TEST_CLOUD_CLIENTS = (TEST_CLOUD_CLIENT, TEST_EXPIRED_CLIENT)

DEMO_GALAXY = GalaxySeed(
    acct_id="69a531ee82525a",
    acct_number="001",
    acct_name="演示账套",
    username="demo",
    password="demo-pass",
    no_webapi_username="demo_nowebapi",
    extra_data_centers=(("69a531ee82525b", "演示账套（备用）", "002"),),
    bills=(
        {"id": 100001, "number": "FYBX0001", "FCausa": "北京出差差旅费", "FExpenseAmount": 1280.0},
        {"id": 100002, "number": "FYBX0002", "FCausa": "客户招待餐费", "FExpenseAmount": 356.5},
        {"id": 100003, "number": "FYBX0003", "FCausa": "办公用品采购", "FExpenseAmount": 89.9},
        {"id": 100004, "number": "FYBX0004", "FCausa": "上海培训住宿费", "FExpenseAmount": 1650.0},
        {"id": 100005, "number": "FYBX0005", "FCausa": "市内交通费", "FExpenseAmount": 64.0},
        {"id": 100006, "number": "FYBX0006", "FCausa": "快递费", "FExpenseAmount": 23.0},
        # Waiting at the workflow node 影像审核: `erp pull` brings them in (org 100 → basic, 200 → match).
        {"id": 100007, "number": "FYBX0007", "FCausa": "杭州客户拜访差旅费", "FExpenseAmount": 526.0,
         "FProposerID.FName": "周九", "FOrgID.FNumber": "100", "FOrgID.FName": "演示企业总部"},
        {"id": 100008, "number": "FYBX0008", "FCausa": "技术服务费", "FExpenseAmount": 4449.0,
         "FProposerID.FName": "吴十", "FOrgID.FNumber": "200", "FOrgID.FName": "上海分公司"},
    ),
    tasks=("FYBX0007", "FYBX0008"),
)

DEMO_CLOUD_CLIENTS = (
    CloudClientSeed("demoBasic00001", "demo-secret-basic-000000000001", "DemoKeyBasic0001",
                    "91330100MADEM0001N", "演示企业（基础模式）", image_mode="basic"),
    CloudClientSeed("demoMatch00002", "demo-secret-match-000000000002", "DemoKeyMatch0002",
                    "91330100MADEM0002R", "演示企业（影像匹配）", image_mode="match"),
    CloudClientSeed("demoSync000003", "demo-secret-sync-0000000000003", "DemoKeySync00003",
                    "91330100MADEM0003W", "演示企业（同步提单人）", image_mode="sync"),
)

#: Known to the demo invoice cloud but not yet an enterprise: for trying 新增企业授权 in the demo.
DEMO_SPARE_CLIENT = CloudClientSeed("demoSpare00004", "demo-secret-spare-000000000004", "DemoKeySpare0004",
                                    "91330100MADEM00040", "演示企业（待新增）")


#: Invoices the demo invoice cloud knows for 查验 (the demo's corpus files). 83089647 is known with
#: another total than the one printed on it, so the demo shows a 查验不符 next to the 查验通过.
DEMO_KNOWN_INVOICES: tuple[dict[str, Any], ...] = (
    {"number": "00008006", "date": "20220505", "code": "052002100113", "kind": "20", "amount": "24519.05",
     "total": "25254.62", "check_code": "18001801513030862041"},
    {"number": "33207675", "date": "20190508", "code": "012001800311", "kind": "10", "amount": "46.62",
     "total": "52.70", "check_code": "76939056883466677916"},
    {"number": "83089647", "date": "20200723", "code": "033002000211", "kind": "10", "amount": "545.63",
     "total": "562.00"},
    {"number": "24112000000048542163", "date": "20240528", "kind": "31", "amount": "4197.17", "total": "4449.00"},
    {"number": "24322000000489101796", "date": "20241205", "kind": "31", "amount": "17699.12", "total": "20000.00"},
)


def _cloud_seed(clients: tuple[CloudClientSeed, ...], invoices: tuple[dict[str, Any], ...] = ()
                ) -> Callable[[CloudApp], None]:
    def apply(app: CloudApp) -> None:
        for client in clients:
            client.apply(app)
        for inv in invoices:
            app.add_invoice(**inv)

    return apply


#: name → (Galaxy seed function, invoice-cloud seed function), for ``--seed`` and fixtures.
SEEDS: dict[str, tuple[Callable[[GalaxyApp], None], Callable[[CloudApp], None]]] = {
    "test": (TEST_GALAXY.apply, _cloud_seed(TEST_CLOUD_CLIENTS)),
    "demo": (DEMO_GALAXY.apply, _cloud_seed(DEMO_CLOUD_CLIENTS + (DEMO_SPARE_CLIENT,), DEMO_KNOWN_INVOICES)),
}
