"""Embedded images of OFD pages: rasters through Pillow, JBIG2 through pdfium."""

from __future__ import annotations

import io
import math
import struct

from PIL import Image

from portal.files.limits import PDFIUM_LOCK


def _jbig2_to_image(data: bytes, target_px: tuple[int, int], max_pixels: int) -> Image.Image | None:
    """Decode a JBIG2 image by wrapping it in a one-page PDF that pdfium renders.

    Pillow cannot read JBIG2, but pdfium (already a dependency for PDFs) decodes
    ``/JBIG2Decode`` image streams.  Legacy e-invoice OFDs draw their QR code this way.
    """
    if data[:8] == b"\x97JB2\r\n\x1a\n":
        flags = data[8]
        body = data[9:] if flags & 0x02 else data[13:]  # page count present unless bit 1 set
        if flags & 0x01 == 0:
            return None  # random-access organisation: not embeddable as-is
    else:
        body = data
    size = _jbig2_page_size(body)
    if size is None:
        return None
    width, height = size
    if width <= 0 or height <= 0 or height == 0xFFFFFFFF or width * height > max_pixels:
        return None
    scale = max(target_px[0] / width, target_px[1] / height, 0.05)
    scale = min(scale, 8.0, math.sqrt(max_pixels / (width * height)))
    pdf = _single_image_pdf(body, width, height)
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        doc = pdfium.PdfDocument(pdf)
        try:
            page = doc[0]
            try:
                bitmap = page.render(scale=scale)
                try:
                    return bitmap.to_pil().convert("L").copy()
                finally:
                    bitmap.close()
            finally:
                page.close()
        finally:
            doc.close()


def _jbig2_page_size(body: bytes) -> tuple[int, int] | None:
    """Width/height from the first page-information segment of an embedded JBIG2 stream."""
    pos = 0
    for _ in range(64):
        if pos + 11 > len(body):
            return None
        flags = body[pos + 4]
        seg_type = flags & 0x3F
        page_assoc_4 = bool(flags & 0x40)
        ref = body[pos + 5]
        count = ref >> 5
        hdr = pos + 6
        if count == 7:
            long_count = struct.unpack(">I", body[pos + 5 : pos + 9])[0] & 0x1FFFFFFF
            hdr = pos + 9 + (long_count + 8) // 8
            count = long_count
        seg_num = struct.unpack(">I", body[pos : pos + 4])[0]
        ref_size = 1 if seg_num <= 256 else (2 if seg_num <= 65536 else 4)
        hdr += count * ref_size
        hdr += 4 if page_assoc_4 else 1
        if hdr + 4 > len(body):
            return None
        length = struct.unpack(">I", body[hdr : hdr + 4])[0]
        data_start = hdr + 4
        if seg_type == 48:  # page information
            if data_start + 8 > len(body):
                return None
            return struct.unpack(">II", body[data_start : data_start + 8])
        if length == 0xFFFFFFFF:
            return None
        pos = data_start + length
    return None


def _single_image_pdf(stream: bytes, width: int, height: int) -> bytes:
    """A minimal PDF drawing one JBIG2 image over its whole page."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] "
        b"/Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>" % (width, height),
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
        b"/BitsPerComponent 1 /Filter /JBIG2Decode /Length %d >>\nstream\n" % (width, height, len(stream))
        + stream
        + b"\nendstream",
    ]
    content = b"q %d 0 0 %d 0 0 cm /Im0 Do Q" % (width, height)
    objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.5\n")
    offsets = []
    for num, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % num + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def _open_embedded_image(data: bytes, max_pixels: int) -> Image.Image | None:
    """Decode an embedded raster image, refusing oversized ones; None when unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > max_pixels:
                return None
            im.load()
            return im.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, Warning):
        return None
