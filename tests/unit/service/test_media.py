"""The media service: ids reserved by `/create`, their expiry and limit, waiting downloads.

Spec: `data/api/client-server/content-repo.yaml` (`POST /_matrix/media/v1/create`:
`unused_expires_at`, the limit on pending uploads answered 429
`M_LIMIT_EXCEEDED`; `PUT /upload/{serverName}/{mediaId}`: 404 for an expired
id; downloads wait `timeout_ms` for content, then 504 `M_NOT_YET_UPLOADED`).
Time is a `FakeClock`; nothing here waits for real time to pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from matrix_conduit.errors import MatrixError
from matrix_conduit.service.media import MAX_PENDING_UPLOADS, MAX_WAIT_MS, UNUSED_EXPIRY_MS, Media
from matrix_conduit.service.media_files import MediaFiles
from matrix_conduit.storage import open_database
from tests.support.service_parts import START_MS, FakeClock

ALICE = "@alice:localhost"
BOB = "@bob:localhost"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def media(tmp_path: Path, clock: FakeClock) -> Media:
    db = open_database("leveldb", str(tmp_path / "db"))
    yield Media(db, "localhost", MediaFiles(str(tmp_path / "db" / "media")), clock=clock)
    db.close()


def media_id_of(content_uri: str) -> str:
    return content_uri.removeprefix("mxc://localhost/")


async def raises(errcode: str, awaitable) -> MatrixError:
    with pytest.raises(MatrixError) as caught:
        await awaitable
    assert caught.value.errcode == errcode, caught.value
    return caught.value


async def test_a_created_id_expires_after_a_day_unused(media: Media, clock: FakeClock):
    content_uri, expires_at = media.create(ALICE)
    assert expires_at == START_MS + UNUSED_EXPIRY_MS
    clock.advance(UNUSED_EXPIRY_MS)
    error = await raises(
        "M_NOT_FOUND",
        media.upload_to(ALICE, "localhost", media_id_of(content_uri), b"late", None, None),
    )
    assert error.status == 404
    await raises("M_NOT_FOUND", media.download("localhost", media_id_of(content_uri), timeout_ms=0))


async def test_a_created_id_filled_in_time_is_kept(media: Media, clock: FakeClock):
    content_uri, _ = media.create(ALICE)
    clock.advance(UNUSED_EXPIRY_MS - 1)
    await media.upload_to(ALICE, "localhost", media_id_of(content_uri), b"on time", None, None)
    clock.advance(UNUSED_EXPIRY_MS)
    content = await media.download("localhost", media_id_of(content_uri), timeout_ms=0)
    assert content.data == b"on time"


async def test_a_user_has_a_limited_number_of_pending_ids(media: Media, clock: FakeClock):
    for _ in range(MAX_PENDING_UPLOADS):
        media.create(ALICE)
        clock.advance(1000)
    with pytest.raises(MatrixError) as caught:
        media.create(ALICE)
    assert (caught.value.status, caught.value.errcode) == (429, "M_LIMIT_EXCEEDED")
    oldest_expires = START_MS + UNUSED_EXPIRY_MS
    assert caught.value.extra["retry_after_ms"] == oldest_expires - clock()
    media.create(BOB)  # the limit is per user


async def test_filled_and_expired_ids_no_longer_count_towards_the_limit(
    media: Media, clock: FakeClock
):
    created = [media.create(ALICE)[0] for _ in range(MAX_PENDING_UPLOADS)]
    await media.upload_to(ALICE, "localhost", media_id_of(created[0]), b"done", None, None)
    media.create(ALICE)  # the filled one made room for one more
    clock.advance(UNUSED_EXPIRY_MS)
    for _ in range(MAX_PENDING_UPLOADS):
        media.create(ALICE)


async def test_a_download_waits_for_the_upload_and_then_gets_it(media: Media):
    media_id = media_id_of(media.create(ALICE)[0])
    downloaded = []

    async def download() -> None:
        downloaded.append(await media.download("localhost", media_id, timeout_ms=60_000))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(download)
        await trio.testing.wait_all_tasks_blocked()
        assert downloaded == []  # waiting, not answered
        await media.upload_to(ALICE, "localhost", media_id, b"arrived", "text/plain", "a.txt")

    assert downloaded[0].data == b"arrived"
    assert downloaded[0].filename == "a.txt"


async def test_a_download_that_gives_up_waiting_is_504_m_not_yet_uploaded(media: Media):
    media_id = media_id_of(media.create(ALICE)[0])
    error = await raises("M_NOT_YET_UPLOADED", media.download("localhost", media_id, timeout_ms=0))
    assert error.status == 504
    await media.upload_to(ALICE, "localhost", media_id, b"now", None, None)
    assert (await media.download("localhost", media_id, timeout_ms=0)).data == b"now"


async def test_a_download_waits_no_longer_than_the_server_s_maximum(
    media: Media, autojump_clock: trio.testing.MockClock
):
    media_id = media_id_of(media.create(ALICE)[0])
    started = trio.current_time()
    await raises("M_NOT_YET_UPLOADED", media.download("localhost", media_id, timeout_ms=10**12))
    assert trio.current_time() - started == MAX_WAIT_MS / 1000  # virtual time: nothing waited
