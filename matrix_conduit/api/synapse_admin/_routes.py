"""The blueprint of Synapse's admin API and its route decorator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from quart import Blueprint

blueprint = Blueprint("synapse_admin", __name__)

View = TypeVar("View", bound=Callable[..., object])


def admin_route(
    rule: str, *, methods: Sequence[str], version: str = "v1"
) -> Callable[[View], View]:
    """Register the decorated view at `/_synapse/admin/<version><rule>`."""

    def register(view: View) -> View:
        blueprint.add_url_rule(
            f"/_synapse/admin/{version}{rule}",
            endpoint=f"{version}{rule}:{view.__name__}",
            view_func=view,
            methods=list(methods),
        )
        return view

    return register
