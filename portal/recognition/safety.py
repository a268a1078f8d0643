"""The guarded parsers recognition uses, from :mod:`portal.guards` (their one home).

Every cap comes from :func:`portal.limits.current`, the one limits set the app reads
from its config; nothing here keeps limits of its own.
"""

from __future__ import annotations

from portal.guards import SafeZip, UnsafeFile, local_name, open_image, parse_xml
from portal.guards import check_image as check_image_size

__all__ = ["SafeZip", "UnsafeFile", "check_image_size", "local_name", "open_image", "parse_xml"]
