"""`GET /_matrix/client/versions`: which spec versions this server implements.

Spec: `data/api/client-server/versions.yaml`. Only versions whose required
endpoints are all present are advertised; the list grows as they land.
"""

from __future__ import annotations

from quart import Blueprint

blueprint = Blueprint("versions", __name__)

SUPPORTED_VERSIONS: list[str] = [
    # Accounts (registration with UIA and tokens, login, devices, profiles) are in
    # place for these; v1.2 adds registration tokens, v1.3 refresh tokens.
    "r0.5.0",
    "r0.6.0",
    "r0.6.1",
    "v1.1",
    "v1.2",
    "v1.3",
]
UNSTABLE_FEATURES: dict[str, bool] = {}


@blueprint.get("/_matrix/client/versions")
async def versions() -> dict:
    return {"versions": SUPPORTED_VERSIONS, "unstable_features": UNSTABLE_FEATURES}
