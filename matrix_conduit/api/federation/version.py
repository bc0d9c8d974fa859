"""`GET /_matrix/federation/v1/version`: the server software's name and version.

Spec: `data/api/server-server/version.yaml`. Unsigned, as the spec has it;
403 like every federation endpoint when `allow_federation = false`.
"""

from __future__ import annotations

from ... import __version__
from .auth import open_blueprint

blueprint = open_blueprint("federation_version", __name__)


@blueprint.get("/_matrix/federation/v1/version")
async def version() -> dict:
    return {"server": {"name": "matrix-conduit", "version": __version__}}
