"""Synapse's admin API (`/_synapse/admin/...`), which admin tools and scripts use.

Synapse documents it (docs/admin_api/*.md); synapse-admin, `register_new_matrix_user`
and many scripts speak it, so this server answers the parts a small server
needs, with Synapse's shapes. One module per area, all on one blueprint:
`registration` (shared-secret registration, server version), `users`,
`rooms`, `media`, `registration_tokens`. Except shared-secret registration
and the server version, every endpoint is for server admins only (403
`M_FORBIDDEN` for everybody else; `_auth.py`).
"""

from __future__ import annotations

from . import media, registration, registration_tokens, rooms, users  # noqa: F401  (routes)
from ._routes import blueprint

__all__ = ["blueprint"]
