"""Make `Connection: close` and HTTP/1.0 requests really close their connection.

With QuartTrio on hypercorn's trio worker such connections stayed open after
the response (health checks and `ab` hang on them; hypercorn issue #330 is
close to it). The cause is a race: hypercorn closes the socket from inside the
app's final `send`, and that send also delivers `http.disconnect` to the app,
whose message task then cancels the request's nursery — cancelling hypercorn's
half-done close (`send_eof` checkpoints before it shuts the socket down). The
connection is left with nobody to close it.

The fix: send the response shielded from that cancellation. Timeouts still
apply (`RESPONSE_TIMEOUT`, inside the shield), and a client that goes away
still ends the send (the socket reports it broken).
"""

from __future__ import annotations

from typing import cast

import trio
from hypercorn.typing import ASGISendCallable
from quart.wrappers import Request, Response
from quart_trio.asgi import TrioASGIHTTPConnection


class ClosingHTTPConnection(TrioASGIHTTPConnection):
    async def handle_request(  # type: ignore[override]
        self, nursery: trio.Nursery, request: Request, send: ASGISendCallable
    ) -> None:
        response = await self.app.handle_request(request)
        if isinstance(response, Response) and response.timeout != Ellipsis:
            timeout = cast("float | None", response.timeout)
        else:
            timeout = self.app.config["RESPONSE_TIMEOUT"]
        with trio.CancelScope(shield=True):
            with trio.move_on_after(timeout if timeout is not None else float("inf")):
                await self._send_response(send, response)
        nursery.cancel_scope.cancel()
