"""`GET /_matrix/client/versions`: which spec versions this server implements.

Spec: `data/api/client-server/versions.yaml`. Only versions whose required
endpoints are all present are advertised; the list grows as they land.
"""

from __future__ import annotations

from quart import Blueprint

blueprint = Blueprint("versions", __name__)

SUPPORTED_VERSIONS: list[str] = []
UNSTABLE_FEATURES: dict[str, bool] = {}


@blueprint.get("/_matrix/client/versions")
async def versions() -> dict:
    return {"versions": SUPPORTED_VERSIONS, "unstable_features": UNSTABLE_FEATURES}
