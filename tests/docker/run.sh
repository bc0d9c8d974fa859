#!/bin/sh
# `make docker-test`: build the Dockerfile's image on a Debian 12 base made
# here with debootstrap (no image registry is needed), run it as
# docker-compose.yml does, and check it: healthy by its own HEALTHCHECK, not
# root, /_matrix/client/versions, a registration with the registration token,
# an online backup inside the container, a clean stop. Needs root; installs
# docker.io and debootstrap from Debian if missing and runs a Docker daemon of
# its own under build/docker/ when none answers. Prints how long it took.
set -eu
cd "$(dirname "$0")/../.."
WORK=$PWD/build/docker
NAME=conduit-docker-test
BASE=conduit-test/debian:bookworm
IMAGE=matrix-conduit:test
START=$(date +%s)
mkdir -p "$WORK"

missing=
command -v dockerd >/dev/null || missing="$missing docker.io"
command -v debootstrap >/dev/null || missing="$missing debootstrap"
if [ -n "$missing" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

SOCKET="$WORK/docker.sock"
docker() { /usr/bin/docker -H "unix://$SOCKET" "$@"; }
daemon_pid=
cleanup() {
    docker rm -f "$NAME" >/dev/null 2>&1 || true
    docker volume rm -f "$NAME" >/dev/null 2>&1 || true
    if [ -n "$daemon_pid" ]; then
        kill "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

if ! docker info >/dev/null 2>&1; then
    # No bridge and no iptables: containers use the host's network, as the
    # sandbox allows; the image does not depend on it.
    dockerd --data-root "$WORK/data" --exec-root /run/conduit-docker-test \
        --pidfile "$WORK/dockerd.pid" -H "unix://$SOCKET" --iptables=false --bridge=none \
        >"$WORK/dockerd.log" 2>&1 &
    daemon_pid=$!
    tries=0
    until docker info >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ "$tries" -lt 60 ] || { cat "$WORK/dockerd.log"; echo "dockerd did not start" >&2; exit 1; }
        sleep 0.5
    done
fi

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    if [ ! -f "$WORK/base.tar" ]; then
        rm -rf "$WORK/rootfs"
        debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log"
        tar -C "$WORK/rootfs" -c . >"$WORK/base.tar"
    fi
    docker import "$WORK/base.tar" "$BASE" >/dev/null
fi
echo "docker-test: base ready after $(( $(date +%s) - START )) s"

# The host's own CAs (Debian's place for them), for a TLS-intercepting proxy.
extra_ca=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)
docker build -q --network host --build-arg "BASE=$BASE" \
    --build-arg "EXTRA_CA_CERTIFICATES=$extra_ca" -t "$IMAGE" . >"$WORK/build.log" 2>&1 ||
    { cat "$WORK/build.log"; echo "docker-test: the image did not build" >&2; exit 1; }
echo "docker-test: image built after $(( $(date +%s) - START )) s"

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')
docker run -d --name "$NAME" --network host --health-interval 1s \
    -v "$NAME:/var/lib/matrix-conduit" \
    -e CONDUIT_SERVER_NAME=localhost -e CONDUIT_ADDRESS=127.0.0.1 -e "CONDUIT_PORT=$PORT" \
    -e CONDUIT_DATABASE_BACKEND=rocksdb -e CONDUIT_ALLOW_REGISTRATION=true \
    -e "CONDUIT_REGISTRATION_TOKEN=$TOKEN" -e CONDUIT_ALLOW_FEDERATION=false \
    "$IMAGE" >/dev/null

tries=0
until [ "$(docker inspect -f '{{.State.Health.Status}}' "$NAME")" = healthy ]; do
    tries=$((tries + 1))
    if [ "$tries" -gt 120 ] || [ "$(docker inspect -f '{{.State.Running}}' "$NAME")" != true ]; then
        docker logs "$NAME"; echo "docker-test: the container never became healthy" >&2; exit 1
    fi
    sleep 0.5
done
echo "docker-test: healthy after $(( $(date +%s) - START )) s"

uid=$(docker exec "$NAME" id -u)
[ "$uid" != 0 ] || { echo "docker-test: the server runs as root" >&2; exit 1; }
[ "$(docker exec "$NAME" id -un)" = conduit ]
[ "$(docker exec "$NAME" sh -c 'echo $CONDUIT_CONFIG')" = /etc/conduit/conduit.toml ]

python3 tests/docker/check_server.py "http://127.0.0.1:$PORT" "$TOKEN"

docker exec "$NAME" matrix-conduit backup /var/lib/matrix-conduit/backups/first
docker exec "$NAME" matrix-conduit verify-backup /var/lib/matrix-conduit/backups/first

docker stop -t 30 "$NAME" >/dev/null
status=$(docker inspect -f '{{.State.ExitCode}}' "$NAME")
[ "$status" = 0 ] || { docker logs "$NAME"; echo "docker-test: exit status $status" >&2; exit 1; }
echo "docker-test: OK in $(( $(date +%s) - START )) s"
