"""Profiles of users on other servers, asked of their server (`/query/profile`).

Spec: `content/server-server-api.md` "Querying for information"
(`data/api/server-server/query.yaml`, `GET /query/profile`), and the
client-server "Profiles": `GET /profile/{userId}` of a remote user is
answered from that user's server. Only the two public fields are passed on,
and only as strings, whatever else the remote answers.
"""

from __future__ import annotations

from typing import Any

from ...core.ids import server_name_of
from ...errors import MatrixError, not_found
from .client import FederationClient
from .errors import DestinationForbidden, FederationDisabled, FederationError, RemoteError

PROFILE_FIELDS = ("displayname", "avatar_url")
QUERY_TIMEOUT_SECONDS = 10.0


class RemoteProfiles:
    def __init__(self, client: FederationClient) -> None:
        self._client = client

    async def profile(self, user_id: str, field: str | None = None) -> dict[str, Any]:
        """The user's public profile (or only `field`), from their server.

        404 when the server says the user (or the field) does not exist, or
        when federation (with that server) is not allowed; 502 when the
        server cannot be reached.
        """
        query = {"user_id": user_id} if field is None else {"user_id": user_id, "field": field}
        try:
            answer = await self._client.request(
                server_name_of(user_id),
                "GET",
                "/_matrix/federation/v1/query/profile",
                query=query,
                timeout=QUERY_TIMEOUT_SECONDS,
            )
        except RemoteError as error:
            if error.status == 404:
                raise not_found(f"{user_id} has no profile on their server.") from None
            raise MatrixError(502, "M_UNKNOWN", f"The user's server refused: {error}") from None
        except (FederationDisabled, DestinationForbidden):
            raise not_found("Profiles of users on other servers are not available here.") from None
        except FederationError as error:
            raise MatrixError(
                502, "M_UNKNOWN", f"The user's server is unreachable: {error}"
            ) from None
        if not isinstance(answer, dict):
            return {}
        wanted = PROFILE_FIELDS if field is None else (field,)
        return {
            name: answer[name]
            for name in wanted
            if name in PROFILE_FIELDS and isinstance(answer.get(name), str)
        }
