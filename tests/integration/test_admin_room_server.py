"""Admin room server commands through matrix-nio: configuration, caches, registration,
the database, and the debug commands about PDUs and signatures.

`show-config` masks secrets; `allow-registration off` makes `POST /register`
answer 403 `M_FORBIDDEN` (client-server API, "Account registration": the
server may refuse registration) until `allow-registration on`; `sign-json`
and `verify-json` follow server-server API § Signing JSON; `parse-pdu`
checks a PDU of a room version (server-server API § PDUs) and computes its
event id (room versions, "Event IDs").
"""

from __future__ import annotations

import json
from pathlib import Path

import nio
import pytest
import trio

from tests.support.admin_room import AdminRoom, command, expect, in_admin_room
from tests.support.server import TestServer, make_config, serving

TOKEN = "let-me-in-token"
JWT_SECRET = "a very secret jwt key"


@pytest.fixture
async def server(nursery: trio.Nursery, tmp_path: Path) -> TestServer:
    config = make_config(
        tmp_path / "db", allow_registration=True, jwt_secret=JWT_SECRET, turn_password="turnpw"
    )
    async with serving(nursery, config) as running:
        yield running


def code_of(answer: str) -> str:
    return answer.split("\n", 1)[1].split("\n", 1)[1].rsplit("\n```", 1)[0]


async def test_show_config_caches_registration_and_database(server: TestServer):
    async def scenario(room: AdminRoom) -> None:
        admin, room_id = room.admin, room.room_id
        shown = json.loads(code_of(await command(admin, room_id, "!admin show-config")))
        assert shown["server_name"] == "localhost"
        assert shown["jwt_secret"] == "***"
        assert shown["turn_password"] == "***"
        assert JWT_SECRET not in json.dumps(shown)

        memory = await command(admin, room_id, "!admin memory-usage")
        assert "rooms.timeline._events" in memory
        cleared = await command(admin, room_id, "!admin clear-caches")
        assert cleared.startswith("Cleared ") and "they refill on use" in cleared
        after = await command(admin, room_id, "!admin list-rooms")
        assert room_id in after  # everything still answers from the database

        closed = await command(admin, room_id, "!admin allow-registration off")
        assert closed.startswith("Registration is closed until the next start")
        late = room.clients.new()
        refused = await late.register("latecomer", "pw", "x")
        assert isinstance(refused, nio.ErrorResponse), refused
        assert refused.status_code == "M_FORBIDDEN"
        opened = await command(admin, room_id, "!admin allow-registration on")
        assert opened.startswith("Registration is open")
        expect(await late.register("latecomer", "pw", "x"), nio.RegisterResponse)
        wrong = await command(admin, room_id, "!admin allow-registration maybe")
        assert "invalid choice: 'maybe'" in wrong

        database = json.loads(
            code_of(await command(admin, room_id, "!admin database-memory-usage"))
        )
        assert database["backend"] == "LevelDBDatabase"
        assert int(database["approximate-memory-usage"]) > 0
        assert database["size_on_disk_bytes"] > 0

    await in_admin_room(server.base_url, scenario)


async def test_pdus_auth_chains_and_signed_json(server: TestServer):
    async def scenario(room: AdminRoom) -> None:
        admin, room_id = room.admin, room.room_id
        sent = expect(
            await admin.room_send(
                room_id, "m.room.message", {"msgtype": "m.text", "body": "a message"}
            ),
            nio.RoomSendResponse,
        )
        answer = await command(admin, room_id, f"!admin get-pdu {sent.event_id}")
        assert answer.startswith(f"The PDU {sent.event_id} (timeline):")
        pdu = json.loads(code_of(answer))
        assert pdu["content"]["body"] == "a message"
        missing = await command(admin, room_id, "!admin get-pdu $nothing")
        assert missing == "There is no event $nothing here."

        chain = await command(admin, room_id, f"!admin get-auth-chain {sent.event_id}")
        assert chain.startswith(f"The auth chain of {sent.event_id} has ")
        assert int(chain.split(" has ")[1].split()[0]) >= 3

        wire = {k: v for k, v in pdu.items() if k not in ("event_id", "unsigned")}
        parsed = await command(admin, room_id, "!admin parse-pdu", json.dumps(wire))
        assert f"event id {sent.event_id}" in parsed
        assert "its content hash matches" in parsed
        wire["content"] = {"body": "tampered"}
        tampered = await command(admin, room_id, "!admin parse-pdu", json.dumps(wire))
        assert "does NOT match" in tampered
        not_a_pdu = await command(admin, room_id, "!admin parse-pdu", '{"type": 1}')
        assert not_a_pdu.startswith("Not a valid PDU of room version 10")
        not_json = await command(admin, room_id, "!admin parse-pdu", "{nope")
        assert not_json.startswith("The code block is not JSON")

        signed_answer = await command(admin, room_id, "!admin sign-json", '{"a": 1}')
        signed = json.loads(code_of(signed_answer))
        assert set(signed["signatures"]) == {"localhost"}
        verified = await command(admin, room_id, "!admin verify-json", json.dumps(signed))
        assert verified.startswith("Every signature checks.")
        signed["a"] = 2
        forged = await command(admin, room_id, "!admin verify-json", json.dumps(signed))
        assert forged.startswith("Some signatures do not check.")
        assert "localhost: NOT verified" in forged
        unsigned = await command(admin, room_id, "!admin verify-json", '{"a": 1}')
        assert unsigned == "The object has no signatures to check."
        array = await command(admin, room_id, "!admin sign-json", "[1, 2]")
        assert array == "The code block must hold a JSON object."

    await in_admin_room(server.base_url, scenario)
