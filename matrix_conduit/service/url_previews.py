"""URL previews: the OpenGraph data of a web page, its image kept as our own media.

Spec: `data/api/client-server/authed-content-repo.yaml` and
`content-repo.yaml` (`GET /media/preview_url`): the page's OpenGraph
properties, with `og:image` an `mxc://` URI of this server and
`matrix:image:size` its size in bytes; `ts` asks for the preview as of a
point in time, and "the server may return a newer version".

Off unless `url_preview_enabled` (as in Synapse): fetching any URL a user
names reveals the server's address to that site and costs its bandwidth, an
admin's choice. Every fetch (the page, its redirects, its image) goes through
`GuardedHttp` with `url_preview_ip_range_denylist`/`_allowlist`, within
`url_preview_max_size` bytes and `url_preview_timeout` seconds.

A preview is kept for `CACHE_MS` (an hour, as Synapse) under its URL and the
time it was made; a request whose `ts` falls in the hour of a kept preview
gets that one, one for a time with none gets the freshest still valid, else
the page is fetched again. Kept previews are purged `HISTORY_MS` after they
were made; their images stay, as any upload does. Requests for a URL while
it is being fetched wait for that fetch rather than fetch it again.
"""

from __future__ import annotations

import io
import json
import os.path
from typing import Any
from urllib.parse import unquote, urlsplit

import trio

from ..core.opengraph import is_html, parse_opengraph
from ..errors import MatrixError
from ..storage import Database
from ..storage.kv import from_u64, join_key, u64
from .clock import Clock, now_ms
from .guarded_http import FetchError, FetchForbidden, FetchTimedOut, FetchTooLarge, GuardedHttp
from .media import Media

CACHE_MS = 60 * 60 * 1000
HISTORY_MS = 24 * 60 * 60 * 1000
MAX_URL_LENGTH = 4096

TREES = ("urlts_preview",)


class UrlPreviews:
    def __init__(
        self,
        db: Database,
        media: Media,
        fetcher: GuardedHttp,
        *,
        max_bytes: int,
        timeout: float,
        clock: Clock = now_ms,
    ) -> None:
        self._previews = db.tree("urlts_preview")
        self._media = media
        self._fetcher = fetcher
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._clock = clock
        self._in_flight: dict[str, trio.Event] = {}

    async def preview(self, requester: str, url: str, ts: int | None = None) -> dict[str, Any]:
        """The OpenGraph data of `url` as of `ts` (default: now), fetched if none is kept.

        400 `M_INVALID_PARAM` for a URL that is not http(s); 403 `M_FORBIDDEN`
        when it (or a redirect) leads to a denied address; 502 `M_TOO_LARGE`
        past the size limit; 504 when the site is too slow; 502 when it cannot
        be reached or does not answer 200.
        """
        _check_url(url)
        while True:
            kept = self._kept(url, self._clock() if ts is None else ts)
            if kept is not None:
                return kept
            in_flight = self._in_flight.get(url)
            if in_flight is None:
                break
            await in_flight.wait()
            if self._kept(url, self._clock()) is None:
                break  # that fetch failed; this request tries (and reports) on its own
        finished = self._in_flight[url] = trio.Event()
        try:
            downloaded_ts = self._clock()
            og = await self._make_preview(requester, url)
            entry = {"og": og, "expires_ts": downloaded_ts + CACHE_MS}
            self._previews.put(join_key(url, u64(downloaded_ts)), json.dumps(entry).encode())
            return og
        finally:
            del self._in_flight[url]
            finished.set()

    def purge_expired(self) -> None:
        """Forget previews made more than `HISTORY_MS` ago (run by the cleanup loop)."""
        oldest_kept = self._clock() - HISTORY_MS
        for key, _ in list(self._previews.iter_prefix()):
            if from_u64(key[-8:]) < oldest_kept:
                self._previews.delete(key)

    def _kept(self, url: str, ts: int) -> dict[str, Any] | None:
        now = self._clock()
        fresh: dict[str, Any] | None = None
        for key, value in self._previews.iter_prefix(join_key(url, b""), reverse=True):
            entry = json.loads(value)
            downloaded_ts = from_u64(key[-8:])
            if downloaded_ts <= ts < entry["expires_ts"]:
                return entry["og"]
            if fresh is None and entry["expires_ts"] > now:
                fresh = entry["og"]
        return fresh

    async def _make_preview(self, requester: str, url: str) -> dict[str, Any]:
        page = await self._get(url)
        content_type = page.headers.get("content-type", "")
        if is_html(content_type):
            og: dict[str, Any] = parse_opengraph(page.body, page.url, content_type)
            image_url = og.pop("og:image", None)
            if image_url is not None:
                try:
                    image = await self._get(image_url)
                except MatrixError:
                    return og  # a page whose image cannot be had is still previewed
                og.update(await self._kept_image(requester, image.body, image.headers, image_url))
            return og
        if content_type.split(";", 1)[0].strip().lower().startswith("image/"):
            return await self._kept_image(requester, page.body, page.headers, page.url)
        return {}

    async def _get(self, url: str) -> Any:
        try:
            answer = await self._fetcher.fetch(
                "GET", url, timeout=self._timeout, max_bytes=self._max_bytes
            )
        except FetchForbidden as error:
            raise MatrixError(403, "M_FORBIDDEN", f"Cannot preview {url}: {error}.") from None
        except FetchTooLarge as error:
            raise MatrixError(
                502, "M_TOO_LARGE", f"Cannot preview {url}: {error} (url_preview_max_size)."
            ) from None
        except FetchTimedOut as error:
            raise MatrixError(
                504, "M_UNKNOWN", f"Cannot preview {url}: {error} (url_preview_timeout)."
            ) from None
        except FetchError as error:
            raise MatrixError(502, "M_UNKNOWN", f"Cannot preview {url}: {error}.") from None
        if answer.status != 200:
            raise MatrixError(
                502, "M_UNKNOWN", f"Cannot preview {url}: it answered HTTP {answer.status}."
            )
        return answer

    async def _kept_image(
        self, requester: str, data: bytes, headers: Any, url: str
    ) -> dict[str, Any]:
        """`og:image` (as our own media), its type, size and dimensions; `{}` if not an image."""
        from PIL import Image, UnidentifiedImageError  # here, not at startup: idle memory

        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                image_type = Image.MIME.get(image.format or "", None)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            return {}
        content_type = image_type or headers.get("content-type", "application/octet-stream")
        filename = os.path.basename(unquote(urlsplit(url).path)) or None
        mxc = await self._media.upload(requester, data, content_type, filename)
        return {
            "og:image": mxc,
            "og:image:type": content_type,
            "og:image:width": width,
            "og:image:height": height,
            "matrix:image:size": len(data),
        }


def _check_url(url: str) -> None:
    if len(url) > MAX_URL_LENGTH:
        raise MatrixError(
            400, "M_INVALID_PARAM", f"url is longer than {MAX_URL_LENGTH} characters."
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MatrixError(400, "M_INVALID_PARAM", f"url {url!r} is not an http or https URL.")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise MatrixError(400, "M_INVALID_PARAM", f"url {url!r} has an invalid port.") from None
