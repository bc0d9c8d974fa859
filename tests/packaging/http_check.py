"""Ask an installed server what a client would: the spec versions, and
optionally a registration with a token (client-server API, "Account
registration": the m.login.registration_token UIA stage).

Runs with nothing but the standard library, on the host's or a bare
container's python3, so it can check the package where it is installed.

    python3 http_check.py http://127.0.0.1:6167 [--register NAME --token TOKEN]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request


def call(base: str, method: str, path: str, body=None, token: str | None = None):
    """(status, JSON body) of one request; HTTP errors are answers too."""
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def wait_for_versions(base: str, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while True:
        try:
            status, answer = call(base, "GET", "/_matrix/client/versions")
            if status == 200:
                return answer["versions"]
            problem = f"HTTP {status} {answer}"
        except (OSError, ValueError) as error:
            problem = str(error)
        if time.monotonic() > deadline:
            raise SystemExit(f"no versions from {base}: {problem}")
        time.sleep(0.2)


def register(base: str, name: str, registration_token: str) -> str:
    """Register through the token stage; the new user's id, as whoami says it."""
    body = {"username": name, "password": "a long test password", "inhibit_login": False}
    status, challenge = call(base, "POST", "/_matrix/client/v3/register", body)
    flows = [flow["stages"] for flow in challenge.get("flows", [])]
    if status != 401 or ["m.login.registration_token"] not in flows:
        raise SystemExit(f"register: expected a registration token flow, got {status} {challenge}")
    body["auth"] = {
        "type": "m.login.registration_token",
        "token": registration_token,
        "session": challenge["session"],
    }
    status, registered = call(base, "POST", "/_matrix/client/v3/register", body)
    if status != 200:
        raise SystemExit(f"register: {status} {registered}")
    status, whoami = call(
        base, "GET", "/_matrix/client/v3/account/whoami", token=registered["access_token"]
    )
    if status != 200 or whoami["user_id"] != registered["user_id"]:
        raise SystemExit(f"whoami: {status} {whoami}")
    return whoami["user_id"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("--register", metavar="NAME")
    parser.add_argument("--token", metavar="REGISTRATION_TOKEN")
    parser.add_argument("--wait", type=float, default=30, help="seconds to wait for the server")
    arguments = parser.parse_args()
    versions = wait_for_versions(arguments.base_url, arguments.wait)
    print(f"versions: {', '.join(versions)}")
    if arguments.register:
        print(f"registered: {register(arguments.base_url, arguments.register, arguments.token)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
