"""One handler under every path prefix a client-server endpoint is called by.

Spec: `content/client-server-api/_index.md`, "API Versions". Endpoints that
existed before Matrix 1.1 keep answering under `/_matrix/client/r0` as well
as `/_matrix/client/v3`: clients and bots built against r0 still call those
paths. Endpoints introduced later live under the prefix their OpenAPI file
names (`v1` for `/register/m.login.registration_token/validity`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from quart import Blueprint

R0_AND_V3 = ("r0", "v3")

View = TypeVar("View", bound=Callable[..., object])


def versioned_route(
    blueprint: Blueprint,
    api: str,
    rule: str,
    *,
    methods: Sequence[str],
    versions: Sequence[str] = R0_AND_V3,
) -> Callable[[View], View]:
    """Register the decorated view at `/_matrix/<api>/<version><rule>` for each version."""

    def register(view: View) -> View:
        for version in versions:
            blueprint.add_url_rule(
                f"/_matrix/{api}/{version}{rule}", view_func=view, methods=list(methods)
            )
        return view

    return register


def client_route(
    blueprint: Blueprint, rule: str, *, methods: Sequence[str], versions: Sequence[str] = R0_AND_V3
) -> Callable[[View], View]:
    """Register the decorated view at `/_matrix/client/<version><rule>` for each version."""
    return versioned_route(blueprint, "client", rule, methods=methods, versions=versions)
