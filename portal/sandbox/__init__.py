"""Emulators of the outside systems (Kingdee Cloud Galaxy WebAPI, the invoice cloud).

Real HTTP servers on loopback speaking the vendors' protocols, used by the tests
(``tests/sandbox_plugin.py``) and by ``make demo`` (``python -m portal.sandbox``).
Modules: ``server`` (background-thread server with stop/restart), ``galaxy``,
``invoice_cloud``, ``seed`` (named test/demo data).
"""
