"""Uploads racing each other over real HTTP end with each file stored and attached exactly once."""
import threading

import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server

from portal import links
from portal.extensions import db
from portal.models import Blob, Image

from .conftest import corpus

FILES = ["vat_e_ordinary_zhejiang_83089647_original_invoice.xml", "vat_e_ordinary_tianjin_33207675.png",
         "shudian_vat_special_24112000000048542163.ofd"]


def test_twenty_clients_upload_the_same_files_at_once(app, make_enterprise):
    ent = make_enterprise()
    token = links.api_token(ent).token
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}/api/v1"
    auth = {"Authorization": f"Bearer {token}"}
    statuses, lock = [], threading.Lock()
    start = threading.Barrier(20)
    try:
        assert requests.post(base + "/bills", json={"bill_no": "RACE-1"}, headers=auth, timeout=10).status_code == 201

        def client(i):
            with requests.Session() as s:
                start.wait()
                for name in FILES[i % 3:] + FILES[: i % 3]:
                    resp = s.post(f"{base}/bills/RACE-1/images", headers=auth, timeout=60,
                                  files={"file": (name, corpus(name))})
                    with lock:
                        statuses.append(resp.status_code)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert statuses == [201] * 60
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Image)) == 3
    assert db.session.scalar(select(func.count()).select_from(Blob)) == 3
