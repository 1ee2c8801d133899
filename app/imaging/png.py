"""A fast PNG writer for large results: numpy row filters + deflate strips in parallel threads.

Pillow's PNG encoder runs single-threaded and spends ~0.6 s on a 12 MP RGBA cutout even at zlib
level 1. Here the whole image is filtered at once with numpy ("Up" filter: each row minus the one
above, which suits photos and cutouts' flat transparent areas), cut into strips deflated
concurrently (zlib releases the GIL; each strip ends on a sync flush so the raw streams
concatenate into one valid zlib stream, as pigz does), and framed as standard PNG chunks.
Any PNG decoder reads the result; tests check it round-trips bit-exactly through Pillow.
"""

from __future__ import annotations

import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_MODES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type (grey, RGB, RGBA)
_UP = 2
_STRIP_BYTES = 4 << 20
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="png")


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def _deflate(data: memoryview, last: bool, level: int) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
    return compressor.compress(data) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def encode_png(pixels: np.ndarray, level: int = 1) -> bytes:
    """``pixels``: uint8 array of shape (h, w), (h, w, 3) or (h, w, 4)."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    height, width, channels = pixels.shape
    rows = np.empty((height, 1 + width * channels), dtype=np.uint8)
    rows[:, 0] = _UP
    flat = pixels.reshape(height, width * channels)
    rows[0, 1:] = flat[0]
    np.subtract(flat[1:], flat[:-1], out=rows[1:, 1:])  # uint8 arithmetic wraps mod 256, as PNG wants
    raw = memoryview(rows.reshape(-1))

    strip = max(_STRIP_BYTES // rows.shape[1], 1) * rows.shape[1]
    starts = range(0, len(raw), strip)
    parts = _pool.map(lambda s: _deflate(raw[s : s + strip], s + strip >= len(raw), level), starts)
    stream = b"\x78\x01" + b"".join(parts) + struct.pack(">I", zlib.adler32(raw))

    header = struct.pack(">IIBBBBB", width, height, 8, _MODES[channels], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")
