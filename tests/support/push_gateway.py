"""A push gateway on 127.0.0.1 for tests: records what the server pushes.

Spec: `content/push-gateway-api.md` (`POST /_matrix/push/v1/notify`). It can
be told to fail the next requests (500) to exercise the server's retries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import hypercorn
import hypercorn.trio
import trio
from quart import request
from quart_trio import QuartTrio

from tests.support.server import free_port


@dataclass
class FakeGateway:
    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    failures_left: int = 0
    attempts: int = 0
    rejected: list[str] = field(default_factory=list)

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        """The first `count` notifications, once they have arrived (bounded wait)."""
        with trio.fail_after(30):
            while len(self.received) < count:
                await trio.sleep(0.02)
        return self.received[:count]


async def start_gateway(nursery: trio.Nursery, port: int | None = None) -> FakeGateway:
    gateway = FakeGateway()
    app = QuartTrio("fake_push_gateway")

    @app.post("/_matrix/push/v1/notify")
    async def notify() -> Any:
        gateway.attempts += 1
        body = await request.get_json()
        if gateway.failures_left > 0:
            gateway.failures_left -= 1
            return {"error": "temporarily down"}, 500
        gateway.received.append(body)
        return {"rejected": gateway.rejected}

    config = hypercorn.Config()
    port = port or free_port()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    await nursery.start(hypercorn.trio.serve, app, config)
    gateway.url = f"http://127.0.0.1:{port}/_matrix/push/v1/notify"
    return gateway
