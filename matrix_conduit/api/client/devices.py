"""The user's devices: list, inspect, rename, delete.

Spec: the Device Management module
(`content/client-server-api/modules/device_management.md`,
`data/api/client-server/device_management.yaml`). Deleting a device also
deletes its access and refresh tokens, and asks for the user's password
first (user-interactive auth), as the module's security considerations
advise. Guests may list, inspect and rename their devices (Guest Access
module), not delete them.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from ...errors import bad_json, missing_param, not_found
from ...service.devices import Device
from ...service.uiaa import PASSWORD_FLOWS
from ..auth import authenticate, user_interactive_auth
from ..fields import optional_str
from ..request import json_object, services
from .routes import client_route

blueprint = Blueprint("devices", __name__)

NO_SUCH_DEVICE = "You have no device with this id."


def device_json(device: Device) -> dict[str, Any]:
    """A device as `client_device.yaml` shapes it, unknown fields as null.

    The schema allows leaving them out, but matrix-nio's `devices()` (and so
    matrix-commander) requires each key, and Synapse sends null.
    """
    return {
        "device_id": device.device_id,
        "display_name": device.display_name,
        "last_seen_ip": device.last_seen_ip,
        "last_seen_ts": device.last_seen_ts,
    }


@client_route(blueprint, "/devices", methods=["GET"])
async def list_devices() -> dict:
    requester = authenticate(allow_guest=True)
    return {"devices": [device_json(d) for d in services().devices.of_user(requester.user_id)]}


@client_route(blueprint, "/devices/<path:device_id>", methods=["GET"])
async def get_device(device_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    device = services().devices.get(requester.user_id, device_id)
    if device is None:
        raise not_found(NO_SUCH_DEVICE)
    return device_json(device)


@client_route(blueprint, "/devices/<path:device_id>", methods=["PUT"])
async def rename_device(device_id: str) -> dict:
    requester = authenticate(allow_guest=True)
    body = await json_object()
    devices = services().devices
    if devices.get(requester.user_id, device_id) is None:
        raise not_found(NO_SUCH_DEVICE)
    if "display_name" in body:
        display_name = optional_str(body, "display_name")
        devices.set_display_name(requester.user_id, device_id, display_name)
    return {}


@client_route(blueprint, "/devices/<path:device_id>", methods=["DELETE"])
async def delete_device(device_id: str) -> dict:
    requester = authenticate()
    body = await json_object(optional=True)
    await user_interactive_auth(body, PASSWORD_FLOWS, user_id=requester.user_id)
    services().devices.delete(requester.user_id, [device_id])
    return {}


@client_route(blueprint, "/delete_devices", methods=["POST"])
async def delete_devices() -> dict:
    requester = authenticate()
    body = await json_object()
    device_ids = body.get("devices")
    if device_ids is None:
        raise missing_param("devices")
    if not isinstance(device_ids, list) or not all(isinstance(d, str) for d in device_ids):
        raise bad_json("`devices` must be a list of device ids.")
    await user_interactive_auth(body, PASSWORD_FLOWS, user_id=requester.user_id)
    services().devices.delete(requester.user_id, device_ids)
    return {}
