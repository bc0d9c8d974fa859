"""TURN credentials for VoIP calls (`GET /voip/turnServer`).

Spec: `content/client-server-api/modules/voip.md` and
`data/api/client-server/voip.yaml`. With `turn_secret`, credentials follow
coturn's REST API scheme (`use-auth-secret`): the username is
`<expiry unix time>:<user id>` and the password is the base64 HMAC-SHA1 of
the username keyed with the secret, so coturn can check them without asking
us. Otherwise the static `turn_username`/`turn_password` are handed out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

from ..config import TurnConfig


def coturn_password(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class Turn:
    def __init__(self, turn: TurnConfig, clock: Callable[[], float] = time.time) -> None:
        self._turn = turn
        self._clock = clock

    def credentials(self, user_id: str) -> dict[str, Any]:
        """The TURN servers and credentials for the user; `{}` when none are configured."""
        turn = self._turn
        if not turn.uris:
            return {}
        if turn.secret:
            username = f"{int(self._clock()) + turn.ttl}:{user_id}"
            password = coturn_password(turn.secret, username)
        elif turn.username or turn.password:
            username, password = turn.username, turn.password
        else:
            return {}
        return {"username": username, "password": password, "uris": turn.uris, "ttl": turn.ttl}
