"""sd_notify: one datagram to `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).

The process-level view (READY=1 once serving, STOPPING=1 at shutdown) is in
`tests/integration/test_process.py`.
"""

from __future__ import annotations

import socket

import pytest

from matrix_conduit import sd_notify


@pytest.fixture
def receiver() -> socket.socket:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        yield sock


def test_notify_sends_the_state_to_a_socket_path(receiver, tmp_path, monkeypatch):
    path = tmp_path / "notify"
    receiver.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))

    sd_notify.notify("READY=1")

    assert receiver.recv(4096) == b"READY=1"


def test_notify_sends_to_an_abstract_socket_named_with_at(receiver, tmp_path, monkeypatch):
    name = f"matrix-conduit-test-{tmp_path.name}"
    receiver.bind("\0" + name)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)

    sd_notify.notify("STOPPING=1")

    assert receiver.recv(4096) == b"STOPPING=1"


@pytest.mark.parametrize("value", [None, ""])
def test_notify_outside_systemd_does_nothing(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    else:
        monkeypatch.setenv("NOTIFY_SOCKET", value)
    sd_notify.notify("READY=1")
