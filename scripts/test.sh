#!/usr/bin/env bash
# The whole test suite: starts (or installs) what the tests need, then runs
# formatting, lints and every test of the workspace. Used by `.ci/run`.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        log "installing PostgreSQL"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql postgresql-client
    fi
    log "starting PostgreSQL"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p 5432 && return; sleep 1; done
    echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1
}

ensure_mariadb() {
    if mariadb-admin -h 127.0.0.1 -uroot ping >/dev/null 2>&1; then return; fi
    if [ ! -x /usr/sbin/mariadbd ]; then
        log "installing MariaDB"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-server mariadb-client
    fi
    log "starting MariaDB"
    as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    for _ in $(seq 60); do mariadb-admin -h 127.0.0.1 -uroot ping >/dev/null 2>&1 && return; sleep 1; done
    echo "MariaDB did not come up on 127.0.0.1:3306" >&2; exit 1
}

ensure_moto() {
    # The S3 tests start their own moto_server on a free loopback port.
    if command -v moto_server >/dev/null 2>&1; then return; fi
    log "installing moto[server] (S3-compatible test server)"
    python3 -m pip install --quiet 'moto[server]'
}

ensure_postgres
ensure_mariadb
ensure_moto

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

log "cargo test"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --all-features --no-fail-fast
    cargo test --workspace --all-features --doc
else
    cargo test --workspace --all-features --no-fail-fast
fi
