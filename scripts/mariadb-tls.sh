#!/usr/bin/env bash
# Runs the MySQL engine's TLS tests on a scratch MariaDB (the machine's own mariadbd) on
# 127.0.0.1:3308 that only lets its test user in over TLS: a self-signed CA and a server
# certificate for 127.0.0.1 / localhost made here with openssl, `--skip-name-resolve`, and
# `ALTER USER ... REQUIRE SSL`. The shared server on 3306 is never reconfigured.
#
#   scripts/mariadb-tls.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=3308

# An interrupted earlier run may have left its server behind.
for pidfile in /tmp/dbbackup-tls.*/mariadbd.pid; do
    [ -e "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.5; done
done
rm -rf /tmp/dbbackup-tls.*

RUN=$(mktemp -d /tmp/dbbackup-tls.XXXX)
chmod 755 "$RUN"
user=$(id -un)
[ "$(id -u)" = 0 ] && user=mysql && chown mysql "$RUN"
stop() {
    [ -e "$RUN/mariadbd.pid" ] && kill "$(cat "$RUN/mariadbd.pid")" 2>/dev/null
    for _ in $(seq 60); do [ -e "$RUN/mariadbd.pid" ] || break; sleep 0.5; done
    rm -rf "$RUN"
}
trap stop EXIT

# A CA, and a server certificate it signs, for 127.0.0.1 and localhost.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=dbbackup test CA" \
    -keyout "$RUN/ca.key" -out "$RUN/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$RUN/server.key" -out "$RUN/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$RUN/san.ext"
openssl x509 -req -in "$RUN/server.csr" -CA "$RUN/ca.pem" -CAkey "$RUN/ca.key" -CAcreateserial \
    -days 2 -extfile "$RUN/san.ext" -out "$RUN/server.pem" 2>/dev/null
chmod 644 "$RUN"/*.pem "$RUN"/*.key
[ "$(id -u)" = 0 ] && chown mysql "$RUN"/server.key

mariadb-install-db --no-defaults --user="$user" --datadir="$RUN/data" \
    --auth-root-authentication-method=normal >/dev/null
# The test user may only log in over TLS; root stays on the socket for this script.
cat > "$RUN/init.sql" <<'SQL'
CREATE USER IF NOT EXISTS 'tls'@'127.0.0.1' IDENTIFIED BY 'tls-pass';
GRANT ALL ON *.* TO 'tls'@'127.0.0.1' WITH GRANT OPTION;
ALTER USER 'tls'@'127.0.0.1' REQUIRE SSL;
SQL
chmod 644 "$RUN/init.sql"
# A tmpdir of its own: a starting mariadbd deletes every #sql* file in its tmpdir, which would
# pull temporary tables from under the other servers sharing /tmp.
mkdir -p "$RUN/tmp" && chown "$user" "$RUN/tmp"
mariadbd --no-defaults --user="$user" --datadir="$RUN/data" --tmpdir="$RUN/tmp" --socket="$RUN/mariadbd.sock" \
    --pid-file="$RUN/mariadbd.pid" --bind-address=127.0.0.1 --port=$PORT --skip-name-resolve \
    --ssl-ca="$RUN/ca.pem" --ssl-cert="$RUN/server.pem" --ssl-key="$RUN/server.key" \
    --local-infile=1 --init-file="$RUN/init.sql" --log-error="$RUN/error.log" &
up() { mariadb -h 127.0.0.1 -P $PORT -utls -ptls-pass --ssl --ssl-ca="$RUN/ca.pem" -N -e 'SELECT 1' >/dev/null 2>&1; }
for _ in $(seq 60); do up && break; sleep 0.5; done
up || {
    cat "$RUN/error.log" >&2
    echo "the TLS MariaDB did not come up on 127.0.0.1:$PORT" >&2
    exit 1
}
if mariadb -h 127.0.0.1 -P $PORT -utls -ptls-pass --skip-ssl -e 'SELECT 1' >/dev/null 2>&1; then
    echo "the TLS MariaDB let the test user in without TLS" >&2
    exit 1
fi
echo "MariaDB $(mariadb -h 127.0.0.1 -P $PORT -utls -ptls-pass --ssl-ca="$RUN/ca.pem" -N -e 'SELECT VERSION()') on 127.0.0.1:$PORT, TLS required"

env DBBACKUP_MYSQL_TLS_SERVER="mysql://tls:tls-pass@127.0.0.1:$PORT" DBBACKUP_MYSQL_TLS_CA="$RUN/ca.pem" \
    cargo nextest run --workspace --all-features --no-fail-fast --run-ignored all \
    -E 'package(dbbackup-mysql) and test(/^tls::/)'
