"""The baseline: a bare QuartTrio app answering `/versions`, on the same hypercorn setup.

    CONDUIT_CONFIG=conduit.toml python -m bench.hello_app

It reads the same configuration as the server, serves with the same
`hypercorn_config` and stops on the same signals, and answers the same JSON
body; what it lacks is everything `matrix_conduit.app` adds (CORS hooks,
preflight, error handlers, the JSON provider, the closing connection class,
the blueprints and services). The difference in CPU per request between the
two is our per-request overhead.
"""

from __future__ import annotations

import functools

import hypercorn.trio
import trio
from quart_trio import QuartTrio

from matrix_conduit.api.client.versions import SUPPORTED_VERSIONS, UNSTABLE_FEATURES
from matrix_conduit.config import config_path_from_environment, load_config
from matrix_conduit.server import hypercorn_config, wait_for_signal

app = QuartTrio(__name__)


@app.get("/_matrix/client/versions")
async def versions() -> dict:
    return {"versions": SUPPORTED_VERSIONS, "unstable_features": UNSTABLE_FEATURES}


def main() -> None:
    hyper = hypercorn_config(load_config(config_path_from_environment()))
    trio.run(functools.partial(hypercorn.trio.serve, app, hyper, shutdown_trigger=wait_for_signal))


if __name__ == "__main__":
    main()
