"""`matrix-conduit rotate-signing-key`: a new server signing key, while the server is stopped.

Spec: `content/server-server-api.md` § Publishing Keys. After a rotation the
server signs with the new key; the old one stays published under
`old_verify_keys` with the time it stopped being used, so other servers can
still check what it signed. Rotate when the old key may have leaked, or as
routine; nothing else has to change.
"""

from __future__ import annotations

from .config import Config
from .offline_accounts import offline_services
from .service.clock import now_ms


def rotate_signing_key(config: Config) -> tuple[str, str]:
    """Rotate the configured server's key: (old key id, new key id)."""
    with offline_services(config) as services:
        old_key_id = services.globals.signing_key_id
        services.globals.rotate_signing_key(now_ms())
        return old_key_id, services.globals.signing_key_id
