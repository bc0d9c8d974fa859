"""The content repository over HTTP: upload, download, thumbnails, config, on every path.

Spec: `content/client-server-api/modules/content_repo.md` ("Thumbnails",
"Security considerations", "Serving inline content"),
`data/api/client-server/authed-content-repo.yaml` (`/_matrix/client/v1/media/`)
and `content-repo.yaml` (`/_matrix/media/{r0,v3}/`, `POST /_matrix/media/v1/create`,
`PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`). Thumbnail sizes,
formats and hostile images in detail: `tests/unit/service/test_thumbnails.py`;
the file store: `tests/unit/service/test_media_files.py`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import socket
import stat
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from PIL import Image

from matrix_conduit.service.media_files import MEDIA_DIRECTORY
from tests.support.images import encoded, png, png_claiming_size
from tests.support.matrix import User, assert_error, ok, path_part, register
from tests.support.server import make_config, serving
from tests.support.shared_server import SharedServer as TestServer
from tests.support.shared_server import shared_server_fixtures

running_server, server = shared_server_fixtures()
running_small_server, small_server = shared_server_fixtures("small_server", max_request_size=2048)

AUTHENTICATED = "/_matrix/client/v1/media"
LEGACY = "/_matrix/media/v3"
LEGACY_R0 = "/_matrix/media/r0"


def jpeg(width: int, height: int) -> bytes:
    return encoded(Image.new("RGB", (width, height), (20, 120, 220)), "JPEG")


def image_of(response: httpx.Response) -> Image.Image:
    return Image.open(io.BytesIO(response.content))


def bearer(user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.access_token}"}


async def upload(
    user: User,
    data: bytes,
    content_type: str | None = "image/png",
    filename: str | None = None,
    prefix: str = LEGACY,
) -> str:
    """`POST /upload`; the `server/mediaId` part of the returned `mxc://` URI."""
    response = await post_upload(user, data, content_type, filename, prefix)
    content_uri = ok(response)["content_uri"]
    assert content_uri.startswith(f"mxc://{user.server_name}/")
    return content_uri.removeprefix("mxc://")


async def post_upload(
    user: User,
    data: bytes,
    content_type: str | None = "image/png",
    filename: str | None = None,
    prefix: str = LEGACY,
) -> httpx.Response:
    headers = bearer(user) | ({"Content-Type": content_type} if content_type else {})
    params = {"filename": filename} if filename is not None else None
    return await user.http.post(f"{prefix}/upload", content=data, headers=headers, params=params)


async def download(
    user: User, media: str, prefix: str = AUTHENTICATED, **params: object
) -> httpx.Response:
    headers = bearer(user) if prefix == AUTHENTICATED else {}
    return await user.http.get(f"{prefix}/download/{media}", headers=headers, params=params)


async def thumbnail(
    user: User, media: str, prefix: str = AUTHENTICATED, **params: object
) -> httpx.Response:
    headers = bearer(user) if prefix == AUTHENTICATED else {}
    return await user.http.get(f"{prefix}/thumbnail/{media}", headers=headers, params=params)


def media_files(server: TestServer) -> list[Path]:
    """Every file of the content-addressed store."""
    directory = Path(server.config.database_path) / MEDIA_DIRECTORY
    return sorted(path for path in directory.rglob("*") if path.is_file())


def assert_served_safely(response: httpx.Response) -> None:
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"].startswith("sandbox;")


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("prefix", [AUTHENTICATED, LEGACY, LEGACY_R0])
async def test_a_png_round_trips_with_its_thumbnails(server: TestServer, prefix: str):
    alice = await register(server)
    original = png(640, 480)
    media = await upload(alice, original, filename="sunset.png")

    downloaded = await download(alice, media, prefix)
    assert downloaded.status_code == 200
    assert downloaded.content == original
    assert downloaded.headers["Content-Type"] == "image/png"
    assert downloaded.headers["Content-Disposition"] == 'inline; filename="sunset.png"'
    assert_served_safely(downloaded)

    cropped = await thumbnail(alice, media, prefix, width=96, height=96, method="crop")
    assert cropped.status_code == 200
    assert cropped.headers["Content-Type"] == "image/png"
    assert cropped.headers["Content-Disposition"] == 'inline; filename="thumbnail.png"'
    assert_served_safely(cropped)
    assert image_of(cropped).size == (96, 96)

    scaled = await thumbnail(alice, media, prefix, width=300, height=200, method="scale")
    assert image_of(scaled).size == (320, 240)


async def test_a_jpeg_photo_gets_jpeg_thumbnails(server: TestServer):
    alice = await register(server)
    media = await upload(alice, jpeg(1200, 900), "image/jpeg")
    response = await thumbnail(alice, media, width=640, height=480)
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["Content-Disposition"] == 'inline; filename="thumbnail.jpg"'
    assert image_of(response).format == "JPEG"
    assert image_of(response).size == (640, 480)


async def test_upload_answers_an_mxc_uri_on_the_r0_path_too(server: TestServer):
    alice = await register(server)
    media = await upload(alice, b"old clients", "text/plain", prefix=LEGACY_R0)
    assert (await download(alice, media)).content == b"old clients"


async def test_an_empty_file_can_be_uploaded_and_downloaded(server: TestServer):
    alice = await register(server)
    media = await upload(alice, b"", "text/plain")
    response = await download(alice, media)
    assert response.status_code == 200
    assert response.content == b""


# ---------------------------------------------------------------- files on disk


async def test_identical_uploads_share_one_private_file(server: TestServer):
    alice, bob = await register(server), await register(server)
    content = b"the same bytes, uploaded twice " + os.urandom(16)
    first = await upload(alice, content, "application/octet-stream")
    second = await upload(bob, content, "text/plain", filename="copy.txt")
    assert first != second

    (stored,) = [path for path in media_files(server) if path.read_bytes() == content]
    assert stored.name == hashlib.sha256(content).hexdigest()
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(stored.parent.parent.stat().st_mode) == 0o700
    assert (await download(bob, second)).headers["Content-Type"] == "text/plain"
    assert (await download(alice, first)).headers["Content-Type"] == "application/octet-stream"


async def test_a_thumbnail_is_made_once_and_then_served_from_disk(server: TestServer):
    alice = await register(server)
    media = await upload(alice, png(500, 500, (1, 2, 3)))
    first = await thumbnail(alice, media, width=32, height=32, method="crop")
    files_after_first = media_files(server)

    again = await thumbnail(alice, media, LEGACY, width=30, height=30, method="crop")
    assert again.content == first.content
    assert media_files(server) == files_after_first
    stored = Path(server.config.database_path, MEDIA_DIRECTORY)
    thumbnail_sha256 = hashlib.sha256(first.content).hexdigest()
    assert (stored / thumbnail_sha256[:2] / thumbnail_sha256).read_bytes() == first.content


async def test_media_survives_a_restart(tmp_path):
    config = make_config(tmp_path / "db")
    async with trio.open_nursery() as nursery, serving(nursery, config) as first:
        alice = await register(first)
        media = await upload(alice, png(100, 100), filename="kept.png")

    async with trio.open_nursery() as nursery, serving(nursery, config) as second:
        alice = dataclasses.replace(alice, http=second.client)
        response = await download(alice, media)
        assert response.content == png(100, 100)
        assert response.headers["Content-Disposition"] == 'inline; filename="kept.png"'


# ---------------------------------------------------------------- thumbnails


async def test_scale_keeps_the_aspect_ratio_and_crop_fills_the_size(server: TestServer):
    alice = await register(server)
    media = await upload(alice, png(1000, 500))
    scaled = await thumbnail(alice, media, width=320, height=240, method="scale")
    assert image_of(scaled).size == (320, 160)
    cropped = await thumbnail(alice, media, width=96, height=96, method="crop")
    assert image_of(cropped).size == (96, 96)


async def test_the_method_defaults_to_scale(server: TestServer):
    alice = await register(server)
    media = await upload(alice, png(1000, 500))
    assert image_of(await thumbnail(alice, media, width=96, height=96)).size == (320, 160)


async def test_an_image_smaller_than_asked_for_is_answered_by_itself(server: TestServer):
    alice = await register(server)
    original = png(20, 10)
    media = await upload(alice, original)
    response = await thumbnail(alice, media, width=96, height=96, method="crop")
    assert response.status_code == 200
    assert response.content == original
    assert response.headers["Content-Type"] == "image/png"


async def test_a_thumbnail_larger_than_every_recommended_size_is_the_original(
    server: TestServer,
):
    alice = await register(server)
    original = png(1200, 1000)
    media = await upload(alice, original)
    response = await thumbnail(alice, media, width=1000, height=1000, method="scale")
    assert response.content == original


async def test_thumbnails_of_content_that_is_no_image_are_400_m_unknown(server: TestServer):
    alice = await register(server)
    text = await upload(alice, b"just some words", "text/plain")
    assert_error(await thumbnail(alice, text, width=32, height=32), 400, "M_UNKNOWN")
    broken = await upload(alice, png(64, 64)[:60], "image/png")
    assert_error(await thumbnail(alice, broken, width=32, height=32), 400, "M_UNKNOWN")


async def test_an_image_with_too_many_pixels_is_not_thumbnailed_413(server: TestServer):
    alice = await register(server)
    media = await upload(alice, png_claiming_size(9000, 6000))  # 54 Mpx in a few bytes
    assert_error(await thumbnail(alice, media, width=96, height=96), 413, "M_TOO_LARGE")


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({"height": 32}, "M_MISSING_PARAM"),
        ({"width": 32}, "M_MISSING_PARAM"),
        ({"width": "wide", "height": 32}, "M_INVALID_PARAM"),
        ({"width": 0, "height": 32}, "M_INVALID_PARAM"),
        ({"width": 32, "height": -5}, "M_INVALID_PARAM"),
        ({"width": 32, "height": 32, "method": "stretch"}, "M_INVALID_PARAM"),
        ({"width": 32, "height": 32, "animated": "maybe"}, "M_INVALID_PARAM"),
    ],
)
async def test_thumbnail_parameters_are_checked(server: TestServer, params: dict, errcode: str):
    alice = await register(server)
    media = await upload(alice, png(64, 64))
    assert_error(await thumbnail(alice, media, **params), 400, errcode)


# ---------------------------------------------------------------- serving safely


@pytest.mark.parametrize(
    ("content_type", "disposition"),
    [
        ("image/png", "inline"),
        ("text/plain; charset=utf-8", "inline"),
        ("video/mp4", "inline"),
        ("text/html", "attachment"),
        ("image/svg+xml", "attachment"),
        ("application/javascript", "attachment"),
        ("application/pdf", "attachment"),
    ],
)
async def test_only_the_spec_s_safe_types_are_served_inline(
    server: TestServer, content_type: str, disposition: str
):
    alice = await register(server)
    media = await upload(alice, b"<script>alert(1)</script>", content_type)
    response = await download(alice, media)
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Content-Disposition"] == disposition
    assert_served_safely(response)


async def test_content_without_a_type_is_an_octet_stream_attachment(server: TestServer):
    alice = await register(server)
    media = await upload(alice, b"\x00\x01", content_type=None)
    response = await download(alice, media)
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Disposition"] == "attachment"


@pytest.mark.parametrize("prefix", [AUTHENTICATED, LEGACY])
async def test_a_file_name_in_the_path_replaces_the_uploaded_one(server: TestServer, prefix: str):
    alice = await register(server)
    media = await upload(alice, b"quarterly numbers", "text/csv", filename="q3.csv")
    response = await download(alice, f"{media}/{path_part('report final.csv')}", prefix)
    assert response.content == b"quarterly numbers"
    assert response.headers["Content-Disposition"] == 'inline; filename="report final.csv"'


@pytest.mark.parametrize(
    ("filename", "encoded_filename"),
    [
        ('Ärger "quoted".pdf', "%C3%84rger%20%22quoted%22.pdf"),
        ("evil.pdf\r\nSet-Cookie: a=b", "evil.pdf%0D%0ASet-Cookie%3A%20a%3Db"),
    ],
)
async def test_file_names_beyond_plain_ascii_are_percent_encoded(
    server: TestServer, filename: str, encoded_filename: str
):
    alice = await register(server)
    media = await upload(alice, b"%PDF", "application/pdf", filename=filename)
    response = await download(alice, media)
    assert response.headers["Content-Disposition"] == (
        f"attachment; filename*=utf-8''{encoded_filename}"
    )
    assert "Set-Cookie" not in response.headers


async def test_allow_redirect_and_allow_remote_still_answer_the_content(server: TestServer):
    alice = await register(server)
    media = await upload(alice, b"here", "text/plain")
    response = await download(alice, media, LEGACY, allow_redirect="true", allow_remote="false")
    assert response.status_code == 200
    assert response.content == b"here"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("prefix", [AUTHENTICATED, LEGACY])
async def test_unknown_media_is_404_m_not_found(server: TestServer, prefix: str):
    alice = await register(server)
    assert_error(await download(alice, "localhost/NoSuchMedia", prefix), 404, "M_NOT_FOUND")
    response = await thumbnail(alice, "localhost/NoSuchMedia", prefix, width=32, height=32)
    assert_error(response, 404, "M_NOT_FOUND")


@pytest.mark.parametrize("prefix", [AUTHENTICATED, LEGACY])
async def test_remote_media_is_404_until_there_is_federation(server: TestServer, prefix: str):
    alice = await register(server)
    body = assert_error(await download(alice, "example.org/SomeMedia", prefix), 404, "M_NOT_FOUND")
    assert "federation" in body["error"]
    response = await thumbnail(alice, "example.org/SomeMedia", prefix, width=32, height=32)
    assert "federation" in assert_error(response, 404, "M_NOT_FOUND")["error"]


async def test_media_ids_outside_the_spec_s_alphabet_are_400(server: TestServer):
    alice = await register(server)
    assert_error(await download(alice, "localhost/a.b"), 400, "M_INVALID_PARAM")
    assert_error(await download(alice, "localhost/%C3%A4"), 400, "M_INVALID_PARAM")
    assert_error(await download(alice, "not a server/abc"), 400, "M_INVALID_PARAM")


async def test_uploads_larger_than_max_request_size_are_413_m_too_large(small_server: TestServer):
    alice = await register(small_server)
    assert_error(await post_upload(alice, b"x" * 4096), 413, "M_TOO_LARGE")
    assert ok(await post_upload(alice, b"x" * 2048))["content_uri"].startswith("mxc://")


async def test_a_chunked_upload_without_a_length_is_cut_off_at_the_limit(
    small_server: TestServer,
):
    alice = await register(small_server)

    async def chunks():
        for _ in range(8):
            yield b"y" * 1024

    response = await alice.http.post(f"{LEGACY}/upload", content=chunks(), headers=bearer(alice))
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "M_TOO_LARGE")


async def test_authenticated_paths_and_upload_need_an_access_token(server: TestServer):
    alice = await register(server)
    media = await upload(alice, b"private", "text/plain")
    for path in (f"/download/{media}", f"/thumbnail/{media}?width=32&height=32", "/config"):
        assert_error(await alice.http.get(AUTHENTICATED + path), 401, "M_MISSING_TOKEN")
    assert_error(await alice.http.post(f"{LEGACY}/upload", content=b"x"), 401, "M_MISSING_TOKEN")
    assert (await download(alice, media, LEGACY)).content == b"private"  # deprecated: no token


# ---------------------------------------------------------------- config and previews


@pytest.mark.parametrize("prefix", [AUTHENTICATED, LEGACY])
async def test_media_config_gives_the_upload_limit(small_server: TestServer, prefix: str):
    alice = await register(small_server)
    response = await alice.http.get(f"{prefix}/config", headers=bearer(alice))
    assert ok(response) == {"m.upload.size": 2048}


@pytest.mark.parametrize("prefix", [AUTHENTICATED, LEGACY])
async def test_url_previews_are_not_offered_and_nothing_is_fetched(server: TestServer, prefix: str):
    alice = await register(server)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        response = await alice.http.get(
            f"{prefix}/preview_url", params={"url": url}, headers=bearer(alice)
        )
        assert_error(response, 404, "M_UNRECOGNIZED")
        with pytest.raises(BlockingIOError):  # nobody connected
            listener.accept()
    response = await alice.http.get(f"{prefix}/preview_url", params={"url": url})
    assert_error(response, 401, "M_MISSING_TOKEN")


# ---------------------------------------------------------------- /create, then PUT


async def create(user: User) -> dict:
    return ok(await user.http.post("/_matrix/media/v1/create", headers=bearer(user)))


async def put_upload(
    user: User, media: str, data: bytes, content_type: str = "text/plain", **params: str
) -> httpx.Response:
    headers = bearer(user) | {"Content-Type": content_type}
    return await user.http.put(
        f"{LEGACY}/upload/{media}", content=data, headers=headers, params=params
    )


async def test_a_created_uri_gets_its_content_later(server: TestServer):
    alice = await register(server)
    created = await create(alice)
    assert created["content_uri"].startswith("mxc://localhost/")
    assert isinstance(created["unused_expires_at"], int)
    media = created["content_uri"].removeprefix("mxc://")

    assert_error(await download(alice, media, timeout_ms=0), 504, "M_NOT_YET_UPLOADED")
    response = await thumbnail(alice, media, LEGACY, width=32, height=32, timeout_ms=0)
    assert_error(response, 504, "M_NOT_YET_UPLOADED")

    assert ok(await put_upload(alice, media, b"later", filename="later.txt")) == {}
    response = await download(alice, media)
    assert response.content == b"later"
    assert response.headers["Content-Disposition"] == 'inline; filename="later.txt"'


async def test_a_download_waits_for_the_upload_of_a_created_uri(server: TestServer):
    alice, bob = await register(server), await register(server)
    media = (await create(alice))["content_uri"].removeprefix("mxc://")
    downloads: list[httpx.Response] = []

    async def bob_downloads() -> None:
        downloads.append(await download(bob, media, timeout_ms=30_000))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(bob_downloads)
        await trio.testing.wait_all_tasks_blocked()
        ok(await put_upload(alice, media, b"worth the wait"))

    assert downloads[0].status_code == 200
    assert downloads[0].content == b"worth the wait"


async def test_a_created_uri_takes_content_once_and_only_from_its_creator(server: TestServer):
    alice, mallory = await register(server), await register(server)
    media = (await create(alice))["content_uri"].removeprefix("mxc://")

    assert_error(await put_upload(mallory, media, b"mine now"), 403, "M_FORBIDDEN")
    ok(await put_upload(alice, media, b"first"))
    assert_error(await put_upload(alice, media, b"second"), 409, "M_CANNOT_OVERWRITE_MEDIA")
    assert (await download(alice, media)).content == b"first"

    uploaded = await upload(alice, b"not created", "text/plain")
    assert_error(await put_upload(alice, uploaded, b"x"), 409, "M_CANNOT_OVERWRITE_MEDIA")
    assert_error(await put_upload(alice, "localhost/NeverCreated", b"x"), 404, "M_NOT_FOUND")
    assert_error(await put_upload(alice, "example.org/Remote", b"x"), 404, "M_NOT_FOUND")


async def test_a_put_upload_is_limited_to_max_request_size(small_server: TestServer):
    alice = await register(small_server)
    media = (await create(alice))["content_uri"].removeprefix("mxc://")
    assert_error(await put_upload(alice, media, b"x" * 4096), 413, "M_TOO_LARGE")
    assert ok(await put_upload(alice, media, b"x" * 100)) == {}
