#!/bin/sh
# The Debian package's test (`make deb-test`): build the .deb from the source
# tree as git sees it, lint it, then install, configure, run, reconfigure,
# reinstall and purge it on this machine, and finally install/purge it in a
# clean bookworm chroot (piuparts) and boot it under real systemd
# (systemd-nspawn). Installs every tool it needs; prints each step's time.
#
# It installs and purges the package on this machine: run it as root on a
# test or CI machine, not on a server that has matrix-conduit in use.
#
#     tests/packaging/run.sh          the whole test
#     tests/packaging/run.sh build    only build the .deb (into build/deb/)
set -eu

cd "$(dirname "$0")/../.."
OUT=build/deb
ROOT=$OUT/bookworm
CONFIG=/etc/matrix-conduit/conduit.toml
DATA=/var/lib/matrix-conduit
UNIT=/lib/systemd/system/matrix-conduit.service
# One process of several on PostgreSQL, checked as an instance (its port).
INSTANCE=/lib/systemd/system/matrix-conduit@16168.service
# Exposure level x 10 (systemd-analyze security): the unit scores 1.1.
SECURITY_THRESHOLD=12
# Not 6167: a developer's `make run` may be using that one.
PORT=16167
export DEBIAN_FRONTEND=noninteractive

TIMES=
STEPS=0
step() {
    name=$1
    shift
    echo "=== $name"
    started=$(date +%s)
    "$@"
    took=$(($(date +%s) - started))
    TIMES="$TIMES$(printf '%-14s %4ss' "$name" "$took")
"
    echo "=== $name: ${took}s"
    STEPS=$((STEPS + 1))
}

fail() {
    echo "FAILED: $*" >&2
    exit 1
}

# logged NAME COMMAND...: runs COMMAND with its output in $OUT/NAME.log,
# and shows the end of that log if it fails.
logged() {
    log=$OUT/$1.log
    shift
    if ! "$@" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        fail "$* (whole log: $log)"
    fi
}

# The first Debian mirror apt uses here, for debootstrap and piuparts.
debian_mirror() {
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        2>/dev/null |
        sed -n -e 's|^URIs: *\(https\{0,1\}://[^ ]*/debian\)/\{0,1\}$|\1|p' \
            -e 's|^deb  *\(https\{0,1\}://[^ ]*/debian\)/\{0,1\}  *bookworm .*|\1|p' |
        head -n 1
}

conf_get() {
    /opt/venvs/matrix-conduit/bin/python -m matrix_conduit.debian_config get "$CONFIG" "$1"
}

expect() { # WHAT ACTUAL EXPECTED
    [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
}

owner_mode() {
    stat -c '%U:%G %a' "$1"
}

tools() {
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends \
        lintian piuparts debootstrap systemd-container man-db >/dev/null
    apt-get build-dep -y -q ./ >/dev/null
}

# man-db rebuilds its whole index after every dpkg run that touches a
# manual page: a minute each on this machine. Paused while the test runs.
pause_man_db() {
    if [ -e /var/lib/man-db/auto-update ]; then
        rm /var/lib/man-db/auto-update
        trap 'touch /var/lib/man-db/auto-update' EXIT
    fi
}

build() {
    rm -rf "$OUT/src" "$OUT"/*.deb "$OUT"/*.buildinfo "$OUT"/*.changes
    mkdir -p "$OUT/src"
    # Tracked and new files, less ignored ones (.venv, build/) and deleted ones.
    # shellcheck disable=SC2016 # $f is for the inner shell
    git ls-files -z --cached --others --exclude-standard |
        xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
        tar --null -T - -cf - | tar -xf - -C "$OUT/src"
    logged build env -C "$OUT/src" dpkg-buildpackage -us -uc -b
}

lint() {
    status=0
    lintian --fail-on error,warning "$DEB" >"$OUT/lintian.log" 2>&1 || status=$?
    cat "$OUT/lintian.log"
    [ $status = 0 ] || fail "lintian"
}

install_preseeded() {
    if dpkg -s matrix-conduit >/dev/null 2>&1; then
        dpkg --purge matrix-conduit >/dev/null
    fi
    debconf-set-selections <<EOF
matrix-conduit matrix-conduit/hostname string deb-test.example
matrix-conduit matrix-conduit/address string 127.0.0.1
matrix-conduit matrix-conduit/port string $PORT
EOF
    logged install apt-get install -y "./$DEB"
}

check_install() {
    getent passwd conduit | grep -q ':/var/lib/matrix-conduit:/usr/sbin/nologin$' ||
        fail "conduit user: $(getent passwd conduit)"
    [ "$(id -u conduit)" -lt 1000 ] || fail "conduit is not a system user"
    expect "data directory" "$(owner_mode $DATA)" "conduit:conduit 700"
    expect "config file" "$(owner_mode $CONFIG)" "root:conduit 640"
    expect server_name "$(conf_get server_name)" deb-test.example
    expect address "$(conf_get address)" 127.0.0.1
    expect port "$(conf_get port)" "$PORT"
    # The rest is the example config, comments and all.
    expect "lines changed from the example" \
        "$(diff /usr/share/matrix-conduit/conduit.toml $CONFIG | grep -c '^>')" 2
    [ -L /etc/systemd/system/multi-user.target.wants/matrix-conduit.service ] ||
        fail "the unit is not enabled"
    [ -L /etc/systemd/system/conduit.service ] || fail "conduit.service is not enabled"
    [ -L /lib/systemd/system/conduit.service ] || fail "no conduit.service alias"
    [ -f /lib/systemd/system/matrix-conduit@.service ] || fail "no template unit"
    [ -z "$(find /etc/systemd/system -name 'matrix-conduit@*')" ] ||
        fail "an instance of the template was enabled at install"
    # Every bundled library has its paragraph in the copyright file (the
    # server itself is under "Files: *").
    for library in /opt/venvs/matrix-conduit/lib/python3*/site-packages/*.dist-info; do
        case $library in */matrix_conduit-*) continue ;; esac
        grep -q "^ *$(basename "$library")/\*$" /usr/share/doc/matrix-conduit/copyright ||
            fail "debian/copyright does not cover $(basename "$library")"
    done
    /usr/bin/matrix-conduit --version
    /usr/bin/matrix-conduit check-config $CONFIG
}

# The single unit, and the template through an instance of it (systemd loads
# matrix-conduit@.service for the name).
check_unit() {
    for unit in $UNIT $INSTANCE; do
        verify=$(systemd-analyze verify "$unit" 2>&1) || true
        [ -z "$verify" ] || fail "systemd-analyze verify $unit: $verify"
        systemd-analyze security --offline=true --threshold=$SECURITY_THRESHOLD "$unit" \
            >"$OUT/security.log" 2>&1 || { cat "$OUT/security.log"; fail "security threshold"; }
        SECURITY=$(sed -n 's/.*Overall exposure level for [^:]*: //p' "$OUT/security.log")
        echo "exposure level of $(basename "$unit"): $SECURITY"
    done
}

unit_value() {
    sed -n "s/^$1=//p" $UNIT
}

# start_as_unit [NAME=VALUE...]: starts the server in the background the way
# the unit does (its user, group, umask, working directory, environment and
# command), with the extra environment given; its pid is $SERVER.
start_as_unit() {
    (
        cd "$(unit_value WorkingDirectory)"
        umask "$(unit_value UMask)"
        # shellcheck disable=SC2046 # one NAME=VALUE word per Environment= line
        exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin $(unit_value Environment) "$@" \
            setpriv --reuid="$(unit_value User)" --regid="$(unit_value Group)" \
            --init-groups --no-new-privs -- $(unit_value ExecStart)
    ) >"$OUT/server.log" 2>&1 &
    SERVER=$!
}

# The first admin as README.Debian creates it, a user registered with a
# token (registration opened by environment variables), both logged in.
run_as_unit() {
    created=$(runuser -u conduit -- env CONDUIT_CONFIG=$CONFIG \
        matrix-conduit create-user admin --admin)
    echo "$created"
    token=deb-test-$$
    start_as_unit CONDUIT_ALLOW_REGISTRATION=true CONDUIT_REGISTRATION_TOKEN=$token
    if ! python3 tests/packaging/http_check.py "http://127.0.0.1:$PORT" \
        --register "alice$$" --token "$token" --login admin "${created##*password: }"; then
        kill -TERM $SERVER
        cat "$OUT/server.log"
        fail "the HTTP check (server log above)"
    fi
    kill -TERM $SERVER
    status=0
    wait $SERVER || status=$?
    [ $status = 0 ] || { cat "$OUT/server.log"; fail "the server exited with $status on SIGTERM"; }
    expect "files not owned by conduit" "$(find $DATA ! -user conduit)" ""
}

# After a change of server_name, the server must refuse the old database.
refuses_old_database() {
    start_as_unit
    status=0
    wait $SERVER || status=$?
    grep "created for server_name 'deb-test.example'" "$OUT/server.log" ||
        { cat "$OUT/server.log"; fail "the server did not refuse the database (status $status)"; }
    [ $status != 0 ] || fail "the server exited with 0 after refusing the database"
}

reconfigure() {
    sed -i 's/^allow_federation = true$/allow_federation = false # hand edit/' $CONFIG
    echo "# a comment of the admin's" >>$CONFIG
    chmod 0440 $CONFIG
    cp $CONFIG "$OUT/config.before"
    # Invalid answers first: the config script shows the server's own
    # complaint and asks again.
    printf '%s\n' 'bad name' 0.0.0.0 70000 reconf.example 0.0.0.0 18448 |
        DEBIAN_FRONTEND=teletype dpkg-reconfigure matrix-conduit >"$OUT/reconfigure.log" 2>&1 ||
        { cat "$OUT/reconfigure.log"; fail "dpkg-reconfigure"; }
    grep -q "port: 70000 is out of range" "$OUT/reconfigure.log" ||
        fail "invalid answers were not refused (log: $OUT/reconfigure.log)"
    expect server_name "$(conf_get server_name)" reconf.example
    expect address "$(conf_get address)" 0.0.0.0
    expect port "$(conf_get port)" 18448
    expect "owner and mode kept" "$(owner_mode $CONFIG)" "root:conduit 440"
    expect "lines changed by the reconfigure" "$(diff "$OUT/config.before" $CONFIG | grep -c '^>')" 3
    grep -q '^allow_federation = false # hand edit$' $CONFIG || fail "hand edit lost"
    tail -n 1 $CONFIG | grep -qx "# a comment of the admin's" || fail "comment lost"
}

reinstall() {
    before=$(sha256sum $CONFIG; stat -c '%y %U:%G %a' $CONFIG)
    logged reinstall apt-get install -y --reinstall "./$DEB"
    expect "config after reinstall" "$(sha256sum $CONFIG; stat -c '%y %U:%G %a' $CONFIG)" "$before"
}

remove_and_purge() {
    logged remove apt-get remove -y matrix-conduit
    [ -f $CONFIG ] || fail "remove deleted the config"
    [ -d $DATA ] || fail "remove deleted the data"
    debconf-show matrix-conduit | grep -q reconf.example || fail "remove lost the debconf answers"
    logged purge apt-get purge -y matrix-conduit
    for path in $CONFIG /etc/matrix-conduit $DATA /opt/venvs/matrix-conduit \
        /etc/systemd/system/conduit.service \
        /etc/systemd/system/multi-user.target.wants/matrix-conduit.service; do
        [ ! -e "$path" ] || fail "purge left $path"
    done
    [ -z "$(debconf-show matrix-conduit)" ] || fail "purge left the debconf answers"
}

# The clean bookworm root for piuparts and the boot, made in the background
# while the package builds and is tested here (fetching it takes minutes).
# Only minbase and systemd: piuparts must find every dependency through the
# package's Depends.
chroot_start() {
    if [ -f "$ROOT/.complete" ]; then
        CHROOT=
        return
    fi
    rm -rf "$ROOT"
    mirror=$(debian_mirror)
    (
        started=$(date +%s)
        debootstrap --variant=minbase --include=systemd-sysv \
            bookworm "$ROOT" "$mirror"
        touch "$ROOT/.complete"
        echo "debootstrap took $(($(date +%s) - started))s"
    ) >"$OUT/debootstrap.log" 2>&1 &
    CHROOT=$!
}

chroot_wait() {
    if [ -n "$CHROOT" ] && ! wait "$CHROOT"; then
        tail -n 40 "$OUT/debootstrap.log" >&2
        fail "debootstrap (log: $OUT/debootstrap.log)"
    fi
    tail -n 1 "$OUT/debootstrap.log"
}

# --ignore=/opt/: base-files' postinst creates /opt without shipping it, so
# dpkg deletes it when the only package with files there is purged.
run_piuparts() {
    logged piuparts piuparts --distribution=bookworm --mirror="$(debian_mirror)" \
        --existing-chroot="$ROOT" --ignore=/opt/ "$DEB"
}

boot() {
    machine=$OUT/boot
    rm -rf "$machine"
    cp -a "$ROOT" "$machine"
    mkdir "$machine/deb-test"
    cp "$DEB" tests/packaging/http_check.py tests/packaging/boot_check.sh "$machine/deb-test/"
    cp tests/packaging/deb-boot-check.service "$machine/etc/systemd/system/"
    ln -s ../deb-boot-check.service \
        "$machine/etc/systemd/system/multi-user.target.wants/deb-boot-check.service"
    logged boot-install systemd-nspawn --quiet --register=no --keep-unit -D "$machine" \
        --setenv=DEBIAN_FRONTEND=noninteractive \
        sh -c 'apt-get install -y -q /deb-test/*.deb'
    timeout 300 systemd-nspawn --quiet --register=no --keep-unit --private-network \
        -D "$machine" --boot >"$OUT/boot.log" 2>&1 || true
    grep 'boot check' "$OUT/boot.log" || true
    if [ "$(cat "$machine/deb-test/result" 2>/dev/null)" != success ]; then
        tail -n 40 "$OUT/boot.log"
        cat "$machine/deb-test/journal" 2>/dev/null || true
        fail "the boot check (log: $OUT/boot.log)"
    fi
    rm -rf "$machine"
}

mkdir -p $OUT
step tools tools
if [ "${1:-}" = build ]; then
    step build build
    exit 0
fi
chroot_start
pause_man_db
step build build
DEB=$(ls "$OUT"/matrix-conduit_*.deb)
step lintian lint
step install install_preseeded
step check-install check_install
step unit check_unit
step run-as-unit run_as_unit
step reconfigure reconfigure
step old-database refuses_old_database
step reinstall reinstall
step purge remove_and_purge
step chroot-wait chroot_wait
step piuparts run_piuparts
step boot boot

echo
echo ".deb: $(basename "$DEB"), $(du -k "$DEB" | cut -f1) KiB;" \
    "installed size $(dpkg-deb -f "$DEB" Installed-Size) KiB"
echo "lintian --fail-on error,warning: passed, $(grep -c '^[EWIPX]: ' "$OUT/lintian.log" || true) tags shown"
echo "systemd-analyze security: $SECURITY (threshold $SECURITY_THRESHOLD/10)"
printf '%s' "$TIMES"
echo "deb-test: $STEPS passed, 0 failed"
