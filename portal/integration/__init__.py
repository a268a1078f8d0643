"""The one place that talks HTTP to the outside world.

Three remotes: Kingdee Cloud Galaxy's WebAPI (金蝶云星空), the invoice cloud (发票云) token
endpoint, and plain file downloads (the ``downloadUrl`` of pushed invoices).

Rules this module keeps for the rest of the code base (STYLE.md rule 9):

* every request has an explicit ``(connect, read)`` timeout;
* nothing is retried except where the protocol makes it safe: a Galaxy call answered with
  "session lost" (MsgCode 1) was not executed, so it is repeated once after logging in again;
* every remote failure surfaces as :class:`IntegrationError` (or a subclass) carrying the
  remote's own message, or a Chinese description when the remote said nothing usable;
* secrets (passwords, client secrets) never appear in exceptions or log lines.

Modules: :mod:`.errors` (the IntegrationError family), :mod:`.http` (timeouts and budgets,
allow-lists, pinned transport), :mod:`.invoice_cloud`, :mod:`.galaxy`, :mod:`.download`
(``fetch_file``). Callers import from the module that owns a name.

Nothing here imports Flask: callers pass configuration in, so the module is usable from
views, background workers, the CLI and the tests alike.
"""
