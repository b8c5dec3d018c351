"""A minimal PNG decoder (8-bit RGB/RGBA, not interlaced) for screenshot checks, numpy + zlib only.

Rows filtered with None/Sub/Up are undone with numpy; Average/Paeth rows need the left neighbour's
decoded value, so they run as a byte loop.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {2: 3, 6: 4}  # colour type -> bytes per pixel at 8 bits


def _paeth_row(line: bytearray, prior: bytes, bpp: int) -> None:
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        b = prior[i]
        c = prior[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        predictor = a if pa <= pb and pa <= pc else b if pb <= pc else c
        line[i] = (line[i] + predictor) & 0xFF


def _average_row(line: bytearray, prior: bytes, bpp: int) -> None:
    for i in range(len(line)):
        a = line[i - bpp] if i >= bpp else 0
        line[i] = (line[i] + ((a + prior[i]) >> 1)) & 0xFF


def read_png(path: Path) -> np.ndarray:
    """The image as an (height, width, 3) uint8 RGB array."""
    data = path.read_bytes()
    if not data.startswith(_SIGNATURE):
        raise ValueError(f"{path}: not a PNG file")
    pos, compressed = len(_SIGNATURE), bytearray()
    width = height = bpp = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in _CHANNELS or interlace:
                raise ValueError(f"{path}: unsupported PNG (depth {depth}, colour {colour}, "
                                 f"interlace {interlace})")
            bpp = _CHANNELS[colour]
        elif kind == b"IDAT":
            compressed += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(bytes(compressed))
    stride = width * bpp
    image = np.zeros((height, stride), dtype=np.uint8)
    prior = np.zeros(stride, dtype=np.uint8)
    for row in range(height):
        start = row * (stride + 1)
        kind = raw[start]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=start + 1)
        if kind == 0:
            decoded = line.copy()
        elif kind == 1:  # Sub: running sum per channel, modulo 256
            sums = np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.uint64)
            decoded = sums.astype(np.uint8).reshape(-1)
        elif kind == 2:
            decoded = line + prior
        else:
            buffer = bytearray(line.tobytes())
            (_average_row if kind == 3 else _paeth_row)(buffer, prior.tobytes(), bpp)
            decoded = np.frombuffer(bytes(buffer), dtype=np.uint8)
        image[row] = decoded
        prior = decoded
    return image.reshape(height, width, bpp)[:, :, :3]


def color_pixels(image: np.ndarray, hex_color: str, tolerance: int = 0) -> int:
    """How many pixels have exactly (within ``tolerance`` per channel) the colour ``#rrggbb``."""
    target = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    return int((np.abs(image.astype(np.int16) - target) <= tolerance).all(axis=2).sum())
