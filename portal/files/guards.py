"""Moved into :mod:`portal.files.limits`; kept until the callers are updated."""

from portal.files.limits import (PDFIUM_LOCK, SafeZip, UnsafeFile, check_image, local_name,  # noqa: F401
                                 open_image, parse_xml, safe_member_name)
