"""Read receipts and read markers.

Spec: `content/client-server-api/modules/receipts.md` and `read_markers.md`;
`data/api/client-server/receipts.yaml` (`POST
/rooms/{roomId}/receipt/{receiptType}/{eventId}`, with an optional
`thread_id`) and `read_markers.yaml` (`POST /rooms/{roomId}/read_markers`).
The server sets each receipt's `ts`. Event ids are the path's last segment
(`path:`) because room version 3 ids may contain `/`.
"""

from __future__ import annotations

from quart import Blueprint

from ...service.account_data import FULLY_READ_TYPE
from ...service.clock import now_ms
from ...service.receipts import READ, READ_PRIVATE
from ..auth import authenticate
from ..fields import optional_str
from ..request import json_object, services
from .routes import client_route

blueprint = Blueprint("receipts", __name__)


@client_route(
    blueprint, "/rooms/<room_id>/receipt/<receipt_type>/<path:event_id>", methods=["POST"]
)
async def send_receipt(room_id: str, receipt_type: str, event_id: str) -> dict:
    requester = authenticate()
    body = await json_object(optional=True)
    services().receipts.set_receipt(
        room_id,
        requester.user_id,
        receipt_type,
        event_id,
        thread_id=optional_str(body, "thread_id"),
        ts=now_ms(),
    )
    return {}


@client_route(blueprint, "/rooms/<room_id>/read_markers", methods=["POST"])
async def set_read_markers(room_id: str) -> dict:
    requester = authenticate()
    body = await json_object()
    markers = {
        marker: event_id
        for marker in (FULLY_READ_TYPE, READ, READ_PRIVATE)
        if (event_id := optional_str(body, marker)) is not None
    }
    services().receipts.set_read_markers(room_id, requester.user_id, markers, ts=now_ms())
    return {}
