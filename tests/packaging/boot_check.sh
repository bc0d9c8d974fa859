#!/bin/sh
# Runs inside the booted bookworm container, under real systemd as PID 1
# (started by deb-boot-check.service once the system is up): the service
# must start and stop through systemd by its alias, signal readiness
# (Type=notify: `systemctl start` returns only after READY=1), answer HTTP,
# and stop cleanly (exit status 0 on SIGTERM). Then an instance of the
# template (the cluster's unit) in its place: it must listen on the port its
# name gives.
set -eu

status() {
    systemctl show --property "$1" --value matrix-conduit.service
}

echo "boot check: enabled at install: $(systemctl is-enabled matrix-conduit.service)"
systemctl is-active --quiet conduit.service || {
    echo "boot check: the service did not come up at boot"
    exit 1
}
systemctl stop conduit
systemctl disable conduit
systemctl enable conduit
systemctl start conduit
systemctl is-active --quiet matrix-conduit.service

port=$(/opt/venvs/matrix-conduit/bin/python -m matrix_conduit.debian_config \
    get /etc/matrix-conduit/conduit.toml port)
python3.11 /deb-test/http_check.py "http://127.0.0.1:$port" --wait 10

systemctl stop conduit
echo "boot check: stop result $(status Result), exit status $(status ExecMainStatus)"
[ "$(status Result)" = success ]
[ "$(status ExecMainStatus)" = 0 ]

instance=matrix-conduit@$((port + 1)).service
systemctl start "$instance"
python3.11 /deb-test/http_check.py "http://127.0.0.1:$((port + 1))" --wait 10
systemctl stop "$instance"
result=$(systemctl show --property Result --value "$instance")
echo "boot check: $instance stop result $result"
[ "$result" = success ]
