"""Uploads racing each other over real HTTP end with each file stored and attached exactly once,
and with a position of its own on the bill, on SQLite and on PostgreSQL."""
import io
import threading

import requests
from PIL import Image as Picture
from sqlalchemy import func, select
from werkzeug.serving import make_server

from portal import links
from portal.crypto import encrypt
from portal.extensions import db
from portal.models import Bill, Blob, Enterprise, Image

from .conftest import corpus, tax_no
from .test_postgres import pg_app, pg_url  # noqa: F401  (fixtures)

FILES = ["vat_e_ordinary_zhejiang_83089647_original_invoice.xml", "vat_e_ordinary_tianjin_33207675.png",
         "shudian_vat_special_24112000000048542163.ofd"]


def _race(app, ent, bill_no: str, uploads: list[list[tuple[str, bytes]]]) -> list[int]:
    """One HTTP client per list in ``uploads``, all starting at once, each posting its files in order
    to bill ``bill_no`` through the ERP API of a real server; the statuses they got."""
    token = links.api_token(ent).token
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}/api/v1"
    auth = {"Authorization": f"Bearer {token}"}
    statuses, lock = [], threading.Lock()
    start = threading.Barrier(len(uploads))
    try:
        assert requests.post(base + "/bills", json={"bill_no": bill_no}, headers=auth, timeout=10).status_code == 201

        def client(files):
            with requests.Session() as s:
                start.wait()
                for name, content in files:
                    resp = s.post(f"{base}/bills/{bill_no}/images", headers=auth, timeout=60,
                                  files={"file": (name, content)})
                    with lock:
                        statuses.append(resp.status_code)

        threads = [threading.Thread(target=client, args=(files,)) for files in uploads]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    return statuses


def test_twenty_clients_upload_the_same_files_at_once(app, make_enterprise):
    ent = make_enterprise()
    uploads = [[(name, corpus(name)) for name in FILES[i % 3:] + FILES[: i % 3]] for i in range(20)]
    statuses = _race(app, ent, "RACE-1", uploads)
    assert statuses == [201] * 60
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Image)) == 3
    assert db.session.scalar(select(func.count()).select_from(Blob)) == 3


def _distinct_pngs(n: int) -> list[bytes]:
    """``n`` small PNG files with different content (so none is deduplicated away)."""
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Picture.new("RGB", (48, 32), (i * 7 % 256, i * 13 % 256, i * 29 % 256)).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def _race_distinct_files(app, ent, clients: int = 16, per_client: int = 3) -> list[int]:
    """``clients`` HTTP clients each upload ``per_client`` different files to one bill at once; their statuses."""
    files = _distinct_pngs(clients * per_client)
    uploads = [[(f"p{i}-{k}.png", files[i * per_client + k]) for k in range(per_client)] for i in range(clients)]
    return _race(app, ent, "RACE-2", uploads)


def _positions() -> list[int]:
    db.session.commit()
    bill = db.session.scalar(select(Bill).where(Bill.bill_no == "RACE-2"))
    return list(db.session.scalars(select(Image.position).where(Image.bill_id == bill.id).order_by(Image.position)))


def test_different_files_racing_to_one_bill_get_positions_of_their_own(app, make_enterprise):
    statuses = _race_distinct_files(app, make_enterprise())
    assert statuses == [201] * 48
    positions = _positions()
    assert len(positions) == 48 and len(set(positions)) == 48, positions


def test_different_files_racing_to_one_bill_get_positions_of_their_own_on_postgresql(pg_app):
    ent = Enterprise(tax_no=tax_no(601), name="PG 并发", client_id="pgrace01", client_secret_enc=encrypt("s" * 20),
                     encrypt_key_enc=encrypt("k" * 16))
    db.session.add(ent)
    db.session.commit()
    statuses = _race_distinct_files(pg_app, ent)
    assert statuses == [201] * 48
    positions = _positions()
    assert len(positions) == 48 and len(set(positions)) == 48, positions
