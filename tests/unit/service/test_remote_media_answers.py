"""Reading other servers' media answers: the `multipart/mixed` body, its types and names.

Spec: `data/api/server-server/content_repository.yaml` (exactly two parts,
JSON then the file; a boundary per RFC 2046 § 5.1) and RFC 6266 for the file
name of `Content-Disposition` (`filename*` included). The federation tests
cover the same parser over the network; these are the edge cases in a table.
"""

from __future__ import annotations

import pytest

from matrix_conduit.service.federation.remote_media import (
    DEFAULT_CONTENT_TYPE,
    BadAnswer,
    content_type_of,
    filename_of,
    parse_multipart,
)
from tests.support.remote_media import multipart_body

BOUNDARY = "6f1c"
CONTENT_TYPE = f"multipart/mixed; boundary={BOUNDARY}"


def test_a_file_with_line_breaks_and_near_boundaries_comes_out_byte_for_byte():
    file = b"\r\n--6f1\r\n--6f1cX\r\n\r\n\x00\xff\r\n"
    body = multipart_body(BOUNDARY, [([("Content-Type", "application/json")], b"{}"), ([], file)])

    metadata, media = parse_multipart(CONTENT_TYPE, body)

    assert metadata.headers == {"content-type": "application/json"}
    assert bytes(metadata.data) == b"{}"
    assert bytes(media.data) == file


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("application/json", b"{}", "not multipart/mixed"),
        ("multipart/mixed", b"--x--\r\n", "no boundary"),
        (CONTENT_TYPE, b"--6f1c\r\nContent-Type: text/plain\r\n\r\nhalf", "closing boundary"),
        (CONTENT_TYPE, b"no delimiter at all", "no delimiter"),
        (
            CONTENT_TYPE,
            b"--6f1c\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(40)) + b"\r\n--6f1c--",
            "malformed",
        ),
    ],
)
def test_broken_multipart_bodies_are_refused(content_type, body, reason):
    with pytest.raises(BadAnswer, match=reason):
        parse_multipart(content_type, body)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("image/png", "image/png"),
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
        (None, DEFAULT_CONTENT_TYPE),
        ("", DEFAULT_CONTENT_TYPE),
        ("png", DEFAULT_CONTENT_TYPE),
        ("image/png\x00", DEFAULT_CONTENT_TYPE),
        ("image/" + "p" * 300, DEFAULT_CONTENT_TYPE),
    ],
)
def test_a_remote_content_type_is_kept_only_if_it_is_one(value, expected):
    assert content_type_of(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('inline; filename="holiday.png"', "holiday.png"),
        ("attachment; filename*=utf-8''%C3%84rger.pdf", "Ärger.pdf"),
        ("inline", None),
        (None, None),
        ('inline; filename="' + "a" * 400 + '"', "a" * 255),
    ],
)
def test_the_file_name_of_a_content_disposition(value, expected):
    assert filename_of(value) == expected
