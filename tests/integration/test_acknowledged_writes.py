"""An acknowledged write survives `kill -9`: messages, state and account data over HTTP.

DESIGN.md ("Everything a request changes is written in one atomic batch. A
request is answered only after its write is in the database"). The real
`matrix-conduit` process takes writes over HTTP from several concurrent
clients; the test kills it with SIGKILL in the middle, starts it again on the
same database, and finds every write that was answered 200.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from urllib.parse import quote

import httpx

from tests.support.process import server_process, write_config

CLIENT = "/_matrix/client/v3"


def register(client: httpx.Client, name: str) -> dict[str, str]:
    answer = client.post(
        f"{CLIENT}/register", json={"username": name, "auth": {"type": "m.login.dummy"}}
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_every_answered_message_survives_kill_9(tmp_path: Path):
    config = write_config(tmp_path, log="warn", allow_registration=True)
    acknowledged: list[str] = []
    stop = threading.Event()
    with server_process(config) as server, httpx.Client(base_url=server.base_url) as client:
        headers = register(client, "writer")
        room_id = client.post(f"{CLIENT}/createRoom", json={}, headers=headers).json()["room_id"]
        path = f"{CLIENT}/rooms/{quote(room_id, safe='')}/send/m.room.message"

        def send_forever(sender: int) -> None:
            with httpx.Client(base_url=server.base_url, headers=headers) as own:
                number = 0
                while not stop.is_set():
                    number += 1
                    try:
                        answer = own.put(
                            f"{path}/{sender}-{number}",
                            json={"msgtype": "m.text", "body": f"{sender}-{number}"},
                        )
                    except httpx.TransportError:
                        return  # the server died under us: this write was not answered
                    if answer.status_code == 200:
                        acknowledged.append(answer.json()["event_id"])

        senders = [threading.Thread(target=send_forever, args=(n,)) for n in range(4)]
        for thread in senders:
            thread.start()
        while len(acknowledged) < 60:
            stop.wait(0.01)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        stop.set()
        for thread in senders:
            thread.join()
    with server_process(config) as server, httpx.Client(base_url=server.base_url) as client:
        missing = [
            event_id
            for event_id in acknowledged
            if client.get(
                f"{CLIENT}/rooms/{quote(room_id, safe='')}/event/{quote(event_id, safe='')}",
                headers=headers,
            ).status_code
            != 200
        ]
    assert len(acknowledged) >= 60
    assert missing == []


def test_answered_account_data_and_state_survive_kill_9(tmp_path: Path):
    config = write_config(tmp_path, log="warn", allow_registration=True)
    with server_process(config) as server, httpx.Client(base_url=server.base_url) as client:
        headers = register(client, "writer")
        room_id = client.post(f"{CLIENT}/createRoom", json={}, headers=headers).json()["room_id"]
        client.put(
            f"{CLIENT}/user/@writer:localhost/account_data/org.example.note",
            json={"kept": True},
            headers=headers,
        ).raise_for_status()
        client.put(
            f"{CLIENT}/rooms/{quote(room_id, safe='')}/state/m.room.topic/",
            json={"topic": "survives"},
            headers=headers,
        ).raise_for_status()
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
    with server_process(config) as server, httpx.Client(base_url=server.base_url) as client:
        note = client.get(
            f"{CLIENT}/user/@writer:localhost/account_data/org.example.note", headers=headers
        )
        topic = client.get(
            f"{CLIENT}/rooms/{quote(room_id, safe='')}/state/m.room.topic/", headers=headers
        )
    assert note.json() == {"kept": True}
    assert topic.json() == {"topic": "survives"}
