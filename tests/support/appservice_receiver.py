"""A small appservice on 127.0.0.1 that records the transactions pushed to it.

Spec: `content/application-service-api.md`, "Pushing events" and
`data/api/application-service/transactions.yaml` (`PUT
/_matrix/app/v1/transactions/{txnId}`; a retry carries the same txnId, which
the appservice drops as already processed). It is interested in every room of
`localhost` and can be told to leave the next transaction unanswered (a
sender that dies mid-send).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypercorn
import hypercorn.trio
import trio
from quart import request
from quart_trio import QuartTrio

from tests.support.server import free_port

HS_TOKEN = "receiver-hs-token"
AS_TOKEN = "receiver-as-token"
WAIT_LIMIT_SECONDS = 60
"""Far longer than any delivery takes: a hang becomes a failure (nothing is timed)."""


@dataclass
class AppServiceReceiver:
    port: int = field(default_factory=free_port)
    transactions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Every transaction pushed (txnId, body), repeats included, in arrival order."""
    hold_next: bool = False
    """Record the next transaction but never answer it."""
    held: trio.Event = field(default_factory=trio.Event)
    """Set once a transaction is being held."""
    held_txn_id: str | None = None

    def registration(self, directory: Path) -> Path:
        path = directory / "receiver-registration.yaml"
        path.write_text(
            f"""\
id: receiver
url: http://127.0.0.1:{self.port}
as_token: {AS_TOKEN}
hs_token: {HS_TOKEN}
sender_localpart: receiver
rate_limited: false
namespaces:
  users: []
  aliases: []
  rooms:
    - exclusive: false
      regex: "!.*:localhost"
"""
        )
        return path

    def count(self, txn_id: str) -> int:
        """How many times the transaction was pushed."""
        return sum(1 for pushed, _ in self.transactions if pushed == txn_id)

    def by_txn_id(self) -> dict[str, dict[str, Any]]:
        """The transactions once each (the first body of each txnId)."""
        first: dict[str, dict[str, Any]] = {}
        for txn_id, body in self.transactions:
            first.setdefault(txn_id, body)
        return first

    def bodies(self) -> list[str]:
        """`m.room.message` bodies, once per txnId (as an appservice processes them)."""
        return [
            event["content"]["body"]
            for body in self.by_txn_id().values()
            for event in body["events"]
            if event["type"] == "m.room.message"
        ]

    async def wait_for_bodies(self, expected: set[str]) -> None:
        with trio.fail_after(WAIT_LIMIT_SECONDS):
            while not expected <= set(self.bodies()):
                await trio.sleep(0.05)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        app = QuartTrio("appservice_receiver")

        @app.put("/_matrix/app/v1/transactions/<txn_id>")
        async def transaction(txn_id: str) -> Any:
            if request.headers.get("Authorization") != f"Bearer {HS_TOKEN}":
                return {"errcode": "M_FORBIDDEN"}, 403
            self.transactions.append((txn_id, await request.get_json()))
            if self.hold_next:
                self.hold_next = False
                self.held_txn_id = txn_id
                self.held.set()
                await trio.sleep_forever()
            return {}

        config = hypercorn.Config()
        config.bind = [f"127.0.0.1:{self.port}"]
        config.accesslog = None
        await hypercorn.trio.serve(app, config, task_status=task_status)
