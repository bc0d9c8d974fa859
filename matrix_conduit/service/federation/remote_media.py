"""Fetching another server's media: the authenticated federation endpoint, then the legacy one.

Spec: `content/server-server-api.md` § Content Repository and
`data/api/server-server/content_repository.yaml`: servers MUST first try
`GET /_matrix/federation/v1/media/download/{mediaId}` (a signed request; the
answer is `multipart/mixed`: a JSON part, then the file), and fall back to the
deprecated `GET /_matrix/media/v3/download/{serverName}/{mediaId}` with
`allow_remote=false` only when that answers 404 `M_UNRECOGNIZED` (a server
that does not know the endpoint; as Synapse does, also a 404/405 whose body is
not JSON, which is what older servers send). `content/client-server-api/
modules/content_repo.md` § Security considerations: remote files larger than
this server's limit are neither proxied nor stored (502 `M_TOO_LARGE`).

Both requests go through the federation client (signed, IP ranges, backoff).
The answer is read up to `max_file_bytes` (plus a little for the multipart
framing) and no further: a larger one is refused as it streams in, and
nothing of it is kept. The multipart answer is parsed by `python-multipart`
(the parser Synapse uses for the same answer), strictly: exactly the closing
boundary must arrive, the first part must be JSON, the second the file.
A second part with a `Location` (the remote's redirect to elsewhere) is
refused: following it would fetch an arbitrary URL outside federation's
checks.

`timeout_ms` is the client's: passed on to the remote (how long it may wait
for a pending upload), and bounding the whole fetch, both attempts together,
to that plus `TRANSFER_ALLOWANCE_SECONDS`. Every failure is a `MatrixError`
for the client: 404 `M_NOT_FOUND` when the remote has no such media, 504
`M_NOT_YET_UPLOADED` passed on, 502 `M_TOO_LARGE`, and 502 `M_UNKNOWN` (as
Synapse answers) when the remote is down, slow, backed off or answers nonsense.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field

import trio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser
from werkzeug.http import parse_options_header

from ...errors import MatrixError, not_found
from ..outgoing_http import HttpAnswer
from .client import FederationClient
from .errors import (
    AnswerTooLarge,
    FederationDisabled,
    FederationError,
)

logger = logging.getLogger(__name__)

FEDERATION_DOWNLOAD = "/_matrix/federation/v1/media/download/{media_id}"
LEGACY_DOWNLOAD = "/_matrix/media/v3/download/{server_name}/{media_id}"
MAX_TIMEOUT_MS = 60_000
"""The longest `timeout_ms` passed on (the same cap as for local pending uploads)."""
TRANSFER_ALLOWANCE_SECONDS = 20.0
"""Time for the transfer itself, beyond the `timeout_ms` the remote may wait."""
MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""What a multipart answer may hold besides the file: boundaries, headers, the JSON part."""
MAX_PART_HEADERS = 16
MAX_CONTENT_TYPE_LENGTH = 255
MAX_FILENAME_LENGTH = 255
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_CONTENT_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+(;[ -~]*)?")


@dataclass(frozen=True)
class RemoteFile:
    """A remote server's media as it sent it."""

    data: bytes
    content_type: str
    filename: str | None


class BadAnswer(Exception):
    """The remote's answer is not what the endpoint promises."""


class RemoteMediaFetcher:
    """Downloads `mxc://{server_name}/{media_id}` from its server, within a size limit."""

    def __init__(self, client: FederationClient, max_file_bytes: int) -> None:
        self._client = client
        self.max_file_bytes = max_file_bytes

    async def fetch(self, server_name: str, media_id: str, *, timeout_ms: int) -> RemoteFile:
        """The file from its server (federation endpoint first, then the legacy one).

        `server_name` and `media_id` must already be valid (the media service checks).
        """
        wait_ms = min(max(timeout_ms, 0), MAX_TIMEOUT_MS)
        deadline = trio.current_time() + wait_ms / 1000 + TRANSFER_ALLOWANCE_SECONDS
        try:
            remote_file = await self._download(server_name, media_id, wait_ms, deadline)
        except AnswerTooLarge:
            raise self._too_large(server_name) from None
        except FederationDisabled:
            raise not_found(
                f"mxc://{server_name}/{media_id} is on another server, and federation is "
                "disabled on this one (allow_federation = false)."
            ) from None
        except FederationError as error:
            raise _failed(str(error)) from None
        except BadAnswer as error:
            logger.warning(
                "%s sent an unusable answer for media %s: %s", server_name, media_id, error
            )
            raise _failed(f"{server_name} sent an unusable answer: {error}") from None
        if len(remote_file.data) > self.max_file_bytes:
            raise self._too_large(server_name)
        return remote_file

    async def _download(
        self, server_name: str, media_id: str, wait_ms: int, deadline: float
    ) -> RemoteFile:
        """The file through the federation endpoint, or the legacy one if it is unknown there."""
        answer = await self._get(
            server_name,
            FEDERATION_DOWNLOAD.format(media_id=media_id),
            {"timeout_ms": str(wait_ms)},
            deadline,
            self.max_file_bytes + MULTIPART_OVERHEAD_BYTES,
        )
        if not _is_unknown_endpoint(answer):
            _raise_for_status(server_name, media_id, answer)
            return _multipart_file(answer)
        logger.info("%s has no federation media endpoint; trying the legacy one", server_name)
        answer = await self._get(
            server_name,
            LEGACY_DOWNLOAD.format(server_name=server_name, media_id=media_id),
            {"allow_remote": "false", "allow_redirect": "false", "timeout_ms": str(wait_ms)},
            deadline,
            self.max_file_bytes,
        )
        _raise_for_status(server_name, media_id, answer)
        return _legacy_file(answer)

    async def _get(
        self,
        server_name: str,
        path: str,
        query: dict[str, str],
        deadline: float,
        max_bytes: int,
    ) -> HttpAnswer:
        remaining = deadline - trio.current_time()
        if remaining <= 0:
            raise _failed(f"{server_name} did not deliver the media in time.")
        return await self._client.request_raw(
            server_name,
            "GET",
            path,
            query=query,
            timeout=remaining,
            max_bytes=max_bytes,
            accept="*/*",
        )

    def _too_large(self, server_name: str) -> MatrixError:
        return MatrixError(
            502,
            "M_TOO_LARGE",
            f"The media on {server_name} is larger than this server's limit of "
            f"{self.max_file_bytes} bytes (max_request_size).",
        )


def _failed(reason: str) -> MatrixError:
    return MatrixError(502, "M_UNKNOWN", f"Failed to fetch remote media: {reason}")


def _error_body(answer: HttpAnswer) -> dict | None:
    try:
        parsed = json.loads(answer.body)
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _is_unknown_endpoint(answer: HttpAnswer) -> bool:
    """404/405 with `M_UNRECOGNIZED`, or with a body that is not JSON (older servers)."""
    if answer.status not in (404, 405):
        return False
    body = _error_body(answer)
    return body is None or body.get("errcode") == "M_UNRECOGNIZED"


def _raise_for_status(server_name: str, media_id: str, answer: HttpAnswer) -> None:
    """The client's error for a non-200 answer of the remote."""
    if answer.status == 200:
        return
    body = _error_body(answer) or {}
    errcode = str(body.get("errcode", ""))[:100]
    message = str(body.get("error", ""))[:300]
    if answer.status == 404:
        raise not_found(f"{server_name} has no media {media_id!r}.")
    if answer.status == 504 and errcode == "M_NOT_YET_UPLOADED":
        raise MatrixError(
            504, "M_NOT_YET_UPLOADED", f"The media on {server_name} has not been uploaded yet."
        )
    if errcode == "M_TOO_LARGE":
        raise MatrixError(502, "M_TOO_LARGE", f"{server_name} will not serve it: too large.")
    raise _failed(f"{server_name} answered {answer.status} {errcode or ''} {message}".strip())


# ---------------------------------------------------------------- answers


def _legacy_file(answer: HttpAnswer) -> RemoteFile:
    return RemoteFile(
        answer.body,
        content_type_of(answer.headers.get("content-type")),
        filename_of(answer.headers.get("content-disposition")),
    )


def _multipart_file(answer: HttpAnswer) -> RemoteFile:
    parts = parse_multipart(answer.headers.get("content-type", ""), answer.body)
    if len(parts) != 2:
        raise BadAnswer(f"{len(parts)} parts in the multipart answer, not 2")
    metadata, media = parts
    if _base_type(metadata.headers.get("content-type", "")) != "application/json":
        raise BadAnswer("the first part is not application/json")
    try:
        json.loads(bytes(metadata.data))
    except (ValueError, UnicodeDecodeError):
        raise BadAnswer("the first part is not JSON") from None
    if "location" in media.headers:
        raise BadAnswer("the file part is a redirect (Location), which this server does not follow")
    return RemoteFile(
        bytes(media.data),
        content_type_of(media.headers.get("content-type")),
        filename_of(media.headers.get("content-disposition")),
    )


@dataclass
class Part:
    """One part of a multipart body: its headers (names lower-cased) and its bytes."""

    headers: dict[str, str] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)


class _Collector:
    """`python-multipart` callbacks that gather the parts of a whole body."""

    def __init__(self) -> None:
        self.parts: list[Part] = []
        self.ended = False
        self._name = bytearray()
        self._value = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_part_data": self._part_data,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self.parts.append(Part())

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        name = self._name.decode("latin-1").strip().lower()
        self.parts[-1].headers[name] = self._value.decode("latin-1").strip()
        self._name.clear()
        self._value.clear()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self.parts[-1].data += data[start:end]

    def _end(self) -> None:
        self.ended = True


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    """The parts of a complete `multipart/mixed` body (RFC 2046); `BadAnswer` otherwise."""
    mime_type, options = parse_options_header(content_type)
    if mime_type.lower() != "multipart/mixed":
        raise BadAnswer(f"the answer is {mime_type or 'untyped'}, not multipart/mixed")
    boundary = options.get("boundary")
    if not boundary:
        raise BadAnswer("the multipart answer names no boundary")
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    if not body.startswith(delimiter):
        # A preamble (RFC 2046 § 5.1.1: to be ignored), which python-multipart refuses.
        start = body.find(b"\r\n" + delimiter)
        if start < 0:
            raise BadAnswer("the multipart answer has no delimiter of its boundary")
        body = body[start + 2 :]
    collector = _Collector()
    try:
        parser = MultipartParser(
            boundary.encode("latin-1"), collector.callbacks(), max_header_count=MAX_PART_HEADERS
        )
        parser.write(body)
        parser.finalize()
    except (MultipartParseError, ValueError, UnicodeEncodeError) as error:
        raise BadAnswer(f"malformed multipart answer: {error}") from None
    if not collector.ended:
        raise BadAnswer("the multipart answer ends before its closing boundary")
    return collector.parts


def _base_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def content_type_of(value: str | None) -> str:
    """The remote's content type if it is one (`type/subtype; params`), else the default."""
    value = (value or "").strip()
    if len(value) <= MAX_CONTENT_TYPE_LENGTH and _CONTENT_TYPE.fullmatch(value):
        return value
    return DEFAULT_CONTENT_TYPE


def filename_of(disposition: str | None) -> str | None:
    """The file name of a `Content-Disposition` (`filename*` of RFC 6266 included)."""
    if not disposition:
        return None
    _, options = parse_options_header(disposition)
    filename = options.get("filename")
    return filename[:MAX_FILENAME_LENGTH] if filename else None
