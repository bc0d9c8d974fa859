"""`matrix-conduit backup` while the server serves, and a server started on the copy.

Issue #17 ("Backup and restore while running"); DESIGN.md: a request is
answered only after its write is in the database, so a backup that begins
after an answer holds that write. The real `matrix-conduit` process takes
messages from several clients while the real `matrix-conduit backup` command
copies it (through the server's backup socket: LevelDB lets one process open
it); the copy is verified with `verify-backup`, restored into a fresh
directory as README.Debian says, and served: every message acknowledged
before the backup began is there, the media too, and the server works
(login, sync, send).
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from matrix_conduit.storage import open_database
from tests.support.process import run_command, server_process, write_config

CLIENT = "/_matrix/client/v3"
MEDIA = "/_matrix/media/v3"
PASSWORD = "backup-test-password"
MEDIA_BYTES = b"a file the backup must carry" * 100


def _register(client: httpx.Client) -> dict[str, str]:
    answer = client.post(
        f"{CLIENT}/register",
        json={"username": "writer", "password": PASSWORD, "auth": {"type": "m.login.dummy"}},
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


class Writers:
    """Threads sending messages to one room until stopped; the event ids answered 200."""

    def __init__(self, base_url: str, headers: dict[str, str], room_id: str) -> None:
        self.acknowledged: list[str] = []
        self._stop = threading.Event()
        path = f"{CLIENT}/rooms/{quote(room_id, safe='')}/send/m.room.message"
        self._threads = [
            threading.Thread(target=self._send, args=(base_url, headers, path, n)) for n in range(3)
        ]

    def _send(self, base_url: str, headers: dict[str, str], path: str, sender: int) -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
            number = 0
            while not self._stop.is_set():
                number += 1
                body = {"msgtype": "m.text", "body": f"{sender}-{number}"}
                answer = client.put(f"{path}/{sender}-{number}", json=body)
                if answer.status_code == 200:
                    self.acknowledged.append(answer.json()["event_id"])

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def wait_for(self, count: int) -> None:
        while len(self.acknowledged) < count:
            self._stop.wait(0.01)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def _restore(backup: Path, into: Path, backend: str) -> Path:
    """README.Debian's restore: the backup's directory becomes database_path."""
    shutil.copytree(backup, into / "db")
    return write_config(into, database_backend=backend, allow_registration=True)


@pytest.mark.parametrize("backend", ["leveldb", "sqlite"])
def test_a_backup_under_write_load_restores_every_acknowledged_write(tmp_path: Path, backend: str):
    (tmp_path / "live").mkdir()
    config = write_config(tmp_path / "live", database_backend=backend, allow_registration=True)
    destination = tmp_path / "backup"
    with server_process(config) as server, httpx.Client(base_url=server.base_url) as client:
        headers = _register(client)
        room_id = client.post(f"{CLIENT}/createRoom", json={}, headers=headers).json()["room_id"]
        uploaded = client.post(
            f"{MEDIA}/upload",
            content=MEDIA_BYTES,
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        uploaded.raise_for_status()
        media_path = uploaded.json()["content_uri"].removeprefix("mxc://")
        with Writers(server.base_url, headers, room_id) as writers:
            writers.wait_for(30)
            before_backup = list(writers.acknowledged)
            made = run_command("backup", str(destination), env={"CONDUIT_CONFIG": str(config)})
            writers.wait_for(len(before_backup) + 10)  # the server kept serving
        assert made.returncode == 0, made.stderr
        assert "entries" in made.stdout and "1 media files" in made.stdout
        assert server.stop() == 0

    checked = run_command("verify-backup", str(destination), env={"CONDUIT_CONFIG": str(config)})
    assert checked.returncode == 0, checked.stderr
    assert f"{backend} database of server_name localhost" in checked.stdout

    (tmp_path / "restored").mkdir()
    restored = _restore(destination, tmp_path / "restored", backend)
    with server_process(restored) as server, httpx.Client(base_url=server.base_url) as client:
        login = client.post(
            f"{CLIENT}/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": "writer"},
                "password": PASSWORD,
            },
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        room = quote(room_id, safe="")
        missing = [
            event_id
            for event_id in before_backup
            if client.get(
                f"{CLIENT}/rooms/{room}/event/{quote(event_id, safe='')}", headers=headers
            ).status_code
            != 200
        ]
        assert missing == []
        download = client.get(f"{MEDIA}/download/{media_path}", headers=headers)
        assert download.content == MEDIA_BYTES
        sync = client.get(f"{CLIENT}/sync", headers=headers)
        assert room_id in sync.json()["rooms"]["join"]
        sent = client.put(
            f"{CLIENT}/rooms/{room}/send/m.room.message/after-restore",
            json={"msgtype": "m.text", "body": "after the restore"},
            headers=headers,
        )
        assert sent.status_code == 200, sent.text


def test_a_backup_of_a_stopped_server_is_copied_directly(tmp_path: Path):
    config = write_config(tmp_path, allow_registration=True)
    with server_process(config) as server, httpx.Client(base_url=server.base_url) as client:
        _register(client)
        assert server.stop() == 0
    made = run_command("backup", str(tmp_path / "copy"), env={"CONDUIT_CONFIG": str(config)})
    assert made.returncode == 0, made.stderr
    checked = run_command(
        "verify-backup", str(tmp_path / "copy"), env={"CONDUIT_CONFIG": str(config)}
    )
    assert checked.returncode == 0, checked.stderr


def test_backup_refuses_a_destination_that_holds_files(tmp_path: Path):
    config = write_config(tmp_path)
    open_database("leveldb", str(tmp_path / "db")).close()
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "something").write_text("kept")
    made = run_command("backup", str(occupied), env={"CONDUIT_CONFIG": str(config)})
    assert made.returncode == 1
    assert "exists and is not an empty directory" in made.stderr
    assert (occupied / "something").read_text() == "kept"


def test_backup_of_a_database_that_does_not_exist_says_so(tmp_path: Path):
    config = write_config(tmp_path)
    made = run_command("backup", str(tmp_path / "copy"), env={"CONDUIT_CONFIG": str(config)})
    assert made.returncode == 1
    assert "does not exist: nothing to back up" in made.stderr
    assert not (tmp_path / "copy").exists()


def test_verify_backup_refuses_a_backup_of_another_server_name(tmp_path: Path):
    config = write_config(tmp_path)
    with server_process(config) as server:
        assert server.stop() == 0
    made = run_command("backup", str(tmp_path / "copy"), env={"CONDUIT_CONFIG": str(config)})
    assert made.returncode == 0, made.stderr
    (tmp_path / "other").mkdir()
    other = write_config(tmp_path / "other", server_name="other.example")
    checked = run_command(
        "verify-backup", str(tmp_path / "copy"), env={"CONDUIT_CONFIG": str(other)}
    )
    assert checked.returncode == 1
    assert "made for server_name 'localhost'" in checked.stderr
    assert "would refuse it" in checked.stderr
