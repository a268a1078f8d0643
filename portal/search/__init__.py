"""Search over the stored data: the invoice list's keyset query planner (:mod:`portal.search.invoices`)."""
