"""Thumbnails of uploaded images, made with Pillow.

Spec: `content/client-server-api/modules/content_repo.md`, "Thumbnails" and
"Security considerations". A request is answered with the smallest of the
spec's recommended sizes (32x32 and 96x96 crop; 320x240, 640x480, 800x600
scale) of the requested method that covers it, so that each image has at
most those few thumbnails, each made once. A request larger than all of them
gets the image itself: never smaller than asked. "scale" fits the image
inside the size, keeping its aspect ratio; "crop" covers the size and cuts
the overflow off both sides. Nothing is ever upscaled: an image already
within the size is answered by the original.

Uploaded files are untrusted. Only PNG, JPEG, GIF and WebP are decoded (no
format that runs external programs or that browsers will not show inline),
images of more than `MAX_SOURCE_PIXELS` are refused before any pixel is
decoded (a 1 MB PNG can unpack into gigabytes), and every decoding failure
is a `CannotThumbnail`, never a crash. JPEG sources are decoded at a reduced
scale when the thumbnail is small (libjpeg's draft mode), which makes
thumbnailing a photo far cheaper.

`make_thumbnail` blocks for as long as decoding takes: the media service runs
it in a worker thread.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from PIL import Image, ImageFile

# Pillow is imported by the first thumbnail, not at startup: it is a few MiB of
# an idle server's memory that a server nobody sends images to never needs.

Method = Literal["crop", "scale"]
METHODS: tuple[Method, ...] = ("crop", "scale")

DECODED_FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
MAX_SOURCE_PIXELS = 50_000_000
"""Larger images are not thumbnailed (413): ~150 MB of RGB once decoded. Below
Pillow's own `Image.MAX_IMAGE_PIXELS`, whose bomb check is the second guard."""
JPEG_QUALITY = 85
_EXIF_ORIENTATION = 0x0112
_ROTATED_ORIENTATIONS = (5, 6, 7, 8)


@dataclass(frozen=True)
class ThumbnailSize:
    width: int
    height: int
    method: Method


RECOMMENDED_SIZES = (
    ThumbnailSize(32, 32, "crop"),
    ThumbnailSize(96, 96, "crop"),
    ThumbnailSize(320, 240, "scale"),
    ThumbnailSize(640, 480, "scale"),
    ThumbnailSize(800, 600, "scale"),
)


def size_for_request(width: int, height: int, method: Method) -> ThumbnailSize | None:
    """The recommended size that answers a request; None: the original answers."""
    for size in RECOMMENDED_SIZES:
        if size.method == method and size.width >= width and size.height >= height:
            return size
    return None


class CannotThumbnail(Exception):
    """The content is not an image this server decodes (or is a broken one)."""


class TooLargeToThumbnail(Exception):
    """The image has more pixels than the server is willing to decode."""


@dataclass(frozen=True)
class Thumbnail:
    """What answers a thumbnail request: new image bytes, or None for the original."""

    data: bytes | None
    content_type: str
    """The MIME type of `data`, or the detected type of the original image."""


def make_thumbnail(original: bytes, size: ThumbnailSize | None, *, animated: bool) -> Thumbnail:
    """The thumbnail of `original` at `size` (None: as large as the original).

    The original answers when it already fits, unless it is animated and
    `animated` was not asked for: then its first frame does, as a still image.
    """
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(original), formats=DECODED_FORMATS)
        return _thumbnail_of(image, size, animated=animated)
    except Image.DecompressionBombError as error:
        raise TooLargeToThumbnail(str(error)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        # Pillow's ways of saying "not an image it knows" or "a broken one".
        raise CannotThumbnail(str(error) or type(error).__name__) from None


def _thumbnail_of(
    image: ImageFile.ImageFile, size: ThumbnailSize | None, *, animated: bool
) -> Thumbnail:
    from PIL import Image, ImageOps

    raw_width, raw_height = image.size
    if raw_width * raw_height > MAX_SOURCE_PIXELS:
        raise TooLargeToThumbnail(f"{raw_width}x{raw_height} is more than {MAX_SOURCE_PIXELS} px")
    rotated = image.getexif().get(_EXIF_ORIENTATION) in _ROTATED_ORIENTATIONS
    width, height = (raw_height, raw_width) if rotated else (raw_width, raw_height)
    size = size or ThumbnailSize(width, height, "scale")
    resized, final = _target_sizes(width, height, size)
    keeps_animation = animated or not getattr(image, "is_animated", False)
    if final == (width, height) and keeps_animation:
        return Thumbnail(None, image.get_format_mimetype() or "application/octet-stream")
    if image.format == "JPEG":
        image.draft("RGB", (resized[1], resized[0]) if rotated else resized)
    output_format = "JPEG" if image.format == "JPEG" else "PNG"
    picture = ImageOps.exif_transpose(image)
    picture = picture.convert(_output_mode(picture.mode, output_format))
    if picture.size != resized:
        picture = picture.resize(resized, Image.Resampling.LANCZOS, reducing_gap=2.0)
    if resized != final:
        left = (resized[0] - final[0]) // 2
        top = (resized[1] - final[1]) // 2
        picture = picture.crop((left, top, left + final[0], top + final[1]))
    return Thumbnail(_encode(picture, output_format), Image.MIME[output_format])


def _target_sizes(
    width: int, height: int, size: ThumbnailSize
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The size to resize a `width`x`height` image to, and the size after cropping.

    Integer arithmetic, so the covering side is exactly the requested one.
    """
    if size.method == "scale":
        if width <= size.width and height <= size.height:
            resized = (width, height)
        elif size.width * height <= size.height * width:  # the width limits
            resized = (size.width, max(1, height * size.width // width))
        else:
            resized = (max(1, width * size.height // height), size.height)
        return resized, resized
    if width <= size.width or height <= size.height:
        resized = (width, height)
    elif size.width * height >= size.height * width:  # the width must cover
        resized = (size.width, -(-height * size.width // width))
    else:
        resized = (-(-width * size.height // height), size.height)
    return resized, (min(size.width, resized[0]), min(size.height, resized[1]))


def _encode(picture: Image.Image, output_format: str) -> bytes:
    encoded = io.BytesIO()
    if output_format == "JPEG":
        picture.save(encoded, output_format, quality=JPEG_QUALITY)
    else:
        picture.save(encoded, output_format)
    return encoded.getvalue()


def _output_mode(mode: str, output_format: str) -> str:
    if output_format == "JPEG":
        return "L" if mode == "L" else "RGB"
    return mode if mode in ("RGB", "RGBA", "L", "LA") else "RGBA"
