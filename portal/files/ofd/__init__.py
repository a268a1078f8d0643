"""Best-effort OFD (GB/T 33190) page renderer on top of Pillow.

An OFD file is a zip package: ``OFD.xml`` names a document root (``Doc_0/Document.xml``),
which lists pages (``Pages/Page_N/Content.xml``), template pages, resource files
(``PublicRes.xml`` / ``DocumentRes.xml``: fonts, draw parameters, images, composite units)
and annotations (stamps, watermarks).  This package reads such a package defensively and
draws one page at a time onto a Pillow canvas.

It is not a conforming OFD viewer.  It aims at making Chinese e-invoices readable:
text at its positions, table lines and boxes, the QR code and stamp images.  Not
supported: embedded font programs (a system CJK font is used instead), shadings,
patterns, dash patterns, blend modes other than a plain paste, digital-signature
appearance streams.

Safety: the zip is checked against member-count and size limits before anything is
read, member names that are absolute or climb out with ``..`` are ignored, every XML
part is parsed with :mod:`defusedxml`, embedded images go through Pillow's
decompression-bomb guard, and the number of drawn objects per page is capped.

Modules: :mod:`.package` (the zip, XML parts, resources), :mod:`.geometry` (numbers, matrices,
paths), :mod:`.text` (fonts), :mod:`.images` (rasters, JBIG2), :mod:`.drawing` (the painter) and
:mod:`.document` (pages, rendering). The package exports the public API below.

No Flask imports here: this is a plain library used by :mod:`portal.files.media`.
"""

from __future__ import annotations

from .document import OFDDocument, page_count, render_page
from .package import OFDError, is_ofd
from .text import get_font

__all__ = [
    "OFDError",
    "OFDDocument",
    "get_font",
    "is_ofd",
    "page_count",
    "render_page",
]
