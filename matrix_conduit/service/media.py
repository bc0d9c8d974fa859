"""The content repository: this server's uploads, their downloads and thumbnails.

Spec: `content/client-server-api/modules/content_repo.md`,
`data/api/client-server/content-repo.yaml` (upload, `/create` and the
deprecated unauthenticated paths) and `authed-content-repo.yaml`.

An upload's bytes go to `MediaFiles` (content-addressed, written atomically)
before its metadata is written, so a media id in the database always has its
whole file; a crash in between leaves at most an unreferenced file. Media ids
are random URL-safe base64, the alphabet the spec allows (`A-Za-z0-9_-`);
ids from requests are checked against that alphabet before any lookup.

`/create` reserves an id for an upload to come (`PUT /upload/{serverName}/
{mediaId}`): only its creator may fill it, once, within `UNUSED_EXPIRY_MS`,
and a user holds at most `MAX_PENDING_UPLOADS` such ids at a time. Downloads
of a reserved id wait for its upload for up to `timeout_ms`, then answer
504 `M_NOT_YET_UPLOADED`. Expired reservations are deleted when they are
next looked at (a download, an upload to them, their creator's next
`/create`).

Thumbnails (`thumbnails.py`) are made in a worker thread at the first
request for a size and stored like uploads, so each is made once; a request
the original answers is remembered as such. Two first requests for the same
size at the same moment may both make it: they store the same file.

Media of other servers (`server-server-api.md` § Content Repository) is
fetched from its server at the first download or thumbnail request
(`federation/remote_media.py`: the authenticated federation endpoint, then the
legacy one), within `max_request_size`, then kept like an upload (its bytes in
`MediaFiles`, its metadata in `remotemedia_metadata`) and served from there,
whether or not its server is up. Concurrent first requests for one remote file
share one fetch (one in flight per server name and media id). A request that
says `allow_remote=false` gets only what is already here. Thumbnails of remote
media are made here from the cached original, as for uploads (what Synapse
does too): one fetch serves every size, the sizes and the decoding limits are
this server's, and they keep working while the remote is down; the remote's
own thumbnail endpoint is not used.

Trees:
- `mediaid_metadata`: media id → JSON {sha256, size, content_type, filename?,
  uploader, created_ts}
- `mediaid_pending`: media id → JSON {uploader, expires_ts}, for ids created
  by `/create` and not uploaded yet
- `userid_pendingmediaid`: user id | media id → expires_ts (u64): each user's
  pending ids, to count them
- `thumbnailkey_thumbnail`: media id | method | width | height (or media id |
  "original", for requests larger than every recommended size) | "animated"/
  "still" → JSON {content_type, sha256?} (no sha256: the original answers)
- `remotemedia_metadata`: server name | media id → JSON {sha256, size,
  content_type, filename?, fetched_ts}: other servers' media kept here
- `remotethumbnailkey_thumbnail`: server name | the key of
  `thumbnailkey_thumbnail` → the same record, for thumbnails of remote media
- `mediakey_quarantined`: server name | media id → JSON {by, ts}: media a
  server admin quarantined (Synapse's admin API "Quarantine media"); it
  answers 404 to downloads and thumbnails, local or remote, until released

A server admin may also delete local media (`delete_local`): its records and
thumbnails go, and its file when no other media shares it (files are
content-addressed).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from ..core.ids import is_on_server, is_valid_server_name
from ..errors import MatrixError, forbidden, invalid_param, not_found
from ..storage import Database, WriteBatch
from ..storage.kv import from_u64, join_key, u64
from .clock import Clock, now_ms
from .media_files import MediaFiles
from .thumbnails import (
    CannotThumbnail,
    Method,
    ThumbnailSize,
    TooLargeToThumbnail,
    make_thumbnail,
    size_for_request,
)

if TYPE_CHECKING:
    from .federation.remote_media import RemoteMediaFetcher

TREES = (
    "mediaid_metadata",
    "mediaid_pending",
    "userid_pendingmediaid",
    "thumbnailkey_thumbnail",
    "remotemedia_metadata",
    "remotethumbnailkey_thumbnail",
    "mediakey_quarantined",
)

MEDIA_ID_BYTES = 24
UNUSED_EXPIRY_MS = 24 * 60 * 60 * 1000
"""How long a `/create`d id waits for its upload: the spec's recommendation."""
MAX_PENDING_UPLOADS = 10
MAX_WAIT_MS = 60_000
"""The longest a download waits for a pending upload, whatever `timeout_ms` says."""
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_MEDIA_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
_THUMBNAIL_EXTENSIONS = {"image/jpeg": "jpg"}
"""File name extensions of thumbnail types that are not their MIME subtype."""


@dataclass(frozen=True)
class MediaContent:
    """Bytes to serve, with the type and file name they are served under."""

    data: bytes
    content_type: str
    filename: str | None


class Media:
    def __init__(
        self, db: Database, server_name: str, files: MediaFiles, *, clock: Clock = now_ms
    ) -> None:
        self._db = db
        self._server_name = server_name
        self._files = files
        self._clock = clock
        self._metadata = db.tree("mediaid_metadata")
        self._pending = db.tree("mediaid_pending")
        self._pending_by_user = db.tree("userid_pendingmediaid")
        self._thumbnails = db.tree("thumbnailkey_thumbnail")
        self._upload_finished: dict[str, trio.Event] = {}
        """Set when a pending id's upload is in; awaited by downloads of that id."""
        self._remote_metadata = db.tree("remotemedia_metadata")
        self._remote_thumbnails = db.tree("remotethumbnailkey_thumbnail")
        self._quarantined = db.tree("mediakey_quarantined")
        self.remote: RemoteMediaFetcher | None = None
        """Fetches other servers' media; None: only what is already here is served."""
        self._fetches: dict[tuple[str, str], _Fetch] = {}
        """The fetch in flight for each remote file, which later requests wait for."""

    # ---------------------------------------------------------------- uploads

    async def upload(
        self, uploader: str, data: bytes, content_type: str | None, filename: str | None
    ) -> str:
        """Store new content; its `mxc://` URI."""
        media_id = _new_media_id()
        metadata = await self._stored_metadata(uploader, data, content_type, filename)
        self._metadata.put(media_id.encode(), _to_json(metadata))
        return self._mxc_uri(media_id)

    def create(self, uploader: str) -> tuple[str, int]:
        """Reserve an `mxc://` URI for a later upload; the URI and when it expires.

        429 `M_LIMIT_EXCEEDED` when `uploader` already has `MAX_PENDING_UPLOADS`.
        """
        now = self._clock()
        expiries = [
            expires_ts
            for media_id, expires_ts in self._pending_of(uploader)
            if self._live_pending(media_id, now) is not None
        ]
        if len(expiries) >= MAX_PENDING_UPLOADS:
            raise MatrixError(
                429,
                "M_LIMIT_EXCEEDED",
                f"You have {len(expiries)} media ids waiting for their uploads; "
                "upload to them or wait for them to expire.",
                retry_after_ms=min(expiries) - now,
            )
        media_id = _new_media_id()
        expires_ts = now + UNUSED_EXPIRY_MS
        with self._db.batch() as batch:
            pending = {"uploader": uploader, "expires_ts": expires_ts}
            batch.put(self._pending, media_id.encode(), _to_json(pending))
            batch.put(self._pending_by_user, join_key(uploader, media_id), u64(expires_ts))
        return self._mxc_uri(media_id), expires_ts

    async def upload_to(
        self,
        uploader: str,
        server_name: str,
        media_id: str,
        data: bytes,
        content_type: str | None,
        filename: str | None,
    ) -> None:
        """Fill an id reserved by `create`: only its creator, only once, only in time."""
        self._check_local(server_name, media_id)
        self._check_can_upload_to(uploader, media_id)
        metadata = await self._stored_metadata(uploader, data, content_type, filename)
        self._check_can_upload_to(uploader, media_id)  # another upload may have won meanwhile
        with self._db.batch() as batch:
            batch.put(self._metadata, media_id.encode(), _to_json(metadata))
            self._delete_pending(batch, uploader, media_id)
        finished = self._upload_finished.pop(media_id, None)
        if finished is not None:
            finished.set()

    def _check_can_upload_to(self, uploader: str, media_id: str) -> None:
        if media_id.encode() in self._metadata:
            raise MatrixError(
                409, "M_CANNOT_OVERWRITE_MEDIA", "This media id already has its content."
            )
        pending = self._live_pending(media_id, self._clock())
        if pending is None:
            raise not_found("This media id was not created by POST /create, or it has expired.")
        if pending["uploader"] != uploader:
            raise forbidden("Only the user who created this media id can upload to it.")

    async def _stored_metadata(
        self, uploader: str, data: bytes, content_type: str | None, filename: str | None
    ) -> dict[str, Any]:
        """Write the file; the metadata that describes it."""
        metadata: dict[str, Any] = {
            "sha256": await self._files.store(data),
            "size": len(data),
            "content_type": content_type or DEFAULT_CONTENT_TYPE,
            "uploader": uploader,
            "created_ts": self._clock(),
        }
        if filename:
            metadata["filename"] = filename
        return metadata

    def _pending_of(self, user_id: str) -> list[tuple[str, int]]:
        prefix = join_key(user_id, b"")
        return [
            (key[len(prefix) :].decode(), from_u64(value))
            for key, value in self._pending_by_user.iter_prefix(prefix)
        ]

    def _live_pending(self, media_id: str, now: int) -> dict[str, Any] | None:
        """The pending id's record; None if there is none or it expired (then deleted)."""
        stored = self._pending.get(media_id.encode())
        if stored is None:
            return None
        pending = json.loads(stored)
        if pending["expires_ts"] > now:
            return pending
        with self._db.batch() as batch:
            self._delete_pending(batch, pending["uploader"], media_id)
        return None

    def purge_expired(self) -> None:
        """Forget created ids whose upload never came (the periodic cleanup)."""
        now = self._clock()
        for key, _ in list(self._pending.iter_prefix()):
            self._live_pending(key.decode(), now)

    def _delete_pending(self, batch: WriteBatch, uploader: str, media_id: str) -> None:
        batch.delete(self._pending, media_id.encode())
        batch.delete(self._pending_by_user, join_key(uploader, media_id))

    # ---------------------------------------------------------------- downloads

    async def download(
        self, server_name: str, media_id: str, *, timeout_ms: int, allow_remote: bool = True
    ) -> MediaContent:
        """The content as uploaded (waiting up to `timeout_ms` for a pending upload).

        Another server's media is served from here, fetched first if it is
        not here yet and `allow_remote` (404 `M_NOT_FOUND` otherwise).
        """
        metadata = await self._metadata_of(server_name, media_id, timeout_ms, allow_remote)
        data = await self._read(metadata["sha256"])
        return MediaContent(data, metadata["content_type"], metadata.get("filename"))

    async def thumbnail(
        self,
        server_name: str,
        media_id: str,
        width: int,
        height: int,
        method: Method,
        *,
        animated: bool,
        timeout_ms: int,
        allow_remote: bool = True,
    ) -> MediaContent:
        """A thumbnail at least `width`x`height` where the image allows (see `thumbnails.py`).

        400 `M_UNKNOWN` when the content is not an image this server
        thumbnails, 413 `M_TOO_LARGE` when it has too many pixels. Thumbnails
        of another server's media are made here from its original (fetched
        as by `download`).
        """
        self._check_ids(server_name, media_id)
        if width < 1 or height < 1:
            raise invalid_param("`width` and `height` must be positive.")
        metadata = await self._metadata_of(server_name, media_id, timeout_ms, allow_remote)
        size = size_for_request(width, height, method)
        key = _thumbnail_key(media_id, size, animated=animated)
        local = self._is_local(server_name)
        if local:
            tree = self._thumbnails
        else:
            tree, key = self._remote_thumbnails, join_key(server_name, key)
        stored = tree.get(key)
        if stored is None:
            record = await self._make_thumbnail(
                metadata["sha256"], size, animated=animated, too_large_status=413 if local else 502
            )
            tree.put(key, _to_json(record))
        else:
            record = json.loads(stored)
        data = await self._read(record.get("sha256", metadata["sha256"]))
        content_type = record["content_type"]
        extension = _THUMBNAIL_EXTENSIONS.get(content_type, content_type.partition("/")[2])
        return MediaContent(data, content_type, f"thumbnail.{extension}")

    async def _metadata_of(
        self, server_name: str, media_id: str, timeout_ms: int, allow_remote: bool
    ) -> dict[str, Any]:
        """The metadata of local or remote media whose file is here (fetched if need be)."""
        self._check_ids(server_name, media_id)
        if self.is_quarantined(server_name, media_id):
            raise not_found("There is no media with this id.")
        if self._is_local(server_name):
            return await self._uploaded_metadata(media_id, timeout_ms)
        return await self._remote_file_metadata(server_name, media_id, timeout_ms, allow_remote)

    async def _make_thumbnail(
        self, sha256: str, size: ThumbnailSize | None, *, animated: bool, too_large_status: int
    ) -> dict[str, Any]:
        """Make and store a thumbnail; its record. Too many pixels: `too_large_status`
        `M_TOO_LARGE` (413 for uploads, 502 for remote media, as the spec's
        "Security considerations" put it)."""
        original = await self._read(sha256)
        try:
            thumbnail = await trio.to_thread.run_sync(
                functools.partial(make_thumbnail, original, size, animated=animated)
            )
        except TooLargeToThumbnail as error:
            raise MatrixError(
                too_large_status, "M_TOO_LARGE", f"The image is too large to thumbnail: {error}"
            ) from None
        except CannotThumbnail as error:
            raise MatrixError(
                400, "M_UNKNOWN", f"Cannot generate thumbnails for this content: {error}"
            ) from None
        record = {"content_type": thumbnail.content_type}
        if thumbnail.data is not None:
            record["sha256"] = await self._files.store(thumbnail.data)
        return record

    async def _uploaded_metadata(self, media_id: str, timeout_ms: int) -> dict[str, Any]:
        stored = self._metadata.get(media_id.encode())
        if stored is None:
            if self._live_pending(media_id, self._clock()) is None:
                raise not_found("There is no media with this id.")
            await self._wait_for_upload(media_id, timeout_ms)
            stored = self._metadata.get(media_id.encode())
            if stored is None:
                raise MatrixError(
                    504,
                    "M_NOT_YET_UPLOADED",
                    "The content of this media has not been uploaded yet.",
                )
        return json.loads(stored)

    async def _wait_for_upload(self, media_id: str, timeout_ms: int) -> None:
        finished = self._upload_finished.setdefault(media_id, trio.Event())
        with trio.move_on_after(min(max(timeout_ms, 0), MAX_WAIT_MS) / 1000):
            await finished.wait()
        if not finished.is_set() and finished.statistics().tasks_waiting == 0:
            del self._upload_finished[media_id]  # the last waiter gave up

    async def _read(self, sha256: str) -> bytes:
        data = await self._files.read(sha256)
        if data is None:
            raise not_found("The file of this media is no longer on this server.")
        return data

    # ---------------------------------------------------------------- remote media

    async def _remote_file_metadata(
        self, server_name: str, media_id: str, timeout_ms: int, allow_remote: bool
    ) -> dict[str, Any]:
        """Kept remote media's metadata; fetched (one fetch for concurrent requests) if absent."""
        key = (server_name, media_id)
        while True:
            kept = self._kept_remote(server_name, media_id)
            if kept is not None:
                return kept
            if not allow_remote:
                raise not_found(
                    f"mxc://{server_name}/{media_id} is not on this server, and "
                    "allow_remote=false forbids fetching it."
                )
            if self.remote is None:
                raise not_found(
                    f"mxc://{server_name}/{media_id} is on another server, and this server "
                    "does not fetch remote media (federation is disabled)."
                )
            fetch = self._fetches.get(key)
            if fetch is None:
                return await self._fetch_remote(server_name, media_id, timeout_ms)
            await fetch.done.wait()
            if fetch.error is not None:
                raise fetch.error
            # The fetch is kept now, or its requester went away: look again.

    def _kept_remote(self, server_name: str, media_id: str) -> dict[str, Any] | None:
        stored = self._remote_metadata.get(join_key(server_name, media_id))
        if stored is None:
            return None
        metadata = json.loads(stored)
        if not self._files.has(metadata["sha256"]):
            return None  # its file was deleted (by an admin): fetch it again
        return metadata

    async def _fetch_remote(
        self, server_name: str, media_id: str, timeout_ms: int
    ) -> dict[str, Any]:
        """Fetch, store and describe a remote file; requests meanwhile wait for this one."""
        assert self.remote is not None
        key = (server_name, media_id)
        fetch = self._fetches[key] = _Fetch()
        try:
            remote_file = await self.remote.fetch(server_name, media_id, timeout_ms=timeout_ms)
            metadata: dict[str, Any] = {
                "sha256": await self._files.store(remote_file.data),
                "size": len(remote_file.data),
                "content_type": remote_file.content_type,
                "fetched_ts": self._clock(),
            }
            if remote_file.filename:
                metadata["filename"] = remote_file.filename
            self._remote_metadata.put(join_key(server_name, media_id), _to_json(metadata))
            return metadata
        except MatrixError as error:
            fetch.error = error
            raise
        finally:
            del self._fetches[key]
            fetch.done.set()

    # ---------------------------------------------------------------- admin

    def is_quarantined(self, server_name: str, media_id: str) -> bool:
        return join_key(server_name, media_id) in self._quarantined

    def set_quarantined(
        self, server_name: str, media_id: str, quarantined: bool, *, by: str
    ) -> None:
        """Quarantine (or release) media: while quarantined, nobody downloads it here."""
        self._check_ids(server_name, media_id)
        key = join_key(server_name, media_id)
        if quarantined:
            self._quarantined.put(key, _to_json({"by": by, "ts": self._clock()}))
        else:
            self._quarantined.delete(key)

    def local_uploads(self) -> list[tuple[str, dict[str, Any]]]:
        """Every upload of this server: (media id, its metadata: uploader, created_ts, size...)."""
        return [(key.decode(), json.loads(raw)) for key, raw in self._metadata.iter_prefix(b"")]

    def delete_local(self, server_name: str, media_id: str) -> None:
        """Delete an upload: its record, thumbnails, and file unless other media shares it.

        400 for another server's media, 404 when there is no such upload.
        """
        self._check_ids(server_name, media_id)
        if not self._is_local(server_name):
            raise invalid_param("Can only delete local media.")
        stored = self._metadata.get(media_id.encode())
        if stored is None:
            raise not_found("There is no media with this id.")
        hashes = {json.loads(stored)["sha256"]}
        with self._db.batch() as batch:
            batch.delete(self._metadata, media_id.encode())
            for key, raw in self._thumbnails.iter_prefix(join_key(media_id, b"")):
                sha256 = json.loads(raw).get("sha256")
                if sha256:
                    hashes.add(sha256)
                batch.delete(self._thumbnails, key)
        for sha256 in hashes - self._hashes_in_use():
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._files.path_of(sha256))

    def _hashes_in_use(self) -> set[str]:
        """Every file some media record still names (uploads, remote media, thumbnails)."""
        in_use = set()
        for tree in (
            self._metadata,
            self._remote_metadata,
            self._thumbnails,
            self._remote_thumbnails,
        ):
            for _, raw in tree.iter_prefix(b""):
                sha256 = json.loads(raw).get("sha256")
                if sha256:
                    in_use.add(sha256)
        return in_use

    # ---------------------------------------------------------------- ids

    def _mxc_uri(self, media_id: str) -> str:
        return f"mxc://{self._server_name}/{media_id}"

    def _is_local(self, server_name: str) -> bool:
        return is_on_server(server_name, self._server_name)

    def _check_ids(self, server_name: str, media_id: str) -> None:
        """400 for ids the spec forbids (no path tricks)."""
        if not is_valid_server_name(server_name):
            raise invalid_param(f"{server_name!r} is not a valid server name.")
        if not _MEDIA_ID.fullmatch(media_id):
            raise invalid_param("A media id has only the characters A-Z, a-z, 0-9, _ and -.")

    def _check_local(self, server_name: str, media_id: str) -> None:
        """`_check_ids`, and 404 for other servers' media (uploads go to local ids only)."""
        self._check_ids(server_name, media_id)
        if not self._is_local(server_name):
            raise not_found(f"mxc://{server_name}/{media_id} is on another server.")


@dataclass
class _Fetch:
    """A remote file being fetched: `done` is set when it is kept or `error` says why not."""

    done: trio.Event = field(default_factory=trio.Event)
    error: MatrixError | None = None


def _new_media_id() -> str:
    return secrets.token_urlsafe(MEDIA_ID_BYTES)


def _thumbnail_key(media_id: str, size: ThumbnailSize | None, *, animated: bool) -> bytes:
    shape = ("original",) if size is None else (size.method, str(size.width), str(size.height))
    return join_key(media_id, *shape, "animated" if animated else "still")


def _to_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
