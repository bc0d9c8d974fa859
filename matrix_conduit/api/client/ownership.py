"""Endpoints that act on one user's own data (`/user/{userId}/...`, typing, presence).

Spec: `data/api/client-server/account-data.yaml`, `tags.yaml`, `filter.yaml`,
`typing.yaml`, `presence.yaml`: "the access token must be authorised to make
requests for this user ID". Anyone else gets 403 `M_FORBIDDEN`.
"""

from __future__ import annotations

from ...errors import forbidden
from ..auth import Requester


def require_own(requester: Requester, user_id: str, what: str) -> None:
    """403 unless the requester is `user_id`; `what` names the data ("account data")."""
    if requester.user_id != user_id:
        raise forbidden(f"You can only use your own {what}.")
