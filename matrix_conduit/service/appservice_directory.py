"""Room directories appservices publish per third-party network.

Spec: `data/api/client-server/appservice_room_directory.yaml`
(`PUT /directory/list/appservice/{networkId}/{roomId}`, only for
appservices) and `list_public_rooms.yaml`: `/publicRooms` with a
`third_party_instance_id` lists the rooms published for that network. An
instance id is `<appservice id>|<network id>`, as `/thirdparty/protocols`
reports it (`appservice_queries.py`).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..storage import Database
from ..storage.kv import SEPARATOR, join_key

TREES = ("appservicenetworkroom_published",)


def instance_id(appservice_id: str, network_id: str) -> str:
    return f"{appservice_id}|{network_id}"


class AppServiceDirectory:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._published = db.tree("appservicenetworkroom_published")

    def set_visibility(
        self, appservice_id: str, network_id: str, room_id: str, public: bool
    ) -> None:
        key = join_key(instance_id(appservice_id, network_id), room_id)
        if public:
            self._published.put(key, b"")
        else:
            self._published.delete(key)

    def rooms(self, third_party_instance_id: str) -> Iterator[str]:
        """The rooms published for one network (a `third_party_instance_id`)."""
        prefix = third_party_instance_id.encode() + SEPARATOR
        return (key[len(prefix) :].decode() for key in self._published.keys_with_prefix(prefix))
