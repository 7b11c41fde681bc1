#!/usr/bin/env bash
# The whole test suite: starts (or installs) what the tests need, then runs
# formatting, lints and every test of the workspace. Used by `.ci/run`.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

ensure_postgres() {
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        log "installing PostgreSQL"
        apt_install postgresql postgresql-client
    fi
    if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        log "starting PostgreSQL"
        as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
        for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    fi
    pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1; }
    # The tests log in as postgres over TCP without a password (trust), as on the CI machines; a
    # fresh Debian install asks for one, so allow it for loopback only.
    if ! psql -w -h 127.0.0.1 -U postgres -tAc 'SELECT 1' postgres >/dev/null 2>&1; then
        log "allowing passwordless loopback logins for the postgres user"
        hba=$(as_root su postgres -c "psql -tAc 'SHOW hba_file'")
        as_root sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
        as_root su postgres -c "psql -tAc 'SELECT pg_reload_conf()'" >/dev/null
    fi
}

ensure_mariadb() {
    if [ ! -x /usr/sbin/mariadbd ]; then
        log "installing MariaDB"
        apt_install mariadb-server mariadb-client
    fi
    if ! mariadb-admin -h 127.0.0.1 -uroot ping >/dev/null 2>&1; then
        log "starting MariaDB"
        as_root install -d -o mysql -g mysql /run/mysqld
        as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
        for _ in $(seq 60); do mariadb-admin -h 127.0.0.1 -uroot ping >/dev/null 2>&1 && break; sleep 1; done
    fi
    mariadb-admin -h 127.0.0.1 -uroot ping >/dev/null 2>&1 || { echo "MariaDB did not come up on 127.0.0.1:3306" >&2; exit 1; }
    # The tests log in as root over TCP with an empty password; a fresh install only lets root in
    # through the socket, so add loopback accounts.
    if ! mariadb -h 127.0.0.1 -uroot -e 'SELECT 1' >/dev/null 2>&1; then
        log "allowing root logins over loopback"
        as_root mariadb -uroot -e "
            CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
            GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
            CREATE USER IF NOT EXISTS 'root'@'::1' IDENTIFIED BY '';
            GRANT ALL ON *.* TO 'root'@'::1' WITH GRANT OPTION;
            FLUSH PRIVILEGES;"
    fi
}

ensure_moto() {
    # The S3 tests start their own moto server on a free loopback port.
    if python3 -c 'import moto.server' >/dev/null 2>&1; then return; fi
    log "installing moto[server] (S3-compatible test server)"
    python3 -m pip install --quiet 'moto[server]'
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
}

ensure_tools() {
    # scripts/pg-versions.sh downloads its PostgreSQL builds with curl.
    if ! command -v curl >/dev/null 2>&1; then
        log "installing curl"
        apt_install curl ca-certificates
    fi
    # The TLS tests make their certificates with openssl.
    if ! command -v openssl >/dev/null 2>&1; then
        log "installing openssl"
        apt_install openssl
    fi
}

ensure_postgres
ensure_mariadb
ensure_moto
ensure_tools

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

log "PostgreSQL 13, 14, 16 and 17"
# The engine claims 13 to 17; Debian ships only 15 (above), so the others run from pinned
# relocatable builds (scripts/pg-versions.sh fetches them once into target/pg-versions/).
./scripts/pg-versions.sh

log "MariaDB with the binary log on"
# The server on 3306 runs without a binary log; a second mariadbd with one checks that the recorded
# binlog position replays exactly on top of a restore (scripts/mariadb-binlog.sh).
./scripts/mariadb-binlog.sh

log "MariaDB that requires TLS"
# A scratch mariadbd with its own CA and a user that may only log in over TLS: native backup and
# restore (both load paths) and the dump tools, verified (scripts/mariadb-tls.sh).
./scripts/mariadb-tls.sh

# Tests that need a service these machines do not have are ignored (reported as skipped by the
# runs above, never as passed); they run here when the service is named in the environment.
skipped=()
if [ -n "${DBBACKUP_MSSQL_URL:-}" ]; then
    log "SQL Server at DBBACKUP_MSSQL_URL"
    cargo nextest run --workspace --all-features --no-fail-fast --run-ignored only -E 'package(dbbackup-mssql)'
else
    skipped+=("dbbackup-mssql real::* (a real SQL Server): DBBACKUP_MSSQL_URL is not set; the engine ran only against the TDS test server")
fi
for svc in GCS AZURE; do
    var=DBBACKUP_TEST_${svc}_URL
    if [ -n "${!var:-}" ]; then
        log "$svc repository at $var"
        cargo nextest run --workspace --all-features --no-fail-fast --run-ignored only \
            -E "package(dbbackup-storage) and test(/^cloud::$(echo "$svc" | tr A-Z a-z)_/)"
    else
        skipped+=("dbbackup-storage cloud::$(echo "$svc" | tr A-Z a-z)_* (the sink suite on $svc): $var is not set")
    fi
done

log "what was not tested here"
echo "ran in their own scripts (ignored in the main run): versions::* and wal::incremental_* (pg-versions.sh), binlog::* of dbbackup-mysql and dbbackup-cli (mariadb-binlog.sh), tls::* of dbbackup-mysql (mariadb-tls.sh)"
if [ ${#skipped[@]} -eq 0 ]; then
    echo "nothing skipped"
else
    printf 'SKIPPED %s\n' "${skipped[@]}"
fi
