"""The ERP API (``/api/v1``): bearer tokens, image tasks, scan points, view links (DESIGN §4)."""
