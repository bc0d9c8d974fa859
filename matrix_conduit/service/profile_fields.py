"""A local user's whole profile: `displayname`, `avatar_url` and any custom field.

Spec: `content/client-server-api/_index.md`, "Profiles" (v1.16 "profile
fields") and `data/api/client-server/profile.yaml`
(`GET`/`PUT`/`DELETE /profile/{userId}/{keyName}`): a key is `avatar_url`,
`displayname`, `m.tz` or a namespaced identifier, at most 255 bytes
(`M_KEY_TOO_LARGE`); the whole profile stays under 64 KiB of JSON
(`M_PROFILE_TOO_LARGE`). The two classic fields keep their own trees in
`Users` (membership events follow them); the others are stored there as
JSON values, any type, `null` included.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import MatrixError, bad_json, invalid_param
from .users import Users

MAX_KEY_BYTES = 255
MAX_PROFILE_BYTES = 64 * 1024
"""The spec's limit: the profile MUST be under 64 KiB (as JSON)."""
MAX_DISPLAYNAME_LENGTH = 256
MAX_AVATAR_URL_LENGTH = 1000
CLASSIC_FIELDS = ("displayname", "avatar_url")
_KEY_GRAMMAR = re.compile(r"(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)")


def check_key_name(key_name: str) -> None:
    """400 unless `key_name` may name a profile field (length first, then grammar)."""
    if len(key_name.encode()) > MAX_KEY_BYTES:
        raise MatrixError(
            400, "M_KEY_TOO_LARGE", f"A profile key has at most {MAX_KEY_BYTES} bytes."
        )
    if not _KEY_GRAMMAR.fullmatch(key_name):
        raise invalid_param(
            f"Invalid profile key {key_name!r}: it must be displayname, avatar_url, m.tz or "
            "a namespaced identifier such as org.example.field."
        )


class ProfileFields:
    def __init__(self, users: Users) -> None:
        self._users = users

    def profile(self, user_id: str) -> dict[str, Any]:
        """Every field the local user has set (none for an unknown user)."""
        classic = {
            "displayname": self._users.displayname(user_id),
            "avatar_url": self._users.avatar_url(user_id),
        }
        profile: dict[str, Any] = {k: v for k, v in classic.items() if v is not None}
        profile.update(self._users.custom_profile_fields(user_id))
        return profile

    async def set(self, user_id: str, key_name: str, value: Any) -> None:
        """Set one field, after checking its key, its value and the profile's size.

        For the classic fields `null` or `""` removes them (what clients did before
        `DELETE`); a custom `null` is stored, as the spec asks.
        """
        check_key_name(key_name)
        _check_value(key_name, value)
        new_profile = self.profile(user_id)
        new_profile[key_name] = value
        size = len(json.dumps(new_profile, ensure_ascii=False, separators=(",", ":")).encode())
        if size >= MAX_PROFILE_BYTES:
            raise MatrixError(
                400,
                "M_PROFILE_TOO_LARGE",
                f"With this value the profile would be {size} bytes; it must stay under "
                f"{MAX_PROFILE_BYTES}.",
            )
        if key_name == "displayname":
            await self._users.set_displayname(user_id, value or None)
        elif key_name == "avatar_url":
            await self._users.set_avatar_url(user_id, value or None)
        else:
            self._users.set_custom_profile_field(user_id, key_name, value)

    async def delete(self, user_id: str, key_name: str) -> None:
        """Remove one field (nothing to do if it is not set)."""
        check_key_name(key_name)
        if key_name == "displayname":
            await self._users.set_displayname(user_id, None)
        elif key_name == "avatar_url":
            await self._users.set_avatar_url(user_id, None)
        else:
            self._users.delete_custom_profile_field(user_id, key_name)


def _check_value(key_name: str, value: Any) -> None:
    if key_name == "displayname":
        if value is not None and not isinstance(value, str):
            raise bad_json("`displayname` must be a string.")
        if value is not None and len(value) > MAX_DISPLAYNAME_LENGTH:
            raise invalid_param(f"A display name has at most {MAX_DISPLAYNAME_LENGTH} characters.")
    elif key_name == "avatar_url":
        if value is None or value == "":
            return
        if not isinstance(value, str):
            raise bad_json("`avatar_url` must be a string.")
        if not value.startswith("mxc://") or len(value) > MAX_AVATAR_URL_LENGTH:
            raise invalid_param(
                f"`avatar_url` must be an mxc:// URI of at most {MAX_AVATAR_URL_LENGTH} characters."
            )
    elif key_name == "m.tz" and not isinstance(value, str):
        raise invalid_param("`m.tz` must be a string (an IANA time zone).")
