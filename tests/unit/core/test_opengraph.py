"""OpenGraph data of HTML pages, as URL previews report it.

Spec: `data/api/client-server/authed-content-repo.yaml` (`preview_url`: "The
OpenGraph data for the URL, which may be empty", https://ogp.me/); the
stand-ins for missing tags follow Synapse.
"""

from __future__ import annotations

import pytest

from matrix_conduit.core.opengraph import (
    DESCRIPTION_LENGTH,
    MAX_OG_TAGS,
    charset_of,
    is_html,
    parse_opengraph,
)

PAGE = "https://example.org/blog/post"


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (b'<meta property="og:title" content="T"><title>Other</title>', {"og:title": "T"}),
        (b"<title>\n  Spread\n over  lines </title>", {"og:title": "Spread over lines"}),
        (b"<h1>Heading</h1><h2>Sub</h2>", {"og:title": "Heading"}),
        (b'<meta name="description" content="D">', {"og:description": "D"}),
        (b"<body><p>One.</p><p></p><p>Two <b>bold</b>.</p></body>",
         {"og:description": "One. Two bold."}),
        (b'<meta property="og:image" content="/i.png">', {"og:image": "https://example.org/i.png"}),
        (b'<meta property="og:image" content="pic.jpg">',
         {"og:image": "https://example.org/blog/pic.jpg"}),
        (b'<meta itemprop="image" content="//cdn.example/i.png">',
         {"og:image": "https://cdn.example/i.png"}),
        (b'<link rel="image_src" href="/l.png">', {"og:image": "https://example.org/l.png"}),
        (b'<img src="/first.png"><img src="/second.png">',
         {"og:image": "https://example.org/first.png"}),
        (b'<meta property="og:image" content="javascript:alert(1)">', {}),
        (b'<meta property="og:image" content="data:image/png;base64,AAAA">', {}),
        (b'<meta property="og:image" content="a.png"><meta property="og:image" content="b.png">',
         {"og:image": "https://example.org/blog/a.png"}),
        (b'<meta property="og:title" content="">', {}),
        (b"", {}),
        (b"\x00\x01\x02 not html at all", {}),
        (b"<html><head><title>Unclosed", {"og:title": "Unclosed"}),
    ],
)  # fmt: skip
def test_properties_and_their_stand_ins(html: bytes, expected: dict) -> None:
    assert parse_opengraph(html, PAGE) == expected


def test_the_charset_comes_from_the_header_then_the_meta_tag_then_utf8() -> None:
    latin1 = "<title>café</title>".encode("latin-1")
    assert parse_opengraph(latin1, PAGE, "text/html; charset=ISO-8859-1") == {"og:title": "café"}
    meta = b'<meta charset="iso-8859-1">' + latin1
    assert parse_opengraph(meta, PAGE) == {"og:title": "café"}
    assert parse_opengraph("<title>café</title>".encode(), PAGE) == {"og:title": "café"}


def test_a_page_with_thousands_of_og_tags_gives_at_most_the_limit() -> None:
    tags = b"".join(b'<meta property="og:x%d" content="v">' % i for i in range(5000))
    assert len(parse_opengraph(tags, PAGE)) == MAX_OG_TAGS


def test_a_description_from_the_text_is_cut_to_length() -> None:
    html = b"<body>" + b"<p>" + b"word " * 1000 + b"</p></body>"
    description = parse_opengraph(html, PAGE)["og:description"]
    assert len(description) == DESCRIPTION_LENGTH and description.endswith("…")


@pytest.mark.parametrize(
    ("content_type", "html"),
    [("text/html", True), ("text/html; charset=utf-8", True), ("TEXT/HTML", True),
     ("application/xhtml+xml", True), ("image/png", False), ("text/plain", False), ("", False)],
)  # fmt: skip
def test_is_html(content_type: str, html: bool) -> None:
    assert is_html(content_type) is html


@pytest.mark.parametrize(
    ("content_type", "charset"),
    [("text/html; charset=UTF-8", "utf-8"), ('text/html; charset="latin1"', "iso8859-1"),
     ("text/html; charset=no-such-codec", None), ("text/html", None)],
)  # fmt: skip
def test_charset_of(content_type: str, charset: str | None) -> None:
    assert charset_of(content_type) == charset
