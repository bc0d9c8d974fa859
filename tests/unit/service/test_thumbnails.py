"""Thumbnails: which size answers a request, how images are resized, and hostile input.

Spec: `content/client-server-api/modules/content_repo.md`, "Thumbnails"
(the recommended sizes, "scale" keeps the aspect ratio, "crop" gives the
requested one, never upscale, never smaller than asked unless the image is)
and "Security considerations" (images too large to thumbnail: 413; files
that target the thumbnailer). The HTTP side: `tests/integration/test_media.py`.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from matrix_conduit.service import thumbnails
from matrix_conduit.service.thumbnails import (
    MAX_SOURCE_PIXELS,
    CannotThumbnail,
    Thumbnail,
    ThumbnailSize,
    TooLargeToThumbnail,
    make_thumbnail,
    size_for_request,
)
from tests.support.images import encoded, png_claiming_size

EXIF_ORIENTATION = 0x0112
ROTATED_90_CLOCKWISE = 6


def image(width: int, height: int, mode: str = "RGB") -> Image.Image:
    return Image.new(mode, (width, height), "teal" if mode in ("RGB", "RGBA") else 1)


def opened(thumbnail: Thumbnail) -> Image.Image:
    assert thumbnail.data is not None, "expected a new image, not the original"
    return Image.open(io.BytesIO(thumbnail.data))


CROP_32 = ThumbnailSize(32, 32, "crop")
CROP_96 = ThumbnailSize(96, 96, "crop")
SCALE_320 = ThumbnailSize(320, 240, "scale")


# ---------------------------------------------------------------- choosing a size


@pytest.mark.parametrize(
    ("request_size", "answer"),
    [
        ((32, 32, "crop"), CROP_32),
        ((1, 1, "crop"), CROP_32),
        ((33, 20, "crop"), CROP_96),
        ((96, 96, "crop"), CROP_96),
        ((97, 96, "crop"), None),
        ((32, 32, "scale"), SCALE_320),
        ((320, 240, "scale"), SCALE_320),
        ((321, 100, "scale"), ThumbnailSize(640, 480, "scale")),
        ((800, 600, "scale"), ThumbnailSize(800, 600, "scale")),
        ((800, 601, "scale"), None),
        ((2000, 10, "scale"), None),
    ],
)
def test_a_request_is_answered_by_the_smallest_recommended_size_that_covers_it(
    request_size: tuple[int, int, str], answer: ThumbnailSize | None
):
    assert size_for_request(*request_size) == answer


# ---------------------------------------------------------------- resizing


@pytest.mark.parametrize(
    ("original", "size", "thumbnail"),
    [
        ((640, 480), SCALE_320, (320, 240)),
        ((1000, 500), SCALE_320, (320, 160)),  # the width limits
        ((500, 1000), SCALE_320, (120, 240)),  # the height limits
        ((400, 100), SCALE_320, (320, 80)),
        ((640, 480), CROP_96, (96, 96)),
        ((3000, 10), ThumbnailSize(96, 96, "crop"), (96, 10)),  # no upscaling to cover
        ((97, 5000), CROP_96, (96, 96)),
        ((5000, 97), CROP_32, (32, 32)),
    ],
)
def test_scale_fits_inside_and_crop_covers_then_cuts(
    original: tuple[int, int], size: ThumbnailSize, thumbnail: tuple[int, int]
):
    made = make_thumbnail(encoded(image(*original), "PNG"), size, animated=False)
    assert made.content_type == "image/png"
    assert opened(made).size == thumbnail


def test_crop_keeps_the_middle_of_the_image():
    striped = Image.new("RGB", (300, 100), "red")
    striped.paste("blue", (100, 0, 200, 100))  # red | blue | red
    made = opened(make_thumbnail(encoded(striped, "PNG"), CROP_96, animated=False))
    assert made.convert("RGB").getpixel((48, 48)) == (0, 0, 255)
    red, _, blue = made.convert("RGB").getpixel((0, 48))
    assert blue > red  # the red sides are cut off


@pytest.mark.parametrize("size", [CROP_96, SCALE_320, None])
def test_an_image_that_already_fits_is_answered_by_the_original(size: ThumbnailSize | None):
    made = make_thumbnail(encoded(image(90, 60), "PNG"), size, animated=False)
    assert made == Thumbnail(None, "image/png")


def test_a_jpeg_gets_a_jpeg_thumbnail_and_other_formats_get_png():
    photo = make_thumbnail(encoded(image(480, 360), "JPEG"), SCALE_320, animated=False)
    assert photo.content_type == "image/jpeg"
    assert opened(photo).format == "JPEG"
    assert opened(photo).size == (320, 240)
    web = make_thumbnail(encoded(image(480, 360), "WEBP"), SCALE_320, animated=False)
    assert web.content_type == "image/png"
    assert opened(web).format == "PNG"


def test_transparency_is_kept_in_png_thumbnails():
    clear = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    made = opened(make_thumbnail(encoded(clear, "PNG"), CROP_96, animated=False))
    assert made.mode == "RGBA"
    assert made.getpixel((10, 10))[3] == 0


@pytest.mark.parametrize(
    ("mode", "image_format"),
    [("P", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("I;16", "PNG"), ("CMYK", "JPEG"), ("P", "GIF")],
)
def test_unusual_colour_modes_still_give_a_thumbnail(mode: str, image_format: str):
    made = make_thumbnail(encoded(image(400, 300, mode), image_format), CROP_96, animated=False)
    assert opened(made).size == (96, 96)


def test_a_photo_turned_by_its_exif_orientation_is_thumbnailed_upright():
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATED_90_CLOCKWISE
    photo = encoded(image(400, 200), "JPEG", exif=exif.tobytes())
    made = opened(make_thumbnail(photo, SCALE_320, animated=False))
    assert made.size == (120, 240)  # shown 200 wide, 400 high


# ---------------------------------------------------------------- animation


def animated_gif(width: int, height: int) -> bytes:
    frames = [Image.new("RGB", (width, height), color) for color in ("red", "blue")]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def test_an_animated_image_is_thumbnailed_as_a_still_unless_animation_is_asked_for():
    small = animated_gif(20, 20)
    still = make_thumbnail(small, CROP_96, animated=False)
    assert opened(still).format == "PNG"
    assert not getattr(opened(still), "is_animated", False)
    assert opened(still).size == (20, 20)
    assert make_thumbnail(small, CROP_96, animated=True) == Thumbnail(None, "image/gif")


def test_a_large_animated_image_gets_a_still_thumbnail_even_when_animation_is_asked_for():
    made = make_thumbnail(animated_gif(400, 400), CROP_96, animated=True)
    assert opened(made).size == (96, 96)


# ---------------------------------------------------------------- hostile and odd input


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"plain text, not an image",
        b"%PDF-1.7\n",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,  # a PNG signature and then nonsense
        encoded(image(64, 64), "PNG")[:80],  # cut off in the middle
        encoded(image(64, 64), "JPEG")[:200],
        encoded(image(64, 64), "BMP"),  # a real image, but not a format we decode
        encoded(image(64, 64), "TIFF"),
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    ],
)
def test_content_that_is_not_a_decodable_image_cannot_be_thumbnailed(content: bytes):
    with pytest.raises(CannotThumbnail):
        make_thumbnail(content, CROP_96, animated=False)


def test_an_image_with_too_many_pixels_is_refused_before_it_is_decoded():
    side = int(MAX_SOURCE_PIXELS**0.5) + 1
    with pytest.raises(TooLargeToThumbnail):
        make_thumbnail(png_claiming_size(side, side), CROP_96, animated=False)


def test_an_image_beyond_pillows_own_bomb_limit_is_too_large_too():
    with pytest.raises(TooLargeToThumbnail):
        make_thumbnail(png_claiming_size(60_000, 60_000), CROP_96, animated=False)


def test_the_pixel_limit_counts_width_times_height(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(thumbnails, "MAX_SOURCE_PIXELS", 100 * 100)
    assert opened(make_thumbnail(encoded(image(100, 100), "PNG"), CROP_32, animated=False))
    with pytest.raises(TooLargeToThumbnail):
        make_thumbnail(encoded(image(101, 100), "PNG"), CROP_32, animated=False)
