"""`GET /_matrix/client/versions`: which spec versions this server implements.

Spec: `data/api/client-server/versions.yaml`. Only versions whose required
endpoints are all present are advertised; the list grows as they land.
"""

from __future__ import annotations

from quart import Blueprint

blueprint = Blueprint("versions", __name__)

SUPPORTED_VERSIONS: list[str] = [
    # The client-server endpoints these versions require are all served: accounts,
    # rooms, sync, E2EE keys and to-device, media (authenticated since v1.11),
    # push, search, relations and threads (v1.4), spaces, timestamp_to_event (v1.6),
    # m.mentions push rules (v1.7), room versions up to 11 (v1.8).
    "r0.5.0",
    "r0.6.0",
    "r0.6.1",
    *(f"v1.{minor}" for minor in range(1, 12)),
]
UNSTABLE_FEATURES: dict[str, bool] = {
    "org.matrix.msc3916.stable": True,  # authenticated media, for clients older than v1.11
    # Element Web sets up cross-signing at registration only when it sees this
    # (without it, each message of a new account shows "not verified by its owner").
    "org.matrix.e2e_cross_signing": True,
    # Served before the versions that define them are advertised (v1.15, v1.19):
    # clients look for these to call room summaries and mutual rooms (MSC3266, MSC2666).
    "im.nheko.summary": True,
    "uk.half-shot.msc2666.query_mutual_rooms": True,
    # Simplified sliding sync (MSC4186): Element X logs in only where it sees this.
    "org.matrix.simplified_msc3575": True,
}


@blueprint.get("/_matrix/client/versions")
async def versions() -> dict:
    return {"versions": SUPPORTED_VERSIONS, "unstable_features": UNSTABLE_FEATURES}
