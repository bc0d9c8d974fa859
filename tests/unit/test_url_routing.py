"""Routing on the raw path: `%2F` stays inside its segment (`url_routing.py`).

Spec: `content/client-server-api/_index.md`, "API Standards": path
parameters are percent-encoded; v3 event ids hold `/` (`content/rooms/v3.md`).
"""

from __future__ import annotations

import pytest
from werkzeug.routing import Rule

from matrix_conduit.url_routing import RawPathMap, routing_path


@pytest.mark.parametrize(
    ("raw", "routed"),
    [
        (b"/rooms/!a:b/send", "/rooms/!a:b/send"),
        (b"/event/%24ab%2Fcd%2Bef", "/event/$ab%2Fcd+ef"),
        (b"/state/k/100%25", "/state/k/100%25"),
        (b"/alias/%23caf%C3%A9", "/alias/#café"),
        (b"/bad/%ED%A0%80", "/bad/\ufffd\ufffd\ufffd"),
    ],
)
def test_each_segment_is_decoded_but_slash_and_percent_stay_escaped(raw, routed):
    assert routing_path(raw) == routed


def match(rule: str, raw_path: bytes) -> dict:
    url_map = RawPathMap([Rule(rule, endpoint="view")])
    return url_map.bind("server", path_info=routing_path(raw_path)).match()[1]


def test_a_segment_parameter_gets_its_slash_back():
    assert match("/event/<event_id>/<txn_id>", b"/event/%24a%2Fb/t%25") == {
        "event_id": "$a/b",
        "txn_id": "t%",
    }


def test_a_path_parameter_takes_newlines_and_encoded_slashes():
    assert match("/state/<event_type>/<path:state_key>", b"/state/t/a%0Ab%2Fc/d") == {
        "event_type": "t",
        "state_key": "a\nb/c/d",
    }
