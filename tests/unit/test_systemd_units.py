"""The template unit runs each cluster process exactly as the single unit runs the server.

`systemd/matrix-conduit@.service` (issue #18: several processes on one
PostgreSQL database, instance name = port) is a copy of
`systemd/matrix-conduit.service` with a few lines changed; systemd has no
include, so this test is what keeps a hardening line added to one from being
forgotten in the other. The units themselves are checked by systemd
(`systemd-analyze verify` and `security`) in tests/packaging/run.sh.
"""

from __future__ import annotations

from pathlib import Path

UNITS = Path(__file__).resolve().parents[2] / "systemd"

ONLY_IN_THE_SINGLE_UNIT = {
    "Description=Conduit Matrix homeserver",
    "After=network-online.target",
    "Alias=conduit.service",
}
ONLY_IN_THE_TEMPLATE = {
    "Description=Conduit Matrix homeserver, process on port %i",
    "After=network-online.target postgresql.service",
    "Environment=CONDUIT_PORT=%i",
}


def settings(name: str) -> list[str]:
    """The unit's section headers and settings in order, comments left out."""
    lines = (UNITS / name).read_text().splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def test_the_template_differs_from_the_single_unit_only_in_name_port_and_ordering() -> None:
    single = settings("matrix-conduit.service")
    template = settings("matrix-conduit@.service")
    assert set(single) - set(template) == ONLY_IN_THE_SINGLE_UNIT
    assert set(template) - set(single) == ONLY_IN_THE_TEMPLATE
    shared = set(single) & set(template)
    assert [line for line in single if line in shared] == [
        line for line in template if line in shared
    ]
