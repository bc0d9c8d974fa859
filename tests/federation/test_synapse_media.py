"""Media between our server and Synapse, both directions: each serves the other's users.

Spec: `content/server-server-api.md` § Content Repository,
`data/api/server-server/content_repository.yaml` (Synapse downloads our media
through our `/_matrix/federation/v1/media/download`, and we Synapse's, both
`multipart/mixed`); `content/client-server-api/modules/content_repo.md`
(authenticated download and thumbnail of another server's `mxc://` URI;
remote files beyond the limit are 502 `M_TOO_LARGE`). The fallback to the
legacy endpoint needs a server without the federation one, which Synapse is
not: `test_remote_media.py` has it against a stub peer.
"""

from __future__ import annotations

import pytest
import trio

from tests.support.federation import start_federating
from tests.support.images import png
from tests.support.matrix import assert_error
from tests.support.remote_media import (
    LEGACY,
    download,
    image_size,
    stored_files,
    thumbnail,
    upload,
)
from tests.support.synapse import running_synapse
from tests.support.synapse_rooms import DIRECTIONS, Peers, our_errors, peers, sides

PHOTO = png(640, 480, (20, 160, 90))


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_a_file_downloads_byte_identical_from_the_other_server(both: Peers, direction):
    home, visitor = sides(direction)
    uploader, reader = await both.account_on(home), await both.account_on(visitor)
    media = await upload(uploader, PHOTO, "image/png", filename="holiday.png")

    response = await download(reader, media)

    assert response.status_code == 200, response.text
    assert response.content == PHOTO
    assert response.headers["Content-Type"] == "image/png"
    assert "holiday.png" in response.headers["Content-Disposition"]


async def test_our_deprecated_download_path_serves_synapse_media_too(both: Peers):
    """(Synapse's own deprecated path is "frozen" for media it fetched, as the spec's
    Client behaviour warning recommends; ours still serves it.)"""
    carol, alice = await both.synapse_account(), await both.our_account()
    media = await upload(carol, PHOTO, "image/png")

    response = await download(alice, media, LEGACY)

    assert response.status_code == 200, response.text
    assert response.content == PHOTO


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_a_thumbnail_of_a_file_on_the_other_server(both: Peers, direction):
    home, visitor = sides(direction)
    uploader, reader = await both.account_on(home), await both.account_on(visitor)
    media = await upload(uploader, PHOTO, "image/png")

    cropped = await thumbnail(reader, media, width=96, height=96, method="crop")
    scaled = await thumbnail(reader, media, width=320, height=240, method="scale")

    assert cropped.status_code == 200, cropped.text
    assert image_size(cropped.content) == (96, 96)
    assert scaled.status_code == 200, scaled.text
    assert image_size(scaled.content) == (320, 240)


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_media_the_other_server_does_not_have_is_404(both: Peers, direction):
    home, visitor = sides(direction)
    owner, reader = await both.account_on(home), await both.account_on(visitor)

    response = await download(reader, f"{owner.server_name}/NoSuchMediaHere")

    assert_error(response, 404, "M_NOT_FOUND")


async def test_synapse_media_over_our_limit_is_502_m_too_large_and_not_kept(
    nursery, synapse, tmp_path
):
    ours = await start_federating(
        nursery, synapse.ca, tmp_path / "us", "127.0.0.2", max_request_size=4096
    )
    async with peers(ours, synapse) as both:
        carol, alice = await both.synapse_account(), await both.our_account()
        large = await upload(carol, b"x" * 8000, "text/plain")
        fits = await upload(carol, b"y" * 3000, "text/plain")

        assert_error(await download(alice, large), 502, "M_TOO_LARGE")

        assert stored_files(ours.config.database_path) == []
        assert ours.federation.destinations.backoff(synapse.server_name) is None
        assert (await download(alice, fits)).content == b"y" * 3000


async def test_synapse_media_is_served_here_after_synapse_stops(nursery, ca, tmp_path, caplog):
    """With a Synapse of the test's own, since the test stops it."""
    with running_synapse(ca, tmp_path / "synapse") as synapse:
        ours = await start_federating(nursery, ca, tmp_path / "us", "127.0.0.2")
        async with peers(ours, synapse) as both:
            carol, alice = await both.synapse_account(), await both.our_account()
            media = await upload(carol, PHOTO, "image/png", filename="holiday.png")
            never_fetched = await upload(carol, b"never asked for", "text/plain")
            assert (await download(alice, media)).content == PHOTO

            await trio.to_thread.run_sync(synapse.stop)

            response = await download(alice, media)
            assert response.status_code == 200, response.text
            assert response.content == PHOTO
            assert "holiday.png" in response.headers["Content-Disposition"]
            small = await thumbnail(alice, media, width=32, height=32, method="crop")
            assert image_size(small.content) == (32, 32)
            assert_error(await download(alice, never_fetched), 502, "M_UNKNOWN")
    assert not our_errors(caplog.records), our_errors(caplog.records)
