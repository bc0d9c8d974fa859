"""`POST /search`: full-text search over the rooms the user can see.

Spec: `content/client-server-api/modules/search.md` and
`data/api/client-server/search.yaml`; the search is `service/rooms/search.py`.
`next_batch` is an offset into the ordered results.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from ...core.filters import EventFilter, InvalidFilter
from ...errors import bad_json, missing_param
from ...service.rooms.search import SEARCH_KEYS
from ..auth import authenticate
from ..fields import optional_bool, optional_int, optional_object, optional_str, required_str
from ..query import query_offset
from ..request import json_object, services
from .messages import client_events
from .routes import client_route

blueprint = Blueprint("search", __name__)

DEFAULT_PAGE = 10
DEFAULT_CONTEXT = 5


@client_route(blueprint, "/search", methods=["POST"])
async def search() -> dict:
    requester = authenticate()
    body = await json_object()
    categories = optional_object(body, "search_categories")
    if categories is None:
        raise missing_param("search_categories")
    criteria = optional_object(categories, "room_events")
    if criteria is None:
        return {"search_categories": {}}
    term = required_str(criteria, "search_term")
    keys = criteria.get("keys", list(SEARCH_KEYS))
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise bad_json("`keys` must be a list of strings.")
    order_by = optional_str(criteria, "order_by") or "rank"
    if order_by not in ("rank", "recent"):
        raise bad_json('`order_by` must be "rank" or "recent".')
    try:
        event_filter = EventFilter.from_json(criteria.get("filter"), "filter.")
    except InvalidFilter as error:
        raise bad_json(f"Invalid filter: {error}") from None
    start = query_offset("next_batch")
    page_size = max(1, min(event_filter.limit or DEFAULT_PAGE, 100))

    rooms = services().rooms
    hits = rooms.search.search(
        requester.user_id, term, keys=keys, event_filter=event_filter, order_by=order_by
    )
    page = hits[start : start + page_size]
    context_request = optional_object(criteria, "event_context")
    results = []
    for hit in page:
        result: dict[str, Any] = {
            "rank": hit.rank,
            "result": client_events(requester, [hit.event])[0],
        }
        if context_request is not None:
            found = rooms.search.context(
                requester.user_id,
                hit,
                optional_int(context_request, "before_limit") or DEFAULT_CONTEXT,
                optional_int(context_request, "after_limit") or DEFAULT_CONTEXT,
            )
            result["context"] = {
                "events_before": client_events(requester, found["events_before"]),
                "events_after": client_events(requester, found["events_after"]),
                "start": found["start"],
                "end": found["end"],
            }
        results.append(result)
    answer: dict[str, Any] = {
        "results": results,
        "count": len(hits),
        "highlights": rooms.search.highlights(term),
    }
    if start + page_size < len(hits):
        answer["next_batch"] = str(start + page_size)
    if optional_bool(criteria, "include_state", default=False):
        answer["state"] = {
            room_id: client_events(requester, rooms.events.state(requester.user_id, room_id))
            for room_id in {hit.event["room_id"] for hit in page}
        }
    groupings = optional_object(criteria, "groupings") or {}
    group_by = [g.get("key") for g in groupings.get("group_by", []) if isinstance(g, dict)]
    if group_by:
        answer["groups"] = _groups(page, group_by)
    return {"search_categories": {"room_events": answer}}


def _groups(page: list, group_by: list) -> dict[str, Any]:
    groups: dict[str, Any] = {}
    for key in group_by:
        if key not in ("room_id", "sender"):
            raise bad_json('`groupings.group_by[].key` must be "room_id" or "sender".')
        by_value: dict[str, Any] = {}
        for hit in page:
            value = hit.event[key]
            group = by_value.setdefault(value, {"results": [], "order": len(by_value) + 1})
            group["results"].append(hit.event["event_id"])
        groups[key] = by_value
    return groups
