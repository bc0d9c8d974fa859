"""OpenGraph data of an HTML page, for URL previews: pure, no I/O.

Spec: `data/api/client-server/authed-content-repo.yaml` (`GET
/media/preview_url`: "The OpenGraph data for the URL", https://ogp.me/).

Pages found in messages are anything but well-formed, so the parser is
lxml's HTML parser in recovering mode (libxml2: fast, fuzzed, kept up, and
shipped as manylinux wheels for CPython on Debian 12, so no compiler is
needed). Where a page has no `og:` tags, the usual stand-ins fill in, as
Synapse does: `<title>` or the first heading for `og:title`, the `description`
meta tag or the first paragraphs' text for `og:description`, an
`itemprop=image` meta tag, a `rel=image_src` link or the first `<img>` for
`og:image`. The image is returned as the absolute URL it names; fetching it
and replacing it by an `mxc://` URI is the service's part.
"""

from __future__ import annotations

import codecs
import re
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

if TYPE_CHECKING:
    import lxml.etree

MAX_OG_TAGS = 50
"""At most this many `og:` properties are taken from a page (a hostile page may have thousands)."""
MAX_VALUE_LENGTH = 1000
"""Longer values are cut there: a preview is a line or two, not the page."""
DESCRIPTION_LENGTH = 500
"""`og:description` made from the page's text is at most this long."""

_CHARSET_IN_META = re.compile(rb'<\s*meta[^>]*charset\s*=\s*["\']?\s*([a-zA-Z0-9_:.-]+)', re.I)
_WHITESPACE = re.compile(r"\s+")


def is_html(content_type: str) -> bool:
    """Does a `Content-Type` name an HTML (or XHTML) document?"""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in ("text/html", "application/xhtml+xml")


def charset_of(content_type: str) -> str | None:
    """The `charset` parameter of a `Content-Type`, if it names a codec Python knows."""
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return _known_codec(value.strip().strip("\"'"))
    return None


def parse_opengraph(body: bytes, page_url: str, content_type: str = "text/html") -> dict[str, str]:
    """The page's OpenGraph properties, with stand-ins for the missing ones.

    Relative URLs (`og:image`, `og:url`) are made absolute against `page_url`;
    an `og:image` that is not http(s) is dropped. A page that cannot be
    parsed at all gives `{}` (the spec's "may be empty").
    """
    tree = _parse(body, content_type)
    if tree is None:
        return {}
    og = _og_tags(tree)
    if "og:title" not in og:
        title = (
            _first_text(tree, "//title") or _first_text(tree, "//h1") or _first_text(tree, "//h2")
        )
        if title:
            og["og:title"] = title
    if "og:description" not in og:
        description = _meta(tree, "name", "description") or _text_summary(tree)
        if description:
            og["og:description"] = description
    if "og:image" not in og:
        image = (
            _meta(tree, "itemprop", "image")
            or _attribute(tree, "//link[@rel='image_src']/@href")
            or _attribute(tree, "//img[@src]/@src")
        )
        if image:
            og["og:image"] = image
    for key in ("og:image", "og:url"):
        if key in og:
            absolute = _absolute_http_url(og[key], page_url)
            if absolute is None:
                del og[key]
            else:
                og[key] = absolute
    return og


def _parse(body: bytes, content_type: str) -> lxml.etree._Element | None:
    encoding = charset_of(content_type) or _meta_charset(body) or "utf-8"
    import lxml.etree  # at the first preview, not at startup (idle memory: ~7 MiB)

    parser = lxml.etree.HTMLParser(recover=True, encoding=encoding, no_network=True)
    try:
        tree = lxml.etree.fromstring(body, parser)
    except (lxml.etree.ParserError, lxml.etree.XMLSyntaxError, ValueError):
        return None
    return tree


def _meta_charset(body: bytes) -> str | None:
    match = _CHARSET_IN_META.search(body[:4096])
    return _known_codec(match.group(1).decode("ascii")) if match else None


def _known_codec(name: str) -> str | None:
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _og_tags(tree: lxml.etree._Element) -> dict[str, str]:
    og: dict[str, str] = {}
    for tag in tree.xpath("//meta[starts-with(@property, 'og:')][@content]"):
        if len(og) >= MAX_OG_TAGS:
            break
        key = str(tag.get("property"))[:100]
        value = _clean(str(tag.get("content")))
        if value and key not in og:  # the first of repeated properties (og:image arrays)
            og[key] = value
    return og


def _meta(tree: lxml.etree._Element, attribute: str, name: str) -> str | None:
    for value in tree.xpath(f"//meta[@{attribute}=$name]/@content", name=name):
        cleaned = _clean(str(value))
        if cleaned:
            return cleaned
    return None


def _attribute(tree: lxml.etree._Element, path: str) -> str | None:
    for value in tree.xpath(path):
        cleaned = str(value).strip()
        if cleaned:
            return cleaned
    return None


def _first_text(tree: lxml.etree._Element, path: str) -> str | None:
    for element in tree.xpath(path):
        text = _clean("".join(element.itertext()))
        if text:
            return text
    return None


def _text_summary(tree: lxml.etree._Element) -> str | None:
    """The first paragraphs' text, up to `DESCRIPTION_LENGTH` characters."""
    parts: list[str] = []
    length = 0
    for paragraph in tree.xpath("//body//p"):
        text = _clean("".join(paragraph.itertext()))
        if not text:
            continue
        parts.append(text)
        length += len(text) + 1
        if length >= DESCRIPTION_LENGTH:
            break
    summary = " ".join(parts)
    if len(summary) > DESCRIPTION_LENGTH:
        summary = summary[: DESCRIPTION_LENGTH - 1].rstrip() + "…"
    return summary or None


def _clean(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()[:MAX_VALUE_LENGTH]


def _absolute_http_url(reference: str, page_url: str) -> str | None:
    absolute = urljoin(page_url, reference)
    return absolute if urlsplit(absolute).scheme in ("http", "https") else None
