"""Who may use the admin API: server admins, the users table's admin flag.

Synapse's admin API "Authenticate as a server admin": an access token of a
user who is a server admin (`/admin/whois` checks the same flag); a missing
or unknown token is the usual 401, anybody else 403 `M_FORBIDDEN`.
"""

from __future__ import annotations

from ...errors import forbidden
from ..auth import Requester, authenticate
from ..request import services


def require_admin() -> Requester:
    """The requester, who must be a server admin."""
    requester = authenticate()
    if not services().users.is_admin(requester.user_id):
        raise forbidden("You are not a server admin.")
    return requester
