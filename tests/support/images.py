"""Images for the media tests, made with Pillow (and one made by hand, a bomb's header)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encoded(image: Image.Image, image_format: str, **options: object) -> bytes:
    """`image` saved in `image_format` ("PNG", "JPEG", ...)."""
    output = io.BytesIO()
    image.save(output, image_format, **options)
    return output.getvalue()


def png(width: int, height: int, color: str | tuple[int, int, int] = (200, 30, 90)) -> bytes:
    return encoded(Image.new("RGB", (width, height), color), "PNG")


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width`x`height` pixels: a decompression bomb's shape.

    Decoding it would allocate the whole claimed image; a careful reader
    looks at the header and stops.
    """
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b""))
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    checksum = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)
