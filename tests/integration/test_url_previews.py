"""URL previews over HTTP, against web pages of the test's own on loopback.

Spec: `data/api/client-server/authed-content-repo.yaml` (`GET
/_matrix/client/v1/media/preview_url`) and `content-repo.yaml` (`GET
/_matrix/media/v3/preview_url`): OpenGraph data, `og:image` an `mxc://` URI
with `matrix:image:size`, `ts` for a point in time. What may be fetched:
`url_preview_ip_range_denylist`/`_allowlist` (the default denylist blocks
127.0.0.0/8; the main server here allows only 127.0.0.1, so 127.0.0.2 is a
blocked address on the same machine). The parser's cases in detail:
`tests/unit/core/test_opengraph.py`.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.matrix import User, assert_error, ok, register
from tests.support.shared_server import shared_server_fixtures
from tests.support.web_pages import PNG_BYTES, WebPages, serving_pages

ALLOWED = "127.0.0.1"
BLOCKED = "127.0.0.2"

running_server, server = shared_server_fixtures(
    url_preview_enabled=True,
    url_preview_ip_range_allowlist=[f"{ALLOWED}/32"],
    url_preview_max_size=1024 * 1024,
    url_preview_timeout=3.0,
)
running_default_server, default_server = shared_server_fixtures(
    "default_server", url_preview_enabled=True
)
running_disabled_server, disabled_server = shared_server_fixtures("disabled_server")

AUTHENTICATED = "/_matrix/client/v1/media/preview_url"
LEGACY = "/_matrix/media/v3/preview_url"


@pytest.fixture(scope="module")
def pages() -> Any:
    with serving_pages([ALLOWED, BLOCKED]) as pages:
        yield pages


async def preview(user: User, url: str, path: str = AUTHENTICATED, **params: Any) -> httpx.Response:
    return await user.http.get(
        path,
        params={"url": url, **params},
        headers={"Authorization": f"Bearer {user.access_token}"},
    )


async def download(user: User, mxc: str) -> bytes:
    response = await user.http.get(
        f"/_matrix/client/v1/media/download/{mxc.removeprefix('mxc://')}",
        headers={"Authorization": f"Bearer {user.access_token}"},
    )
    assert response.status_code == 200, response.text
    return response.content


async def test_a_page_previews_as_its_opengraph_title_description_and_image_kept_here(
    server, pages: WebPages
) -> None:
    """The og: properties of the page; og:image fetched, stored as our media (mxc://)."""
    user = await register(server)
    og = ok(await preview(user, pages.url(ALLOWED, "/article")))
    assert og["og:title"] == "Café opening"
    assert og["og:description"] == "A new café opens on the square."
    assert og["og:type"] == "article"
    assert og["og:image"].startswith(f"mxc://{server.config.server_name}/")
    assert og["og:image:type"] == "image/png"
    assert (og["og:image:width"], og["og:image:height"]) == (40, 30)
    assert og["matrix:image:size"] == len(PNG_BYTES)
    assert await download(user, og["og:image"]) == PNG_BYTES


async def test_a_page_without_opengraph_tags_previews_from_title_meta_description_and_img(
    server, pages: WebPages
) -> None:
    """Stand-ins as Synapse uses them: <title>, meta description, the first <img>."""
    user = await register(server)
    og = ok(await preview(user, pages.url(ALLOWED, "/plain"), path=LEGACY))
    assert og["og:title"] == "A plain page"
    assert og["og:description"] == "Described in a meta tag"
    assert await download(user, og["og:image"]) == PNG_BYTES


async def test_an_image_url_previews_as_the_image(server, pages: WebPages) -> None:
    """A URL that is not HTML but an image: og:image is that image, kept here."""
    user = await register(server)
    og = ok(await preview(user, pages.url(ALLOWED, "/image.png")))
    assert og["og:image:type"] == "image/png"
    assert og["matrix:image:size"] == len(PNG_BYTES)
    assert await download(user, og["og:image"]) == PNG_BYTES


async def test_a_url_neither_html_nor_image_previews_as_empty(server, pages: WebPages) -> None:
    """The spec: "The OpenGraph data for the URL, which may be empty"."""
    user = await register(server)
    assert ok(await preview(user, pages.url(ALLOWED, "/document.pdf"))) == {}


async def test_a_preview_is_cached_per_url_and_the_page_fetched_once(
    server, pages: WebPages
) -> None:
    """A second request (also with `ts` now) gets the kept preview; another URL is fetched."""
    user = await register(server)
    url = pages.url(ALLOWED, "/counted/cached")
    first = ok(await preview(user, url))
    assert first["og:title"] == "requested 1 times"
    assert ok(await preview(user, url)) == first
    assert ok(await preview(user, url, ts=2**53)) == first  # "may return a newer version"
    assert pages.paths["/counted/cached"] == 1
    other = ok(await preview(user, pages.url(ALLOWED, "/counted/other")))
    assert other["og:title"] == "requested 1 times"


async def test_a_page_on_a_blocked_address_is_refused_without_a_request(
    server, pages: WebPages
) -> None:
    """The denylist: 403 M_FORBIDDEN naming the config key; the address never reached."""
    user = await register(server)
    before = pages.hits[BLOCKED]
    error = assert_error(await preview(user, pages.url(BLOCKED, "/article")), 403, "M_FORBIDDEN")
    assert "url_preview_ip_range_denylist" in error["error"]
    assert pages.hits[BLOCKED] == before


async def test_a_redirect_to_a_blocked_address_is_refused(server, pages: WebPages) -> None:
    """Each redirect is checked like the first request: the blocked page is never fetched."""
    user = await register(server)
    before = pages.hits[BLOCKED]
    url = pages.url(ALLOWED, f"/redirect?to={pages.url(BLOCKED, '/article')}")
    assert_error(await preview(user, url), 403, "M_FORBIDDEN")
    assert pages.hits[BLOCKED] == before


async def test_a_redirect_to_an_allowed_page_is_followed(server, pages: WebPages) -> None:
    user = await register(server)
    og = ok(await preview(user, pages.url(ALLOWED, "/redirect?to=/article")))
    assert og["og:title"] == "Café opening"


async def test_by_default_loopback_is_blocked_also_behind_a_host_name(
    default_server, pages: WebPages
) -> None:
    """The default denylist blocks 127.0.0.0/8 and ::1, checked on the resolved address:
    `localhost` is refused as its IP literal is."""
    user = await register(default_server)
    before = pages.hits[ALLOWED]
    port = pages.ports[ALLOWED]
    for url in (f"http://{ALLOWED}:{port}/article", f"http://localhost:{port}/article"):
        assert_error(await preview(user, url), 403, "M_FORBIDDEN")
    assert pages.hits[ALLOWED] == before


async def test_a_page_larger_than_the_limit_is_refused(server, pages: WebPages) -> None:
    """url_preview_max_size bounds the body, declared or streamed: 502 M_TOO_LARGE."""
    user = await register(server)
    for path in ("/huge-declared", "/huge-streamed"):
        error = assert_error(await preview(user, pages.url(ALLOWED, path)), 502, "M_TOO_LARGE")
        assert "url_preview_max_size" in error["error"]


async def test_a_page_that_trickles_in_is_given_up_on(server, pages: WebPages) -> None:
    """url_preview_timeout bounds the whole fetch, not each read: 504."""
    user = await register(server)
    error = assert_error(await preview(user, pages.url(ALLOWED, "/slow")), 504, "M_UNKNOWN")
    assert "url_preview_timeout" in error["error"]


async def test_a_page_that_answers_an_error_is_a_bad_gateway(server, pages: WebPages) -> None:
    user = await register(server)
    assert_error(await preview(user, pages.url(ALLOWED, "/missing")), 502, "M_UNKNOWN")


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({}, "M_MISSING_PARAM"),
        ({"url": "ftp://example.org/file"}, "M_INVALID_PARAM"),
        ({"url": "not a url"}, "M_INVALID_PARAM"),
        ({"url": "http://example.org:99999/"}, "M_INVALID_PARAM"),
        ({"url": "http://example.org/", "ts": "yesterday"}, "M_INVALID_PARAM"),
    ],
)
async def test_malformed_requests_are_400(server, params: dict, errcode: str) -> None:
    user = await register(server)
    response = await user.http.get(
        AUTHENTICATED, params=params, headers={"Authorization": f"Bearer {user.access_token}"}
    )
    assert_error(response, 400, errcode)


async def test_a_preview_needs_an_access_token(server, pages: WebPages) -> None:
    response = await server.client.get(AUTHENTICATED, params={"url": pages.url(ALLOWED, "/")})
    assert_error(response, 401, "M_MISSING_TOKEN")


async def test_with_previews_off_the_endpoint_is_unrecognized(disabled_server) -> None:
    """url_preview_enabled defaults to false: 404 M_UNRECOGNIZED on both paths."""
    user = await register(disabled_server)
    for path in (AUTHENTICATED, LEGACY):
        assert_error(await preview(user, "http://example.org/", path=path), 404, "M_UNRECOGNIZED")
