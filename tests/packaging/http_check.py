"""Ask an installed server what a client would: the spec versions, and
optionally a registration with a token (client-server API, "Account
registration": the m.login.registration_token UIA stage) and a password
login (m.login.password).

Runs with nothing but the standard library, on the host's or a bare
container's python3, so it can check the package where it is installed.

    python3 http_check.py http://127.0.0.1:6167 [--register NAME --token TOKEN]
                                                [--login NAME PASSWORD]
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
    """Register through a flow that starts with the token stage (then m.login.dummy,
    as Conduit asks); the new user's id, as whoami says it."""
    body = {"username": name, "password": "a long test password", "inhibit_login": False}
    status, answer = call(base, "POST", "/_matrix/client/v3/register", body)
    flows = [flow["stages"] for flow in answer.get("flows", [])]
    stages = next((flow for flow in flows if flow[:1] == ["m.login.registration_token"]), None)
    if status != 401 or stages is None:
        raise SystemExit(f"register: expected a registration token flow, got {status} {answer}")
    for stage in stages:
        body["auth"] = {"type": stage, "session": answer["session"]}
        if stage == "m.login.registration_token":
            body["auth"]["token"] = registration_token
        status, answer = call(base, "POST", "/_matrix/client/v3/register", body)
        if status == 200:
            break
        if status != 401 or stage not in answer.get("completed", []):
            raise SystemExit(f"register, stage {stage}: {status} {answer}")
    if status != 200:
        raise SystemExit(f"register: all stages done, still {status} {answer}")
    return whoami(base, answer)


def login(base: str, name: str, password: str) -> str:
    """Log in with a password; the user's id, as whoami says it."""
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": name},
        "password": password,
    }
    status, answer = call(base, "POST", "/_matrix/client/v3/login", body)
    if status != 200:
        raise SystemExit(f"login: {status} {answer}")
    return whoami(base, answer)


def whoami(base: str, session: dict) -> str:
    """The user id the server gives the new access token, checked against the session's."""
    status, answer = call(
        base, "GET", "/_matrix/client/v3/account/whoami", token=session["access_token"]
    )
    if status != 200 or answer["user_id"] != session["user_id"]:
        raise SystemExit(f"whoami: {status} {answer}")
    return answer["user_id"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("--register", metavar="NAME")
    parser.add_argument("--token", metavar="REGISTRATION_TOKEN")
    parser.add_argument("--login", nargs=2, metavar=("NAME", "PASSWORD"))
    parser.add_argument("--wait", type=float, default=30, help="seconds to wait for the server")
    arguments = parser.parse_args()
    versions = wait_for_versions(arguments.base_url, arguments.wait)
    print(f"versions: {', '.join(versions)}")
    if arguments.register:
        print(f"registered: {register(arguments.base_url, arguments.register, arguments.token)}")
    if arguments.login:
        print(f"logged in: {login(arguments.base_url, *arguments.login)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
