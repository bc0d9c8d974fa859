# matrix-conduit in a container: Debian 12, the exact pinned libraries of
# requirements.txt in a venv, run as the unprivileged user "conduit".
#
#   docker build -t matrix-conduit .
#   docker compose up -d        (docker-compose.yml: the home-lab layout)
#
# Configuration: /etc/conduit/conduit.toml (the annotated etc/conduit.toml,
# CONDUIT_CONFIG names it) plus CONDUIT_<KEY> environment variables, which
# override it (CONDUIT_SERVER_NAME=example.org). Mount your own file over it
# to configure everything there. Data (database, media): the volume
# /var/lib/matrix-conduit. The server listens on port 6167, plain HTTP: put a
# reverse proxy with TLS in front (etc/reverse-proxy/).
#
# The base is any Debian 12 image; `make docker-test` makes one locally with
# debootstrap and builds with --build-arg BASE=... .
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
# Behind a TLS-intercepting proxy, pass its CA (PEM text; e.g. the host's
# /usr/local/share/ca-certificates/*.crt) for pip to trust while building;
# it stays in this build stage, not in the image.
ARG EXTRA_CA_CERTIFICATES=""
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && if [ -n "$EXTRA_CA_CERTIFICATES" ]; then \
      printf '%s\n' "$EXTRA_CA_CERTIFICATES" > /usr/local/share/ca-certificates/extra.crt \
      && update-ca-certificates >/dev/null; \
    fi
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt /src/requirements.txt
RUN python3 -m venv /opt/matrix-conduit \
 && /opt/matrix-conduit/bin/pip install --no-deps -r /src/requirements.txt
COPY pyproject.toml setup.cfg README.md requirements-dev.txt /src/
COPY matrix_conduit /src/matrix_conduit
# Built with the setuptools and wheel that requirements-dev.txt pins, outside the venv.
RUN python3 -m venv /opt/build-tools \
 && grep -E '^(setuptools|wheel)==' /src/requirements-dev.txt > /src/build-tools.txt \
 && /opt/build-tools/bin/pip install --no-deps -r /src/build-tools.txt \
 && /opt/build-tools/bin/pip wheel --no-deps --no-build-isolation -w /src/dist /src \
 && /opt/matrix-conduit/bin/pip install --no-deps /src/dist/*.whl

FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system conduit \
 && useradd --system --gid conduit --home-dir /var/lib/matrix-conduit --no-create-home \
      --shell /usr/sbin/nologin conduit \
 && install -d -o conduit -g conduit -m 0700 /var/lib/matrix-conduit
COPY --from=build /opt/matrix-conduit /opt/matrix-conduit
COPY etc/conduit.toml /etc/conduit/conduit.toml
RUN ln -s /opt/matrix-conduit/bin/matrix-conduit /usr/local/bin/matrix-conduit

ENV CONDUIT_CONFIG=/etc/conduit/conduit.toml \
    CONDUIT_DATABASE_PATH=/var/lib/matrix-conduit \
    CONDUIT_ADDRESS=0.0.0.0 \
    CONDUIT_PORT=6167
USER conduit
WORKDIR /var/lib/matrix-conduit
VOLUME /var/lib/matrix-conduit
EXPOSE 6167

# The server's own answer, through Python (no curl or wget in the image).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/opt/matrix-conduit/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/_matrix/client/versions' % os.environ.get('CONDUIT_PORT', '6167'), timeout=4)"]

ENTRYPOINT ["/opt/matrix-conduit/bin/matrix-conduit"]
