"""Federation with other Matrix servers: keys, discovery, signed requests both ways.

Spec: `content/server-server-api.md`. `Federation` assembles the parts; the
rest of the server calls these:
- `key_ring.verify_signed_json(obj, server_name, at_ts)` and
  `key_ring.verify_keys_for(server_name, key_ids, at_ts)` (others' keys);
- `client.request(destination, method, path, query=..., body=...)` (a signed
  request to another server, its JSON answer or a `FederationError`);
- `request_auth.origin_of(...)`, which the API's signed blueprints call for
  every incoming request;
- `notary.query(...)` and `key_ring.own_key_document()` for `/_matrix/key/v2`.
"""

from __future__ import annotations

from ...config import Config
from ...core.ip_ranges import IpRanges
from ...storage import Database
from ..clock import Clock, now_ms
from ..globals import Globals
from ..outgoing_http import OutgoingHttp
from .client import FederationClient
from .connector import Connector
from .destinations import Destinations
from .discovery import ServerDiscovery
from .key_ring import KeyRing
from .notary import Notary
from .request_auth import RequestAuth
from .resolver import DnsResolver, Resolver


class Federation:
    def __init__(
        self,
        config: Config,
        db: Database,
        globals_: Globals,
        http: OutgoingHttp,
        resolver: Resolver | None = None,
        clock: Clock = now_ms,
    ) -> None:
        """`resolver` and `clock` are there for tests: stub DNS names, move time."""
        self.destinations = Destinations(db, clock)
        ip_ranges = IpRanges.parse(
            config.federation_ip_range_denylist, config.federation_ip_range_allowlist
        )
        resolver = resolver or DnsResolver()
        connector = Connector(http, resolver, ip_ranges)
        self.discovery = ServerDiscovery(connector, resolver, clock)
        self.client = FederationClient(
            config, globals_, self.discovery, connector, self.destinations
        )
        self.key_ring = KeyRing(db, globals_, self.client, config.trusted_servers, clock)
        self.notary = Notary(globals_, self.key_ring, clock)
        self.request_auth = RequestAuth(
            globals_,
            self.key_ring,
            self.destinations,
            clock,
            max_in_progress_per_origin=config.max_inbound_requests_per_server,
        )
