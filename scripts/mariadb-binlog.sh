#!/usr/bin/env bash
# Runs the MySQL engine's tests on a second MariaDB (the machine's own mariadbd) with the binary
# log on, on 127.0.0.1:3307: the CI server on 3306 has it off, so only here do backups record a
# binlog position, and binlog.rs replays the log from it on top of a restore.
#
#   scripts/mariadb-binlog.sh
#   MB_TESTS='test(/binlog_streams/)' scripts/mariadb-binlog.sh   (only the tests a nextest filter picks)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=3307

# An interrupted earlier run may have left its server behind.
for pidfile in /tmp/dbbackup-binlog.*/mariadbd.pid; do
    [ -e "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.5; done
done
rm -rf /tmp/dbbackup-binlog.*

RUN=$(mktemp -d /tmp/dbbackup-binlog.XXXX)
user=$(id -un)
[ "$(id -u)" = 0 ] && user=mysql && chown mysql "$RUN"
stop() {
    [ -e "$RUN/mariadbd.pid" ] && kill "$(cat "$RUN/mariadbd.pid")" 2>/dev/null
    for _ in $(seq 60); do [ -e "$RUN/mariadbd.pid" ] || break; sleep 0.5; done
    rm -rf "$RUN"
}
trap stop EXIT

mariadb-install-db --no-defaults --user="$user" --datadir="$RUN/data" \
    --auth-root-authentication-method=normal >/dev/null
# Loopback root without a password, as the tests log in on the main server.
cat > "$RUN/init.sql" <<'SQL'
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
SQL
chmod 644 "$RUN/init.sql"
# A tmpdir of its own: a starting mariadbd deletes every #sql* file in its tmpdir, which would
# pull temporary tables from under the other servers sharing /tmp.
mkdir -p "$RUN/tmp" && chown "$user" "$RUN/tmp"
mariadbd --no-defaults --user="$user" --datadir="$RUN/data" --tmpdir="$RUN/tmp" --socket="$RUN/mariadbd.sock" \
    --pid-file="$RUN/mariadbd.pid" --bind-address=127.0.0.1 --port=$PORT \
    --log-bin="$RUN/data/binlog" --server-id=1 --binlog-format=MIXED \
    --init-file="$RUN/init.sql" --log-error="$RUN/error.log" &
for _ in $(seq 60); do mariadb-admin -h 127.0.0.1 -P $PORT -uroot ping >/dev/null 2>&1 && break; sleep 0.5; done
mariadb-admin -h 127.0.0.1 -P $PORT -uroot ping >/dev/null 2>&1 || {
    cat "$RUN/error.log" >&2
    echo "the binlog MariaDB did not come up on 127.0.0.1:$PORT" >&2
    exit 1
}
echo "MariaDB $(mariadb -h 127.0.0.1 -P $PORT -uroot -N -e 'SELECT VERSION()') with the binary log on 127.0.0.1:$PORT"

# The binlog tests are ignored in the main run (its server has no binary log); here they run too,
# with the command line's binlog-stream / point-in-time restore tests (binlog::*).
env DBBACKUP_MYSQL_URL="mysql://root@127.0.0.1:$PORT" \
    cargo nextest run --workspace --all-features --no-fail-fast --run-ignored all \
    -E "((package(dbbackup-mysql) and not test(/^tls::/)) or (package(dbbackup-cli) and test(/^binlog::/))) and (${MB_TESTS:-all()})"
