"""Tell systemd how the service is doing (`Type=notify`): READY=1, STOPPING=1.

The protocol is one datagram to the socket named by `$NOTIFY_SOCKET` (see
sd_notify(3)); a name starting with `@` is in the abstract namespace. Outside
systemd the variable is unset and this does nothing.
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(state.encode())
