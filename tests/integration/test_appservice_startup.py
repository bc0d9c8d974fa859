"""A bad appservice registration file stops `matrix-conduit` at start, saying where.

Spec: `content/application-service-api.md`, "Registration" (the required
keys; `id` and `as_token` unique, which the homeserver MUST enforce). The
admin sees the file, the key and the reason on stderr, exit status 1, no
traceback, and nothing is served.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_cli import no_conduit_environment, run_main  # noqa: F401
from tests.support.mautrix_bridge import registration_yaml
from tests.support.server import free_port


def serve_with(monkeypatch, tmp_path: Path, files: list[Path]) -> None:
    config = tmp_path / "conduit.toml"
    listed = ", ".join(f'"{path}"' for path in files)
    config.write_text(
        "[global]\n"
        'server_name = "localhost"\n'
        'database_backend = "leveldb"\n'
        f'database_path = "{tmp_path / "db"}"\n'
        f"port = {free_port()}\n"
        "allow_federation = false\n"
        f"app_service_config_files = [{listed}]\n"
    )
    monkeypatch.setenv("CONDUIT_CONFIG", str(config))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda text: text.replace('"@_bridge_.*', '"@_bridge_(.*'), "namespaces.users[0].regex:"),
        (lambda text: text.replace("hs_token:", "hs_tokn:"), "hs_token: is required but missing"),
        (lambda text: text.replace("rate_limited: false", "rate_limited: 7"), "rate_limited:"),
    ],
)
def test_a_bad_registration_file_stops_the_server_naming_file_and_key(
    capsys, monkeypatch, tmp_path, change, expected
):
    path = tmp_path / "bridge.yaml"
    path.write_text(change(registration_yaml(free_port())))
    serve_with(monkeypatch, tmp_path, [path])
    status, _, err = run_main(capsys, "serve")
    assert status == 1
    assert f"  - {path}: {expected}" in err
    assert "Traceback" not in err


def test_two_registrations_with_one_as_token_stop_the_server(capsys, monkeypatch, tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(registration_yaml(free_port()))
    second.write_text(
        registration_yaml(free_port())
        .replace("id: testbridge", "id: other")
        .replace("hs_token: hs-", "hs_token: other-hs-")
        .replace("sender_localpart: testbridgebot", "sender_localpart: otherbot")
    )
    serve_with(monkeypatch, tmp_path, [first, second])
    status, _, err = run_main(capsys, "serve")
    assert status == 1
    assert f"{second}: as_token: the same as that of 'testbridge' ({first})" in err
