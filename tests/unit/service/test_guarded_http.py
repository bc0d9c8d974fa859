"""Requests to URLs users name connect only to the addresses checked, hop by hop.

Spec: none (server-side request forgery protection for URL previews and
identity servers, as Synapse's `url_preview_ip_range_blacklist`). A stub
resolver plays DNS, web pages of the test's own (`tests/support/web_pages.py`)
answer on 127.0.0.1 and 127.0.0.2.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from matrix_conduit.core.ip_ranges import DEFAULT_DENYLIST, IpRanges
from matrix_conduit.service.guarded_http import FetchForbidden, GuardedHttp
from matrix_conduit.service.outgoing_http import OutgoingHttp
from tests.support.server import make_config
from tests.support.web_pages import serving_pages


class RebindingResolver:
    """DNS whose answers for a name change from one lookup to the next."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self._answers = answers
        self.lookups: list[str] = []

    async def srv(self, name: str) -> list[tuple[str, int]]:
        return []

    async def addresses(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self._answers[host].pop(0)


@pytest.fixture
def pages():
    with serving_pages(["127.0.0.1", "127.0.0.2"]) as pages:
        yield pages


def guarded(tmp_path: Path, resolver: RebindingResolver) -> GuardedHttp:
    http = OutgoingHttp(make_config(tmp_path))
    ranges = IpRanges.parse(DEFAULT_DENYLIST, ["127.0.0.1/32"])
    return GuardedHttp(http, resolver, ranges, denylist_name="the_denylist")


async def test_a_name_is_connected_to_at_the_address_checked_with_its_host_header(
    tmp_path, pages
) -> None:
    resolver = RebindingResolver({"pages.test": [["127.0.0.1"]]})
    port = pages.ports["127.0.0.1"]
    answer = await guarded(tmp_path, resolver).fetch(
        "GET", f"http://pages.test:{port}/article", timeout=10, max_bytes=10**6
    )
    assert answer.status == 200 and b"og:title" in answer.body
    assert pages.hits["127.0.0.1"] == 1


async def test_a_name_that_rebinds_to_a_denied_address_on_a_redirect_is_refused(
    tmp_path, pages
) -> None:
    """Every hop resolves and checks again: the second answer (127.0.0.2) is denied."""
    resolver = RebindingResolver({"pages.test": [["127.0.0.1"], ["127.0.0.2"]]})
    port = pages.ports["127.0.0.1"]
    with pytest.raises(FetchForbidden, match="the_denylist"):
        await guarded(tmp_path, resolver).fetch(
            "GET",
            f"http://pages.test:{port}/redirect?to=http://pages.test:{port}/article",
            timeout=10,
            max_bytes=10**6,
        )
    assert resolver.lookups == ["pages.test", "pages.test"]
    assert pages.hits["127.0.0.2"] == 0


async def test_only_the_allowed_addresses_of_a_name_are_tried(tmp_path, pages) -> None:
    resolver = RebindingResolver({"pages.test": [["127.0.0.2", "127.0.0.1"]]})
    port = pages.ports["127.0.0.1"]
    answer = await guarded(tmp_path, resolver).fetch(
        "GET", f"http://pages.test:{port}/plain", timeout=10, max_bytes=10**6
    )
    assert answer.status == 200
    assert pages.hits["127.0.0.2"] == 0


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://pages.test/", "http:///path"])
async def test_urls_that_are_not_http_are_refused(tmp_path, url: str) -> None:
    with pytest.raises(FetchForbidden):
        await guarded(tmp_path, RebindingResolver({})).fetch(
            "GET", url, timeout=10, max_bytes=10**6
        )
