"""Feature blueprints, one package each."""
from __future__ import annotations

import importlib

# (package, url prefix); each package's routes module defines ``bp``.
BLUEPRINTS = [
    ("auth", None),
    ("users", "/users"),
    ("enterprises", "/enterprises"),
    ("docking", "/docking"),
    ("scan_points", "/scan-points"),
    ("audit", "/audit"),
    ("api", "/api/v1"),
    ("push", "/api/v1/push"),
    ("scan", "/scan"),
    ("bills", "/bills"),
    ("invoices", "/invoices"),
    ("public", "/v"),
    ("writeback", "/writeback"),
    ("health", None),
    ("erp", "/erp"),
    ("help", "/help"),
]


def register_blueprints(app) -> None:
    """Register every feature blueprint on ``app``."""
    for name, prefix in BLUEPRINTS:
        module = importlib.import_module(f"portal.blueprints.{name}.routes")
        app.register_blueprint(module.bp, url_prefix=prefix)
