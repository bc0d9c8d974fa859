"""`PUT /sendToDevice/{eventType}/{txnId}`: messages to devices, outside any room.

Spec: `content/client-server-api/modules/send_to_device.md` and
`data/api/client-server/to_device.yaml`; the queueing and delivery are
`service/to_device.py`. Guests may send (Guest Access module).
"""

from __future__ import annotations

from quart import Blueprint

from ..auth import authenticate
from ..fields import required_user_map
from ..request import json_object, services
from .routes import client_route

blueprint = Blueprint("to_device", __name__)


def _is_device_map(value: object) -> bool:
    """Device ids (or `*`) mapped to message contents."""
    return isinstance(value, dict) and all(isinstance(content, dict) for content in value.values())


@client_route(blueprint, "/sendToDevice/<event_type>/<path:txn_id>", methods=["PUT"])
async def send_to_device(event_type: str, txn_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    body = await json_object()
    messages = required_user_map(
        body, "messages", _is_device_map, "maps of device ids to message contents"
    )
    services().to_device.send(requester.user_id, requester.device_id, event_type, txn_id, messages)
    return {}
