"""``make demo``: the portal with living demo data, the sandbox ERP and invoice cloud included.

``python -m portal.demo`` migrates the instance database, starts the Galaxy and
invoice-cloud emulators on loopback, seeds demo enterprises (one per image
mode), users of each role, scan points and bills with real corpus files,
runs the job loop (ERP write-back, sync-mode downloads, 发票查验) and serves the portal
on http://127.0.0.1:5000.  Demo passwords are generated on the first run and
kept in ``instance/demo_logins.txt``.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import secrets
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import click
from flask.cli import AppGroup
from sqlalchemy import select
from werkzeug.security import check_password_hash

from . import bills, create_app, housekeeping, review
from .blueprints.users.service import create_user, hash_password
from .crypto import encrypt
from .extensions import db
from .jobs.runner import one_pass
from .labels import ROLES
from .models import Bill, DockingConnection, Enterprise, ExpectedInvoice, Image, ScanPoint, User
from .sandbox.galaxy import GalaxySandbox
from .sandbox.invoice_cloud import CloudSandbox
from .sandbox.seed import DEMO_CLOUD_CLIENTS, DEMO_GALAXY, DEMO_SPARE_CLIENT, SEEDS

log = logging.getLogger("portal.demo")

demo_cli = AppGroup("demo", help="演示数据。")

REPO = Path(__file__).resolve().parents[1]
# Corpus files the demo bills carry: (bill, enterprise mode, files).
DEMO_BILLS = [
    ("FYBX0001", "basic", "张三", "北京出差差旅费", "25254.62", ["vat_e_special_guizhou_00008006.pdf"]),
    ("FYBX0002", "basic", "李四", "客户招待餐费", "526.00", ["vat_e_ordinary_zhejiang_83089647.ofd",
                                                          "vat_e_ordinary_tianjin_33207675.png"]),
    # The same invoice as FYBX0001, as a photo: flagged as a duplicate reimbursement.
    ("FYBX0003", "basic", "王五", "办公用品采购", "24519.05", ["vat_e_special_guizhou_00008006_render.jpg"]),
    ("FYBX0004", "match", "赵六", "上海培训住宿费", "4449.00", ["shudian_vat_special_24112000000048542163.ofd"]),
    ("FYBX0005", "match", "钱七", "市内交通费", "20000.00", []),
    ("FYBX0006", "sync", "孙八", "快递费", "1470.00", []),
]
DEMO_ERP_ORGS = {"basic": "", "match": "200", "sync": "300"}
# The enterprise with 发票查验 on: its invoices are verified by the job loop against the demo cloud,
# which knows them (sandbox.seed.DEMO_KNOWN_INVOICES): 查验通过, and one 查验不符 (83089647).
DEMO_VERIFY_MODE = "basic"


def corpus_dir() -> Path:
    """The public sample invoices kept in the repository (``tests/corpus``)."""
    return REPO / "tests" / "corpus"


def _logins_file(app) -> Path:
    return Path(app.instance_path) / "demo_logins.txt"


def _demo_passwords(app) -> dict[str, str]:
    """Passwords of the demo users: generated once, then read back from the instance folder."""
    path = _logins_file(app)
    if path.exists():
        return dict(line.split("\t", 1) for line in path.read_text().splitlines() if "\t" in line)
    values = {f"demo_{role}": secrets.token_urlsafe(9) for role in ROLES}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(f"{k}\t{v}\n" for k, v in values.items()))
    return values


def seed(app, galaxy_url: str, cloud_url: str) -> None:
    """Bring the demo data up to date: whatever is missing is added, nothing present is touched twice.

    Safe on every start: the docking connection follows the sandbox's port, enterprises, scan points,
    users, bills and their files are added when absent (per bill and per file), and the demo users get
    the passwords of ``instance/demo_logins.txt`` so the printed logins always work.
    """

    base_url = galaxy_url.rstrip("/") + "/k3cloud/"
    conn = db.session.scalar(select(DockingConnection).where(DockingConnection.name == "演示星空"))
    if conn is None:
        conn = DockingConnection(name="演示星空", acct_id=DEMO_GALAXY.acct_id, acct_name=DEMO_GALAXY.acct_name,
                                 username=DEMO_GALAXY.username, password_enc=encrypt(DEMO_GALAXY.password))
        db.session.add(conn)
    conn.base_url = base_url  # the sandbox may listen on another port this time
    db.session.flush()
    ents = _seed_enterprises(conn)
    points = _seed_scan_points(ents)
    _seed_users(app, ents, points)
    db.session.commit()
    for spec in DEMO_BILLS:
        _seed_bill(ents[spec[1]], points, *spec)
    _seed_sync_push(ents["sync"], cloud_url)


def _seed_enterprises(conn) -> dict:
    """One enterprise per image mode, keyed by mode."""

    ents = {}
    for client in DEMO_CLOUD_CLIENTS:
        ent = db.session.scalar(select(Enterprise).where(Enterprise.tax_no == client.tax_no))
        if ent is None:
            ent = Enterprise(tax_no=client.tax_no, name=client.name, client_id=client.client_id,
                             client_secret_enc=encrypt(client.client_secret), encrypt_key_enc=encrypt(client.encrypt_key),
                             image_mode=client.image_mode, docking_id=conn.id,
                             # The three share one Galaxy: pulled bills go by ERP organisation.
                             erp_orgs=DEMO_ERP_ORGS[client.image_mode],
                             verify_invoices=client.image_mode == DEMO_VERIFY_MODE)
            db.session.add(ent)
        ents[client.image_mode] = ent
    db.session.flush()
    return ents


def _seed_scan_points(ents: dict) -> list:

    points = []
    for mode, code, name in (("basic", "SZ01", "深圳总部扫描点"), ("match", "SH01", "上海分公司扫描点")):
        ent = ents[mode]
        point = db.session.scalar(select(ScanPoint).where(ScanPoint.enterprise_id == ent.id, ScanPoint.code == code))
        if point is None:
            point = ScanPoint(enterprise_id=ent.id, code=code, name=name)
            db.session.add(point)
        points.append(point)
    db.session.flush()
    return points


def _seed_users(app, ents: dict, points: list) -> None:
    """A user of each role; existing demo users get the password the demo prints."""

    passwords = _demo_passwords(app)
    everyone = list(ents.values())
    specs = {"ops": ("演示运维", [], []), "scanner": ("演示扫描员", everyone, points), "viewer": ("演示查看", everyone, [])}
    for role, (display, enterprises, scan_points) in specs.items():
        name = f"demo_{role}"
        user = db.session.scalar(select(User).where(User.username == name))
        if user is None:
            create_user(name, role, passwords[name], display_name=display, enterprises=enterprises,
                        scan_points=scan_points, actor="demo")
        elif not check_password_hash(user.password_hash, passwords[name]):
            user.password_hash = hash_password(passwords[name])


def _seed_bill(ent, points, bill_no, mode, submitter, org, amount, files) -> None:
    """Open the bill if absent, attach the files it lacks, and play its story once the files are there."""

    fid = {b["number"]: b["id"] for b in DEMO_GALAXY.bills}
    point = next((p for p in points if p.enterprise_id == ent.id), None)
    data = {"bill_no": bill_no, "erp_id": str(fid.get(bill_no, "")), "submitter": submitter, "org": org,
            "amount": amount, "scan_point": point.code if point else None}
    if bill_no == "FYBX0004":
        # The ERP expects two invoices; only one is scanned, so matching shows what is missing.
        data["expected_invoices"] = [
            {"invoiceNo": "24112000000048542163", "invoiceDate": "20240528", "totalAmount": "4449.00", "invoiceType": "31"},
            {"invoiceNo": "24322000000489101796", "invoiceDate": "20241205", "totalAmount": "20000.00", "invoiceType": "31"},
        ]
    bill = bills.open_bill(ent, data, actor="demo").bill
    added = 0
    for name in files:
        content = (corpus_dir() / name).read_bytes()
        have = db.session.scalar(select(Image.id).where(Image.bill_id == bill.id,
                                                        Image.sha256 == hashlib.sha256(content).hexdigest()))
        if have is None and bill.status in ("pending", "uploaded"):
            bills.add_file(bill, content, name, actor="demo_scanner")
            added += 1
    db.session.commit()
    if not added or bill.status != "uploaded":
        return  # the story below was played when the files arrived; a person may have moved on since
    if bill_no in ("FYBX0001", "FYBX0004", "FYBX0002"):
        review.submit(bill, "demo_scanner")
    if bill_no == "FYBX0002":
        db.session.commit()
        bill = db.session.get(Bill, bill.id)
        bills.return_bill(bill, "第二张发票影像模糊，请重新扫描", "demo_scanner")
    db.session.commit()


SYNC_FILE = "shudian_vat_ordinary_sichuan_1455.45.pdf"


def _seed_sync_push(ent, cloud_url: str) -> None:
    """The receipt assistant's push for the sync-mode bill: an invoice whose file the cloud serves."""

    url = cloud_url.rstrip("/") + "/files/" + SYNC_FILE
    row = db.session.scalar(select(ExpectedInvoice).where(ExpectedInvoice.enterprise_id == ent.id,
                                                          ExpectedInvoice.dedup_key == "s:demo-sync-0001"))
    if row is None:
        db.session.add(ExpectedInvoice(
            enterprise_id=ent.id, origin="push", dedup_key="s:demo-sync-0001", bill_no="FYBX0006", serial_no="demo-sync-0001",
            type="32", number="23512000000058396237", invoice_key=":23512000000058396237", download_url=url))
    elif row.fetched_image_id is None:
        row.download_url, row.fetch_error = url, None  # the sandbox may listen on another port this time
    db.session.commit()


def job_loop(app, stop: threading.Event, every: float = 5.0) -> None:
    """Clean the file store, then run the job pass (ERP pull, sync downloads, write-back) until ``stop`` is set."""

    with app.app_context():
        housekeeping.clean_if_due()  # start-up: what a killed run left in the store
    while not stop.wait(every):
        with app.app_context():
            try:
                one_pass()
            except Exception:  # the loop must survive a bad job; the job keeps its error
                log.exception("demo job loop")


def main(argv: list[str] | None = None) -> int:
    """Start everything and serve until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m portal.demo", description="发票影像系统演示")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORTAL_DEMO_PORT", 5000)))
    parser.add_argument("--galaxy-port", type=int, default=8701)
    parser.add_argument("--cloud-port", type=int, default=8702)
    args = parser.parse_args(argv)

    from flask_migrate import upgrade
    from werkzeug.serving import make_server


    galaxy = GalaxySandbox(port=args.galaxy_port, seed=SEEDS["demo"][0], quiet=True)
    cloud = CloudSandbox(port=args.cloud_port, seed=SEEDS["demo"][1], quiet=True)
    galaxy.start()
    cloud.start()
    # The emulator keeps files in memory: serve the sync-mode invoice file on every start.
    cloud.add_file(SYNC_FILE, (corpus_dir() / SYNC_FILE).read_bytes(), "application/pdf")
    os.environ.setdefault("PORTAL_INVOICE_CLOUD_URL", cloud.url)
    app = create_app()
    app.config["INVOICE_CLOUD_URL"] = cloud.url
    # The cloud sandbox serves the pushed file from loopback, which downloads refuse unless its
    # host:port is on the allow-list (outside the demo a deployment lists its own file hosts).
    listed = [h.strip() for h in str(app.config.get("FETCH_ALLOWED_HOSTS") or "").split(",") if h.strip()]
    app.config["FETCH_ALLOWED_HOSTS"] = ", ".join([*listed, urlsplit(cloud.url).netloc])
    with app.app_context():
        upgrade()
        seed(app, galaxy.url, cloud.url)
        passwords = _demo_passwords(app)
    stop = threading.Event()
    worker = threading.Thread(target=job_loop, args=(app, stop), daemon=True, name="demo-jobs")
    worker.start()
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    print("\n发票影像系统演示已启动：http://127.0.0.1:%d\n" % args.port)
    for role, label in ROLES.items():
        print(f"  {label:<4} 用户名 demo_{role:<8} 密码 {passwords[f'demo_{role}']}")
    print(f"\n  星空沙箱 {galaxy.url}/k3cloud/（数据中心 69a531ee82525a，用户 demo / demo-pass）")
    spare = DEMO_SPARE_CLIENT
    print(f"  发票云沙箱 {cloud.url}；可用来新增企业授权的演示凭据：")
    print(f"    企业名称 {spare.name}  税号 {spare.tax_no}  client_id {spare.client_id}")
    print(f"    client_secret {spare.client_secret}  encrypt_key {spare.encrypt_key}")
    print(f"  登录信息保存在 {_logins_file(app)}；按 Ctrl-C 停止。\n", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
        cloud.stop()
        galaxy.stop()
    return 0


@demo_cli.command("seed")
@click.option("--galaxy-url", required=True, help="星空沙箱地址")
@click.option("--cloud-url", required=True, help="发票云沙箱地址")
def seed_command(galaxy_url, cloud_url):
    """Seed demo data against running sandbox emulators."""
    from flask import current_app

    seed(current_app, galaxy_url, cloud_url)
    click.echo("演示数据已就绪")


if __name__ == "__main__":
    sys.exit(main())
