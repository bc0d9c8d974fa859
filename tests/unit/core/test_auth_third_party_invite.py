"""Third-party invites: the `m.room.third_party_invite` event, and the invite that redeems it.

Spec: rule 5.3.1 (v1–v5), 4.3.1 (v6, v7), 4.4.1 (v8–v11), 5.4.1 (v12) and the
`m.room.third_party_invite` rule (7 / 6 / 7); server-server API "Third-party
invites" § Verifying the invite; `data/event-schemas/schema/m.room.third_party_invite.yaml`
(`public_key`, `public_keys`, standard or URL-safe unpadded base64). The
identity server's signatures here are real ed25519 signatures made in the test.
"""

from __future__ import annotations

from typing import Any

import pytest

from matrix_conduit.core.room_versions import RoomVersion
from matrix_conduit.core.signing import (
    encode_base64,
    generate_signing_key,
    sign_json,
    verify_key_base64,
)

from .auth_tables import (
    ALICE,
    ALL_VERSIONS,
    BOB,
    CAROL,
    DAVE,
    Case,
    Room,
    cases_by_version,
    established_room,
)

IDENTITY_SERVER = "id.example"
TOKEN = "abc123"
IDENTITY_KEY = generate_signing_key()
OTHER_KEY = generate_signing_key()


def _signed(mxid: str = BOB, token: str = TOKEN, key=IDENTITY_KEY, **extra: Any) -> dict:
    """The `signed` block an identity server hands out when `mxid` binds the 3PID."""
    return sign_json({"mxid": mxid, "token": token, **extra}, IDENTITY_SERVER, key)


def _invite_room(version: RoomVersion, **invite_content: Any) -> Room:
    """The established room in which DAVE has issued a third-party invite for TOKEN."""
    room = established_room(version)
    content = invite_content or {
        "display_name": "b...@example.org",
        "key_validity_url": "https://id.example/_matrix/identity/v2/pubkey/isvalid",
        "public_key": verify_key_base64(IDENTITY_KEY),
    }
    room.set_state("m.room.third_party_invite", content, state_key=TOKEN, sender=DAVE)
    return room


def _room_with_keys(*public_keys: str, single: str | None = None):
    def setup(version: RoomVersion) -> Room:
        content: dict[str, Any] = {
            "display_name": "b...@example.org",
            "public_keys": [{"public_key": key} for key in public_keys],
        }
        if single is not None:
            content["public_key"] = single
        return _invite_room(version, **content)

    return setup


def _redeem(signed: object = None, sender: str = DAVE, target: str = BOB, **third_party: Any):
    """The `m.room.member` invite that redeems the third-party invite."""

    def build(room: Room) -> dict[str, Any]:
        block = {"display_name": "b...@example.org", **third_party}
        if signed is not None:
            block["signed"] = signed
        return room.member_event(sender, target, "invite", third_party_invite=block)

    return build


def _with_state(setup, members: dict[str, str]):
    def build(version: RoomVersion) -> Room:
        room = setup(version)
        for user_id, membership in members.items():
            room.set_member(user_id, membership, sender=ALICE)
        return room

    return build


def _urlsafe(key) -> str:
    return encode_base64(bytes(key.verify_key), urlsafe=True)


TP = ("member", "invite", 1)
"""The third-party invite rule; its sub-rules are 1–8."""

REDEEM_CASES = [
    Case(
        "invite signed by the identity server's public_key is allowed",
        ALL_VERSIONS,
        _redeem(_signed()),
        setup=_invite_room,
    ),
    Case(
        "invite signed by a key from public_keys is allowed",
        ALL_VERSIONS,
        _redeem(_signed()),
        setup=_room_with_keys(verify_key_base64(OTHER_KEY), verify_key_base64(IDENTITY_KEY)),
    ),
    Case(
        "public keys in URL-safe base64 are accepted",
        ALL_VERSIONS,
        _redeem(_signed()),
        setup=_room_with_keys(_urlsafe(IDENTITY_KEY)),
    ),
    Case(
        "one valid signature among bad ones is enough",
        ALL_VERSIONS,
        _redeem(sign_json(_signed(), "other-id.example", OTHER_KEY)),
        setup=_invite_room,
    ),
    Case(
        "the redeeming invite needs no joined sender, only the issuer",
        ALL_VERSIONS,
        _redeem(_signed()),
        setup=_with_state(_invite_room, {DAVE: "leave"}),
    ),
    Case(
        "banned target cannot be invited by third-party invite",
        ALL_VERSIONS,
        _redeem(_signed()),
        (*TP, 1),
        setup=_with_state(_invite_room, {BOB: "ban"}),
    ),
    Case(
        "third_party_invite without signed is rejected",
        ALL_VERSIONS,
        _redeem(None),
        (*TP, 2),
        setup=_invite_room,
    ),
    Case(
        "third_party_invite whose signed is not an object is rejected",
        ALL_VERSIONS,
        _redeem("signed"),
        (*TP, 2),
        setup=_invite_room,
    ),
    Case(
        "signed without mxid is rejected",
        ALL_VERSIONS,
        _redeem(sign_json({"token": TOKEN}, IDENTITY_SERVER, IDENTITY_KEY)),
        (*TP, 3),
        setup=_invite_room,
    ),
    Case(
        "signed without token is rejected",
        ALL_VERSIONS,
        _redeem(sign_json({"mxid": BOB}, IDENTITY_SERVER, IDENTITY_KEY)),
        (*TP, 3),
        setup=_invite_room,
    ),
    Case(
        "signed for another user is rejected",
        ALL_VERSIONS,
        _redeem(_signed(mxid=CAROL)),
        (*TP, 4),
        setup=_invite_room,
    ),
    Case(
        "signed token without a matching m.room.third_party_invite is rejected",
        ALL_VERSIONS,
        _redeem(_signed(token="unknown")),
        (*TP, 5),
        setup=_invite_room,
    ),
    Case(
        "redeeming someone else's third-party invite is rejected",
        ALL_VERSIONS,
        _redeem(_signed(), sender=ALICE),
        (*TP, 6),
        setup=_invite_room,
    ),
    Case(
        "signature by a key the invite does not list is rejected",
        ALL_VERSIONS,
        _redeem(_signed(key=OTHER_KEY)),
        (*TP, 8),
        setup=_invite_room,
    ),
    Case(
        "signed block altered after signing is rejected",
        ALL_VERSIONS,
        _redeem({**_signed(), "extra": "added later"}),
        (*TP, 8),
        setup=_invite_room,
    ),
    Case(
        "signed block without signatures is rejected",
        ALL_VERSIONS,
        _redeem({"mxid": BOB, "token": TOKEN}),
        (*TP, 8),
        setup=_invite_room,
    ),
    Case(
        "signatures that are not objects are rejected",
        ALL_VERSIONS,
        _redeem({"mxid": BOB, "token": TOKEN, "signatures": {IDENTITY_SERVER: "sig"}}),
        (*TP, 8),
        setup=_invite_room,
    ),
    Case(
        "a signature under a non-ed25519 key id is not checked",
        ALL_VERSIONS,
        _redeem(
            {
                "mxid": BOB,
                "token": TOKEN,
                "signatures": {
                    IDENTITY_SERVER: {
                        "curve25519:1": _signed()["signatures"][IDENTITY_SERVER][
                            f"ed25519:{IDENTITY_KEY.version}"
                        ]
                    }
                },
            }
        ),
        (*TP, 8),
        setup=_invite_room,
    ),
    Case(
        "invite event without any public key is rejected",
        ALL_VERSIONS,
        _redeem(_signed()),
        (*TP, 8),
        setup=_room_with_keys(),
    ),
    Case(
        "undecodable public keys are skipped, not fatal",
        ALL_VERSIONS,
        _redeem(_signed()),
        setup=_room_with_keys("not base64!", single=verify_key_base64(IDENTITY_KEY)),
    ),
]


@pytest.mark.parametrize(("case", "version"), cases_by_version(REDEEM_CASES))
def test_redeeming_a_third_party_invite(case: Case, version: RoomVersion) -> None:
    case.run(version)


def _issue(sender: str):
    return lambda room: room.build(
        "m.room.third_party_invite",
        sender,
        {"display_name": "c...@example.org", "public_key": verify_key_base64(IDENTITY_KEY)},
        state_key="token2",
    )


def _room_with_carol(version: RoomVersion, **power_levels: Any) -> Room:
    room = established_room(version)
    room.set_member(CAROL, "join")
    if power_levels:
        content = room.state[("m.room.power_levels", "")]["content"]
        room.set_power_levels(**{**content, **power_levels})
    return room


ISSUE_CASES = [
    Case(
        "member at the invite level issues a third-party invite",
        ALL_VERSIONS,
        _issue(CAROL),
        setup=_room_with_carol,
    ),
    Case(
        "member below the invite level cannot issue a third-party invite",
        ALL_VERSIONS,
        _issue(CAROL),
        ("third_party_invite",),
        setup=lambda version: _room_with_carol(version, invite=1),
    ),
    Case(
        "third-party invites follow the invite level, not state_default",
        ALL_VERSIONS,
        _issue(CAROL),
        setup=lambda version: _room_with_carol(version, state_default=100),
    ),
    Case(
        "third-party invites follow the invite level, not events",
        ALL_VERSIONS,
        _issue(CAROL),
        setup=lambda version: _room_with_carol(version, events={"m.room.third_party_invite": 100}),
    ),
    Case(
        "non-member cannot issue a third-party invite",
        ALL_VERSIONS,
        _issue(BOB),
        ("sender_joined",),
    ),
]


@pytest.mark.parametrize(("case", "version"), cases_by_version(ISSUE_CASES))
def test_issuing_a_third_party_invite(case: Case, version: RoomVersion) -> None:
    case.run(version)
