"""One set of limits for every reader and renderer of an untrusted file.

Sniffing, page counting, rendering, the OFD renderer and the recognition readers all
ask :func:`current` for their caps, so a deployment changes one config key and every
parser follows (a 60-page PDF passes everywhere once ``MAX_PAGES`` is 200).  The app
builds the set from its config (:func:`from_config`); the child processes that do the
work receive it with each job and install it with :func:`using`.

Pixel budgets are counted in bytes of the decoded bitmap (mode and bit depth), not in
pixels: a 16-bit RGBA image of 49 Mpx needs 392 MB although its pixel count looks
like an ordinary phone photo's.

No Flask imports: plain values only.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Caps on one file's size, shape and the work spent on it."""

    max_file_bytes: int = 30 * MiB
    max_pages: int = 200
    # Decoded bitmap bytes of one image frame: an A4 scan at 600 dpi in colour is ~140 MB
    # in Pillow's 4-byte RGB, a 12 Mpx phone photo ~48 MB.
    max_pixel_bytes: int = 160 * MiB
    max_xml_bytes: int = 5 * MiB
    max_zip_members: int = 2000
    max_zip_member_bytes: int = 20 * MiB
    max_zip_total_bytes: int = 100 * MiB
    # A deflate stream can expand ~1000x; real OFD parts compress at most ~60x (mostly XML).
    max_zip_ratio: int = 200
    # Drawing operations of one OFD page (objects, glyphs, path points).
    max_draw_ops: int = 400_000
    # Wall-clock seconds for one step of a job (opening a file, one page of it) and for
    # the whole file; memory a worker may take above its own baseline.
    work_seconds: float = 5.0
    work_total_seconds: float = 60.0
    work_memory_bytes: int = 256 * MiB

    @property
    def max_pixel_bytes_label(self) -> str:
        """The pixel budget as people read it (MB)."""
        return f"{self.max_pixel_bytes // MiB} MB"


DEFAULT = Limits()

# Config key → Limits field.  MAX_PAGES and MAX_FILE_BYTES already existed.
CONFIG_KEYS = {
    "MAX_FILE_BYTES": "max_file_bytes",
    "MAX_PAGES": "max_pages",
    "MAX_PIXEL_BYTES": "max_pixel_bytes",
    "MAX_XML_BYTES": "max_xml_bytes",
    "MAX_ZIP_MEMBERS": "max_zip_members",
    "MAX_ZIP_MEMBER_BYTES": "max_zip_member_bytes",
    "MAX_ZIP_TOTAL_BYTES": "max_zip_total_bytes",
    "MAX_DRAW_OPS": "max_draw_ops",
    "FILE_WORK_SECONDS": "work_seconds",
    "FILE_WORK_TOTAL_SECONDS": "work_total_seconds",
    "FILE_WORK_MEMORY": "work_memory_bytes",
}

_current: contextvars.ContextVar[Limits] = contextvars.ContextVar("portal_limits", default=DEFAULT)
_on_tick: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("portal_tick", default=None)


def from_config(config: Mapping[str, Any]) -> Limits:
    """The limits named by ``config`` (keys of CONFIG_KEYS); absent keys keep the defaults."""
    values = {}
    for key, name in CONFIG_KEYS.items():
        if config.get(key) is not None:
            values[name] = float(config[key]) if name.startswith("work_") and "seconds" in name else int(config[key])
    return Limits(**values)


def current() -> Limits:
    """The limits in force for the running job (the defaults outside any :func:`using`)."""
    return _current.get()


@contextlib.contextmanager
def using(limits: Limits, on_tick: Callable[[], None] | None = None) -> Iterator[Limits]:
    """Install ``limits`` (and a progress callback, see :func:`tick`) for the code inside the block."""
    token = _current.set(limits)
    tick_token = _on_tick.set(on_tick)
    try:
        yield limits
    finally:
        _on_tick.reset(tick_token)
        _current.reset(token)


def tick() -> None:
    """A reader finished one page: whoever budgets this work gives the next page its own time.

    A 60-page scan batch needs more time than one page, but no single page may take
    more than one step's budget (``work_seconds``); the whole file stays within
    ``work_total_seconds``.
    """
    callback = _on_tick.get()
    if callback is not None:
        callback()


# Bytes per pixel as Pillow holds each mode in memory (RGB and friends take 4 bytes).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "I;16": 2, "I;16L": 2, "I;16B": 2,
               "I;16N": 2, "BGR;15": 2, "BGR;16": 2, "BGR;24": 3}


def bitmap_bytes(width: int, height: int, mode: str, bits_per_sample: int = 8) -> int:
    """Bytes a decoded frame needs: the larger of Pillow's in-memory mode and the file's own depth.

    ``bits_per_sample`` is the file's sample depth (16 for a 16-bit PNG or TIFF); a
    decoder works through rows at that depth before Pillow narrows them to its mode.
    """
    held = _MODE_BYTES.get(mode, 4)
    bands = {"1": 1, "L": 1, "P": 1, "I;16": 1, "LA": 2, "PA": 2, "RGB": 3, "YCbCr": 3, "LAB": 3,
             "HSV": 3}.get(mode, 4)
    source = -(-bands * max(1, bits_per_sample) // 8)
    return max(0, width) * max(0, height) * max(held, source)
