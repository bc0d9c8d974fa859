"""`make docker-test`'s checks of the containerised server, over HTTP from the host.

    python3 tests/docker/check_server.py BASE_URL REGISTRATION_TOKEN

`/_matrix/client/versions` answers (client-server API, "Server Discovery"),
registration without the token is refused, and with it (the
`m.login.registration_token` stage, client-server API "Token-authenticated
registration") creates `@dockertest:localhost`, whose token works on
`/account/whoami`. Standard library only: it runs on the host's python3.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request


def call(method: str, url: str, body: dict | None = None, token: str | None = None):
    request = urllib.request.Request(
        url, method=method, data=None if body is None else json.dumps(body).encode()
    )
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def main(base_url: str, registration_token: str) -> None:
    status, versions = call("GET", f"{base_url}/_matrix/client/versions")
    assert status == 200 and "v1.1" in versions["versions"], versions
    register = f"{base_url}/_matrix/client/v3/register"
    account = {"username": "dockertest", "password": "a docker test password"}
    status, challenge = call("POST", register, account)
    assert status == 401, challenge
    flow = next(
        f["stages"] for f in challenge["flows"] if "m.login.registration_token" in f["stages"]
    )
    session = challenge["session"]
    wrong = {"type": "m.login.registration_token", "token": "wrong", "session": session}
    status, refused = call("POST", register, {**account, "auth": wrong})
    assert status == 401 and refused.get("errcode") == "M_FORBIDDEN", refused
    for stage in flow:
        auth = {"type": stage, "session": session}
        if stage == "m.login.registration_token":
            auth["token"] = registration_token
        status, created = call("POST", register, {**account, "auth": auth})
    assert status == 200 and created["user_id"] == "@dockertest:localhost", created
    status, whoami = call(
        "GET", f"{base_url}/_matrix/client/v3/account/whoami", token=created["access_token"]
    )
    assert status == 200 and whoami["user_id"] == "@dockertest:localhost", whoami
    print("docker-test: /versions and a registration with the token work")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
