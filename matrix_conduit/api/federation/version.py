"""`GET /_matrix/federation/v1/version`: the server software's name and version.

Spec: `data/api/server-server/version.yaml`.
"""

from __future__ import annotations

from quart import Blueprint

from ... import __version__

blueprint = Blueprint("federation_version", __name__)


@blueprint.get("/_matrix/federation/v1/version")
async def version() -> dict:
    return {"server": {"name": "matrix-conduit", "version": __version__}}
