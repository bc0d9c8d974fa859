"""Run a shipped etc/reverse-proxy/ snippet in the real proxy, on free ports, for a test.

The snippet is used as written, with only what a test machine needs changed:
`example.org` becomes `localhost` (the test CA's certificate names it), ports
443 and 8448 become free ports, the upstream `127.0.0.1:6167` becomes the
test server's port, and the certificate paths name the test CA's files. Each
proxy runs in the foreground from a main config of its own in a temporary
directory, so nothing under /etc is touched and no service is started.

The snippets for several processes (`etc/reverse-proxy/cluster/`, issue #18)
name one upstream per process, 127.0.0.1:6168, :6169, ...: each becomes the
port of the test's process in the same place.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.federation_ca import FederationCa, free_port_on

SNIPPETS = Path(__file__).resolve().parents[2] / "etc" / "reverse-proxy"
CLUSTER_SNIPPETS = SNIPPETS / "cluster"
SINGLE_UPSTREAM = 6167
FIRST_CLUSTER_UPSTREAM = 6168
START_LIMIT_SECONDS = 30.0


@dataclass
class Ports:
    client: int
    federation: int
    upstreams: Mapping[int, int]
    """The snippet's upstream ports, each with the test's port in its place."""


@dataclass
class RunningProxy:
    client_url: str
    federation_url: str


def localised(text: str, ports: Ports, certs: str, key: str) -> str:
    """The snippet on this machine's ports and the test CA's certificate."""
    for snippets_port, port in ports.upstreams.items():
        text = text.replace(f"127.0.0.1:{snippets_port}", f"127.0.0.1:{port}")
    text = re.sub(r"/etc/\S*/fullchain\.pem", certs, text)
    text = re.sub(r"/etc/\S*/privkey\.pem", key, text)
    text = text.replace("example.org", "localhost")
    text = re.sub(r"\b443\b", str(ports.client), text)
    return re.sub(r"\b8448\b", str(ports.federation), text)


def _nginx(directory: Path, site: str) -> list[str]:
    if not Path("/proc/net/if_inet6").exists():
        site = "\n".join(line for line in site.splitlines() if "listen [::]" not in line)
    (directory / "site.conf").write_text(site)
    temp = {name: directory / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    user = "user root;" if os.geteuid() == 0 else ""
    (directory / "nginx.conf").write_text(
        f"daemon off;\n{user}\nworker_processes 1;\npid {directory}/nginx.pid;\n"
        f"error_log {directory}/error.log warn;\nevents {{ worker_connections 64; }}\n"
        "http {\n  access_log off;\n"
        + "".join(f"  {name}_temp_path {path};\n" for name, path in temp.items()).replace(
            "body_temp_path", "client_body_temp_path"
        )
        + f"  include {directory}/site.conf;\n}}\n"
    )
    return ["nginx", "-p", str(directory), "-c", str(directory / "nginx.conf")]


def _caddy(directory: Path, site: str, ports: Ports) -> list[str]:
    # Certificates of the test CA (the snippet's own commented `tls` line), no
    # ACME, no admin endpoint, no redirect listener on port 80.
    site = re.sub(r"#\s*(tls \S+ \S+)", r"\1", site)
    options = (
        "{\n\tadmin off\n\tskip_install_trust\n"
        f"\tauto_https disable_redirects\n\thttps_port {ports.client}\n"
        f"\thttp_port {free_port_on('127.0.0.1')}\n}}\n\n"
    )
    (directory / "Caddyfile").write_text(options + site)
    return ["caddy", "run", "--adapter", "caddyfile", "--config", str(directory / "Caddyfile")]


APACHE_MODULES = (
    "mpm_event",
    "authz_core",
    "socache_shmcb",
    "ssl",
    "headers",
    "proxy",
    "proxy_http",
    "slotmem_shm",
    "proxy_balancer",
    "lbmethod_byrequests",
)


def _apache(directory: Path, site: str, ports: Ports) -> list[str]:
    (directory / "site.conf").write_text(site)
    modules = "".join(
        f"LoadModule {name}_module /usr/lib/apache2/modules/mod_{name}.so\n"
        for name in APACHE_MODULES
    )
    (directory / "httpd.conf").write_text(
        f"ServerRoot {directory}\nServerName localhost\nPidFile {directory}/apache.pid\n"
        f"ErrorLog {directory}/error.log\nLogLevel warn\nMutex posixsem\n{modules}"
        "User nobody\nGroup nogroup\n"
        f"Listen {ports.client}\nInclude {directory}/site.conf\n"
    )
    return ["apache2", "-f", str(directory / "httpd.conf"), "-DFOREGROUND"]


def _wait_until_answering(process: subprocess.Popen, url: str, ca_path: str, log: Path) -> None:
    give_up = time.monotonic() + START_LIMIT_SECONDS
    with httpx.Client(verify=ssl.create_default_context(cafile=ca_path), timeout=2.0) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the proxy exited with {process.returncode}:\n{log.read_text()}"
                )
            try:
                client.get(url)
                return
            except httpx.TransportError:
                if time.monotonic() > give_up:
                    message = f"the proxy did not answer {url}:\n{log.read_text()}"
                    raise RuntimeError(message) from None
                time.sleep(0.1)


@contextmanager
def running_proxy(
    kind: str, directory: Path, ca: FederationCa, *upstream_ports: int
) -> Iterator[RunningProxy]:
    """`kind` ("nginx", "caddy", "apache") serving its etc/reverse-proxy/ snippet:
    the single process's with one upstream port, the cluster's with several."""
    directory.mkdir(parents=True, exist_ok=True)
    if len(upstream_ports) == 1:
        snippets, first = SNIPPETS, SINGLE_UPSTREAM
    else:
        snippets, first = CLUSTER_SNIPPETS, FIRST_CLUSTER_UPSTREAM
    upstreams = {first + number: port for number, port in enumerate(upstream_ports)}
    ports = Ports(free_port_on("127.0.0.1"), free_port_on("127.0.0.1"), upstreams)
    certs, key = ca.certificate_for("localhost")
    snippet = {"nginx": "nginx.conf", "caddy": "Caddyfile", "apache": "apache.conf"}[kind]
    site = localised((snippets / snippet).read_text(), ports, certs, key)
    if kind == "nginx":
        command = _nginx(directory, site)
    elif kind == "caddy":
        command = _caddy(directory, site, ports)
    else:
        command = _apache(directory, site, ports)
    if shutil.which(command[0]) is None:
        raise RuntimeError(f"{command[0]} is not installed: run `make reverse-proxies`")
    log = directory / "proxy.log"
    environment = {**os.environ, "HOME": str(directory), "XDG_DATA_HOME": str(directory)}
    environment["XDG_CONFIG_HOME"] = str(directory)
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=output, stdin=subprocess.DEVNULL, env=environment
        )
    try:
        client_url = f"https://localhost:{ports.client}"
        _wait_until_answering(
            process, client_url + "/_matrix/client/versions", str(ca.certificate_path), log
        )
        yield RunningProxy(client_url, f"https://localhost:{ports.federation}")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=START_LIMIT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
