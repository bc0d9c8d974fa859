"""Hostile input against the real `matrix-conduit` process: what reaches its log.

Issue 13: "Server log: no traceback for any of it", and a report `reason`
with a newline must not write a forged line into the log. Only the real
command shows this: it installs the log format (`matrix_conduit/logs.py`,
one line per record, control characters escaped) that an admin reads in
the journal. Spec for the requests: `content/client-server-api/_index.md`,
"Standard error response"; `data/api/client-server/report_content.yaml`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.hostile import DEEP_OBJECT, FIVE_THOUSAND_DIGITS, LONE_SURROGATE
from tests.support.process import ServerProcess, server_process, write_config

pytestmark = pytest.mark.slow

CLIENT = "/_matrix/client/v3"
FORGED = "ERROR matrix_conduit.app: forged line"


@pytest.fixture(scope="module")
def conduit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    config = write_config(tmp_path_factory.mktemp("conduit"), allow_registration=True)
    with server_process(config) as server:
        yield server


@pytest.fixture
def http(conduit: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=conduit.base_url, timeout=30, trust_env=False) as client:
        yield client


def register(http: httpx.Client, username: str) -> dict[str, str]:
    body = {"username": username, "password": "hostile input", "auth": {"type": "m.login.dummy"}}
    response = http.post(f"{CLIENT}/register", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def as_user(account: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {account['access_token']}"}


def log_lines(server: ServerProcess) -> list[str]:
    return Path(server.stderr_path).read_text().splitlines()


def test_a_report_reason_with_a_newline_stays_on_its_own_log_line(
    conduit: ServerProcess, http: httpx.Client
):
    alice = register(http, "reporter")
    room_id = http.post(f"{CLIENT}/createRoom", json={}, headers=as_user(alice)).json()["room_id"]
    sent = http.put(
        f"{CLIENT}/rooms/{room_id}/send/m.room.message/1",
        json={"msgtype": "m.text", "body": "spam"},
        headers=as_user(alice),
    )
    event_id = sent.json()["event_id"]

    response = http.post(
        f"{CLIENT}/rooms/{room_id}/report/{event_id}",
        json={"reason": f"spam\n{FORGED}\r\n{FORGED}\u2028{FORGED}"},
        headers=as_user(alice),
    )

    assert response.status_code == 200, response.text
    mentioning = [line for line in log_lines(conduit) if "forged line" in line]
    assert len(mentioning) == 1, mentioning
    assert "report from @reporter:localhost" in mentioning[0]
    assert "\\n" in mentioning[0]


HOSTILE_REQUESTS = [
    ("GET", "/sync?since=%C2%B2", None),
    ("GET", f"/sync?since={FIVE_THOUSAND_DIGITS}", None),
    ("GET", "/publicRooms?limit=%D9%A1%D9%A2%D9%A3", None),
    ("POST", "/createRoom", DEEP_OBJECT),
    ("POST", "/createRoom", json.dumps({"name": LONE_SURROGATE})),
    ("POST", "/createRoom", '{"creation_content": {"n": 1e400}}'),
    ("PUT", "/presence/@hostile:localhost/status", json.dumps({"status_msg": LONE_SURROGATE})),
    ("PUT", "/sendToDevice/m.test/1", json.dumps({"messages": {"@a:localhost": LONE_SURROGATE}})),
    ("POST", "/user/@hostile:localhost/filter", json.dumps({"event_fields": [LONE_SURROGATE]})),
]


def test_hostile_requests_get_4xx_and_leave_no_traceback_or_error_in_the_log(
    conduit: ServerProcess, http: httpx.Client
):
    hostile = as_user(register(http, "hostile"))
    login = http.post(
        f"{CLIENT}/login",
        content=DEEP_OBJECT.encode(),
        headers={"Content-Type": "application/json"},
    )
    answers = [login] + [
        http.request(
            method,
            CLIENT + path,
            content=None if body is None else body.encode(),
            headers={**hostile, "Content-Type": "application/json"},
        )
        for method, path, body in HOSTILE_REQUESTS
    ]

    assert [answer.status_code // 100 for answer in answers] == [4] * len(answers), [
        (answer.request.url, answer.status_code, answer.text[:200]) for answer in answers
    ]
    lines = log_lines(conduit)
    assert not [line for line in lines if "Traceback" in line or " ERROR " in line], lines
