"""Run the homeserver: open the database, build the services, serve HTTP.

Startup order matters for admins: the database is opened (and its server name
checked) before the port is bound, so a misconfigured server fails with one
clear message instead of half-starting. Shutdown (SIGTERM/SIGINT) stops
accepting connections, lets in-flight requests finish within
`GRACEFUL_SECONDS`, stops background work and closes the database, so the
process exits 0 with everything on disk.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import hypercorn
import hypercorn.trio
import trio

from . import sd_notify
from .app import create_app
from .config import Config
from .service import Services
from .service.appservices import RegistrationError
from .storage import DatabaseError, open_configured_database

log = logging.getLogger(__name__)

GRACEFUL_SECONDS = 10.0


@dataclass(frozen=True)
class Running:
    """What `serve` reports once it listens: its URLs and its services (for tests)."""

    urls: list[str]
    services: Services


class StartupError(Exception):
    """The server cannot start; the message tells the admin why."""


def bind_address(address: str, port: int) -> str:
    """hypercorn's bind syntax: IPv6 literals in brackets."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def hypercorn_config(config: Config) -> hypercorn.Config:
    hyper = hypercorn.Config()
    hyper.bind = [bind_address(config.address, config.port)]
    hyper.accesslog = None
    hyper.errorlog = logging.getLogger("hypercorn.error")
    hyper.graceful_timeout = GRACEFUL_SECONDS
    # Slow and idle clients must not hold connections: hypercorn closes one
    # that has not sent complete headers within its keep-alive timeout (new
    # connections and idle keep-alive ones alike); the body's deadline is the
    # app's (`BODY_TIMEOUT`, answered 408 and closed).
    hyper.keep_alive_timeout = config.client_idle_timeout
    hyper.ssl_handshake_timeout = config.client_idle_timeout
    hyper.include_server_header = False
    if config.tls is not None:
        for key, path in (("tls.certs", config.tls.certs), ("tls.key", config.tls.key)):
            if not os.access(path, os.R_OK):
                raise StartupError(f"{key}: cannot read {path}")
        hyper.certfile = config.tls.certs
        hyper.keyfile = config.tls.key
    return hyper


async def wait_for_signal() -> None:
    """Return at the first SIGTERM or SIGINT: the trigger for a graceful shutdown."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            return


async def serve(
    config: Config,
    shutdown_trigger: Callable[[], Awaitable[None]],
    *,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `shutdown_trigger` returns; `task_status` gets a `Running`."""
    try:
        db = open_configured_database(config, shared=True)
    except DatabaseError as error:
        raise StartupError(str(error)) from None
    if config.database_backend == "rocksdb":
        log.info('database_backend "rocksdb": using the embedded LevelDB store')
    try:
        try:
            services = Services(config, db)
        except DatabaseError as error:
            raise StartupError(str(error)) from None
        except RegistrationError as error:  # app_service_config_files
            problems = "\n".join(f"  - {problem}" for problem in error.problems)
            raise StartupError(f"appservice registration problems:\n{problems}") from None
        app = create_app(config, services)
        hyper = hypercorn_config(config)

        async def stop_when_triggered() -> None:
            await shutdown_trigger()
            sd_notify.notify("STOPPING=1")
            services.notifier.wake_all()  # long-polling syncs answer now

        async with trio.open_nursery() as nursery:

            async def serve_http(task_status: trio.TaskStatus[list[str]]) -> None:
                try:
                    await hypercorn.trio.serve(
                        app, hyper, shutdown_trigger=stop_when_triggered, task_status=task_status
                    )
                except* OSError as errors:  # hypercorn's nurseries group the bind error
                    reason = _innermost(errors).strerror
                    raise StartupError(f"cannot listen on {hyper.bind[0]}: {reason}") from None
                # HTTP has drained: stop the background work too.
                nursery.cancel_scope.cancel()

            async def serve_metrics(*args: Any, task_status: trio.TaskStatus[None]) -> None:
                from .metrics import serve_metrics_listener

                try:
                    await serve_metrics_listener(*args, task_status=task_status)
                except* OSError as errors:
                    reason = _innermost(errors).strerror
                    address = f"{config.metrics.address}:{config.metrics.port}"
                    raise StartupError(f"cannot listen on {address} (metrics): {reason}") from None

            await nursery.start(services.run_background)
            binds = await nursery.start(serve_http)
            if app.metrics is not None and config.metrics.port is not None:
                await nursery.start(serve_metrics, app.metrics, config.metrics)
            log.info("matrix-conduit serving %s on %s", config.server_name, ", ".join(binds))
            sd_notify.notify("READY=1")
            task_status.started(Running(binds, services))
    finally:
        db.close()
    log.info("stopped; database closed")


def _innermost(group: BaseExceptionGroup) -> BaseException:
    """The first exception in `group`, through the nesting that trio's nurseries add."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def run(config: Config) -> None:
    """Serve in this process until SIGTERM/SIGINT (the `matrix-conduit` command).

    Files the server creates (the database, media) are for its user alone,
    as with the systemd unit's `UMask=0077`, also when started by hand.
    """
    os.umask(0o077)
    try:
        trio.run(functools.partial(serve, config, wait_for_signal))
    except* StartupError as errors:  # raised inside the server's nursery, so grouped
        raise _innermost(errors) from None
