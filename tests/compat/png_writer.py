"""A minimal PNG writer (zlib + struct), so tests can write PNG colour types and bit depths that
the imaging libraries under test may not write themselves (16-bit gray+alpha)."""

import struct
import zlib

import numpy as np

# PNG colour types by channel count: gray, gray+alpha, RGB, RGBA.
_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def write_png(path, image) -> None:
    """Write [H, W, C] uint8 or uint16 ``image`` (C = 1..4) as a non-interlaced PNG."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    height, width, channels = image.shape
    depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}[image.dtype]
    header = struct.pack(">IIBBBBB", width, height, depth, _COLOUR_TYPE[channels], 0, 0, 0)
    big_endian = image.astype(">u2" if depth == 16 else np.uint8)
    rows = b"".join(b"\x00" + big_endian[y].tobytes() for y in range(height))  # filter 0
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
                + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b""))
