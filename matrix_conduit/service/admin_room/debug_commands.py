"""Admin room commands for looking into events and signatures (Conduit's debug commands).

`get-pdu EVENT_ID` (the stored PDU), `get-auth-chain EVENT_ID` (how many
events its auth chain holds here: server-server API § Auth chain),
`parse-pdu` (a PDU in a code block: its format checked for a room version,
its event id computed, its content hash checked), `sign-json` (a JSON
object in a code block signed with this server's key: § Signing JSON) and
`verify-json` (each server's signatures on it checked, other servers' keys
fetched through the key ring).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ...core.errors import ProtocolError
from ...core.events import check_content_hash, compute_event_id, validate_pdu_format
from ...core.room_versions import KNOWN_ROOM_VERSIONS, get_room_version
from ...core.signing import sign_json as sign_object
from ...core.signing import verify_json
from ..clock import now_ms
from .parsing import Command, Reply
from .room import CommandContext, new_parser

MAX_AUTH_CHAIN = 100_000
"""`get-auth-chain` stops counting there (a chain that big says enough)."""


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _json_object(code_block: str) -> dict[str, Any] | str:
    """The code block's JSON object, or why it is not one."""
    try:
        value = json.loads(code_block)
    except json.JSONDecodeError as error:
        return f"The code block is not JSON: {error}."
    if not isinstance(value, dict):
        return "The code block must hold a JSON object."
    return value


async def get_pdu(context: CommandContext, args: argparse.Namespace) -> Reply:
    timeline = context.services.rooms.timeline
    event = timeline.get_event(args.event_id)
    if event is None:
        return Reply.text(f"There is no event {args.event_id} here.")
    status = timeline.status(args.event_id)
    kind = "" if status is None else f" ({status.value})"
    return Reply.with_code(f"The PDU {args.event_id}{kind}:", _pretty(event), "json")


def _auth_ids(event: dict[str, Any]) -> list[str]:
    return [
        entry if isinstance(entry, str) else entry[0]
        for entry in event.get("auth_events") or []
        if isinstance(entry, str) or (isinstance(entry, list) and entry)
    ]


async def get_auth_chain(context: CommandContext, args: argparse.Namespace) -> Reply:
    timeline = context.services.rooms.timeline
    event = timeline.get_event(args.event_id)
    if event is None:
        return Reply.text(f"There is no event {args.event_id} here.")
    seen: set[str] = set()
    missing: set[str] = set()
    pending = _auth_ids(event)
    while pending and len(seen) < MAX_AUTH_CHAIN:
        event_id = pending.pop()
        if event_id in seen or event_id in missing:
            continue
        auth_event = timeline.get_event(event_id)
        if auth_event is None:
            missing.add(event_id)
            continue
        seen.add(event_id)
        pending.extend(_auth_ids(auth_event))
    message = f"The auth chain of {args.event_id} has {len(seen)} events here"
    if missing:
        return Reply.with_code(
            message + f"; {len(missing)} are missing:", "\n".join(sorted(missing))
        )
    return Reply.text(message + ".")


async def parse_pdu(context: CommandContext, args: argparse.Namespace) -> Reply:
    assert context.code_block is not None
    pdu = _json_object(context.code_block)
    if isinstance(pdu, str):
        return Reply.text(pdu)
    room_version = get_room_version(args.room_version)
    try:
        validate_pdu_format(pdu, room_version)
        event_id = compute_event_id(pdu, room_version)
    except ProtocolError as error:
        return Reply.text(f"Not a valid PDU of room version {room_version.identifier}: {error}")
    hash_state = "matches" if check_content_hash(pdu) else "does NOT match"
    return Reply.with_code(
        f"A valid PDU of room version {room_version.identifier}; event id {event_id}; "
        f"its content hash {hash_state}.",
        _pretty(pdu),
        "json",
    )


async def sign_json(context: CommandContext, args: argparse.Namespace) -> Reply:
    assert context.code_block is not None
    value = _json_object(context.code_block)
    if isinstance(value, str):
        return Reply.text(value)
    globals_ = context.services.globals
    signed = sign_object(value, globals_.server_name, globals_.signing_key)
    return Reply.with_code("Signed:", _pretty(signed), "json")


async def verify_json_command(context: CommandContext, args: argparse.Namespace) -> Reply:
    assert context.code_block is not None
    value = _json_object(context.code_block)
    if isinstance(value, str):
        return Reply.text(value)
    signatures = value.get("signatures")
    if not isinstance(signatures, dict) or not signatures:
        return Reply.text("The object has no signatures to check.")
    services = context.services
    globals_ = services.globals
    results = []
    for server_name in sorted(signatures):
        try:
            if server_name == globals_.server_name:
                verify_key = globals_.signing_key.verify_key
                verify_json(value, server_name, globals_.signing_key_id, verify_key)
            else:
                await services.federation.key_ring.verify_signed_json(value, server_name, now_ms())
            results.append(f"{server_name}: signature good")
        except ProtocolError as error:
            results.append(f"{server_name}: NOT verified: {error}")
    good = all(line.endswith("signature good") for line in results)
    verdict = "Every signature checks." if good else "Some signatures do not check."
    return Reply.with_code(verdict, "\n".join(results))


def commands() -> list[Command]:
    pdu = new_parser("get-pdu", "Show the PDU of an event id as stored here.")
    pdu.add_argument("event_id")
    chain = new_parser("get-auth-chain", "Count the auth chain of an event as stored here.")
    chain.add_argument("event_id")
    parse = new_parser("parse-pdu", "Check a PDU in a code block: format, event id, content hash.")
    parse.add_argument(
        "--room-version",
        default="10",
        choices=sorted(KNOWN_ROOM_VERSIONS, key=lambda v: (len(v), v)),
        help="the room version it is checked for (default 10)",
    )
    sign = new_parser("sign-json", "Sign the JSON object in a code block with the server key.")
    verify = new_parser("verify-json", "Check the signatures on the JSON object in a code block.")
    return [
        Command(pdu, get_pdu),
        Command(chain, get_auth_chain),
        Command(parse, parse_pdu, needs_code_block=True),
        Command(sign, sign_json, needs_code_block=True),
        Command(verify, verify_json_command, needs_code_block=True),
    ]
