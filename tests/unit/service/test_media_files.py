"""The media file store: content-addressed, private, and never a half-written file.

The layout and the write protocol are documented in
`matrix_conduit/service/media_files.py`; the layout of `database_path` in
`matrix_conduit/storage/__init__.py`.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from matrix_conduit.service.media_files import INCOMING_PREFIX, MediaFiles


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "media"


def files_in(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())


async def test_a_file_is_stored_under_its_sha256_and_read_back(directory: Path):
    files = MediaFiles(str(directory))
    sha256 = await files.store(b"hello media")
    assert sha256 == hashlib.sha256(b"hello media").hexdigest()
    assert files_in(directory) == [directory / sha256[:2] / sha256]
    assert await files.read(sha256) == b"hello media"


async def test_storing_the_same_content_again_keeps_one_file(directory: Path):
    files = MediaFiles(str(directory))
    first = await files.store(b"twice")
    second = await files.store(b"twice")
    assert first == second
    assert len(files_in(directory)) == 1


async def test_files_are_0600_and_directories_0700(directory: Path):
    files = MediaFiles(str(directory))
    sha256 = await files.store(b"private")
    path = Path(files.path_of(sha256))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


async def test_a_file_that_is_not_on_disk_reads_as_none(directory: Path):
    files = MediaFiles(str(directory))
    sha256 = await files.store(b"soon gone")
    os.unlink(files.path_of(sha256))
    assert await files.read(sha256) is None


async def test_a_failed_write_leaves_no_file_behind(
    directory: Path, monkeypatch: pytest.MonkeyPatch
):
    files = MediaFiles(str(directory))

    def disk_failure(descriptor: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", disk_failure)
    with pytest.raises(OSError):
        await files.store(b"never complete")
    assert files_in(directory) == []


def test_writes_cut_short_by_a_crash_are_removed_when_the_store_opens(directory: Path):
    directory.mkdir()
    (directory / f"{INCOMING_PREFIX}abc123").write_bytes(b"half a fi")
    MediaFiles(str(directory))
    assert files_in(directory) == []
