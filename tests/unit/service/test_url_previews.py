"""Which kept preview a `preview_url` request gets: per URL, per `ts`, for an hour.

Spec: `data/api/client-server/authed-content-repo.yaml` (`ts`: "The preferred
point in time to return a preview for. The server may return a newer
version if it does not have the requested version available."). A stub
fetcher stands in for the web (whose real fetching is
`tests/integration/test_url_previews.py`); the clock moves when the test says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from matrix_conduit.service.guarded_http import Fetched, FetchError
from matrix_conduit.service.media import Media
from matrix_conduit.service.media_files import MediaFiles
from matrix_conduit.service.url_previews import CACHE_MS, HISTORY_MS, UrlPreviews
from matrix_conduit.storage import open_database
from tests.support.service_parts import START_MS, FakeClock

URL = "https://example.org/page"
HOUR = 60 * 60 * 1000


class VersionedPage:
    """A page whose title says how often it was fetched (or a fetch that fails)."""

    def __init__(self) -> None:
        self.fetches = 0
        self.failing = False

    async def fetch(self, method: str, url: str, **_: Any) -> Fetched:
        if self.failing:
            raise FetchError("down")
        self.fetches += 1
        body = f"<title>version {self.fetches}</title>".encode()
        return Fetched(url, 200, httpx.Headers({"content-type": "text/html"}), body)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def page() -> VersionedPage:
    return VersionedPage()


@pytest.fixture
def previews(tmp_path: Path, clock: FakeClock, page: VersionedPage):
    db = open_database("leveldb", str(tmp_path / "db"))
    media = Media(db, "localhost", MediaFiles(str(tmp_path / "media")), clock=clock)
    yield UrlPreviews(db, media, page, max_bytes=10**6, timeout=10, clock=clock)  # type: ignore[arg-type]
    db.close()


async def title(previews: UrlPreviews, ts: int | None = None) -> str:
    return (await previews.preview("@alice:localhost", URL, ts))["og:title"]


async def test_a_preview_is_kept_for_an_hour_then_fetched_again(previews, clock, page) -> None:
    assert await title(previews) == "version 1"
    clock.advance(CACHE_MS - 1)
    assert await title(previews) == "version 1"
    clock.advance(1)
    assert await title(previews) == "version 2"
    assert page.fetches == 2


async def test_ts_picks_the_preview_that_was_current_then(previews, clock) -> None:
    assert await title(previews) == "version 1"  # made at START_MS, valid for an hour
    clock.advance(2 * HOUR)
    assert await title(previews) == "version 2"  # made at START_MS + 2 h
    assert await title(previews, START_MS + HOUR // 2) == "version 1"
    assert await title(previews, START_MS + 2 * HOUR + 1) == "version 2"
    # No preview covers this time: "the server may return a newer version".
    assert await title(previews, START_MS + HOUR + HOUR // 2) == "version 2"
    assert await title(previews, START_MS - HOUR) == "version 2"


async def test_previews_older_than_the_history_are_purged(previews, clock, page) -> None:
    await title(previews)
    clock.advance(HISTORY_MS + 1)
    previews.purge_expired()
    clock.advance(-HISTORY_MS)  # back to a time the purged preview covered
    assert await title(previews, START_MS + 1) == "version 2"
    assert page.fetches == 2


async def test_a_failed_fetch_is_not_kept(previews, page) -> None:
    page.failing = True
    with pytest.raises(Exception, match="down"):
        await title(previews)
    page.failing = False
    assert await title(previews) == "version 1"
