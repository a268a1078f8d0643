"""Hostile upload files built on the fly: small on disk, expensive to read or render.

Shared by tests/test_hostile.py and bench/bench_hostile.py; nothing here is a mock, each
is a valid file of its kind that the readers really have to work through.
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib


def pdf_with_streams(streams: list[bytes], size: tuple[int, int] = (595, 842)) -> bytes:
    """A PDF with one page per content stream (Flate-compressed)."""
    objs: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    shared: dict[bytes, int] = {}  # pages with the same content share one stream object
    for stream in streams:
        if stream not in shared:
            packed = zlib.compress(stream, 9)
            objs.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(packed) + packed + b"\nendstream")
            shared[stream] = len(objs)
        objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R >>"
                    % (size[0], size[1], shared[stream]))
        kids.append(b"%d 0 R" % len(objs))
    objs[1] = b"<< /Type /Pages /Kids [" + b" ".join(kids) + b"] /Count %d >>" % len(kids)
    out = io.BytesIO()
    out.write(b"%PDF-1.5\n")
    offsets = []
    for num, body in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % num + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref))
    return out.getvalue()


def slow_pdf(pages: int = 1, ops: int = 3000, salt: int = 0) -> bytes:
    """Pages of many overlapping filled triangles: ~1 ms of pdfium work each (a 1600 px render), no text, no QR.

    ``salt`` changes the bytes (and so the sha256) without changing the cost.
    """
    stream = b"".join(b"%d 0 m 595 %d l 0 842 l h f\n" % ((i + salt) % 500, (i * 7) % 842) for i in range(ops))
    return pdf_with_streams([stream] * pages)


def heavy_ofd(objects: int = 1000, points: int = 300, salt: int = 0) -> bytes:
    """An OFD page of many filled, self-intersecting polygons covering the whole page."""
    ns = b"xmlns:ofd='http://www.ofdspec.org/2016'"
    path = b"M 0 0 " + b" ".join(b"L %d %d" % ((i * 37 + salt) % 210, (i * 53) % 297) for i in range(points)) + b" C"
    objs = b"".join(b"<ofd:PathObject ID='%d' Boundary='0 0 210 297' Fill='true'><ofd:FillColor Value='0 0 0'/>"
                    b"<ofd:AbbreviatedData>" % i + path + b"</ofd:AbbreviatedData></ofd:PathObject>"
                    for i in range(objects))
    page = (b"<ofd:Page " + ns + b"><ofd:Area><ofd:PhysicalBox>0 0 210 297</ofd:PhysicalBox></ofd:Area>"
            b"<ofd:Content><ofd:Layer>" + objs + b"</ofd:Layer></ofd:Content></ofd:Page>")
    doc = (b"<ofd:Document " + ns + b"><ofd:CommonData><ofd:PageArea><ofd:PhysicalBox>0 0 210 297"
           b"</ofd:PhysicalBox></ofd:PageArea></ofd:CommonData><ofd:Pages>"
           b"<ofd:Page ID='1' BaseLoc='Pages/Page_0/Content.xml'/></ofd:Pages></ofd:Document>")
    root = b"<ofd:OFD " + ns + b"><ofd:DocBody><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("OFD.xml", root)
        zf.writestr("Doc_0/Document.xml", doc)
        zf.writestr("Doc_0/Pages/Page_0/Content.xml", page)
    return buf.getvalue()


def png(width: int, height: int, depth: int = 8, colour: int = 6, salt: int = 0) -> bytes:
    """A real, fully decodable PNG of blank rows: tiny on disk, ``width*height`` pixels decoded.

    ``colour`` is the PNG colour type (0 grey, 2 RGB, 6 RGBA); ``depth`` 8 or 16 bits.
    """
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    row = b"\0" + bytes([salt % 256]) * (width * channels * depth // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def png_header(width: int, height: int, depth: int = 16, colour: int = 6) -> bytes:
    """A PNG that claims ``width`` x ``height`` but carries almost no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))
