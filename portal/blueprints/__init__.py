"""Feature blueprints, one package each."""
from __future__ import annotations

import importlib

# (package, url prefix); a package exposes ``bp`` in its routes module.
BLUEPRINTS = [
    ("auth", None),
    ("users", "/users"),
    ("enterprises", "/enterprises"),
    ("docking", "/docking"),
    ("scan_points", "/scan-points"),
    ("audit", "/audit"),
]
OPTIONAL = [
    ("api", "/api/v1"),
    ("push", "/api/v1/push"),
    ("scan", "/scan"),
    ("bills", "/bills"),
    ("invoices", "/invoices"),
    ("public", "/v"),
    ("writeback", "/writeback"),
]


def register_blueprints(app) -> None:
    """Register every feature blueprint; later features register once they exist."""
    for name, prefix in BLUEPRINTS + OPTIONAL:
        try:
            mod = importlib.import_module(f"portal.blueprints.{name}.routes")
        except ModuleNotFoundError as exc:
            if (name, prefix) in OPTIONAL and exc.name in (f"portal.blueprints.{name}", f"portal.blueprints.{name}.routes"):
                continue
            raise
        app.register_blueprint(mod.bp, url_prefix=prefix)
