"""Uploaded files on disk, content-addressed by sha256 and never seen half-written.

Layout under `database_path/media/` (see `storage/__init__.py`): a file's
path is `<first two hex digits>/<sha256 hex>`, so identical uploads (and
identical thumbnails) share one file, and no directory grows past a few
thousand entries. Files are 0600 and directories 0700: only the server's
user reads them.

A file is written to `.incoming-*` in the media directory, fsynced, then
renamed into place and its directory fsynced: after a crash a content path
holds either nothing or the whole file. Leftover `.incoming-*` files of a
crashed write are deleted when the store opens (one process per database, so
none of them is in use). Reading and writing block, so both run in a worker
thread and the event loop keeps serving.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

import trio

MEDIA_DIRECTORY = "media"
INCOMING_PREFIX = ".incoming-"


class MediaFiles:
    """The content-addressed file store in one directory."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._remove_incomplete_writes()

    def path_of(self, sha256: str) -> str:
        return os.path.join(self.directory, sha256[:2], sha256)

    def has(self, sha256: str) -> bool:
        """Whether the file is on disk (one `stat`: cheap enough for the event loop)."""
        return os.path.exists(self.path_of(sha256))

    async def store(self, data: bytes) -> str:
        """Write `data` (unless a file with the same content exists); its sha256 hex."""
        return await trio.to_thread.run_sync(self._store_blocking, data)

    async def read(self, sha256: str) -> bytes | None:
        """The file's content; None if it is not on disk (deleted by an admin)."""
        return await trio.to_thread.run_sync(self._read_blocking, sha256)

    def _store_blocking(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.path_of(sha256)
        if os.path.exists(path):
            return sha256
        descriptor, incoming = tempfile.mkstemp(prefix=INCOMING_PREFIX, dir=self.directory)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            os.replace(incoming, path)
        except BaseException:
            os.unlink(incoming)
            raise
        _fsync_directory(os.path.dirname(path))
        return sha256

    def _read_blocking(self, sha256: str) -> bytes | None:
        try:
            with open(self.path_of(sha256), "rb") as file:
                return file.read()
        except FileNotFoundError:
            return None

    def _remove_incomplete_writes(self) -> None:
        for name in os.listdir(self.directory):
            if name.startswith(INCOMING_PREFIX):
                os.unlink(os.path.join(self.directory, name))


def _fsync_directory(directory: str) -> None:
    """Make a rename into `directory` durable."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
