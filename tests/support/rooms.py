"""A whole set of services over a real database, and events another server signed.

The persist path takes an `EventContext` computed by whoever judged the
event; these helpers let a unit test play that part for events "from"
another server (`remote.example`, with a signing key of its own) without
any network: the test builds the PDU, signs it as that server, and hands
it to the rooms package with the context it chooses.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matrix_conduit.config import build_config
from matrix_conduit.core.events import sign_event_with_id
from matrix_conduit.core.signing import SigningKey, generate_signing_key, key_id_of
from matrix_conduit.service import Services
from matrix_conduit.service.rooms.create import RoomSettings
from matrix_conduit.storage import open_database

REMOTE = "remote.example"
ALICE = "@alice:localhost"
BOB = "@bob:localhost"
ZARA = "@zara:remote.example"


@contextmanager
def open_services(directory: Path) -> Iterator[Services]:
    """Every service of a server named `localhost` over LevelDB in `directory`."""
    config = build_config(
        {
            "server_name": "localhost",
            "database_backend": "leveldb",
            "database_path": str(directory),
        }
    )
    db = open_database("leveldb", str(directory / "db"))
    try:
        yield Services(config, db)
    finally:
        db.close()


async def public_room(services: Services, room_version: str = "10") -> str:
    """A public room made by ALICE, which BOB has joined."""
    room_id = await services.rooms.creation.create(
        ALICE, RoomSettings(room_version=room_version, preset="public_chat")
    )
    await services.rooms.membership.join(room_id, BOB)
    return room_id


@dataclass
class RemoteServer:
    """Another homeserver, as far as signing its events goes."""

    name: str
    key: SigningKey

    @property
    def verify_keys(self) -> dict[str, dict[str, Any]]:
        """What a key store would hand `check_foreign` for this server."""
        return {self.name: {key_id_of(self.key): self.key.verify_key}}

    def sign(self, services: Services, template: Mapping[str, Any]) -> dict[str, Any]:
        """The template as this server sends it: its origin, hashed and signed by it."""
        room_version = services.rooms.timeline.room_version(template["room_id"])
        event = dict(template)
        if "origin" in event:
            event["origin"] = self.name
        signed, _ = sign_event_with_id(event, self.name, self.key, room_version)
        return signed


def remote_server() -> RemoteServer:
    return RemoteServer(REMOTE, generate_signing_key())
